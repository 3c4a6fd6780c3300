#include "store/postgres/pq.hpp"

#include <cstring>
#include <exception>

namespace mandala::store::pq {
namespace {

// Element type oids of the binary arrays (pg_type.oid).
constexpr std::uint32_t oid_bytea = 17;
constexpr std::uint32_t oid_int8 = 20;
constexpr std::uint32_t oid_int2 = 21;
constexpr std::uint32_t oid_int4 = 23;
constexpr std::uint32_t oid_text = 25;

template <class T>
void put_be(std::string& out, T v) {
  using U = std::make_unsigned_t<T>;
  auto u = static_cast<U>(v);
  char buf[sizeof(T)];
  for (std::size_t i = 0; i < sizeof(T); ++i) buf[i] = static_cast<char>((u >> (8 * (sizeof(T) - 1 - i))) & 0xFF);
  out.append(buf, sizeof(T));
}

template <class T>
T get_be(const char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) u = static_cast<U>((u << 8) | static_cast<unsigned char>(p[i]));
  return static_cast<T>(u);
}

/// The header of a one-dimensional binary array of `n` elements.
std::string array_header(std::size_t n, bool has_nulls, std::uint32_t oid) {
  std::string out;
  put_be<std::int32_t>(out, n == 0 ? 0 : 1);
  put_be<std::int32_t>(out, has_nulls ? 1 : 0);
  put_be<std::uint32_t>(out, oid);
  if (n > 0) {
    put_be<std::int32_t>(out, static_cast<std::int32_t>(n));
    put_be<std::int32_t>(out, 1);  // lower bound
  }
  return out;
}

template <class T>
std::string int_array(std::span<const T> v, std::uint32_t oid) {
  std::string out = array_header(v.size(), false, oid);
  out.reserve(out.size() + v.size() * (4 + sizeof(T)));
  for (const T x : v) {
    put_be<std::int32_t>(out, sizeof(T));
    put_be<T>(out, x);
  }
  return out;
}

bool connection_class(const std::string& sqlstate) {
  // 08: connection exceptions; 57P01-57P03: the server shut down or is starting up.
  return sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03";
}

void ignore_notice(void*, const char*) {}

/// A libpq message (lines ending in newlines, continuation lines indented) as one line.
std::string one_line(const char* text) {
  std::string out;
  bool gap = false;
  for (const char* p = text ? text : ""; *p != '\0'; ++p) {
    if (*p == '\n' || *p == '\t' || *p == '\r') {
      gap = true;
      continue;
    }
    if (gap && !out.empty()) out += ' ';
    gap = false;
    out += *p;
  }
  return out;
}

}  // namespace

bool ServerError::transient() const { return m_sqlstate == "40001" || m_sqlstate == "40P01" || m_sqlstate == "55P03"; }

// ---- Result --------------------------------------------------------------------------------

std::span<const std::byte> Result::bytes(int row, int col) const {
  const char* p = PQgetvalue(m_result.get(), row, col);
  const int n = PQgetlength(m_result.get(), row, col);
  return {reinterpret_cast<const std::byte*>(p), static_cast<std::size_t>(n)};
}

Id Result::id(int row, int col) const {
  const auto b = bytes(row, col);
  if (b.size() != Id{}.bytes.size())
    throw Error(Errc::corrupt_store, "a stored id (column " + std::string(PQfname(m_result.get(), col)) + ") has " +
                                         std::to_string(b.size()) + " bytes instead of 16; the store is damaged");
  Id out;
  std::memcpy(out.bytes.data(), b.data(), b.size());
  return out;
}

std::int64_t Result::integer(int row, int col) const {
  const char* p = PQgetvalue(m_result.get(), row, col);
  switch (PQgetlength(m_result.get(), row, col)) {
    case 2: return get_be<std::int16_t>(p);
    case 4: return get_be<std::int32_t>(p);
    case 8: return get_be<std::int64_t>(p);
    default:
      throw Error(Errc::corrupt_store,
                  "column " + std::string(PQfname(m_result.get(), col)) + " does not hold an integer");
  }
}

std::string Result::text(int row, int col) const {
  return {PQgetvalue(m_result.get(), row, col), static_cast<std::size_t>(PQgetlength(m_result.get(), row, col))};
}

// ---- Params --------------------------------------------------------------------------------

Params& Params::owned(std::string buffer) {
  m_owned.push_back(std::make_unique<std::string>(std::move(buffer)));
  const auto& b = *m_owned.back();
  m_values.push_back(b.data());
  m_lengths.push_back(static_cast<int>(b.size()));
  m_formats.push_back(1);
  return *this;
}

Params& Params::id(const Id& v) {
  return owned(std::string(reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size()));
}

Params& Params::int64(std::int64_t v) {
  std::string b;
  put_be(b, v);
  return owned(std::move(b));
}

Params& Params::int32(std::int32_t v) {
  std::string b;
  put_be(b, v);
  return owned(std::move(b));
}

Params& Params::text(std::string_view v) { return owned(std::string(v)); }

Params& Params::bytes_view(std::span<const std::byte> v) {
  m_values.push_back(reinterpret_cast<const char*>(v.data()));
  m_lengths.push_back(static_cast<int>(v.size()));
  m_formats.push_back(1);
  return *this;
}

Params& Params::null() {
  m_values.push_back(nullptr);
  m_lengths.push_back(0);
  m_formats.push_back(1);
  return *this;
}

Params& Params::id_array(std::span<const Id> v) {
  std::string out = array_header(v.size(), false, oid_bytea);
  out.reserve(out.size() + v.size() * 20);
  for (const auto& id : v) {
    put_be<std::int32_t>(out, static_cast<std::int32_t>(id.bytes.size()));
    out.append(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  }
  return owned(std::move(out));
}

Params& Params::bytes_array(const std::vector<std::span<const std::byte>>& v, const std::vector<bool>& nulls) {
  bool any_null = false;
  std::size_t total = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    any_null = any_null || (i < nulls.size() && nulls[i]);
    total += v[i].size() + 4;
  }
  std::string out = array_header(v.size(), any_null, oid_bytea);
  out.reserve(out.size() + total);
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i < nulls.size() && nulls[i]) {
      put_be<std::int32_t>(out, -1);
      continue;
    }
    put_be<std::int32_t>(out, static_cast<std::int32_t>(v[i].size()));
    out.append(reinterpret_cast<const char*>(v[i].data()), v[i].size());
  }
  return owned(std::move(out));
}

Params& Params::int64_array(std::span<const std::int64_t> v) { return owned(int_array(v, oid_int8)); }
Params& Params::int32_array(std::span<const std::int32_t> v) { return owned(int_array(v, oid_int4)); }
Params& Params::int16_array(std::span<const std::int16_t> v) { return owned(int_array(v, oid_int2)); }

Params& Params::text_array(std::span<const std::string> v) {
  std::string out = array_header(v.size(), false, oid_text);
  for (const auto& s : v) {
    put_be<std::int32_t>(out, static_cast<std::int32_t>(s.size()));
    out += s;
  }
  return owned(std::move(out));
}

// ---- Connection ----------------------------------------------------------------------------

Connection::Connection(std::string conninfo, std::string shown)
    : m_conninfo(std::move(conninfo)), m_shown(std::move(shown)) {
  connect();
}

void Connection::connect() {
  m_prepared.clear();
  // Defaults first: what the location says overrides them (libpq keeps a key's last value).
  const char* keys[] = {"application_name",    "connect_timeout",  "keepalives", "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "dbname",     nullptr};
  const char* values[] = {"mandala", "10", "1", "30", "10", "3", m_conninfo.c_str(), nullptr};
  m_conn.reset(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (!m_conn) throw Error(Errc::io, "cannot connect to " + m_shown + ": out of memory");
  if (PQstatus(m_conn.get()) != CONNECTION_OK) {
    std::string why = one_line(PQerrorMessage(m_conn.get()));
    const bool missing =
        why.find("database \"") != std::string::npos && why.find("does not exist") != std::string::npos;
    const bool auth = why.find("authentication") != std::string::npos || why.find("password") != std::string::npos ||
                      why.find("role \"") != std::string::npos;
    std::string hint = missing ? "create the database first (createdb, or CREATE DATABASE as its owner)"
                       : auth  ? "check the user name and password (in the location, PGPASSWORD or ~/.pgpass)"
                               : "check that the server runs and accepts connections at that address";
    m_conn.reset();
    throw Error(missing ? Errc::not_found : Errc::io,
                "cannot connect to the PostgreSQL store " + m_shown + ": " + why + "; " + hint);
  }
  PQsetNoticeProcessor(m_conn.get(), ignore_notice, nullptr);
}

void Connection::reconnect() { connect(); }

std::vector<std::string> Connection::take_notifications() {
  if (broken() || PQconsumeInput(m_conn.get()) == 0 || broken())
    throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown + ": " +
                         one_line(m_conn ? PQerrorMessage(m_conn.get()) : ""));
  std::vector<std::string> payloads;
  while (PGnotify* n = PQnotifies(m_conn.get())) {
    payloads.emplace_back(n->extra != nullptr ? n->extra : "");
    PQfreemem(n);
  }
  return payloads;
}

bool Connection::broken() const { return !m_conn || PQstatus(m_conn.get()) != CONNECTION_OK; }

bool Connection::in_transaction() const {
  if (!m_conn) return false;
  const auto s = PQtransactionStatus(m_conn.get());
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

void Connection::rollback_quietly() noexcept {
  if (broken() || !in_transaction()) return;
  PQclear(PQexec(m_conn.get(), "ROLLBACK"));
}

Result Connection::checked(PGresult* raw, std::string_view what) {
  Result r(raw);
  const auto status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
  const std::string message = one_line(raw ? PQresultErrorMessage(raw) : PQerrorMessage(m_conn.get()));
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state ? state : "";
  if (broken() || connection_class(sqlstate))
    throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown + " (" + message + ")");
  Errc code = Errc::io;
  std::string hint;
  if (sqlstate == "53100") hint = "; the server's disk is full: free space there";
  else if (sqlstate == "42501") hint = "; this user lacks a privilege on the store's tables: ask its owner";
  else if (sqlstate == "25006") hint = "; the database is read-only (a standby, or opened read-only)";
  throw ServerError(code, m_shown + ": " + std::string(what) + " failed: " + message + hint, sqlstate);
}

void Connection::require_idle() const {
  // libpq would silently drop the rest of a streamed result to run another statement.
  if (m_streaming)
    throw Error(Errc::io, m_shown + ": internal error: a statement was run while another's rows were being read");
}

void Connection::exec(const char* sql) {
  require_idle();
  if (broken()) throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown);
  (void)checked(PQexec(m_conn.get(), sql), std::string_view(sql).substr(0, 40));
}

const std::string& Connection::prepared(const std::string& sql) {
  require_idle();
  if (broken()) throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown);
  auto it = m_prepared.find(sql);
  if (it == m_prepared.end()) {
    std::string name = "m" + std::to_string(m_prepared.size());
    (void)checked(PQprepare(m_conn.get(), name.c_str(), sql.c_str(), 0, nullptr), "preparing " + sql.substr(0, 60));
    it = m_prepared.emplace(sql, std::move(name)).first;
  }
  return it->second;
}

Result Connection::query(const std::string& sql, const Params& params) {
  const std::string& name = prepared(sql);
  return checked(PQexecPrepared(m_conn.get(), name.c_str(), params.size(), params.values(), params.lengths(),
                                params.formats(), /*resultFormat=*/1),
                 sql.substr(0, 60));
}

void Connection::stream(const std::string& sql, const Params& params, const std::function<void(const Result&)>& row) {
  const std::string& name = prepared(sql);
  if (PQsendQueryPrepared(m_conn.get(), name.c_str(), params.size(), params.values(), params.lengths(),
                          params.formats(), /*resultFormat=*/1) == 0)
    (void)checked(nullptr, sql.substr(0, 60));
  PQsetSingleRowMode(m_conn.get());
  m_streaming = true;
  // Every result is read, also after a failure, so the connection is ready for the next query.
  std::exception_ptr failure;
  while (PGresult* raw = PQgetResult(m_conn.get())) {
    if (failure) {
      PQclear(raw);
      continue;
    }
    try {
      if (PQresultStatus(raw) == PGRES_SINGLE_TUPLE) {
        const Result r(raw);
        row(r);
      } else {
        (void)checked(raw, sql.substr(0, 60));
      }
    } catch (...) {
      failure = std::current_exception();
    }
  }
  m_streaming = false;
  if (failure) std::rethrow_exception(failure);
  if (broken()) throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown);
}

Result Connection::query_once(const std::string& sql, const Params& params) {
  require_idle();
  if (broken()) throw ConnectionLost("lost the connection to the PostgreSQL store " + m_shown);
  return checked(PQexecParams(m_conn.get(), sql.c_str(), params.size(), nullptr, params.values(), params.lengths(),
                              params.formats(), /*resultFormat=*/1),
                 sql.substr(0, 60));
}

}  // namespace mandala::store::pq
