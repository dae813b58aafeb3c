// The results of a run: the --json-out document (schema 2 of the load client's contract) and the
// console summary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "load/options.hpp"
#include "load/stats.hpp"
#include "load/verify.hpp"

namespace anubis::harness::load {

struct RunResult {
  const Options& options;
  std::uint32_t threads = 1;  // I/O threads actually used
  const LoadStats& stats;     // merged over the threads
  double elapsed_s = 0;       // the measured phase: its start to its last reply
  std::optional<VerifyResult> verified;
};

// Open loop: whether every intended send was made and answered in time. Closed loop: true.
bool kept_up(const RunResult& run) noexcept;

// The JSON document, one object and a newline.
std::string json_report(const RunResult& run);

// "anubis-load: could not keep up: N sends missed, M timeouts (target R/s, sent S/s)\n"; empty
// when the run kept up.
std::string could_not_keep_up(const RunResult& run);

// The human-readable summary on stdout, ending with could_not_keep_up() when it applies.
void print_summary(const RunResult& run);

}  // namespace anubis::harness::load
