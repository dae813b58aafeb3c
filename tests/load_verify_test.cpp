#include "load/verify.hpp"

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace anubis::harness::load {
namespace {

resp::Reply parse_one(const std::string& bytes) {
  resp::Reply reply;
  const resp::Parsed parsed = resp::parse(bytes.data(), bytes.data() + bytes.size(), reply);
  EXPECT_EQ(parsed.status, resp::Status::complete) << bytes;
  return reply;
}

// An anubis balance reply that names the user and carries the expected sums matches.
TEST(Verify, AnubisReplyWithExpectedSumsMatches) {
  const Observed got =
      parse_anubis_balance(R"({"status":"ok","user":"p-7","balance":-70,"events":2})", "p-7");
  EXPECT_TRUE(matches({-70, 2}, got));
}

// A balance or event count off by one, another user's reply, or an error reply is a mismatch.
TEST(Verify, AnubisMismatchesAreDetected) {
  EXPECT_FALSE(matches(
      {-70, 2},
      parse_anubis_balance(R"({"status":"ok","user":"p-7","balance":-69,"events":2})", "p-7")));
  EXPECT_FALSE(matches(
      {-70, 2},
      parse_anubis_balance(R"({"status":"ok","user":"p-7","balance":-70,"events":3})", "p-7")));
  EXPECT_FALSE(matches(
      {-70, 2},
      parse_anubis_balance(R"({"status":"ok","user":"p-70","balance":-70,"events":2})", "p-7")));
  EXPECT_FALSE(matches(
      {0, 0}, parse_anubis_balance(R"({"status":"error","reason":"invalid_json"})", "p-7")));
  EXPECT_FALSE(matches({0, 0}, parse_anubis_balance(R"({"status":"ok","user":"p-7"})", "p-7")));
}

// A GET of the expected value matches; nil matches only an untouched user (balance 0).
TEST(Verify, RedisGetMatchesExpectedValue) {
  EXPECT_TRUE(matches({-1234, 9}, parse_redis_get(parse_one("$5\r\n-1234\r\n"))));
  EXPECT_TRUE(matches({0, 0}, parse_redis_get(parse_one("$-1\r\n"))));
  EXPECT_TRUE(matches({0, 4}, parse_redis_get(parse_one("$1\r\n0\r\n"))));  // sums to zero
}

// A tampered value, a nil where events were accepted, a non-integer value or a non-bulk reply
// is a mismatch.
TEST(Verify, RedisMismatchesAreDetected) {
  EXPECT_FALSE(matches({-1234, 9}, parse_redis_get(parse_one("$5\r\n-1233\r\n"))));
  EXPECT_FALSE(matches({15, 1}, parse_redis_get(parse_one("$-1\r\n"))));
  EXPECT_FALSE(matches({0, 0}, parse_redis_get(parse_one("$2\r\n1x\r\n"))));
  EXPECT_FALSE(matches({0, 0}, parse_redis_get(parse_one("$0\r\n\r\n"))));
  EXPECT_FALSE(matches({0, 0}, parse_redis_get(parse_one("-WRONGTYPE oops\r\n"))));
  EXPECT_FALSE(matches({5, 1}, parse_redis_get(parse_one(":5\r\n"))));
}

// Every touched user is checked, plus an evenly spread sample of untouched ones.
TEST(Verify, UsersToVerify) {
  std::vector<std::uint64_t> events(1'000, 0);
  events[3] = 1;
  events[500] = 7;
  const std::vector<std::uint32_t> users = users_to_verify(events, 4);
  ASSERT_EQ(users.size(), 6U);
  EXPECT_EQ(users[0], 3U);
  EXPECT_EQ(users[1], 500U);
  for (std::size_t i = 2; i < users.size(); ++i) EXPECT_EQ(events[users[i]], 0U);
  EXPECT_EQ(users_to_verify({1, 1}, 100).size(), 2U);
}

}  // namespace
}  // namespace anubis::harness::load
