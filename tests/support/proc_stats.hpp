// What /proc says about another process (the server): its resident memory and the CPU time it
// has used, for tests that bound the server's memory or prove it does not spin. Linux only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>

namespace anubis::test {

// VmRSS from /proc/PID/status, in KiB.
std::optional<std::size_t> resident_kib(pid_t pid);

// utime + stime from /proc/PID/stat: CPU time used by every thread of the process so far.
std::optional<std::chrono::duration<double>> cpu_time(pid_t pid);

}  // namespace anubis::test
