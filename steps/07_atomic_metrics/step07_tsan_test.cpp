// Stage 07's broken variant under ThreadSanitizer: plain counters updated by several workers
// are a data race, and TSan reports it on every run. (Outside a TSan build the test is skipped;
// step07_test counts the lost increments instead.)
#include <gtest/gtest.h>

#include <string>

#include "support/client.hpp"
#include "testing/stage_process.hpp"

namespace anubis::steps {
namespace {

// --break plain-counter: TSan reports the race on a counter a worker adds to, and ends the stage
// with its exit code 66 (the tests run with TSAN_OPTIONS=halt_on_error=1). It judges by
// happens-before, not by timing, so it needs no lost count to find the bug.
TEST(Step07Tsan, PlainCounterIsReportedAsADataRace) {
  if (!kUnderTsan) GTEST_SKIP() << "needs the tsan preset";
  StageProcess stage(STAGE_BINARY,
                     {"--quiet", "--workers", "4", "--report-ms", "5", "--break", "plain-counter"},
                     {.capture_stderr = true});
  test::Client client(stage.port());
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += R"({"user":"user1","action":"buy","amount":1})"
            "\n";
  ASSERT_TRUE(client.send(text));
  EXPECT_EQ(stage.wait_exit(), 66);
  const std::string report = stage.stderr_text();
  EXPECT_NE(report.find("WARNING: ThreadSanitizer: data race"), std::string::npos) << report;
  EXPECT_NE(report.find("run_worker"), std::string::npos) << report;  // a worker's add
}

}  // namespace
}  // namespace anubis::steps
