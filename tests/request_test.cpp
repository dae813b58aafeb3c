// Conformance tests for RequestParser against the line protocol (docs/PROTOCOL.md).
//
// Most cases live in one table, kCases: a line, the request type it must produce and, for a
// refused line, the error code and a substring the detail must contain. Behaviour that a
// {type, code, detail} triple cannot express (decoded user bytes, delta sign, echoed id, parser
// reuse) has its own TEST below the table.
#include "request.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace anubis {
namespace {

// ---------------------------------------------------------------------------------------------
// Line builders

// An event line with the given raw JSON text for each value (already quoted where needed).
std::string event_line(std::string_view user, std::string_view action, std::string_view amount) {
  std::string s = "{\"user\":";
  s += user;
  s += ",\"action\":";
  s += action;
  s += ",\"amount\":";
  s += amount;
  s += '}';
  return s;
}

// A buy of 1 by the given user, whose JSON text is written between quotes as is.
std::string user_line(std::string_view user_json_text) {
  return event_line("\"" + std::string(user_json_text) + "\"", "\"buy\"", "1");
}

// A valid buy event carrying `"id":<id_json>`.
std::string id_line(std::string_view id_json) {
  return "{\"user\":\"alice\",\"action\":\"buy\",\"amount\":1,\"id\":" + std::string(id_json) + "}";
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// An object nested `depth` levels deep in total (the top-level object is level 1): the unknown
// field "x" holds depth - 1 nested arrays. Parses as JSON iff depth <= kMaxNestingDepth.
std::string nested_object(std::size_t depth) {
  return "{\"x\":" + repeat("[", depth - 1) + repeat("]", depth - 1) + "}";
}

// `depth` nested arrays and nothing else.
std::string nested_arrays(std::size_t depth) {
  return repeat("[", depth) + repeat("]", depth);
}

// A string that contains a NUL byte (a plain string literal would stop at it).
std::string with_nul(std::string_view before, std::string_view after) {
  std::string s(before);
  s += std::string("\0", 1);
  s += after;
  return s;
}

const std::string kAlice = "{\"user\":\"alice\",\"action\":\"buy\",\"amount\":100}";
const std::string kE9 = "1000000000";  // kMaxAmount
const std::string kE = "\xc3\xa9";     // "é", two bytes in UTF-8

// ---------------------------------------------------------------------------------------------
// The table

struct Case {
  const char* name;
  std::string line;
  RequestType type;
  ErrorCode error;     // checked only when type == RequestType::invalid
  const char* detail;  // substring the detail must contain (type == invalid only)
};

constexpr auto kEvent = RequestType::event;
constexpr auto kHealth = RequestType::health;
constexpr auto kMetrics = RequestType::metrics;
constexpr auto kBalance = RequestType::balance;
constexpr auto kInvalid = RequestType::invalid;
constexpr auto kJson = ErrorCode::invalid_json;
constexpr auto kBad = ErrorCode::invalid_event;
constexpr auto kType = ErrorCode::unknown_type;
constexpr auto kNone = ErrorCode::invalid_json;  // placeholder for accepted rows (not checked)

const std::vector<Case> kCases = {
    // --- accepted requests -------------------------------------------------------------------
    {"buy", kAlice, kEvent, kNone, ""},
    {"sell", event_line("\"alice\"", "\"sell\"", "100"), kEvent, kNone, ""},
    {"fields in any order", "{\"amount\":5,\"action\":\"sell\",\"user\":\"bob\"}", kEvent, kNone,
     ""},
    {"health", "{\"type\":\"health\"}", kHealth, kNone, ""},
    {"metrics", "{\"type\":\"metrics\"}", kMetrics, kNone, ""},
    {"balance", "{\"type\":\"balance\",\"user\":\"alice\"}", kBalance, kNone, ""},
    {"health with id", "{\"type\":\"health\",\"id\":1}", kHealth, kNone, ""},
    {"metrics with id", "{\"id\":\"m\",\"type\":\"metrics\"}", kMetrics, kNone, ""},
    {"balance with id", "{\"type\":\"balance\",\"user\":\"alice\",\"id\":\"q\"}", kBalance, kNone,
     ""},
    {"event with id", id_line("7"), kEvent, kNone, ""},
    {"leading whitespace", " \t " + kAlice, kEvent, kNone, ""},
    {"trailing whitespace", kAlice + " \t ", kEvent, kNone, ""},
    {"whitespace between tokens", "{ \"user\" : \"a\" , \"action\" : \"buy\" , \"amount\" : 1 }",
     kEvent, kNone, ""},
    {"escaped key", "{\"u\\u0073er\":\"a\",\"action\":\"buy\",\"amount\":1}", kEvent, kNone, ""},

    // --- amount boundaries -------------------------------------------------------------------
    {"amount 1", event_line("\"a\"", "\"buy\"", "1"), kEvent, kNone, ""},
    {"amount 1e9", event_line("\"a\"", "\"buy\"", kE9), kEvent, kNone, ""},
    {"sell amount 1e9", event_line("\"a\"", "\"sell\"", kE9), kEvent, kNone, ""},
    {"amount 0", event_line("\"a\"", "\"buy\"", "0"), kInvalid, kBad, "amount"},
    {"amount 1e9+1", event_line("\"a\"", "\"buy\"", "1000000001"), kInvalid, kBad, "amount"},
    {"amount -1", event_line("\"a\"", "\"buy\"", "-1"), kInvalid, kBad, "amount"},
    {"amount -1e9", event_line("\"a\"", "\"sell\"", "-1000000000"), kInvalid, kBad, "amount"},
    {"amount int64 max", event_line("\"a\"", "\"buy\"", "9223372036854775807"), kInvalid, kBad,
     "amount"},
    {"amount int64 min", event_line("\"a\"", "\"buy\"", "-9223372036854775808"), kInvalid, kBad,
     "amount"},
    {"amount 2^63", event_line("\"a\"", "\"buy\"", "9223372036854775808"), kInvalid, kBad,
     "amount"},
    {"amount 2^64-1", event_line("\"a\"", "\"buy\"", "18446744073709551615"), kInvalid, kBad,
     "amount"},
    {"amount 2^64", event_line("\"a\"", "\"buy\"", "18446744073709551616"), kInvalid, kBad,
     "amount"},
    {"amount beyond 64 bits", event_line("\"a\"", "\"buy\"", "123456789012345678901234567890"),
     kInvalid, kBad, "amount"},
    {"amount 1.0", event_line("\"a\"", "\"buy\"", "1.0"), kInvalid, kBad, "amount"},
    {"amount 100.0", event_line("\"a\"", "\"buy\"", "100.0"), kInvalid, kBad, "amount"},
    {"amount 1e2", event_line("\"a\"", "\"buy\"", "1e2"), kInvalid, kBad, "amount"},
    {"amount 1E2", event_line("\"a\"", "\"buy\"", "1E2"), kInvalid, kBad, "amount"},
    {"amount -0", event_line("\"a\"", "\"buy\"", "-0"), kInvalid, kBad, "amount"},
    {"amount 1e400", event_line("\"a\"", "\"buy\"", "1e400"), kInvalid, kBad, "amount"},
    {"amount string", event_line("\"a\"", "\"buy\"", "\"100\""), kInvalid, kBad, "amount"},
    {"amount null", event_line("\"a\"", "\"buy\"", "null"), kInvalid, kBad, "amount"},
    {"amount true", event_line("\"a\"", "\"buy\"", "true"), kInvalid, kBad, "amount"},
    {"amount false", event_line("\"a\"", "\"buy\"", "false"), kInvalid, kBad, "amount"},
    {"amount array", event_line("\"a\"", "\"buy\"", "[1]"), kInvalid, kBad, "amount"},
    {"amount object", event_line("\"a\"", "\"buy\"", "{\"v\":1}"), kInvalid, kBad, "amount"},
    // Not JSON numbers at all: syntax errors.
    {"amount leading zero", event_line("\"a\"", "\"buy\"", "01"), kInvalid, kJson, ""},
    {"amount leading plus", event_line("\"a\"", "\"buy\"", "+1"), kInvalid, kJson, ""},
    {"amount NaN", event_line("\"a\"", "\"buy\"", "NaN"), kInvalid, kJson, ""},
    {"amount Infinity", event_line("\"a\"", "\"buy\"", "Infinity"), kInvalid, kJson, ""},
    {"amount hex", event_line("\"a\"", "\"buy\"", "0x10"), kInvalid, kJson, ""},

    // --- action --------------------------------------------------------------------------------
    {"action BUY", event_line("\"a\"", "\"BUY\"", "1"), kInvalid, kBad, "action"},
    {"action Sell", event_line("\"a\"", "\"Sell\"", "1"), kInvalid, kBad, "action"},
    {"action other", event_line("\"a\"", "\"hold\"", "1"), kInvalid, kBad, "action"},
    {"action empty", event_line("\"a\"", "\"\"", "1"), kInvalid, kBad, "action"},
    {"action with space", event_line("\"a\"", "\"buy \"", "1"), kInvalid, kBad, "action"},
    {"action buy prefix", event_line("\"a\"", "\"buyer\"", "1"), kInvalid, kBad, "action"},
    {"action number", event_line("\"a\"", "1", "1"), kInvalid, kBad, "action"},
    {"action null", event_line("\"a\"", "null", "1"), kInvalid, kBad, "action"},

    // --- missing fields ------------------------------------------------------------------------
    {"missing user", "{\"action\":\"buy\",\"amount\":1}", kInvalid, kBad, "user"},
    {"missing action", "{\"user\":\"a\",\"amount\":1}", kInvalid, kBad, "action"},
    {"missing amount", "{\"user\":\"a\",\"action\":\"buy\"}", kInvalid, kBad, "amount"},
    {"empty object", "{}", kInvalid, kBad, "user"},
    {"only id", "{\"id\":1}", kInvalid, kBad, "user"},

    // --- user: length in bytes -----------------------------------------------------------------
    {"user 1 byte", user_line("a"), kEvent, kNone, ""},
    {"user 64 bytes", user_line(repeat("u", 64)), kEvent, kNone, ""},
    {"user 65 bytes", user_line(repeat("u", 65)), kInvalid, kBad, "user"},
    {"user 1000 bytes", user_line(repeat("u", 1000)), kInvalid, kBad, "user"},
    {"user empty", user_line(""), kInvalid, kBad, "user"},
    {"user 32 x e-acute = 64 bytes", user_line(repeat(kE, 32)), kEvent, kNone, ""},
    {"user 33 x e-acute = 66 bytes", user_line(repeat(kE, 33)), kInvalid, kBad, "user"},
    {"user 63 bytes + e-acute = 65 bytes", user_line(repeat("u", 63) + kE), kInvalid, kBad, "user"},
    {"user 32 escaped e-acute = 64 bytes", user_line(repeat("\\u00e9", 32)), kEvent, kNone, ""},
    {"user 33 escaped e-acute = 66 bytes", user_line(repeat("\\u00e9", 33)), kInvalid, kBad,
     "user"},
    {"user 16 emoji = 64 bytes", user_line(repeat("\\ud83d\\ude00", 16)), kEvent, kNone, ""},
    {"user 16 emoji + 1 byte", user_line(repeat("\\ud83d\\ude00", 16) + "x"), kInvalid, kBad,
     "user"},
    {"user 64 bytes of escapes", user_line(repeat("\\u0041", 64)), kEvent, kNone, ""},
    {"user with space", user_line("a b"), kEvent, kNone, ""},

    // --- user: type ----------------------------------------------------------------------------
    {"user number", event_line("42", "\"buy\"", "1"), kInvalid, kBad, "user"},
    {"user null", event_line("null", "\"buy\"", "1"), kInvalid, kBad, "user"},
    {"user true", event_line("true", "\"buy\"", "1"), kInvalid, kBad, "user"},
    {"user array", event_line("[\"a\"]", "\"buy\"", "1"), kInvalid, kBad, "user"},
    {"user object", event_line("{\"a\":1}", "\"buy\"", "1"), kInvalid, kBad, "user"},

    // --- user: control characters (valid JSON, refused by the protocol) ------------------------
    {"user escaped NUL", user_line("a\\u0000b"), kInvalid, kBad, "user"},
    {"user \\u0001", user_line("a\\u0001"), kInvalid, kBad, "user"},
    {"user \\u001f", user_line("a\\u001f"), kInvalid, kBad, "user"},
    {"user \\u001F", user_line("a\\u001F"), kInvalid, kBad, "user"},
    {"user \\n", user_line("a\\nb"), kInvalid, kBad, "user"},
    {"user \\t", user_line("a\\tb"), kInvalid, kBad, "user"},
    {"user \\u007f", user_line("a\\u007f"), kInvalid, kBad, "user"},
    {"user raw DEL", user_line("a\x7f"), kInvalid, kBad, "user"},
    {"user \\u0080 (first C1)", user_line("a\\u0080"), kInvalid, kBad, "user"},
    {"user \\u0085 (C1 NEL)", user_line("a\\u0085"), kInvalid, kBad, "user"},
    {"user raw C1 NEL", user_line("a\xc2\x85"), kInvalid, kBad, "user"},
    {"user \\u009f (last C1)", user_line("a\\u009f"), kInvalid, kBad, "user"},
    {"user \\u00a0 (after C1)", user_line("a\\u00a0"), kEvent, kNone, ""},
    {"user \\u007e (before DEL)", user_line("a\\u007e"), kEvent, kNone, ""},
    {"user \\u0020 (after C0)", user_line("a\\u0020"), kEvent, kNone, ""},
    {"user U+0100 (C4 80)", user_line("a\xc4\x80"), kEvent, kNone, ""},

    // --- raw bytes that are not JSON -----------------------------------------------------------
    {"raw NUL in user", with_nul("{\"user\":\"a", "b\",\"action\":\"buy\",\"amount\":1}"), kInvalid,
     kJson, ""},
    {"raw NUL after object", with_nul(kAlice, ""), kInvalid, kJson, ""},
    {"raw NUL before object", with_nul("", kAlice), kInvalid, kJson, ""},
    {"raw NUL between tokens", with_nul("{\"user\":\"a\",", "\"action\":\"buy\",\"amount\":1}"),
     kInvalid, kJson, ""},
    {"raw control char in user", user_line("a\x01"), kInvalid, kJson, ""},
    {"raw tab in user", user_line("a\tb"), kInvalid, kJson, ""},
    {"raw newline in user", user_line("a\nb"), kInvalid, kJson, ""},

    // --- UTF-8 and surrogates --------------------------------------------------------------------
    {"invalid byte ff", user_line("a\xff"), kInvalid, kJson, ""},
    {"invalid byte fe", user_line("\xfe"), kInvalid, kJson, ""},
    {"truncated c3", user_line("a\xc3"), kInvalid, kJson, ""},
    {"truncated 3-byte sequence", user_line("\xe2\x82"), kInvalid, kJson, ""},
    {"lone continuation byte", user_line("a\x80"), kInvalid, kJson, ""},
    {"overlong c0 af", user_line("\xc0\xaf"), kInvalid, kJson, ""},
    {"overlong e0 80 af", user_line("\xe0\x80\xaf"), kInvalid, kJson, ""},
    {"UTF-8 encoded surrogate", user_line("\xed\xa0\x80"), kInvalid, kJson, ""},
    {"above U+10FFFF", user_line("\xf4\x90\x80\x80"), kInvalid, kJson, ""},
    {"invalid UTF-8 in key", "{\"us\xff\":\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid, kJson,
     ""},
    {"invalid UTF-8 in unknown value", "{\"x\":\"\xff\"}", kInvalid, kJson, ""},
    {"invalid UTF-8 in id", id_line("\"\xc3\""), kInvalid, kJson, ""},
    {"lone high surrogate", user_line("\\ud800"), kInvalid, kJson, ""},
    {"lone low surrogate", user_line("\\udc00"), kInvalid, kJson, ""},
    {"high surrogate then letter", user_line("\\ud800x"), kInvalid, kJson, ""},
    {"high surrogate then BMP escape", user_line("\\ud800\\u0041"), kInvalid, kJson, ""},
    {"two high surrogates", user_line("\\ud800\\ud800"), kInvalid, kJson, ""},
    {"reversed surrogate pair", user_line("\\ude00\\ud83d"), kInvalid, kJson, ""},
    {"lone surrogate in id", id_line("\"\\udfff\""), kInvalid, kJson, ""},
    {"valid surrogate pair", user_line("\\ud83d\\ude00"), kEvent, kNone, ""},
    {"raw 4-byte UTF-8", user_line("\xf0\x9f\x98\x80"), kEvent, kNone, ""},
    {"bad escape", user_line("a\\x41"), kInvalid, kJson, ""},
    {"short unicode escape", user_line("a\\u41"), kInvalid, kJson, ""},

    // --- duplicate keys --------------------------------------------------------------------------
    {"duplicate user", "{\"user\":\"a\",\"user\":\"b\",\"action\":\"buy\",\"amount\":1}", kInvalid,
     kBad, "duplicate"},
    {"duplicate user names it", "{\"user\":\"a\",\"user\":\"a\",\"action\":\"buy\",\"amount\":1}",
     kInvalid, kBad, "\"user\""},
    {"duplicate action", "{\"user\":\"a\",\"action\":\"buy\",\"action\":\"sell\",\"amount\":1}",
     kInvalid, kBad, "duplicate"},
    {"duplicate amount", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,\"amount\":1}", kInvalid,
     kBad, "duplicate field \"amount\""},
    {"duplicate id", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,\"id\":1,\"id\":2}", kInvalid,
     kBad, "duplicate field \"id\""},
    {"duplicate id string", "{\"id\":\"x\",\"type\":\"health\",\"id\":\"x\"}", kInvalid, kBad,
     "duplicate"},
    {"duplicate type", "{\"type\":\"health\",\"type\":\"health\"}", kInvalid, kBad, "duplicate"},
    {"duplicate with bad first value",
     "{\"user\":1,\"user\":\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid, kBad, "duplicate"},
    {"duplicate via escaped key",
     "{\"user\":\"a\",\"\\u0075ser\":\"b\",\"action\":\"buy\",\"amount\":1}", kInvalid, kBad,
     "duplicate"},
    {"duplicate unknown field", "{\"x\":1,\"x\":2}", kInvalid, kBad, "\"x\""},
    {"duplicate user in balance", "{\"type\":\"balance\",\"user\":\"a\",\"user\":\"a\"}", kInvalid,
     kBad, "duplicate"},

    // --- unknown fields --------------------------------------------------------------------------
    {"event extra field", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,\"note\":\"x\"}",
     kInvalid, kBad, "note"},
    {"event extra null field", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,\"note\":null}",
     kInvalid, kBad, "note"},
    {"event extra field first", "{\"zzz\":{},\"user\":\"a\",\"action\":\"buy\",\"amount\":1}",
     kInvalid, kBad, "zzz"},
    {"unknown field long multibyte", "{\"a" + repeat(kE, 40) + "\":1}", kInvalid, kBad,
     "unknown field"},
    {"event key differs in case", "{\"User\":\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid,
     kBad, "User"},
    {"health with user", "{\"type\":\"health\",\"user\":\"x\"}", kInvalid, kBad, "user"},
    {"health with amount", "{\"type\":\"health\",\"amount\":1}", kInvalid, kBad, "amount"},
    {"health with other", "{\"type\":\"health\",\"verbose\":true}", kInvalid, kBad, "verbose"},
    {"metrics with action", "{\"type\":\"metrics\",\"action\":\"buy\"}", kInvalid, kBad, "action"},
    {"balance with amount", "{\"type\":\"balance\",\"user\":\"a\",\"amount\":1}", kInvalid, kBad,
     "amount"},
    {"balance with action", "{\"type\":\"balance\",\"user\":\"a\",\"action\":\"buy\"}", kInvalid,
     kBad, "action"},
    {"balance with other", "{\"type\":\"balance\",\"user\":\"a\",\"x\":1}", kInvalid, kBad, "x"},

    // --- type ------------------------------------------------------------------------------------
    {"type unknown", "{\"type\":\"transfer\"}", kInvalid, kType, "transfer"},
    {"type empty", "{\"type\":\"\"}", kInvalid, kType, ""},
    {"type wrong case", "{\"type\":\"Health\"}", kInvalid, kType, "Health"},
    {"type event", "{\"type\":\"event\",\"user\":\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid,
     kType, "event"},
    {"type long", "{\"type\":\"" + repeat("h", 100) + "\"}", kInvalid, kType, ""},
    // The detail quotes at most 64 bytes of the name; it must not cut a character in half.
    {"type long multibyte", "{\"type\":\"a" + repeat(kE, 40) + "\"}", kInvalid, kType, ""},
    {"type health prefix overflow", "{\"type\":\"health" + repeat(" ", 100) + "\"}", kInvalid,
     kType, ""},
    {"type number", "{\"type\":1}", kInvalid, kBad, "type"},
    {"type null", "{\"type\":null}", kInvalid, kBad, "type"},
    {"type array", "{\"type\":[\"health\"]}", kInvalid, kBad, "type"},
    {"type object", "{\"type\":{}}", kInvalid, kBad, "type"},
    {"type bool", "{\"type\":true}", kInvalid, kBad, "type"},

    // --- balance query -------------------------------------------------------------------------
    {"balance missing user", "{\"type\":\"balance\"}", kInvalid, kBad, "user"},
    {"balance empty user", "{\"type\":\"balance\",\"user\":\"\"}", kInvalid, kBad, "user"},
    {"balance user 64 bytes", "{\"type\":\"balance\",\"user\":\"" + repeat("b", 64) + "\"}",
     kBalance, kNone, ""},
    {"balance user 65 bytes", "{\"type\":\"balance\",\"user\":\"" + repeat("b", 65) + "\"}",
     kInvalid, kBad, "user"},
    {"balance user number", "{\"type\":\"balance\",\"user\":1}", kInvalid, kBad, "user"},
    {"balance user control", "{\"type\":\"balance\",\"user\":\"a\\u0001\"}", kInvalid, kBad,
     "user"},
    {"balance user C1", "{\"type\":\"balance\",\"user\":\"a\\u0085\"}", kInvalid, kBad, "user"},
    {"balance user lone surrogate", "{\"type\":\"balance\",\"user\":\"\\ud800\"}", kInvalid, kJson,
     ""},

    // --- id ------------------------------------------------------------------------------------
    {"id string 64 bytes", id_line("\"" + repeat("i", 64) + "\""), kEvent, kNone, ""},
    {"id string 65 bytes", id_line("\"" + repeat("i", 65) + "\""), kInvalid, kBad, "id"},
    {"id string 32 x e-acute", id_line("\"" + repeat(kE, 32) + "\""), kEvent, kNone, ""},
    {"id string 33 x e-acute", id_line("\"" + repeat(kE, 33) + "\""), kInvalid, kBad, "id"},
    {"id string empty", id_line("\"\""), kEvent, kNone, ""},
    {"id string with escapes", id_line("\"a\\\"b\\\\c\\n\""), kEvent, kNone, ""},
    {"id int64 max", id_line("9223372036854775807"), kEvent, kNone, ""},
    {"id int64 min", id_line("-9223372036854775808"), kEvent, kNone, ""},
    {"id 0", id_line("0"), kEvent, kNone, ""},
    {"id 2^63", id_line("9223372036854775808"), kInvalid, kBad, "id"},
    {"id -2^63-1", id_line("-9223372036854775809"), kInvalid, kBad, "id"},
    {"id 2^64", id_line("18446744073709551616"), kInvalid, kBad, "id"},
    {"id float", id_line("1.5"), kInvalid, kBad, "id"},
    {"id float integral", id_line("1.0"), kInvalid, kBad, "id"},
    {"id exponent", id_line("1e2"), kInvalid, kBad, "id"},
    {"id null", id_line("null"), kInvalid, kBad, "id"},
    {"id bool", id_line("false"), kInvalid, kBad, "id"},
    {"id array", id_line("[1]"), kInvalid, kBad, "id"},
    {"id object", id_line("{}"), kInvalid, kBad, "id"},
    {"id bad on health", "{\"type\":\"health\",\"id\":1.5}", kInvalid, kBad, "id"},

    // --- not an object at the top level ------------------------------------------------------
    {"top-level number", "42", kInvalid, kBad, "object"},
    {"top-level array", "[]", kInvalid, kBad, "object"},
    {"top-level string", "\"x\"", kInvalid, kBad, "object"},
    {"top-level null", "null", kInvalid, kBad, "object"},
    {"top-level true", "true", kInvalid, kBad, "object"},
    {"array holding an event", "[" + kAlice + "]", kInvalid, kBad, "object"},

    // --- not JSON ------------------------------------------------------------------------------
    {"empty line", "", kInvalid, kJson, ""},
    {"whitespace only", "   ", kInvalid, kJson, ""},
    {"plain text", "hello", kInvalid, kJson, ""},
    {"unterminated object", "{\"user\":\"a\"", kInvalid, kJson, ""},
    {"unterminated string", "{\"user\":\"a", kInvalid, kJson, ""},
    {"unterminated key", "{\"us", kInvalid, kJson, ""},
    {"missing colon", "{\"user\" \"a\"}", kInvalid, kJson, ""},
    {"trailing comma", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,}", kInvalid, kJson, ""},
    {"single quotes", "{'user':'a','action':'buy','amount':1}", kInvalid, kJson, ""},
    {"unquoted key", "{user:\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid, kJson, ""},
    {"comment", "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1} // c", kInvalid, kJson, ""},
    {"block comment", "{/* c */\"user\":\"a\",\"action\":\"buy\",\"amount\":1}", kInvalid, kJson,
     ""},
    {"trailing garbage", kAlice + "x", kInvalid, kJson, "after"},
    {"trailing garbage after space", kAlice + " x", kInvalid, kJson, "after"},
    {"two objects", kAlice + kAlice, kInvalid, kJson, "after"},
    {"two objects with space", kAlice + " " + kAlice, kInvalid, kJson, "after"},
    {"trailing brace", kAlice + "}", kInvalid, kJson, "after"},
    {"trailing garbage after bad event", "{\"amount\":0}x", kInvalid, kJson, "after"},
    {"trailing carriage return is whitespace", kAlice + "\r", kEvent, kNone, ""},

    // --- a syntax error anywhere beats a semantic problem ------------------------------------
    {"syntax after duplicate", "{\"user\":\"a\",\"user\":\"b\",}", kInvalid, kJson, ""},
    {"syntax after unknown field", "{\"zzz\":1,\"user\":\"a\"", kInvalid, kJson, ""},
    {"syntax after unknown type", "{\"type\":\"nope\",", kInvalid, kJson, ""},
    {"bad UTF-8 after bad amount", "{\"amount\":0,\"user\":\"\xff\"}", kInvalid, kJson, ""},
    {"lone surrogate after bad type", "{\"type\":1,\"user\":\"\\ud800\"}", kInvalid, kJson, ""},
    {"garbage after non-object", "42 x", kInvalid, kJson, "after"},
    {"too deep after bad user", "{\"user\":1,\"x\":" + nested_arrays(kMaxNestingDepth) + "}",
     kInvalid, kJson, "nesting"},

    // --- nesting depth -------------------------------------------------------------------------
    {"nesting at the limit", nested_object(kMaxNestingDepth), kInvalid, kBad, "\"x\""},
    {"nesting one past the limit", nested_object(kMaxNestingDepth + 1), kInvalid, kJson, "nesting"},
    {"nesting far past the limit", nested_object(1000), kInvalid, kJson, "nesting"},
    {"arrays at the limit", nested_arrays(kMaxNestingDepth), kInvalid, kBad, "object"},
    {"arrays one past the limit", nested_arrays(kMaxNestingDepth + 1), kInvalid, kJson, "nesting"},
    {"nested value in user at the limit",
     "{\"user\":" + nested_arrays(kMaxNestingDepth - 1) + ",\"action\":\"buy\",\"amount\":1}",
     kInvalid, kBad, "user"},
    {"nested objects one past the limit",
     repeat("{\"a\":", kMaxNestingDepth + 1) + "1" + repeat("}", kMaxNestingDepth + 1), kInvalid,
     kJson, "nesting"},
};

void expect_case(const Request& r, const Case& c) {
  EXPECT_EQ(r.type, c.type) << "detail: " << r.detail;
  if (c.type == RequestType::invalid && r.type == RequestType::invalid) {
    EXPECT_EQ(to_string(r.error), to_string(c.error)) << "detail: " << r.detail;
    EXPECT_FALSE(r.detail.empty());
    EXPECT_NE(r.detail.find(c.detail), std::string::npos)
        << "detail \"" << r.detail << "\" lacks \"" << c.detail << "\"";
  }
}

// Every table row, each with a fresh parser, yields the expected type, error code and detail.
TEST(RequestParserTable, EachLineAlone) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    RequestParser parser;
    expect_case(parser.parse(c.line), c);
  }
}

// One parser fed the table both ways answers alike and parses a valid event after every row.
TEST(RequestParserTable, OneParserForAllLines) {
  RequestParser parser;
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < kCases.size(); ++i) {
      const Case& c = pass == 0 ? kCases[i] : kCases[kCases.size() - 1 - i];
      SCOPED_TRACE(std::string(c.name) + (pass == 0 ? " (forwards)" : " (backwards)"));
      expect_case(parser.parse(c.line), c);
      const Request& next = parser.parse(kAlice);
      EXPECT_EQ(next.type, RequestType::event) << "line after it: " << next.detail;
      EXPECT_EQ(next.event.user.view(), "alice");
      EXPECT_EQ(next.event.delta, 100);
    }
  }
}

// Table rows each have a unique name, so a failure points at one row.
TEST(RequestParserTable, NamesAreUnique) {
  for (std::size_t i = 0; i < kCases.size(); ++i) {
    for (std::size_t j = i + 1; j < kCases.size(); ++j) {
      EXPECT_NE(std::string_view(kCases[i].name), std::string_view(kCases[j].name));
    }
  }
}

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      n = 1;
      cp = b & 0x1fu;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2;
      cp = b & 0x0fu;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3;
      cp = b & 0x07u;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

// Every refused row's detail is valid UTF-8 (append_json_string copies it into the reply as is).
TEST(RequestParserTable, DetailIsValidUtf8) {
  ASSERT_TRUE(is_valid_utf8("a" + kE + "\xf0\x9f\x98\x80"));
  ASSERT_FALSE(is_valid_utf8("a\xc3"));
  RequestParser parser;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const Request& r = parser.parse(c.line);
    if (r.type == RequestType::invalid) {
      EXPECT_TRUE(is_valid_utf8(r.detail)) << r.detail;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// What an accepted request carries

// buy gives delta = +amount and sell gives delta = -amount, at both ends of the amount range.
TEST(RequestParser, DeltaSignFollowsAction) {
  RequestParser parser;
  struct {
    const char* action;
    const char* amount;
    std::int64_t delta;
  } const rows[] = {
      {"buy", "1", 1},
      {"sell", "1", -1},
      {"buy", "100", 100},
      {"sell", "100", -100},
      {"buy", "1000000000", 1'000'000'000},
      {"sell", "1000000000", -1'000'000'000},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(std::string(row.action) + " " + row.amount);
    const Request& r =
        parser.parse(event_line("\"alice\"", "\"" + std::string(row.action) + "\"", row.amount));
    ASSERT_EQ(r.type, RequestType::event) << r.detail;
    EXPECT_EQ(r.event.delta, row.delta);
    EXPECT_EQ(r.event.user.view(), "alice");
  }
}

// The user is stored as its decoded UTF-8 bytes: escapes expanded, surrogate pairs joined.
TEST(RequestParser, UserIsDecodedUtf8) {
  RequestParser parser;
  struct {
    std::string line;
    std::string user;
  } const rows[] = {
      {user_line("alice"), "alice"},
      {user_line("\\ud83d\\ude00"), "\xf0\x9f\x98\x80"},
      {user_line("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80"},
      {user_line("\\u00e9"), kE},
      {user_line(repeat(kE, 32)), repeat(kE, 32)},
      {user_line(repeat("\\u00e9", 32)), repeat(kE, 32)},
      {user_line("a\\/b\\\"c\\\\d"), "a/b\"c\\d"},
      {user_line(repeat("u", 64)), repeat("u", 64)},
      {user_line("a\\u00a0"), "a\xc2\xa0"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.line);
    const Request& r = parser.parse(row.line);
    ASSERT_EQ(r.type, RequestType::event) << r.detail;
    EXPECT_EQ(r.event.user.view(), row.user);
  }
  // The valid surrogate pair is 4 bytes, not two 3-byte halves.
  EXPECT_EQ(parser.parse(user_line("\\ud83d\\ude00")).event.user.view().size(), 4u);
}

// A balance query carries the user asked for in event.user.
TEST(RequestParser, BalanceQueryCarriesUser) {
  RequestParser parser;
  const Request& r = parser.parse("{\"type\":\"balance\",\"user\":\"b\\u00e9a\"}");
  ASSERT_EQ(r.type, RequestType::balance) << r.detail;
  EXPECT_EQ(r.event.user.view(), "b" + kE + "a");
}

// An integer id is echoed as RequestId::Kind::integer with its value, including int64 min/max.
TEST(RequestParser, IntegerIdIsEchoed) {
  RequestParser parser;
  struct {
    const char* json;
    std::int64_t value;
  } const rows[] = {
      {"0", 0},
      {"7", 7},
      {"-1", -1},
      {"9223372036854775807", INT64_MAX},
      {"-9223372036854775808", INT64_MIN},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.json);
    const Request& r = parser.parse(id_line(row.json));
    ASSERT_EQ(r.type, RequestType::event) << r.detail;
    EXPECT_EQ(r.id.kind, RequestId::Kind::integer);
    EXPECT_EQ(r.id.integer, row.value);
  }
}

// A string id is echoed as RequestId::Kind::string holding the decoded bytes (up to 64).
TEST(RequestParser, StringIdIsEchoedDecoded) {
  RequestParser parser;
  struct {
    std::string json;
    std::string text;
  } const rows[] = {
      {"\"req-1\"", "req-1"},
      {"\"\"", ""},
      {"\"a\\\"b\\\\c\\nd\\u0001\"", "a\"b\\c\nd\x01"},
      {"\"" + repeat("i", 64) + "\"", repeat("i", 64)},
      {"\"" + repeat(kE, 32) + "\"", repeat(kE, 32)},
      {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
      {"\"42\"", "42"},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.json);
    const Request& r = parser.parse(id_line(row.json));
    ASSERT_EQ(r.type, RequestType::event) << r.detail;
    EXPECT_EQ(r.id.kind, RequestId::Kind::string);
    EXPECT_EQ(r.id.string_view(), row.text);
  }
}

// Without "id" the request's id kind is none, for events and every query type.
TEST(RequestParser, AbsentIdIsNone) {
  RequestParser parser;
  for (const char* line :
       {"{\"user\":\"a\",\"action\":\"buy\",\"amount\":1}", "{\"type\":\"health\"}",
        "{\"type\":\"metrics\"}", "{\"type\":\"balance\",\"user\":\"a\"}"}) {
    SCOPED_TRACE(line);
    const Request& r = parser.parse(line);
    ASSERT_NE(r.type, RequestType::invalid) << r.detail;
    EXPECT_EQ(r.id.kind, RequestId::Kind::none);
  }
}

// Queries echo their id too, whatever the position of "id" in the object.
TEST(RequestParser, QueriesEchoId) {
  RequestParser parser;
  const Request& health = parser.parse("{\"id\":5,\"type\":\"health\"}");
  ASSERT_EQ(health.type, RequestType::health) << health.detail;
  EXPECT_EQ(health.id.kind, RequestId::Kind::integer);
  EXPECT_EQ(health.id.integer, 5);

  const Request& metrics = parser.parse("{\"type\":\"metrics\",\"id\":\"m1\"}");
  ASSERT_EQ(metrics.type, RequestType::metrics) << metrics.detail;
  EXPECT_EQ(metrics.id.kind, RequestId::Kind::string);
  EXPECT_EQ(metrics.id.string_view(), "m1");

  const Request& balance = parser.parse("{\"user\":\"bob\",\"id\":-3,\"type\":\"balance\"}");
  ASSERT_EQ(balance.type, RequestType::balance) << balance.detail;
  EXPECT_EQ(balance.event.user.view(), "bob");
  EXPECT_EQ(balance.id.kind, RequestId::Kind::integer);
  EXPECT_EQ(balance.id.integer, -3);
}

// ---------------------------------------------------------------------------------------------
// Parser reuse

// After each kind of bad line, the same parser parses a valid event completely and correctly.
TEST(RequestParser, BadLineDoesNotPoisonTheNext) {
  const std::vector<std::string> bad = {
      "",
      "{",
      "{\"us",                              // ends inside a key
      "{\"u\\u0073",                        // ends inside a key, after an escape
      "{\"us\\x\":1}",                      // bad escape inside a key
      "{\"us\xc3",                          // ends inside a key, mid UTF-8 sequence
      "{\"type\":\"health\",\"us\\q\":1}",  // bad escape in a later key
      "{\"user\":\"al",                     // ends inside a value
      "{\"us\xff\":1}",                     // invalid UTF-8 inside a key
      "{\"user\":\"\\ud800\"}",             // lone surrogate
      with_nul("{\"user\":\"a", "\"}"),
      kAlice + "x",
      nested_object(kMaxNestingDepth + 1),
      "{\"user\":\"a\",\"user\":\"b\",\"action\":\"buy\",\"amount\":1}",
      "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1,\"zzz\":1}",
      "{\"type\":\"nope\"}",
      "{\"type\":1}",
      "{\"user\":\"a\",\"action\":\"buy\",\"amount\":1.0}",
      "{\"user\":\"" + repeat("u", 1000) + "\",\"action\":\"buy\",\"amount\":1}",
      "{\"" + repeat("k", 1000) + "\":1}",
      "42",
  };
  RequestParser parser;
  for (const std::string& line : bad) {
    SCOPED_TRACE(line);
    EXPECT_EQ(parser.parse(line).type, RequestType::invalid);
    const Request& r = parser.parse("{\"user\":\"bob\",\"action\":\"sell\",\"amount\":42}");
    EXPECT_EQ(r.type, RequestType::event) << r.detail;
    EXPECT_EQ(r.event.user.view(), "bob");
    EXPECT_EQ(r.event.delta, -42);
    EXPECT_EQ(r.id.kind, RequestId::Kind::none);
    const Request& q = parser.parse("{\"type\":\"health\"}");
    EXPECT_EQ(q.type, RequestType::health) << q.detail;
  }
}

// A key cut short by a syntax error must not prefix the next line's first key ("us" + "er").
TEST(RequestParser, PartialKeyDoesNotCompleteNextLinesKey) {
  RequestParser parser;
  EXPECT_EQ(parser.parse("{\"us\\x\":1}").error, ErrorCode::invalid_json);
  const Request& r = parser.parse("{\"er\":\"alice\",\"action\":\"buy\",\"amount\":1}");
  EXPECT_EQ(r.type, RequestType::invalid);
  EXPECT_NE(r.detail.find("\"er\""), std::string::npos) << r.detail;
}

// A line's id, user and amount do not leak into the next line's request.
TEST(RequestParser, FieldsDoNotLeakBetweenLines) {
  RequestParser parser;
  const Request& first = parser.parse("{\"user\":\"" + repeat("x", 64) +
                                      "\",\"action\":\"buy\",\"amount\":9,\"id\":\"long-id\"}");
  ASSERT_EQ(first.type, RequestType::event) << first.detail;

  const Request& second = parser.parse("{\"user\":\"y\",\"action\":\"sell\",\"amount\":2}");
  ASSERT_EQ(second.type, RequestType::event) << second.detail;
  EXPECT_EQ(second.event.user.view(), "y");
  EXPECT_EQ(second.event.delta, -2);
  EXPECT_EQ(second.id.kind, RequestId::Kind::none);

  // The previous line had every field; this one lacks amount and must say so.
  const Request& third = parser.parse("{\"user\":\"y\",\"action\":\"sell\"}");
  ASSERT_EQ(third.type, RequestType::invalid);
  EXPECT_NE(third.detail.find("amount"), std::string::npos) << third.detail;

  const Request& fourth = parser.parse(id_line("3"));
  ASSERT_EQ(fourth.type, RequestType::event) << fourth.detail;
  EXPECT_EQ(fourth.id.kind, RequestId::Kind::integer);
  const Request& fifth = parser.parse(id_line("\"s\""));
  ASSERT_EQ(fifth.type, RequestType::event) << fifth.detail;
  EXPECT_EQ(fifth.id.kind, RequestId::Kind::string);
  EXPECT_EQ(fifth.id.string_view(), "s");
}

// Many lines through one parser, alternating valid and invalid, each answered correctly.
TEST(RequestParser, ManyLinesThroughOneParser) {
  RequestParser parser;
  for (int i = 1; i <= 10'000; ++i) {
    if (i % 3 == 0) {
      const Request& r = parser.parse("{\"user\":\"u\",\"action\":\"buy\",\"amount\":0}");
      ASSERT_EQ(r.type, RequestType::invalid) << i;
      ASSERT_EQ(r.error, ErrorCode::invalid_event) << i;
    } else if (i % 3 == 1) {
      const Request& r = parser.parse("{\"user\":\"u\",\"action\":");
      ASSERT_EQ(r.type, RequestType::invalid) << i;
      ASSERT_EQ(r.error, ErrorCode::invalid_json) << i;
    } else {
      const std::string n = std::to_string(i);
      const Request& r = parser.parse(
          "{\"user\":\"u" + n + "\",\"action\":\"sell\",\"amount\":" + n + ",\"id\":" + n + "}");
      ASSERT_EQ(r.type, RequestType::event) << i << ": " << r.detail;
      ASSERT_EQ(r.event.user.view(), "u" + n);
      ASSERT_EQ(r.event.delta, -i);
      ASSERT_EQ(r.id.integer, i);
    }
  }
}

// A refused request keeps a well-formed id for its error reply; bad JSON or a bad id gives none.
TEST(RequestParser, RefusedRequestKeepsWellFormedId) {
  RequestParser parser;
  struct {
    std::string line;
    ErrorCode error;
    RequestId::Kind kind;
  } const rows[] = {
      {"{\"id\":9,\"user\":\"a\"}", ErrorCode::invalid_event, RequestId::Kind::integer},
      {"{\"user\":\"a\",\"action\":\"buy\",\"amount\":0,\"id\":9}", ErrorCode::invalid_event,
       RequestId::Kind::integer},
      {"{\"id\":\"s\",\"type\":\"x\"}", ErrorCode::unknown_type, RequestId::Kind::string},
      {"{\"type\":\"health\",\"zzz\":1,\"id\":9}", ErrorCode::invalid_event,
       RequestId::Kind::integer},
      {"{\"id\":9", ErrorCode::invalid_json, RequestId::Kind::none},
      {"{\"id\":9}x", ErrorCode::invalid_json, RequestId::Kind::none},
      {id_line("1.5"), ErrorCode::invalid_event, RequestId::Kind::none},
      {id_line("\"" + repeat("i", 65) + "\""), ErrorCode::invalid_event, RequestId::Kind::none},
      {"[{\"id\":9}]", ErrorCode::invalid_event, RequestId::Kind::none},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(row.line);
    ASSERT_EQ(parser.parse(id_line("7")).id.kind, RequestId::Kind::integer);  // a stale id
    const Request& r = parser.parse(row.line);
    ASSERT_EQ(r.type, RequestType::invalid);
    EXPECT_EQ(to_string(r.error), to_string(row.error)) << r.detail;
    EXPECT_EQ(r.id.kind, row.kind);
    if (row.kind == RequestId::Kind::integer) {
      EXPECT_EQ(r.id.integer, 9);
    }
    if (row.kind == RequestId::Kind::string) {
      EXPECT_EQ(r.id.string_view(), "s");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Error codes

// Every error code has its documented wire name, including the two only the network layer uses.
TEST(ErrorCode, ToString) {
  EXPECT_EQ(to_string(ErrorCode::invalid_json), "invalid_json");
  EXPECT_EQ(to_string(ErrorCode::invalid_event), "invalid_event");
  EXPECT_EQ(to_string(ErrorCode::line_too_long), "line_too_long");
  EXPECT_EQ(to_string(ErrorCode::unknown_type), "unknown_type");
  EXPECT_EQ(to_string(ErrorCode::too_many_connections), "too_many_connections");
}

// The table exercises every error code the parser itself can produce.
TEST(RequestParserTable, CoversEveryParserErrorCode) {
  bool seen_json = false, seen_event = false, seen_type = false;
  for (const Case& c : kCases) {
    if (c.type != RequestType::invalid) continue;
    seen_json |= c.error == ErrorCode::invalid_json;
    seen_event |= c.error == ErrorCode::invalid_event;
    seen_type |= c.error == ErrorCode::unknown_type;
  }
  EXPECT_TRUE(seen_json);
  EXPECT_TRUE(seen_event);
  EXPECT_TRUE(seen_type);
}

}  // namespace
}  // namespace anubis
