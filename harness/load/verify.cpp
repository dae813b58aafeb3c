#include "load/verify.hpp"

#include <algorithm>
#include <charconv>

namespace anubis::harness::load {
namespace {

// The integer after `"name":` in a flat reply object; nullopt when absent or not an integer.
// Sound for this protocol's replies: their only strings (user names) cannot contain '"'.
template <class Int>
std::optional<Int> find_integer(std::string_view line, std::string_view name) {
  const std::string key = "\"" + std::string(name) + "\":";
  const std::size_t at = line.find(key);
  if (at == std::string_view::npos) return std::nullopt;
  Int value{};
  const char* const begin = line.data() + at + key.size();
  const auto [end, ec] = std::from_chars(begin, line.data() + line.size(), value);
  if (ec != std::errc{} || end == begin) return std::nullopt;
  return value;
}

}  // namespace

std::string_view to_string(VerifyOutcome outcome) noexcept {
  switch (outcome) {
    case VerifyOutcome::ok:
      return "ok";
    case VerifyOutcome::mismatch:
      return "mismatch";
    case VerifyOutcome::timed_out:
      return "timed_out";
    case VerifyOutcome::bad_reply:
      return "bad_reply";
    case VerifyOutcome::connection_failed:
      return "connection_failed";
  }
  return "unknown";
}

Observed parse_anubis_balance(std::string_view reply, std::string_view user) {
  Observed observed;
  const std::string named = "\"user\":\"" + std::string(user) + "\"";
  if (!reply.starts_with(R"({"status":"ok")") || reply.find(named) == std::string_view::npos) {
    return observed;
  }
  observed.balance = find_integer<std::int64_t>(reply, "balance");
  observed.events = find_integer<std::uint64_t>(reply, "events");
  return observed;
}

Observed parse_redis_get(const resp::Reply& reply) {
  Observed observed;
  observed.events_known = false;
  if (reply.type != resp::Type::bulk_string) return observed;
  if (reply.nil()) {
    observed.balance = 0;
    return observed;
  }
  std::int64_t value = 0;
  const char* const end = reply.text.data() + reply.text.size();
  const auto [stop, ec] = std::from_chars(reply.text.data(), end, value);
  if (ec == std::errc{} && stop == end && !reply.text.empty()) observed.balance = value;
  return observed;
}

bool matches(const Expected& expected, const Observed& observed) noexcept {
  if (observed.balance != expected.balance) return false;
  return !observed.events_known || observed.events == expected.events;
}

std::vector<std::uint32_t> users_to_verify(const std::vector<std::uint64_t>& expected_events,
                                           std::size_t untouched_sample) {
  std::vector<std::uint32_t> touched;
  std::vector<std::uint32_t> untouched;
  for (std::uint32_t user = 0; user < expected_events.size(); ++user) {
    (expected_events[user] > 0 ? touched : untouched).push_back(user);
  }
  const std::size_t sample = std::min(untouched.size(), untouched_sample);
  for (std::size_t i = 0; i < sample; ++i) {
    touched.push_back(untouched[i * untouched.size() / sample]);
  }
  return touched;
}

}  // namespace anubis::harness::load
