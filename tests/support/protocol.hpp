// Helpers for the line protocol of docs/PROTOCOL.md, seen from a client: request builders, the
// exact replies the server is documented to send, and small readers for the numbers inside a
// reply, the `final` line and the --state-out file. The parsing is deliberately minimal (no
// JSON library): it reads only the flat objects this server writes, with the plain user names
// the tests choose.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "support/client.hpp"
#include "support/deadline.hpp"

namespace anubis::test {

// --- Requests (no line ending: Client::request adds it, raw sends add their own) -----------

// An event: "buy" of delta if delta > 0, "sell" of -delta otherwise; `"id":id` if given.
std::string event_line(std::string_view user, std::int64_t delta,
                       std::optional<std::int64_t> id = std::nullopt);
std::string health_line(std::optional<std::int64_t> id = std::nullopt);
inline constexpr std::string_view kMetricsLine = R"({"type":"metrics"})";
std::string balance_line(std::string_view user);

// --- Replies, exactly as the server writes them (no line ending) ----------------------------

std::string accepted_reply(std::optional<std::int64_t> id = std::nullopt);
std::string health_reply(std::optional<std::int64_t> id = std::nullopt);
std::string shutting_down_reply(std::optional<std::int64_t> id = std::nullopt);
inline constexpr std::string_view kServerBusyPrefix =
    R"({"status":"rejected","reason":"server_busy","retry_after_ms":)";

// --- Reading replies ------------------------------------------------------------------------

// The integer after `"name":` in a flat JSON object, e.g. int_field(reply, "processed").
std::optional<std::int64_t> int_field(std::string_view json, std::string_view name);

// The metrics counters of a `metrics` reply or of the `final` line.
struct Counters {
  std::int64_t received = 0;
  std::int64_t accepted = 0;
  std::int64_t dropped = 0;
  std::int64_t invalid = 0;
  std::int64_t rejected_shutting_down = 0;
  std::int64_t processed = 0;
  std::int64_t overflowed = 0;
  std::int64_t queue_depth = 0;
  std::int64_t connections_open = 0;
  std::int64_t connections_total = 0;
};
// nullopt unless every counter is present.
std::optional<Counters> parse_counters(std::string_view json);

// received == accepted + dropped + rejected_shutting_down + invalid: the invariant that holds
// at rest and always in the `final` line.
inline bool counters_balance(const Counters& c) {
  return c.received == c.accepted + c.dropped + c.rejected_shutting_down + c.invalid;
}

// Asks `metrics` on `client` until processed == accepted (every accepted event applied, so
// balance queries see all of them). Returns the last counters, or nullopt at the deadline.
// Each round trip waits for the server's reply, so the loop is paced by the server itself.
std::optional<Counters> wait_until_drained(Client& client, Deadline deadline);

// --- Balances -------------------------------------------------------------------------------

struct UserTotals {
  std::int64_t balance = 0;
  std::int64_t events = 0;
  friend bool operator==(const UserTotals&, const UserTotals&) = default;
};
using Balances = std::map<std::string, UserTotals, std::less<>>;

// Adds one applied event to `balances`.
inline void add_event(Balances& balances, std::string_view user, std::int64_t delta) {
  auto it = balances.find(user);
  if (it == balances.end()) it = balances.emplace(std::string(user), UserTotals{}).first;
  it->second.balance += delta;
  it->second.events += 1;
}

// The reply to balance_line(user) once `totals` are applied.
std::string balance_reply(std::string_view user, const UserTotals& totals);

// Parses {"balances":{"alice":{"balance":70,"events":2},...}} as --state-out writes it.
std::optional<Balances> parse_state_file(std::string_view text);

// The whole content of a file, or nullopt if it cannot be read.
std::optional<std::string> read_text_file(const std::string& path);

}  // namespace anubis::test
