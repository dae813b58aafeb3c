#include "request.hpp"

#include <array>
#include <boost/json/basic_parser_impl.hpp>
#include <limits>

namespace anubis {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_json:
      return "invalid_json";
    case ErrorCode::invalid_event:
      return "invalid_event";
    case ErrorCode::line_too_long:
      return "line_too_long";
    case ErrorCode::unknown_type:
      return "unknown_type";
    case ErrorCode::too_many_connections:
      return "too_many_connections";
  }
  return "invalid_json";
}

namespace {

namespace json = boost::json;
using boost::system::error_code;

enum class Field : std::uint8_t { type, user, action, amount, id, unknown };
inline constexpr std::size_t kFieldCount = 5;  // fields before Field::unknown
inline constexpr std::array<std::string_view, kFieldCount> kFieldNames = {"type", "user", "action",
                                                                          "amount", "id"};

enum class ValueKind : std::uint8_t {
  absent,
  string,
  int64,
  uint64,
  floating,
  boolean,
  null,
  object,
  array
};

// A bounded string buffer that remembers whether the input overflowed it. Every string the
// protocol accepts fits in kMaxUserBytes (== kMaxIdBytes); longer ones only need to be refused.
struct SmallString {
  std::array<char, kMaxUserBytes> bytes{};
  std::size_t size = 0;  // bytes stored, <= bytes.size()
  bool overflow = false;

  void clear() noexcept {
    size = 0;
    overflow = false;
  }
  void append(std::string_view part) noexcept {
    const std::size_t room = bytes.size() - size;
    const std::size_t n = part.size() < room ? part.size() : room;
    std::memcpy(bytes.data() + size, part.data(), n);
    size += n;
    if (n < part.size()) overflow = true;
  }
  std::string_view view() const noexcept { return {bytes.data(), size}; }
};

struct FieldValue {
  ValueKind kind = ValueKind::absent;
  std::int64_t int64 = 0;
  SmallString text;
};

// True if the UTF-8 string (already validated by Boost.JSON) contains a Unicode control
// character: U+0000..U+001F, U+007F, or U+0080..U+009F (encoded as C2 80..C2 9F).
bool has_control_character(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size()) {
      const auto next = static_cast<unsigned char>(s[i + 1]);
      if (next >= 0x80 && next <= 0x9f) return true;
    }
  }
  return false;
}

// The longest prefix of `s` that does not end inside a UTF-8 sequence. Names are kept to 64
// bytes, which may cut a character; details must stay valid UTF-8 (they are sent as JSON).
std::string_view whole_characters(std::string_view s) noexcept {
  std::size_t back = 0;  // continuation bytes at the end
  while (back < 3 && back < s.size() &&
         (static_cast<unsigned char>(s[s.size() - 1 - back]) & 0xc0) == 0x80) {
    ++back;
  }
  if (back == s.size()) return s.substr(0, 0);
  const auto lead = static_cast<unsigned char>(s[s.size() - 1 - back]);
  const std::size_t length = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
  return length == back + 1 ? s : s.substr(0, s.size() - 1 - back);
}

// A name for an error detail, quoted; "..." marks one cut at 64 bytes.
std::string quoted(const SmallString& name) {
  std::string out = "\"";
  out += whole_characters(name.view());
  if (name.overflow) out += "...";
  out += '"';
  return out;
}

std::string quoted(std::string_view name) {
  std::string out = "\"";
  out += name;
  out += '"';
  return out;
}

// SAX handler: records what the top-level object holds; validation happens once the whole line
// has parsed, so a syntax error anywhere in the line wins over a semantic one.
class Handler {
 public:
  static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
  static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();

  void reset() noexcept {
    depth_ = 0;
    key_.clear();  // a line that failed inside a key leaves part of it here
    top_level_is_object_ = false;
    current_ = Field::unknown;
    for (auto& field : fields_) field.kind = ValueKind::absent;
    duplicate_.clear();
    has_duplicate_ = false;
    unknown_.clear();
    has_unknown_ = false;
  }

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }

  bool on_object_begin(error_code&) {
    if (depth_ == 0) top_level_is_object_ = true;
    if (depth_ == 1) set_kind(ValueKind::object);
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t, error_code&) {
    --depth_;
    return true;
  }
  bool on_array_begin(error_code&) {
    if (depth_ == 1) set_kind(ValueKind::array);
    ++depth_;
    return true;
  }
  bool on_array_end(std::size_t, error_code&) {
    --depth_;
    return true;
  }

  bool on_key_part(json::string_view part, std::size_t, error_code&) {
    if (depth_ == 1) key_.append(part);
    return true;
  }
  bool on_key(json::string_view part, std::size_t, error_code&) {
    if (depth_ != 1) return true;
    key_.append(part);
    begin_field();
    key_.clear();
    return true;
  }

  bool on_string_part(json::string_view part, std::size_t, error_code&) {
    if (FieldValue* value = current_value()) value->text.append(part);
    return true;
  }
  bool on_string(json::string_view part, std::size_t, error_code&) {
    if (FieldValue* value = current_value()) {
      value->text.append(part);
      value->kind = ValueKind::string;
    }
    return true;
  }

  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view, error_code&) {
    if (FieldValue* value = current_value()) {
      value->kind = ValueKind::int64;
      value->int64 = v;
    }
    return true;
  }
  bool on_uint64(std::uint64_t, json::string_view, error_code&) {
    // Only values above INT64_MAX arrive here; none is a valid amount or id.
    set_kind(ValueKind::uint64);
    return true;
  }
  bool on_double(double, json::string_view, error_code&) {
    set_kind(ValueKind::floating);
    return true;
  }
  bool on_bool(bool, error_code&) {
    set_kind(ValueKind::boolean);
    return true;
  }
  bool on_null(error_code&) {
    set_kind(ValueKind::null);
    return true;
  }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }

  // Fills `out` from what was recorded. Precondition: the line parsed as JSON.
  void finish(Request& out) const;

 private:
  // The value slot for a scalar seen now: only direct members of the top-level object count,
  // and only the first occurrence of a known field (a duplicate is an error anyway).
  FieldValue* current_value() noexcept {
    if (depth_ != 1 || current_ == Field::unknown) return nullptr;
    return &fields_[static_cast<std::size_t>(current_)];
  }
  void set_kind(ValueKind kind) noexcept {
    if (FieldValue* value = current_value()) value->kind = kind;
  }

  void begin_field() {
    current_ = Field::unknown;
    for (std::size_t i = 0; i < kFieldCount; ++i) {
      if (!key_.overflow && key_.view() == kFieldNames[i]) current_ = static_cast<Field>(i);
    }
    if (current_ == Field::unknown) {
      if (!has_unknown_) {
        unknown_ = key_;
        has_unknown_ = true;
      }
      return;
    }
    FieldValue& value = fields_[static_cast<std::size_t>(current_)];
    if (value.kind != ValueKind::absent) {
      if (!has_duplicate_) {
        duplicate_ = key_;
        has_duplicate_ = true;
      }
      current_ = Field::unknown;  // keep the first value; the request is refused anyway
      return;
    }
    value.text.clear();
  }

  const FieldValue& field(Field f) const noexcept { return fields_[static_cast<std::size_t>(f)]; }

  static void fail(Request& out, ErrorCode code, std::string detail) {
    out.type = RequestType::invalid;
    out.error = code;
    out.detail = std::move(detail);
  }
  bool check_user(Request& out) const;

  std::size_t depth_ = 0;
  bool top_level_is_object_ = false;
  Field current_ = Field::unknown;
  std::array<FieldValue, kFieldCount> fields_{};
  SmallString key_;
  SmallString duplicate_;
  bool has_duplicate_ = false;
  SmallString unknown_;
  bool has_unknown_ = false;
};

bool Handler::check_user(Request& out) const {
  const FieldValue& user = field(Field::user);
  if (user.kind == ValueKind::absent) {
    fail(out, ErrorCode::invalid_event, "missing field \"user\"");
    return false;
  }
  if (user.kind != ValueKind::string || user.text.overflow || user.text.size == 0) {
    fail(out, ErrorCode::invalid_event, "user must be a string of 1 to 64 bytes");
    return false;
  }
  if (has_control_character(user.text.view())) {
    fail(out, ErrorCode::invalid_event, "user must not contain control characters");
    return false;
  }
  out.event.user = UserKey(user.text.view());
  return true;
}

void Handler::finish(Request& out) const {
  // The id first, so that every later error can still be matched to its request.
  out.id = RequestId{};
  bool id_valid = true;
  const FieldValue& id = field(Field::id);
  if (id.kind == ValueKind::int64) {
    out.id.kind = RequestId::Kind::integer;
    out.id.integer = id.int64;
  } else if (id.kind == ValueKind::string && !id.text.overflow) {
    out.id.kind = RequestId::Kind::string;
    out.id.size = static_cast<std::uint8_t>(id.text.size);
    std::memcpy(out.id.text, id.text.bytes.data(), id.text.size);
  } else if (id.kind != ValueKind::absent) {
    id_valid = false;
  }

  if (!top_level_is_object_) {
    fail(out, ErrorCode::invalid_event, "request must be a JSON object");
    return;
  }
  if (has_duplicate_) {
    fail(out, ErrorCode::invalid_event, "duplicate field " + quoted(duplicate_));
    return;
  }

  // Which request is this? Without "type" it is an event.
  RequestType type = RequestType::event;
  const FieldValue& type_field = field(Field::type);
  if (type_field.kind != ValueKind::absent) {
    if (type_field.kind != ValueKind::string) {
      fail(out, ErrorCode::invalid_event, "type must be a string");
      return;
    }
    const std::string_view name = type_field.text.view();
    if (!type_field.text.overflow && name == "health") {
      type = RequestType::health;
    } else if (!type_field.text.overflow && name == "metrics") {
      type = RequestType::metrics;
    } else if (!type_field.text.overflow && name == "balance") {
      type = RequestType::balance;
    } else {
      fail(out, ErrorCode::unknown_type,
           "unknown request type " + quoted(type_field.text) +
               " (expected health, metrics or balance)");
      return;
    }
  }

  if (!id_valid) {
    fail(out, ErrorCode::invalid_event,
         "id must be a string of at most 64 bytes or an integer from -2^63 to 2^63-1");
    return;
  }

  // Fields each request type may carry besides "id".
  auto allowed = [type](Field f) {
    switch (type) {
      case RequestType::event:
        return f == Field::user || f == Field::action || f == Field::amount;
      case RequestType::balance:
        return f == Field::type || f == Field::user;
      default:
        return f == Field::type;
    }
  };
  if (has_unknown_) {
    fail(out, ErrorCode::invalid_event, "unknown field " + quoted(unknown_));
    return;
  }
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    const auto f = static_cast<Field>(i);
    if (f != Field::id && field(f).kind != ValueKind::absent && !allowed(f)) {
      fail(out, ErrorCode::invalid_event, "unknown field " + quoted(kFieldNames[i]));
      return;
    }
  }

  if (type == RequestType::event) {
    if (!check_user(out)) return;
    const FieldValue& action = field(Field::action);
    if (action.kind == ValueKind::absent) {
      fail(out, ErrorCode::invalid_event, "missing field \"action\"");
      return;
    }
    const bool buy = action.kind == ValueKind::string && action.text.view() == "buy";
    const bool sell = action.kind == ValueKind::string && action.text.view() == "sell";
    if (!buy && !sell) {
      fail(out, ErrorCode::invalid_event, "action must be \"buy\" or \"sell\"");
      return;
    }
    const FieldValue& amount = field(Field::amount);
    if (amount.kind == ValueKind::absent) {
      fail(out, ErrorCode::invalid_event, "missing field \"amount\"");
      return;
    }
    // Only numbers written as integers count: 1.0, 1e2 and -0 arrive as doubles and 2^63 and
    // above as uint64 or double, so none of them reaches this range check.
    if (amount.kind != ValueKind::int64 || amount.int64 < 1 || amount.int64 > kMaxAmount) {
      fail(out, ErrorCode::invalid_event, "amount must be an integer from 1 to 1000000000");
      return;
    }
    out.event.delta = buy ? amount.int64 : -amount.int64;
  } else if (type == RequestType::balance) {
    if (!check_user(out)) return;
  }
  out.type = type;
}

json::parse_options parser_options() {
  json::parse_options options;
  options.max_depth = kMaxNestingDepth;
  return options;
}

std::string_view describe(const error_code& ec) {
  if (ec == json::error::too_deep) return "nesting deeper than 32 levels";
  if (ec == json::error::extra_data) return "unexpected data after the JSON value";
  if (ec == json::error::incomplete) return "incomplete JSON value";
  return {};
}

}  // namespace

struct RequestParser::Impl {
  json::basic_parser<Handler> parser{parser_options()};
  Request request;
};

RequestParser::RequestParser() : impl_(std::make_unique<Impl>()) {}
RequestParser::~RequestParser() = default;

const Request& RequestParser::parse(std::string_view line) {
  auto& parser = impl_->parser;
  Request& out = impl_->request;
  parser.reset();
  parser.handler().reset();
  error_code ec;
  const std::size_t used = parser.write_some(false, line.data(), line.size(), ec);
  if (!ec && used != line.size()) ec = json::error::extra_data;
  if (ec) {
    std::string_view why = describe(ec);
    out.type = RequestType::invalid;
    out.error = ErrorCode::invalid_json;
    out.detail = why.empty() ? ec.message() + " at byte " + std::to_string(used) : std::string(why);
    out.id = RequestId{};
    return out;
  }
  parser.handler().finish(out);
  return out;
}

}  // namespace anubis
