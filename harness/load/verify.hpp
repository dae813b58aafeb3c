// --verify: after the load, ask the server for the balance of every user the run touched (and a
// sample of the untouched ones) and compare with the sums of the events it accepted. The client
// knows those sums exactly because --user-prefix gives every run users of its own.
//
// The comparison is pure (parse_*, compare) and unit-tested; the query loops (verify_anubis,
// verify_redis, in verify_net.cpp) only fetch the replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "load/resp.hpp"

namespace anubis::harness::load {

enum class VerifyOutcome : std::uint8_t { ok, mismatch, timed_out, bad_reply, connection_failed };

std::string_view to_string(VerifyOutcome outcome) noexcept;

struct VerifyResult {
  std::uint64_t checked_users = 0;
  std::uint64_t mismatches = 0;
  VerifyOutcome outcome = VerifyOutcome::ok;
};

// What the client expects the server to hold for one user.
struct Expected {
  std::int64_t balance = 0;
  std::uint64_t events = 0;
};

// What the server answered for one user; nullopt fields it did not (or could not) say.
struct Observed {
  std::optional<std::int64_t> balance;
  std::optional<std::uint64_t> events;  // anubis only: redis keeps no event count
  bool events_known = true;             // false for redis: events is not compared
};

// {"status":"ok","user":"<user>","balance":B,"events":E}: balance and events, if the reply is ok
// and names `user`; otherwise an Observed with neither.
Observed parse_anubis_balance(std::string_view reply, std::string_view user);

// A GET reply: a bulk string holding an integer, or nil (a key never written, i.e. 0).
Observed parse_redis_get(const resp::Reply& reply);

// Whether what the server holds is what the client expects.
bool matches(const Expected& expected, const Observed& observed) noexcept;

// Every user with an accepted event, then an evenly spread sample of up to `untouched_sample`
// users without one (whose balances must be 0).
std::vector<std::uint32_t> users_to_verify(const std::vector<std::uint64_t>& expected_events,
                                           std::size_t untouched_sample);

// The sums of one run, by user index.
struct ExpectedSums {
  const std::vector<std::int64_t>& balance;
  const std::vector<std::uint64_t>& events;
  Expected at(std::uint32_t user) const { return {balance[user], events[user]}; }
};

// Queries every user of users_to_verify over one connection, pipelined, and compares; reports up
// to a few mismatches on stderr. verify_anubis first waits until the server has applied every
// event it accepted (metrics: processed == accepted).
VerifyResult verify_anubis(const std::string& host, std::uint16_t port,
                           const std::string& user_prefix, const ExpectedSums& expected);
VerifyResult verify_redis(const std::string& host, std::uint16_t port,
                          const std::string& user_prefix, const ExpectedSums& expected);

}  // namespace anubis::harness::load
