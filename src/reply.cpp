#include "reply.hpp"

#include <charconv>

namespace anubis {

namespace {

template <class Int>
void append_int(std::string& out, Int value) {
  char buf[24];
  const auto result = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, result.ptr);
}

// Appends `,"id":...` when the request carried one, then the closing brace and newline.
void close_reply(std::string& out, const RequestId& id) {
  switch (id.kind) {
    case RequestId::Kind::none:
      break;
    case RequestId::Kind::integer:
      out += ",\"id\":";
      append_int(out, id.integer);
      break;
    case RequestId::Kind::string:
      out += ",\"id\":";
      append_json_string(out, id.string_view());
      break;
  }
  out += "}\n";
}

void append_metric_fields(std::string& out, const MetricsSnapshot& m) {
  const std::pair<std::string_view, std::uint64_t> fields[] = {
      {"received", m.received},
      {"accepted", m.accepted},
      {"dropped", m.dropped},
      {"invalid", m.invalid},
      {"rejected_shutting_down", m.rejected_shutting_down},
      {"processed", m.processed},
      {"overflowed", m.overflowed},
      {"queue_depth", m.queue_depth},
      {"connections_open", m.connections_open},
      {"connections_total", m.connections_total},
  };
  bool first = true;
  for (const auto& [name, value] : fields) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += name;
    out += "\":";
    append_int(out, value);
  }
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_accepted(std::string& out, const RequestId& id) {
  out += "{\"status\":\"accepted\"";
  close_reply(out, id);
}

void append_server_busy(std::string& out, const RequestId& id, std::uint32_t retry_after_ms) {
  out += "{\"status\":\"rejected\",\"reason\":\"server_busy\",\"retry_after_ms\":";
  append_int(out, retry_after_ms);
  close_reply(out, id);
}

void append_shutting_down(std::string& out, const RequestId& id) {
  out += "{\"status\":\"rejected\",\"reason\":\"shutting_down\"";
  close_reply(out, id);
}

void append_error(std::string& out, const RequestId& id, ErrorCode code, std::string_view detail) {
  out += "{\"status\":\"error\",\"reason\":\"";
  out += to_string(code);
  out += "\",\"detail\":";
  append_json_string(out, detail);
  close_reply(out, id);
}

void append_health(std::string& out, const RequestId& id) {
  out += "{\"status\":\"ok\"";
  close_reply(out, id);
}

void append_balance(std::string& out, const RequestId& id, std::string_view user,
                    std::int64_t balance, std::uint64_t events) {
  out += "{\"status\":\"ok\",\"user\":";
  append_json_string(out, user);
  out += ",\"balance\":";
  append_int(out, balance);
  out += ",\"events\":";
  append_int(out, events);
  close_reply(out, id);
}

void append_metrics(std::string& out, const RequestId& id, const MetricsSnapshot& m) {
  out += "{\"status\":\"ok\",";
  append_metric_fields(out, m);
  close_reply(out, id);
}

std::string metrics_json(const MetricsSnapshot& m) {
  std::string out = "{";
  append_metric_fields(out, m);
  out += '}';
  return out;
}

}  // namespace anubis
