// Formatting of reply lines (docs/PROTOCOL.md). Each function appends one complete line,
// ending in '\n', to `out`; `out` is a connection's output buffer, so replies are written
// without a temporary string and a connection's replies leave in order, coalesced.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "metrics.hpp"
#include "request.hpp"

namespace anubis {

void append_accepted(std::string& out, const RequestId& id);
void append_server_busy(std::string& out, const RequestId& id, std::uint32_t retry_after_ms);
void append_shutting_down(std::string& out, const RequestId& id);
void append_error(std::string& out, const RequestId& id, ErrorCode code, std::string_view detail);
void append_health(std::string& out, const RequestId& id);
void append_balance(std::string& out, const RequestId& id, std::string_view user,
                    std::int64_t balance, std::uint64_t events);
void append_metrics(std::string& out, const RequestId& id, const MetricsSnapshot& m);

// The metrics as one JSON object without "status": the body of the server's `final` line.
std::string metrics_json(const MetricsSnapshot& m);

// Appends `text` as a JSON string literal (quotes included), escaping '"', '\\' and control
// characters. `text` is valid UTF-8 (the parser guarantees it), so other bytes pass through.
void append_json_string(std::string& out, std::string_view text);

}  // namespace anubis
