// The lock axis: how the per-user balances are shared between workers (writers) and the I/O
// threads answering balance queries (readers).
//
// Every lock strategy is a class satisfying `balance_store` (used directly by benchmarks and
// conformance tests) and one row in `lock_strategies()` (used by the server through AnyStore:
// one virtual call per batch of events, never per event).
//
// Contract shared by every implementation:
// - apply(event) adds event.delta to the user's balance and counts the event, atomically with
//   respect to lookup() of that user. If the sum would overflow int64 it changes nothing and
//   returns false (the worker counts it as `overflowed`). With |delta| <= 1e9 that needs more
//   than 9.2 billion maximum-amount events for one user.
// - lookup(user) returns the user's current balance and event count ({0, 0} if never seen).
// - snapshot() returns every user, sorted by name; call it once writers have stopped (at
//   shutdown) or accept that it mixes moments across users.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event.hpp"

namespace anubis {

struct Balance {
  std::int64_t balance = 0;
  std::uint64_t events = 0;
  friend bool operator==(const Balance&, const Balance&) = default;
};

using BalanceSnapshot = std::vector<std::pair<std::string, Balance>>;

// Orders a snapshot by user name (names are unique, so this is a total order).
inline void sort_by_user(BalanceSnapshot& s) {
  std::sort(s.begin(), s.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

struct StoreConfig {
  std::size_t shards = 64;  // used by strategies that shard; a power of two
};

template <class S>
concept balance_store = requires(S s, const S cs, const Event& e, std::string_view user) {
  { S::kName } -> std::convertible_to<std::string_view>;
  { s.apply(e) } -> std::same_as<bool>;
  { cs.lookup(user) } -> std::same_as<Balance>;
  { cs.snapshot() } -> std::same_as<BalanceSnapshot>;
}
&&std::constructible_from<S, const StoreConfig&>;

// Applies `delta` to `b` unless the balance would overflow. Shared by every strategy so that the
// overflow rule is the same everywhere.
inline bool apply_checked(Balance& b, std::int64_t delta) noexcept {
  std::int64_t next = 0;
  if (__builtin_add_overflow(b.balance, delta, &next)) return false;
  b.balance = next;
  ++b.events;
  return true;
}

// A user name with its hash, computed once per operation: the sharded store picks the shard
// and the map picks the bucket from the same hash.
struct HashedUser {
  explicit HashedUser(std::string_view user) noexcept
      : name(user), hash(std::hash<std::string_view>{}(user)) {}
  std::string_view name;
  std::size_t hash;
};

// A map key that stores its hash. libstdc++ does not cache hash codes in the nodes of a map whose
// hasher it considers cheap, and walking a bucket then re-hashes every key it passes; with the
// hash stored in the key, "re-hashing" is a load. Lookups by HashedUser are transparent, so
// finding an existing user neither allocates nor hashes again.
struct StoredUser {
  std::string name;
  std::size_t hash;
};

struct UserHash {
  using is_transparent = void;
  std::size_t operator()(const StoredUser& u) const noexcept { return u.hash; }
  std::size_t operator()(const HashedUser& u) const noexcept { return u.hash; }
};

struct UserEqual {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return a.hash == b.hash && std::string_view(a.name) == std::string_view(b.name);
  }
};

using BalanceMap = std::unordered_map<StoredUser, Balance, UserHash, UserEqual>;

// Finds or creates the entry for `user`; allocates only the first time a user is seen.
inline Balance& entry_for(BalanceMap& map, const HashedUser& user) {
  if (auto it = map.find(user); it != map.end()) return it->second;
  return map.try_emplace(StoredUser{std::string(user.name), user.hash}).first->second;
}

// Looks `user` up without creating it: {0, 0} for a user never seen.
inline Balance find_balance(const BalanceMap& map, const HashedUser& user) {
  const auto it = map.find(user);
  return it == map.end() ? Balance{} : it->second;
}

// Appends every entry of `map` to `out`.
inline void append_entries(const BalanceMap& map, BalanceSnapshot& out) {
  for (const auto& [user, balance] : map) out.emplace_back(user.name, balance);
}

// The run-time face of a lock strategy. Implementations come only from StoreAdapter.
class AnyStore {
 public:
  virtual ~AnyStore() = default;
  // Applies every event of the batch; returns how many were refused for overflow.
  virtual std::size_t apply_batch(std::span<const Event> events) = 0;
  virtual Balance lookup(std::string_view user) const = 0;
  virtual BalanceSnapshot snapshot() const = 0;
};

template <balance_store S>
class StoreAdapter final : public AnyStore {
 public:
  explicit StoreAdapter(const StoreConfig& config) : store_(config) {}
  std::size_t apply_batch(std::span<const Event> events) override {
    std::size_t refused = 0;
    for (const Event& e : events) refused += store_.apply(e) ? 0 : 1;
    return refused;
  }
  Balance lookup(std::string_view user) const override { return store_.lookup(user); }
  BalanceSnapshot snapshot() const override { return store_.snapshot(); }

 private:
  S store_;
};

struct LockCapabilities {
  bool parallel_writers = false;  // can two workers update different users at the same time?
};

struct LockStrategy {
  std::string_view name;
  std::string_view description;
  LockCapabilities capabilities;
  std::unique_ptr<AnyStore> (*make)(const StoreConfig& config);
};

template <balance_store S>
std::unique_ptr<AnyStore> make_store(const StoreConfig& config) {
  return std::make_unique<StoreAdapter<S>>(config);
}

// Every lock strategy, one row each (strategies/lock/registry.cpp).
std::span<const LockStrategy> lock_strategies();

}  // namespace anubis
