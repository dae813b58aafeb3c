#include "support/protocol.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

namespace anubis::test {

namespace {

std::string id_suffix(std::optional<std::int64_t> id) {
  return id ? ",\"id\":" + std::to_string(*id) : std::string();
}

// Reads a JSON string starting at text[pos] == '"' (no escapes: the tests' names need none).
std::optional<std::string> read_string(std::string_view text, std::size_t& pos) {
  if (pos >= text.size() || text[pos] != '"') return std::nullopt;
  const auto end = text.find('"', pos + 1);
  if (end == std::string_view::npos) return std::nullopt;
  std::string out(text.substr(pos + 1, end - pos - 1));
  pos = end + 1;
  return out;
}

bool expect(std::string_view text, std::size_t& pos, std::string_view token) {
  if (text.substr(pos, token.size()) != token) return false;
  pos += token.size();
  return true;
}

}  // namespace

std::string event_line(std::string_view user, std::int64_t delta, std::optional<std::int64_t> id) {
  std::string line = "{\"user\":\"";
  line += user;
  line += delta > 0 ? "\",\"action\":\"buy\",\"amount\":" : "\",\"action\":\"sell\",\"amount\":";
  line += std::to_string(delta > 0 ? delta : -delta);
  line += id_suffix(id);
  line += '}';
  return line;
}

std::string health_line(std::optional<std::int64_t> id) {
  return "{\"type\":\"health\"" + id_suffix(id) + "}";
}

std::string balance_line(std::string_view user) {
  return "{\"type\":\"balance\",\"user\":\"" + std::string(user) + "\"}";
}

std::string accepted_reply(std::optional<std::int64_t> id) {
  return "{\"status\":\"accepted\"" + id_suffix(id) + "}";
}

std::string health_reply(std::optional<std::int64_t> id) {
  return "{\"status\":\"ok\"" + id_suffix(id) + "}";
}

std::string shutting_down_reply(std::optional<std::int64_t> id) {
  return R"({"status":"rejected","reason":"shutting_down")" + id_suffix(id) + "}";
}

std::string balance_reply(std::string_view user, const UserTotals& totals) {
  return "{\"status\":\"ok\",\"user\":\"" + std::string(user) +
         "\",\"balance\":" + std::to_string(totals.balance) +
         ",\"events\":" + std::to_string(totals.events) + "}";
}

std::optional<std::int64_t> int_field(std::string_view json, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const auto at = json.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  const char* begin = json.data() + at + key.size();
  const char* end = json.data() + json.size();
  std::int64_t value = 0;
  const auto result = std::from_chars(begin, end, value);
  if (result.ec != std::errc() || result.ptr == begin) return std::nullopt;
  return value;
}

std::optional<Counters> parse_counters(std::string_view json) {
  Counters c;
  const std::pair<std::string_view, std::int64_t*> fields[] = {
      {"received", &c.received},
      {"accepted", &c.accepted},
      {"dropped", &c.dropped},
      {"invalid", &c.invalid},
      {"rejected_shutting_down", &c.rejected_shutting_down},
      {"processed", &c.processed},
      {"overflowed", &c.overflowed},
      {"queue_depth", &c.queue_depth},
      {"connections_open", &c.connections_open},
      {"connections_total", &c.connections_total},
  };
  for (const auto& [name, slot] : fields) {
    const auto value = int_field(json, name);
    if (!value) return std::nullopt;
    *slot = *value;
  }
  return c;
}

std::optional<Counters> wait_until_drained(Client& client, Deadline deadline) {
  for (;;) {
    const auto reply = client.request(kMetricsLine, deadline);
    if (!reply) return std::nullopt;
    const auto counters = parse_counters(*reply);
    if (!counters) return std::nullopt;
    if (counters->processed == counters->accepted) return counters;
    if (Clock::now() >= deadline) return std::nullopt;
  }
}

std::optional<Balances> parse_state_file(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  Balances out;
  std::size_t pos = 0;
  if (!expect(text, pos, "{\"balances\":{")) return std::nullopt;
  if (expect(text, pos, "}}")) return pos == text.size() ? std::optional(out) : std::nullopt;
  for (;;) {
    auto user = read_string(text, pos);
    if (!user || !expect(text, pos, ":{\"balance\":")) return std::nullopt;
    UserTotals totals;
    auto result = std::from_chars(text.data() + pos, text.data() + text.size(), totals.balance);
    if (result.ec != std::errc()) return std::nullopt;
    pos = static_cast<std::size_t>(result.ptr - text.data());
    if (!expect(text, pos, ",\"events\":")) return std::nullopt;
    result = std::from_chars(text.data() + pos, text.data() + text.size(), totals.events);
    if (result.ec != std::errc()) return std::nullopt;
    pos = static_cast<std::size_t>(result.ptr - text.data());
    if (!expect(text, pos, "}")) return std::nullopt;
    if (!out.emplace(std::move(*user), totals).second) return std::nullopt;  // duplicate user
    if (expect(text, pos, ",")) continue;
    if (!expect(text, pos, "}}") || pos != text.size()) return std::nullopt;
    return out;
  }
}

std::optional<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace anubis::test
