#pragma once
// Claims of an SQLite store (the semantics are Store's, src/store/store.hpp): which process is
// computing which new call. They live in a small SQLite database of their own beside the store,
// `<store>.claims` (docs/storage-format.md 3.8), not in the store's file: a claim is a commit,
// and a commit to the store's file would look to every other connection like new calls (SQLite's
// data version), making them drop their caches at each claim.

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "mandala/id.hpp"
#include "store/sqlite/sqlite.hpp"

namespace mandala::store::claims {

/// Creates the claims table (idempotent).
extern const char* const schema_sql;

/// The process holding a claim, for taking over the claims of a holder that died: its pid, its
/// start time (so a reused pid is not mistaken for it) and this machine's identity (boot and
/// pid namespace; a pid is only meaningful there).
struct Holder {
  std::int64_t pid = 0;
  std::int64_t started = 0;  ///< /proc/PID/stat start time; 0 when unknown
  Id machine;                ///< all zero when unknown
};
/// This process (a child forked after the first call gets its own).
Holder this_process();
/// Whether `holder` is known to have ended: it ran on this machine and its pid now names no
/// process, or another one. False whenever that cannot be known.
bool holder_gone(const Holder& holder);

/// The statements of the claims, prepared once per connection (a claim is on the path of every
/// new call).
struct Statements {
  explicit Statements(sqlite3* db);
  sqlite3* db;
  sql::Statement begin, commit, rollback, select, put, renew, release;
};

// Each runs inside the caller's write transaction; `now_ms` is the system clock in unix ms.
/// Store::try_claim.
bool try_claim(Statements& st, const Id& key, const Id& owner, std::int64_t now_ms, std::int64_t lease_ms);
/// Store::renew_claims: the keys `owner` no longer holds.
std::vector<Id> renew(Statements& st, const Id& owner, std::span<const Id> keys, std::int64_t now_ms,
                      std::int64_t lease_ms);
/// Store::release_claims.
void release(Statements& st, const Id& owner, std::span<const Id> keys);

/// The claims database of one store file, opened at its first use by a connection of its own
/// (so claims never touch the store's connection, its snapshot or its transactions). Every
/// method is thread-safe.
class ClaimsFile {
 public:
  /// `store`: the store's file; the claims live in `<store>.claims`.
  ClaimsFile(std::filesystem::path store, std::chrono::milliseconds lock_timeout);
  ClaimsFile(const ClaimsFile&) = delete;
  ClaimsFile& operator=(const ClaimsFile&) = delete;

  bool try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease);
  std::vector<Id> renew(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease);
  void release(const Id& owner, std::span<const Id> keys);

  [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

 private:
  /// Runs `f(db)` in one write transaction, retried while another connection's lock is in the
  /// way; opens the database first when needed.
  template <class F>
  auto transaction(F&& f);
  void open_locked();

  std::filesystem::path m_path;
  sql::Backoff m_backoff;
  std::mutex m_mutex;
  sql::DbHandle m_db;
  std::unique_ptr<Statements> m_statements;
};

}  // namespace mandala::store::claims
