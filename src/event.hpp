// The unit of work: one validated balance update, small and fixed-size.
//
// An Event is trivially copyable and never owns heap memory, so every queue strategy (including
// Boost.Lockfree, which demands trivially copyable elements) carries it by value without
// allocating. The user name is stored inline: the protocol caps it at kMaxUserBytes.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace anubis {

inline constexpr std::size_t kMaxUserBytes = 64;
inline constexpr std::int64_t kMaxAmount = 1'000'000'000;

// A user name of 1..kMaxUserBytes bytes, stored inline.
class UserKey {
 public:
  UserKey() = default;

  // Precondition: name.size() <= kMaxUserBytes (the request parser guarantees it).
  explicit UserKey(std::string_view name) noexcept : size_(static_cast<std::uint8_t>(name.size())) {
    std::memcpy(bytes_.data(), name.data(), name.size());
  }

  std::string_view view() const noexcept { return {bytes_.data(), size_}; }

 private:
  std::array<char, kMaxUserBytes> bytes_{};
  std::uint8_t size_ = 0;
};

struct Event {
  UserKey user;
  // +amount for "buy", -amount for "sell"; |delta| is in [1, kMaxAmount].
  std::int64_t delta = 0;
};

static_assert(std::is_trivially_copyable_v<Event>, "queues copy events as raw bytes");
static_assert(std::is_trivially_destructible_v<Event>);

}  // namespace anubis
