#include "store/sqlite/claims.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "codec/hash.hpp"

namespace mandala::store::claims {
namespace fs = std::filesystem;

const char* const schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS claims(
  key BLOB PRIMARY KEY,
  owner BLOB NOT NULL,
  lease_until INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  pid_started INTEGER NOT NULL,
  machine BLOB NOT NULL) WITHOUT ROWID;
)sql";

namespace {

/// What /proc/PID/stat says of a process: its state (field 3) and start time in clock ticks
/// after boot (field 22); none when it cannot be read.
struct ProcStat {
  char state = 0;
  std::int64_t started = 0;
};
std::optional<ProcStat> stat_of(std::int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  // The command name (field 2) is in parentheses and may hold spaces and parentheses.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  ProcStat out;
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return std::nullopt;
    if (i == 3) out.state = field.empty() ? '\0' : field[0];
  }
  try {
    out.started = std::stoll(field);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return out;
}

/// This boot of this machine, in this pid namespace; all zero when unknown.
Id machine_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string boot;
  struct stat ns {};
  if (!in || !std::getline(in, boot) || boot.empty() || ::stat("/proc/self/ns/pid", &ns) != 0) return Id{};
  const std::string text =
      "mandala-claims-machine:" + boot + ":" + std::to_string(ns.st_dev) + ":" + std::to_string(ns.st_ino);
  return codec::content_id(std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace

Holder this_process() {
  // Made again in a child forked after it was made (the child is another holder).
  static std::mutex mutex;
  static Holder holder;
  std::lock_guard lock(mutex);
  const auto pid = static_cast<std::int64_t>(::getpid());
  if (holder.pid != pid) {
    const auto self = stat_of(pid);
    holder = Holder{pid, self ? self->started : 0, machine_id()};
  }
  return holder;
}

bool holder_gone(const Holder& holder) {
  const Holder me = this_process();
  if (holder.machine == Id{} || holder.machine != me.machine || holder.pid <= 0 || me.started == 0) return false;
  if (holder.pid == me.pid) return holder.started != me.started;
  if (::access(("/proc/" + std::to_string(holder.pid)).c_str(), F_OK) != 0) return errno == ENOENT;
  const auto now = stat_of(holder.pid);
  if (!now) return false;
  // A zombie has ended (its parent has not collected it yet); another start time is another
  // process under a reused pid.
  return now->state == 'Z' || now->state == 'X' || (holder.started != 0 && now->started != holder.started);
}

Statements::Statements(sqlite3* connection)
    : db(connection),
      begin(connection, "BEGIN IMMEDIATE"),
      commit(connection, "COMMIT"),
      rollback(connection, "ROLLBACK"),
      select(connection, "SELECT owner, lease_until, pid, pid_started, machine FROM claims WHERE key = ?1"),
      put(connection,
          "INSERT OR REPLACE INTO claims(key, owner, lease_until, pid, pid_started, machine) "
          "VALUES(?1, ?2, ?3, ?4, ?5, ?6)"),
      renew(connection, "UPDATE claims SET lease_until = ?3 WHERE key = ?1 AND owner = ?2"),
      release(connection, "DELETE FROM claims WHERE key = ?1 AND owner = ?2") {}

bool try_claim(Statements& st, const Id& key, const Id& owner, std::int64_t now_ms, std::int64_t lease_ms) {
  st.select.bind(1, key);
  if (st.select.step()) {
    const bool held = st.select.id(0) != owner && st.select.int64(1) >= now_ms &&
                      !holder_gone(Holder{st.select.int64(2), st.select.int64(3), st.select.id(4)});
    st.select.reset();
    if (held) return false;
  }
  const Holder me = this_process();
  st.put.bind(1, key).bind(2, owner).bind(3, now_ms + lease_ms).bind(4, me.pid).bind(5, me.started).bind(6, me.machine);
  st.put.run();
  return true;
}

std::vector<Id> renew(Statements& st, const Id& owner, std::span<const Id> keys, std::int64_t now_ms,
                      std::int64_t lease_ms) {
  std::vector<Id> lost;
  for (const auto& key : keys) {
    st.renew.bind(1, key).bind(2, owner).bind(3, now_ms + lease_ms);
    st.renew.run();
    if (sqlite3_changes(st.db) == 0) lost.push_back(key);
  }
  return lost;
}

void release(Statements& st, const Id& owner, std::span<const Id> keys) {
  for (const auto& key : keys) {
    st.release.bind(1, key).bind(2, owner);
    st.release.run();
  }
}

namespace {
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ClaimsFile::ClaimsFile(fs::path store, std::chrono::milliseconds lock_timeout)
    : m_path(store.string() + ".claims"), m_backoff(lock_timeout) {}

void ClaimsFile::open_locked() {
  if (m_db) return;
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(m_path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  sql::DbHandle db(raw);
  if (rc != SQLITE_OK) sql::throw_sqlite(db.get(), rc, "opening the claims of the store", m_path.string());
  sqlite3_extended_result_codes(db.get(), 1);
  sql::install_busy_handler(db.get(), m_backoff);
  sql::retry_while_busy(
      m_backoff,
      [&] {
        // WAL: a claim is an append to the log, no file created or removed per claim. Claims
        // need no durability (a claim lost to a power failure only lets a call be computed
        // twice), so commits are not synced.
        sql::Statement mode(db.get(), "PRAGMA journal_mode=WAL");
        (void)mode.step();
        mode.reset();
        sql::exec(db.get(), "PRAGMA synchronous=OFF");
        sql::exec(db.get(), schema_sql);
      },
      [] {});
  m_statements = std::make_unique<Statements>(db.get());
  m_db = std::move(db);
}

template <class F>
auto ClaimsFile::transaction(F&& f) {
  std::lock_guard lock(m_mutex);
  open_locked();
  auto& st = *m_statements;
  return sql::retry_while_busy(
      m_backoff,
      [&] {
        st.begin.run();
        try {
          auto result = f(st);
          st.commit.run();
          return result;
        } catch (...) {
          st.select.reset_quietly();
          if (sqlite3_get_autocommit(st.db) == 0) {
            try {
              st.rollback.run();
            } catch (const Error&) {  // the transaction ends with the connection's next use
            }
          }
          throw;
        }
      },
      [] {});
}

bool ClaimsFile::try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) {
  return transaction([&](Statements& st) { return claims::try_claim(st, key, owner, now_ms(), lease.count()); });
}

std::vector<Id> ClaimsFile::renew(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) {
  if (keys.empty()) return {};
  return transaction([&](Statements& st) { return claims::renew(st, owner, keys, now_ms(), lease.count()); });
}

void ClaimsFile::release(const Id& owner, std::span<const Id> keys) {
  if (keys.empty()) return;
  transaction([&](Statements& st) {
    claims::release(st, owner, keys);
    return 0;
  });
}

}  // namespace mandala::store::claims
