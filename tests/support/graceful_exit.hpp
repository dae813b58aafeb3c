// What every graceful exit of the server promises, as GoogleTest expectations: exit status 0,
// a `final` line whose counters balance, processed == accepted, nothing left queued or open.
#pragma once

#include <optional>

#include "support/deadline.hpp"
#include "support/protocol.hpp"
#include "support/server_process.hpp"

namespace anubis::test {

// Waits (until `deadline`) for the server to exit, checks the promises above and returns the
// counters of its `final` line (nullopt, with a failure recorded, if there is none).
std::optional<Counters> expect_graceful_exit(ServerProcess& server, Deadline deadline);

// Sends SIGTERM, then expect_graceful_exit with a generous deadline.
std::optional<Counters> stop_and_check_final(ServerProcess& server);

}  // namespace anubis::test
