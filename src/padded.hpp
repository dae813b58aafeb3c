// Cache-line padding for values written by different threads.
#pragma once

#include <cstddef>

namespace anubis {

// The destructive-interference size of the x86-64 and most AArch64 parts this lab runs on.
// A project constant rather than std::hardware_destructive_interference_size, whose value g++
// warns may change between compiler versions (and so between ABI-compatible builds).
inline constexpr std::size_t kCacheLine = 64;

template <class T>
struct alignas(kCacheLine) Padded {
  T value{};
};

}  // namespace anubis
