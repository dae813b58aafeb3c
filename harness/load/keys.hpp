// What each event is about: which user, buy or sell, how much. Every connection draws its events
// from its own SplitMix64 stream seeded from (--seed, connection index), so one seed replays the
// same per-connection event sequence: the k-th request a connection sends is the k-th event of
// its stream, whatever the timing (an open-loop missed send draws nothing).
//
// Users are picked uniformly or by a Zipf law, P(i) ∝ 1/(i+1)^s over [0, users). The Zipf
// sampler is rejection-inversion (W. Hörmann, G. Derflinger, "Rejection-inversion to generate
// variates from monotone discrete distributions", ACM TOMACS 6(3), 1996), as Apache Commons RNG
// implements it: O(1) memory and set-up for any user count (a CDF table over 10M users would cost
// 80 MB and a binary search of ~23 cache misses per draw), and about 1.1 uniform draws, a log and
// an exp per sample on average, for every s > 0 including s = 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace anubis::harness::load {

// splitmix64 (Steele, Lea, Flood 2014): 8 bytes of state, plenty for picking users and amounts,
// and its output is defined by these lines alone, so a seed replays the same events with any
// compiler or standard library (std::uniform_int_distribution gives no such promise).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t state) noexcept : state_(state) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1) with 53 random bits.
  double next_unit() noexcept { return static_cast<double>(next() >> 11) * 0x1p-53; }

 private:
  std::uint64_t state_;
};

// Zipf ranks k in [1, n] with P(k) = k^-s / H(n, s), by rejection-inversion: a sample x of the
// continuous density h(x) = x^-s on [0.5, n + 0.5] is drawn by inverting its integral H, rounded
// to k, and accepted unless it fell into the part of k's cell that h overestimates.
class ZipfSampler {
 public:
  // Preconditions: n >= 1, s > 0.
  ZipfSampler(std::uint64_t n, double s) noexcept
      : n_(static_cast<double>(n)),
        s_(s),
        h_integral_x1_(h_integral(1.5) - 1.0),
        h_integral_n_(h_integral(n_ + 0.5)),
        squeeze_(2.0 - h_integral_inverse(h_integral(2.5) - h(2.0))) {}

  // A rank in [1, n].
  std::uint64_t sample(SplitMix64& rng) const noexcept {
    for (;;) {
      // u is uniform in (h_integral_x1_, h_integral_n_]: H's image of the support.
      const double u = h_integral_n_ + rng.next_unit() * (h_integral_x1_ - h_integral_n_);
      const double x = h_integral_inverse(u);
      const double k = std::clamp(std::floor(x + 0.5), 1.0, n_);
      // The squeeze accepts most samples without evaluating H again.
      if (k - x <= squeeze_ || u >= h_integral(k + 0.5) - h(k)) {
        return static_cast<std::uint64_t>(k);
      }
    }
  }

 private:
  // H(x) = (x^(1-s) - 1) / (1 - s), continued to log(x) at s = 1.
  double h_integral(double x) const noexcept {
    const double log_x = std::log(x);
    return expm1_over_x((1.0 - s_) * log_x) * log_x;
  }
  double h(double x) const noexcept { return std::exp(-s_ * std::log(x)); }
  double h_integral_inverse(double x) const noexcept {
    // Rounding can push t below -1, where log1p is undefined; -1 maps to the support's end.
    const double t = std::max(-1.0, x * (1.0 - s_));
    return std::exp(log1p_over_x(t) * x);
  }
  // log(1 + x) / x and (e^x - 1) / x, by their Taylor series near 0 where the quotient cancels.
  static double log1p_over_x(double x) noexcept {
    if (std::abs(x) > 1e-8) return std::log1p(x) / x;
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
  }
  static double expm1_over_x(double x) noexcept {
    if (std::abs(x) > 1e-8) return std::expm1(x) / x;
    return 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
  }

  double n_;
  double s_;
  double h_integral_x1_;
  double h_integral_n_;
  double squeeze_;
};

enum class Distribution : std::uint8_t { uniform, zipf };

struct Event {
  std::uint32_t user = 0;
  bool sell = false;
  std::uint32_t amount = 0;  // in [1, kMaxEventAmount]
  std::int64_t delta() const noexcept {
    return sell ? -std::int64_t{amount} : std::int64_t{amount};
  }
};

struct EventMix {
  std::uint32_t users = 1;
  Distribution distribution = Distribution::uniform;
  double zipf_s = 0.99;
  double sell_ratio = 0.5;  // in [0, 1]
};

// One connection's event stream. Copyable; a few dozen bytes.
class EventStream {
 public:
  static constexpr std::uint32_t kMaxEventAmount = 1'000;

  EventStream(const EventMix& mix, std::uint64_t seed, std::uint64_t connection) noexcept
      // Mixing the seed first keeps (seed 1, connection 1) and (seed 2, connection 0) apart.
      : rng_(SplitMix64(seed).next() + connection),
        users_(mix.users),
        zipf_(mix.distribution == Distribution::zipf),
        zipf_sampler_(mix.users, mix.zipf_s),
        // A draw's top 53 bits below this are a sell: sell_ratio 1 gives 2^53, every draw.
        sell_below_(static_cast<std::uint64_t>(std::llround(mix.sell_ratio * 0x1p53))) {}

  Event next() noexcept {
    Event event;
    if (zipf_) {
      event.user = static_cast<std::uint32_t>(zipf_sampler_.sample(rng_) - 1);
    } else {
      // Modulo bias is below users / 2^64 (< 1e-12): immaterial for spreading load.
      event.user = static_cast<std::uint32_t>(rng_.next() % users_);
    }
    event.sell = (rng_.next() >> 11) < sell_below_;
    event.amount = 1 + static_cast<std::uint32_t>(rng_.next() % kMaxEventAmount);
    return event;
  }

 private:
  SplitMix64 rng_;
  std::uint32_t users_;
  bool zipf_;
  ZipfSampler zipf_sampler_;
  std::uint64_t sell_below_;
};

}  // namespace anubis::harness::load
