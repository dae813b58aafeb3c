// The shared state seen from the engine: the balance store chosen on the command line
// (strategies/lock/) and its durable form, the --state-out file.
#pragma once

#include <string>

#include "balance_store.hpp"

namespace anubis {

// Writes {"balances":{"alice":{"balance":70,"events":2},...}} (users sorted) to a temporary
// file beside `path`, flushes it to disk and renames it into place, so a reader sees either
// the previous file or the complete new one. Returns "" or a one-line reason for failure.
std::string write_state_file(const BalanceSnapshot& balances, const std::string& path);

// Checks, without touching `path`, that write_state_file could write it: the temporary file can
// be created beside it and `path` is a regular file or nothing yet. Returns "" or a one-line
// reason.
std::string check_state_file_path(const std::string& path);

}  // namespace anubis
