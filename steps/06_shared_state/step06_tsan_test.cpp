// Stage 06's broken variant under ThreadSanitizer: without the lock, the workers' updates of one
// balance are a data race, and TSan reports it on every run. (Outside a TSan build the test is
// skipped; step06_test counts the lost updates instead.)
#include <gtest/gtest.h>

#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

// --break no-lock: TSan names the race in LockedBalances::apply and ends the stage with its
// exit code 66 (the tests run with TSAN_OPTIONS=halt_on_error=1). TSan judges by
// happens-before, not by luck of timing: two unsynchronised accesses are a race even if they
// did not overlap this time, so one run is enough.
TEST(Step06Tsan, NoLockIsReportedAsADataRace) {
  if (!kUnderTsan) GTEST_SKIP() << "needs the tsan preset";
  StageProcess stage(STAGE_BINARY,
                     {"--break", "no-lock", "--workers", "4", "--users", "1", "--hold-us", "100"},
                     {.capture_stderr = true});
  test::Client client(stage.port());
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += R"({"user":"user1","action":"buy","amount":1})"
            "\n";
  ASSERT_TRUE(client.send(text));
  EXPECT_EQ(stage.wait_exit(), 66);
  const std::string report = stage.stderr_text();
  EXPECT_NE(report.find("WARNING: ThreadSanitizer: data race"), std::string::npos) << report;
  EXPECT_NE(report.find("LockedBalances"), std::string::npos) << report;
}

}  // namespace
}  // namespace anubis::steps
