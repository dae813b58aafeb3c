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

}  // namespace anubis
