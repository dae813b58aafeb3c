// A log-linear latency histogram in the style of HdrHistogram, for nanosecond values.
//
// Guarantees: values from kLowestNs (1 us) to kHighestNs (60 s) are kept with a relative error
// of at most 1/256 (0.4%); percentile() answers within that bound of the exact nearest-rank
// percentile of the recorded values. That is well inside the load client's promise of at most 1%
// over the same range (tests/histogram_test.cpp checks the 1/256 bound across the whole range).
// Values outside the range are clamped to its ends first, so a 200 ns sample counts as 1 us and a
// 90 s sample as 60 s, and min()/max() report clamped values.
//
// Layout: each power-of-two range [2^e, 2^(e+1)) is split into 128 equal sub-buckets of width
// 2^(e-7), so a bucket is never wider than 1/128 of the values in it, and a bucket's midpoint is
// within 1/256 of any of them. 1 us .. 60 s spans exponents 9..35: 27 ranges x 128 buckets of
// 8 bytes = 27 KiB, held inline. No allocation ever happens: record() is a few shifts and one
// increment, cheap enough for a load client's per-reply path.
//
// Costs: not thread-safe; give each thread its own histogram and merge() them afterwards (what
// HdrHistogram's recorders do too, with a lock-free swap a production tool would want for
// reading while recording).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace anubis::harness {

class Histogram {
 public:
  static constexpr std::uint64_t kLowestNs = 1'000;
  static constexpr std::uint64_t kHighestNs = 60'000'000'000;

  // Records one value in nanoseconds, clamped to [kLowestNs, kHighestNs].
  void record(std::uint64_t ns) noexcept {
    const std::uint64_t value = std::clamp(ns, kLowestNs, kHighestNs);
    ++counts_[index_of(value)];
    ++count_;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  // Afterwards this histogram answers exactly as one that had recorded both sets of values.
  void merge(const Histogram& other) noexcept {
    for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  std::uint64_t count() const noexcept { return count_; }
  // The exact smallest and largest (clamped) values recorded; 0 when empty.
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }

  // The nearest-rank p-th percentile (p in [0, 100], clamped): the value of rank ceil(p/100 * n)
  // among the n recorded values in ascending order, rank at least 1. Returns the midpoint of the
  // bucket holding that value, clamped to [min(), max()] (so percentile(100) == max() exactly);
  // its relative error against the exact value is at most 1/256. Returns 0 when empty.
  std::uint64_t percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    // In doubles p * n / 100 can land a few ulps off an integer when p is not representable
    // (99.9 * 41000 / 100 gives 40959.00000000001), and ceil() would then skip a rank; a result
    // within that rounding noise of an integer is taken to be the integer.
    double exact_rank = std::clamp(p, 0.0, 100.0) * static_cast<double>(count_) / 100.0;
    const double nearest = std::round(exact_rank);
    if (std::abs(exact_rank - nearest) <= 8 * std::numeric_limits<double>::epsilon() * exact_rank) {
      exact_rank = nearest;
    }
    const std::uint64_t rank =
        std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::ceil(exact_rank)), 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t midpoint = lower_bound_of(i) + width_of(i) / 2;
        return std::clamp(midpoint, min_, max_);
      }
    }
    return max_;  // unreachable: the buckets sum to count_ >= rank
  }

 private:
  static constexpr unsigned kSubBucketBits = 7;  // 128 sub-buckets per power of two
  static constexpr auto kLowestExponent = static_cast<unsigned>(std::bit_width(kLowestNs)) - 1;
  static constexpr auto kHighestExponent = static_cast<unsigned>(std::bit_width(kHighestNs)) - 1;
  static_assert(kLowestExponent == 9 && kHighestExponent == 35);  // 2^9 <= 1 us, 2^35 <= 60 s
  static constexpr std::size_t kBucketCount = std::size_t{kHighestExponent - kLowestExponent + 1}
                                              << kSubBucketBits;
  static_assert(kLowestExponent >= kSubBucketBits, "sub-buckets must be at least 1 ns wide");

  // Precondition: kLowestNs <= value <= kHighestNs.
  static std::size_t index_of(std::uint64_t value) noexcept {
    // g++ 12's std::bit_width returns the argument type (later fixed to int, LWG 3656).
    const auto exponent = static_cast<unsigned>(std::bit_width(value)) - 1;
    // value >> (exponent - 7) lies in [128, 256): its low 7 bits pick the sub-bucket.
    const std::uint64_t sub_bucket =
        (value >> (exponent - kSubBucketBits)) - (std::uint64_t{1} << kSubBucketBits);
    return (std::size_t{exponent - kLowestExponent} << kSubBucketBits) + sub_bucket;
  }
  static unsigned exponent_of(std::size_t index) noexcept {
    return static_cast<unsigned>(index >> kSubBucketBits) + kLowestExponent;
  }
  static std::uint64_t width_of(std::size_t index) noexcept {
    return std::uint64_t{1} << (exponent_of(index) - kSubBucketBits);
  }
  static std::uint64_t lower_bound_of(std::size_t index) noexcept {
    const std::uint64_t sub_bucket = index & ((std::size_t{1} << kSubBucketBits) - 1);
    return ((std::uint64_t{1} << kSubBucketBits) + sub_bucket) * width_of(index);
  }

  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_ = 0;
};

}  // namespace anubis::harness
