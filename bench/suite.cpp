// The benchmark suite of bench/README.md: workloads W1-W5, each against a baseline measured in
// the same run, printed as a report and written as JSON.
//
//   mandala_bench [--short] [--dir DIR] [--json FILE]
//   mandala_bench --w3 N[,N...] [--keep] [--dir DIR] [--json FILE]   (W3 only, at these sizes)
//
// Phases that need a new process (memoized calls after reopening a store, opening a large
// store) run this program again as `mandala_bench child TASK ...`, which prints one JSON object.

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <mandala/mandala.hpp>
#include <nlohmann/json.hpp>

namespace md = mandala;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// CPU time this process has used (user + system), in seconds. On a shared machine the wall
/// time of a phase includes waiting for a core; its CPU time does not.
double cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

/// The machine's load averages (1, 5, 15 minutes), as /proc/loadavg gives them.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  in >> a >> b >> c;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
  return buf;
}

// ---- ops of the workloads ------------------------------------------------------------------

const auto inc = md::op("inc", {"x"}, [](long x) { return x + 1; });

// W3: a = f(i); b = g(a, k) for k in 0..2; c = h(b): 7 calls per i.
const auto f_op = md::op("f", {"i"}, [](long i) { return i * 2; }, {.outputs = {"a"}});
const auto g_op = md::op("g", {"a", "k"}, [](long a, long k) { return a + k; }, {.outputs = {"b"}});
const auto h_op = md::op("h", {"b"}, [](long b) { return b * b; }, {.outputs = {"c"}});
constexpr long w3_calls_per_item = 7;

// W4: a large vector made by one op and consumed by another.
double g_make_body_s = 0;      // time spent inside `make_big` itself
double g_make_body_cpu_s = 0;  // and its CPU time
const auto make_big = md::op("make_big", {"n"}, [](long n) {
  const auto t0 = Clock::now();
  const double c0 = cpu_s();
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5;
  g_make_body_s = since(t0);
  g_make_body_cpu_s = cpu_s() - c0;
  return v;
});
double g_consume_body_s = 0;  // time spent inside `total` itself
volatile double g_sink = 0;
const auto total = md::op("total", {"v"}, [](const std::vector<double>& v) {
  const auto t0 = Clock::now();
  double s = 0;
  for (double x : v) s += x;
  g_consume_body_s = since(t0);
  return s;
});

std::uint64_t file_bytes(const fs::path& db) {
  std::uint64_t n = 0;
  for (const char* suffix : {"", "-wal"}) {
    std::error_code ec;
    const auto size = fs::file_size(db.string() + suffix, ec);
    if (!ec) n += size;
  }
  return n;
}

void remove_store(const fs::path& db) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix);
  fs::remove_all(db.string() + ".blobs");
}

/// Heap bytes in use outside SQLite (whose page cache is not the engine's memory).
double engine_heap_bytes() {
  const auto info = mallinfo2();
  return static_cast<double>(info.uordblks) - static_cast<double>(sqlite3_memory_used());
}

long max_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

struct PerCall {
  double us;      ///< wall time per call
  double cpu_us;  ///< CPU time per call
};

/// Runs inc(0..n-1) in one session; microseconds per call.
PerCall run_inc(md::Storage& storage, long n) {
  const auto t0 = Clock::now();
  const double c0 = cpu_s();
  {
    md::Session session(storage);
    for (long i = 0; i < n; ++i) (void)inc(i);
  }
  const auto per = [&](double s) { return s * 1e6 / static_cast<double>(n); };
  return {per(since(t0)), per(cpu_s() - c0)};
}

// ---- raw-SQLite baseline ---------------------------------------------------------------------

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

/// Inserts the rows a store of n calls of `inc` holds (docs/storage-format.md 3.2: one values
/// row, one calls row with a 39-byte io column and no content id (inc's input is a raw value),
/// two call_refs rows per call), with prepared
/// statements in one transaction, into a database with the same tables and indexes. The ids are
/// random bytes made before the clock starts. Microseconds per call.
PerCall raw_sqlite_us_per_call(const fs::path& db_path, long n) {
  remove_store(db_path);
  sqlite3* db = nullptr;
  check(sqlite3_open(db_path.c_str(), &db), db, "open");
  const char* schema = R"sql(
PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144;
CREATE TABLE ops(id INTEGER PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, inputs TEXT NOT NULL,
  outputs TEXT NOT NULL, UNIQUE(name, version));
CREATE TABLE "values"(cid BLOB PRIMARY KEY, size INTEGER NOT NULL, data BLOB) WITHOUT ROWID;
CREATE TABLE calls(id INTEGER PRIMARY KEY, hid BLOB NOT NULL, cid BLOB NOT NULL, op_id INTEGER NOT NULL,
  created INTEGER NOT NULL, io BLOB NOT NULL, semantic INTEGER);
CREATE INDEX calls_by_hid ON calls(substr(hid, 1, 8));
CREATE INDEX calls_by_cid ON calls(substr(cid, 1, 8)) WHERE length(cid) = 16;
CREATE INDEX calls_by_op ON calls(op_id);
CREATE TABLE call_refs(key INTEGER NOT NULL, dir INTEGER NOT NULL, call_id INTEGER NOT NULL,
  PRIMARY KEY(key, dir, call_id)) WITHOUT ROWID;
INSERT INTO ops(name, version, inputs, outputs) VALUES('inc', 0, '["x"]', '["output_0"]');
)sql";
  check(sqlite3_exec(db, schema, nullptr, nullptr, nullptr), db, "schema");
  std::mt19937_64 rng(42);
  struct Row {
    unsigned char hid[16], value_cid[16], io[39];
    std::int64_t in_key, out_key;
  };
  std::vector<Row> rows(static_cast<std::size_t>(n));
  for (auto& r : rows) {
    for (auto* field : {r.hid, r.value_cid})
      for (int i = 0; i < 16; i += 8) {
        const auto x = rng();
        std::memcpy(field + i, &x, 8);
      }
    for (auto& b : r.io) b = static_cast<unsigned char>(rng());
    r.in_key = static_cast<std::int64_t>(rng());
    r.out_key = static_cast<std::int64_t>(rng());
  }
  sqlite3_stmt *value = nullptr, *call = nullptr, *ref = nullptr;
  check(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO \"values\"(cid, size, data) VALUES(?1, 2, x'cd01')", -1, &value,
                           nullptr),
        db, "prepare");
  check(sqlite3_prepare_v2(db, "INSERT INTO calls(hid, cid, op_id, created, io) VALUES(?1, x'', 1, ?3, ?4)", -1, &call,
                           nullptr),
        db, "prepare");
  check(sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO call_refs(key, dir, call_id) VALUES(?1, ?2, ?3)", -1, &ref,
                           nullptr),
        db, "prepare");
  const auto t0 = Clock::now();
  const double c0 = cpu_s();
  check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
  const std::int64_t created = 1'700'000'000'000;
  for (const auto& r : rows) {
    sqlite3_bind_blob(value, 1, r.value_cid, 16, SQLITE_STATIC);
    check(sqlite3_step(value), db, "value");
    sqlite3_reset(value);
    sqlite3_bind_blob(call, 1, r.hid, 16, SQLITE_STATIC);
    sqlite3_bind_int64(call, 3, created);
    sqlite3_bind_blob(call, 4, r.io, sizeof r.io, SQLITE_STATIC);
    check(sqlite3_step(call), db, "call");
    sqlite3_reset(call);
    const auto id = sqlite3_last_insert_rowid(db);
    for (auto [key, dir] : {std::pair{r.in_key, 0}, std::pair{r.out_key, 1}}) {
      sqlite3_bind_int64(ref, 1, key);
      sqlite3_bind_int64(ref, 2, dir);
      sqlite3_bind_int64(ref, 3, id);
      check(sqlite3_step(ref), db, "ref");
      sqlite3_reset(ref);
    }
  }
  check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
  const PerCall per{since(t0) * 1e6 / static_cast<double>(n), (cpu_s() - c0) * 1e6 / static_cast<double>(n)};
  for (auto* st : {value, call, ref}) sqlite3_finalize(st);
  sqlite3_close(db);
  remove_store(db_path);
  return per;
}

/// The least any SQLite store of calls found by their ids does per new call: one row keyed by a
/// random 16-byte id (with a 39-byte payload, the size of `inc`'s io column), nothing else, in a
/// WITHOUT ROWID table; committed every `batch` rows (the engine's default flush size unless
/// told), each batch inserted in key order (as the engine inserts). With the store's pragmas.
/// Microseconds per call.
PerCall sqlite_floor_us_per_call(const fs::path& db_path, long n,
                                 long batch = static_cast<long>(md::StorageOptions{}.flush_every_calls)) {
  remove_store(db_path);
  sqlite3* db = nullptr;
  check(sqlite3_open(db_path.c_str(), &db), db, "open");
  check(sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-262144; "
                     "CREATE TABLE calls(hid BLOB PRIMARY KEY, io BLOB NOT NULL) WITHOUT ROWID;",
                     nullptr, nullptr, nullptr),
        db, "schema");
  std::mt19937_64 rng(7);
  struct Row {
    unsigned char hid[16], io[39];
  };
  std::vector<Row> rows(static_cast<std::size_t>(n));
  for (auto& r : rows) {
    for (auto& b : r.hid) b = static_cast<unsigned char>(rng());
    for (auto& b : r.io) b = static_cast<unsigned char>(rng());
  }
  for (long at = 0; at < n; at += batch)
    std::sort(rows.begin() + at, rows.begin() + std::min(n, at + batch),
              [](const Row& a, const Row& b) { return std::memcmp(a.hid, b.hid, sizeof a.hid) < 0; });
  sqlite3_stmt* put = nullptr;
  check(sqlite3_prepare_v2(db, "INSERT INTO calls(hid, io) VALUES(?1, ?2)", -1, &put, nullptr), db, "prepare");
  const auto t0 = Clock::now();
  const double c0 = cpu_s();
  for (long at = 0; at < n; at += batch) {
    check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), db, "begin");
    for (long i = at; i < std::min(n, at + batch); ++i) {
      const auto& r = rows[static_cast<std::size_t>(i)];
      sqlite3_bind_blob(put, 1, r.hid, sizeof r.hid, SQLITE_STATIC);
      sqlite3_bind_blob(put, 2, r.io, sizeof r.io, SQLITE_STATIC);
      check(sqlite3_step(put), db, "insert");
      sqlite3_reset(put);
    }
    check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db, "commit");
  }
  const PerCall per{since(t0) * 1e6 / static_cast<double>(n), (cpu_s() - c0) * 1e6 / static_cast<double>(n)};
  sqlite3_finalize(put);
  sqlite3_close(db);
  remove_store(db_path);
  return per;
}

/// The disk baseline of W4: seconds to write `bytes` bytes to a new file in `dir` and
/// fdatasync it (what `dd bs=8M conv=fdatasync` does), from a buffer filled beforehand. With
/// `direct`, the file is opened with O_DIRECT (`dd oflag=direct`): the disk without the copy
/// into the page cache (bytes is then a multiple of 4096).
double disk_write_s(const fs::path& dir, std::uint64_t bytes, bool direct = false) {
  const fs::path path = dir / "disk-baseline.bin";
  constexpr std::size_t chunk = 8u << 20;
  std::unique_ptr<char, decltype(&std::free)> buffer(static_cast<char*>(std::aligned_alloc(4096, chunk)), &std::free);
  for (std::size_t i = 0; i < chunk; ++i) buffer.get()[i] = static_cast<char>(i * 7 + 1);
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
  if (fd < 0) throw std::runtime_error("disk baseline: cannot create " + path.string());
  for (std::uint64_t done = 0; done < bytes;) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, bytes - done));
    const ssize_t w = ::write(fd, buffer.get(), n);
    if (w <= 0) {
      ::close(fd);
      throw std::runtime_error("disk baseline: cannot write " + path.string());
    }
    done += static_cast<std::uint64_t>(w);
  }
  if (::fdatasync(fd) != 0) throw std::runtime_error("disk baseline: cannot sync " + path.string());
  ::close(fd);
  const double s = since(t0);
  fs::remove(path);
  return s;
}

// ---- child tasks (run in a new process) ------------------------------------------------------

/// `again STORE N`: the N calls of W1 again, memoized, in this new process; the heap the
/// engine's call cache holds afterwards.
json child_again(const fs::path& db, long n) {
  const double heap0 = engine_heap_bytes();
  md::Storage storage(db);
  const auto per = run_inc(storage, n);
  const double heap1 = engine_heap_bytes();
  const auto c = storage.counters();
  return {{"us_per_call", per.us},
          {"cpu_us_per_call", per.cpu_us},
          {"executed", c.executed},
          {"cache_bytes_per_call", (heap1 - heap0) / static_cast<double>(n)}};
}

/// `open STORE N`: open the store and answer one memoized lookup.
json child_open(const fs::path& db, long n) {
  const long rss0 = max_rss_kib();
  auto t0 = Clock::now();
  md::Storage storage(db);
  const double open_ms = since(t0) * 1e3;
  t0 = Clock::now();
  long executed = 0;
  {
    md::Session session(storage);
    (void)inc(n / 2);
    executed = static_cast<long>(storage.counters().executed);
  }
  const double lookup_ms = since(t0) * 1e3;
  return {
      {"open_ms", open_ms}, {"lookup_ms", lookup_ms}, {"executed", executed}, {"rss_growth_kib", max_rss_kib() - rss0}};
}

json run_child(const std::string& self, const std::vector<std::string>& args) {
  const fs::path out = fs::temp_directory_path() / ("mandala-bench-" + std::to_string(getpid()) + ".json");
  std::string cmd = "'" + self + "' child";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > '" + out.string() + "'";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) throw std::runtime_error("child failed: " + cmd);
  std::ifstream in(out);
  json j = json::parse(in);
  fs::remove(out);
  return j;
}

// ---- workloads -------------------------------------------------------------------------------

struct Config {
  bool full = true;
  fs::path dir;
  std::string self;
  std::vector<long> w3_only;  ///< --w3: run only W3, at these numbers of calls
  bool keep = false;          ///< --keep: W3 reuses a store of DIR and leaves it there
  bool w4_only = false;       ///< --w4: run only W4
  bool huge = false;          ///< --huge (with --w4): a value above 4 GiB round-trips
};

json w1_w2_w5(const Config& cfg) {
  const std::vector<long> sizes =
      cfg.full ? std::vector<long>{10'000, 100'000, 1'000'000} : std::vector<long>{1'000, 10'000};
  json runs = json::array();
  for (long n : sizes) {
    const fs::path db = cfg.dir / ("w1-" + std::to_string(n) + ".db");
    remove_store(db);
    json r{{"calls", n}};
    {
      md::Storage storage(db);
      const auto fresh = run_inc(storage, n);
      const auto again = run_inc(storage, n);
      r["new_us_per_call"] = fresh.us;
      r["new_cpu_us_per_call"] = fresh.cpu_us;
      r["again_same_process_us_per_call"] = again.us;
      r["again_same_process_cpu_us_per_call"] = again.cpu_us;
      if (storage.counters().executed != static_cast<std::uint64_t>(n)) throw std::runtime_error("W1: wrong count");
    }
    r["bytes_per_call"] = static_cast<double>(file_bytes(db)) / static_cast<double>(n);
    const json again = run_child(cfg.self, {"again", db.string(), std::to_string(n)});
    if (again["executed"] != 0) throw std::runtime_error("W2: calls re-executed in a new process");
    r["again_new_process_us_per_call"] = again["us_per_call"];
    r["again_new_process_cpu_us_per_call"] = again["cpu_us_per_call"];
    r["cache_bytes_per_call"] = again["cache_bytes_per_call"];
    const auto baseline = raw_sqlite_us_per_call(cfg.dir / "baseline.db", n);
    r["baseline_raw_sqlite_us_per_call"] = baseline.us;
    r["baseline_raw_sqlite_cpu_us_per_call"] = baseline.cpu_us;
    r["new_vs_baseline"] = r["new_us_per_call"].get<double>() / baseline.us;
    r["new_vs_baseline_cpu"] = r["new_cpu_us_per_call"].get<double>() / baseline.cpu_us;
    const auto floor = sqlite_floor_us_per_call(cfg.dir / "floor.db", n);
    r["sqlite_floor_us_per_call"] = floor.us;
    r["sqlite_floor_cpu_us_per_call"] = floor.cpu_us;
    // The same rows in one transaction: what the commits of the batches add.
    r["sqlite_floor_one_commit_us_per_call"] = sqlite_floor_us_per_call(cfg.dir / "floor.db", n, n).us;
    const json open = run_child(cfg.self, {"open", db.string(), std::to_string(n)});
    r["w5_open_ms"] = open["open_ms"];
    r["w5_lookup_ms"] = open["lookup_ms"];
    r["w5_rss_growth_kib"] = open["rss_growth_kib"];
    r["w5_store_kib"] = file_bytes(db) / 1024;
    std::printf(
        "  W1/W2/W5 N=%-8ld new %.2f us (raw SQLite %.2f us, x%.2f; CPU %.2f vs %.2f us, x%.2f; SQLite floor %.2f us, "
        "CPU %.2f, in one commit %.2f us), again same "
        "process %.2f us (CPU %.2f), new process %.2f us (CPU %.2f), %.0f B/call on disk, %.0f B/cached call, "
        "open %.2f ms, lookup %.2f ms\n",
        n, r["new_us_per_call"].get<double>(), r["baseline_raw_sqlite_us_per_call"].get<double>(),
        r["new_vs_baseline"].get<double>(), r["new_cpu_us_per_call"].get<double>(),
        r["baseline_raw_sqlite_cpu_us_per_call"].get<double>(), r["new_vs_baseline_cpu"].get<double>(),
        r["sqlite_floor_us_per_call"].get<double>(), r["sqlite_floor_cpu_us_per_call"].get<double>(),
        r["sqlite_floor_one_commit_us_per_call"].get<double>(), r["again_same_process_us_per_call"].get<double>(),
        r["again_same_process_cpu_us_per_call"].get<double>(), r["again_new_process_us_per_call"].get<double>(),
        r["again_new_process_cpu_us_per_call"].get<double>(), r["bytes_per_call"].get<double>(),
        r["cache_bytes_per_call"].get<double>(), r["w5_open_ms"].get<double>(), r["w5_lookup_ms"].get<double>());
    std::fflush(stdout);
    runs.push_back(r);
    if (n != sizes.back()) remove_store(db);
  }
  return runs;
}

json w3(const Config& cfg) {
  std::vector<long> sizes =
      cfg.full ? std::vector<long>{1'000, 10'000, 100'000, 1'000'000} : std::vector<long>{1'000, 10'000};
  if (!cfg.w3_only.empty()) sizes = cfg.w3_only;
  json runs = json::array();
  for (long target : sizes) {
    const long items = std::max(1L, target / w3_calls_per_item);
    const fs::path db = cfg.dir / ("w3-" + std::to_string(target) + ".db");
    const bool reuse = cfg.keep && fs::exists(db);
    if (!reuse) remove_store(db);
    md::Storage storage(db);
    auto t0 = Clock::now();
    if (!reuse) {
      md::Session session(storage);
      for (long i = 0; i < items; ++i) {
        auto a = f_op(i);
        for (long k = 0; k < 3; ++k) (void)h_op(g_op(a, k));
      }
    }
    const double build_s = since(t0);
    t0 = Clock::now();
    const double c0 = cpu_s();
    auto frame = storage.cf(h_op);
    const double cf_s = since(t0);
    t0 = Clock::now();
    frame.expand_all_inplace();
    const double expand_s = since(t0);
    t0 = Clock::now();
    const auto table = frame.eval();
    const double eval_s = since(t0);
    const double query_cpu_s = cpu_s() - c0;
    const long calls = items * w3_calls_per_item;
    if (frame.num_calls() != static_cast<std::size_t>(calls)) throw std::runtime_error("W3: wrong call count");
    json r{{"calls", calls},
           {"build_s", build_s},
           {"cf_s", cf_s},
           {"expand_all_s", expand_s},
           {"eval_s", eval_s},
           {"rows", table.num_rows()},
           {"query_total_s", cf_s + expand_s + eval_s},
           {"query_cpu_s", query_cpu_s}};
    std::printf(
        "  W3 calls=%-8ld build %.3f s; cf %.3f s + expand_all %.3f s + eval %.3f s = %.3f s (CPU %.3f s; %zu rows)\n",
        calls, build_s, cf_s, expand_s, eval_s, cf_s + expand_s + eval_s, query_cpu_s, table.num_rows());
    std::fflush(stdout);
    runs.push_back(r);
    if (!cfg.keep) remove_store(db);
  }
  return runs;
}

json w4(const Config& cfg) {
  const long n = cfg.full ? (1L << 30) / 8 : (64L << 20) / 8;  // doubles: 1 GiB / 64 MiB
  const fs::path db = cfg.dir / "w4.db";
  remove_store(db);
  json r{{"bytes", n * 8}};
  // Baselines: a plain scan of the same bytes (copy, and sum).
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.5;
  const auto bytes = std::as_bytes(std::span(v));
  std::vector<std::byte> copy(bytes.size());
  auto t0 = Clock::now();
  std::memcpy(copy.data(), bytes.data(), bytes.size());
  const double memcpy_s = since(t0);
  t0 = Clock::now();
  double sum = 0;
  for (double x : v) sum += x;
  g_sink = sum;  // keeps the loop
  const double sum_s = since(t0);
  copy = {};
  t0 = Clock::now();
  const md::Id id = md::detail::content_id(bytes);
  const double hash_s = since(t0);
  const double gib = static_cast<double>(bytes.size()) / double(1 << 30);
  r["memcpy_gib_s"] = gib / memcpy_s;
  r["sum_gib_s"] = gib / sum_s;
  r["hash_gib_s"] = gib / hash_s;
  r["hash_vs_sum"] = sum_s / hash_s;
  r["hash_vs_memcpy"] = memcpy_s / hash_s;
  v = {};
  (void)id;
  // Disk baseline: the same number of bytes written and synced in the same directory, before
  // and after the store (the disk's speed drifts; their mean is the baseline).
  const auto encoded_bytes = static_cast<std::uint64_t>(n) * 8;
  const double disk_before_s = disk_write_s(cfg.dir, encoded_bytes);
  {
    md::StorageOptions options;
    options.flush_interval = std::chrono::hours(1);  // the flush below is the only one
    md::Storage storage(db, options);
    md::Session session(storage);
    t0 = Clock::now();
    const double c0 = cpu_s();
    auto big = make_big(n);
    // Up to here: the op, then encoding and hashing its output; the flush writes and syncs it.
    r["encode_and_hash_s"] = since(t0) - g_make_body_s;
    const auto t_flush = Clock::now();
    storage.flush();
    r["flush_s"] = since(t_flush);
    const double make_and_store_s = since(t0);
    r["store_output_cpu_s"] = cpu_s() - c0 - g_make_body_cpu_s;
    r["make_body_s"] = g_make_body_s;
    // Storing: everything but the op's own work (encoding, hashing, writing, syncing).
    r["store_output_s"] = make_and_store_s - g_make_body_s;
    t0 = Clock::now();
    auto s1 = total(big);
    const double pass_s = since(t0);
    r["pass_to_op_s"] = pass_s;
    r["pass_to_op_body_s"] = g_consume_body_s;
    r["pass_to_op_overhead_ms"] = (pass_s - g_consume_body_s) * 1e3;
    storage.flush();
    t0 = Clock::now();
    auto s2 = total(big);
    r["memoized_us"] = since(t0) * 1e6;
    if (s1.cid() != s2.cid()) throw std::runtime_error("W4: memoized result differs");
    if (storage.counters().executed != 2) throw std::runtime_error("W4: wrong count");
  }
  const double disk_after_s = disk_write_s(cfg.dir, encoded_bytes);
  double direct_s = 0;
  try {
    direct_s = disk_write_s(cfg.dir, encoded_bytes, /*direct=*/true);
  } catch (const std::exception&) {
    // a file system without direct I/O: no such figure
  }
  r["disk_direct_write_s"] = direct_s;
  r["store_vs_disk_direct"] = direct_s > 0 ? direct_s / r["store_output_s"].get<double>() : 0.0;
  const double disk_s = (disk_before_s + disk_after_s) / 2;
  r["disk_write_s"] = disk_s;
  r["disk_write_before_s"] = disk_before_s;
  r["disk_write_after_s"] = disk_after_s;
  r["disk_mb_s"] = static_cast<double>(encoded_bytes) / disk_s / 1e6;
  r["store_mb_s"] = static_cast<double>(encoded_bytes) / r["store_output_s"].get<double>() / 1e6;
  r["store_vs_disk"] = disk_s / r["store_output_s"].get<double>();
  std::printf(
      "  W4 %.2f GiB: memcpy %.2f GiB/s, sum %.2f GiB/s, hash %.2f GiB/s (x%.2f of sum, x%.2f of memcpy); "
      "store as output %.2f s beyond the op's %.2f s (encode + hash %.2f s, flush %.2f s; CPU %.2f s; %.0f MB/s; "
      "disk baseline %.2f s = %.0f MB/s "
      "(%.2f s before, %.2f s after): x%.2f of the disk; with O_DIRECT %.2f s: x%.2f); pass to an op: %.3f s of which "
      "%.3f s in the op (overhead "
      "%.2f ms); memoized again %.1f us\n",
      gib, r["memcpy_gib_s"].get<double>(), r["sum_gib_s"].get<double>(), r["hash_gib_s"].get<double>(),
      r["hash_vs_sum"].get<double>(), r["hash_vs_memcpy"].get<double>(), r["store_output_s"].get<double>(),
      r["make_body_s"].get<double>(), r["encode_and_hash_s"].get<double>(), r["flush_s"].get<double>(),
      r["store_output_cpu_s"].get<double>(), r["store_mb_s"].get<double>(), r["disk_write_s"].get<double>(),
      r["disk_mb_s"].get<double>(), r["disk_write_before_s"].get<double>(), r["disk_write_after_s"].get<double>(),
      r["store_vs_disk"].get<double>(), r["disk_direct_write_s"].get<double>(), r["store_vs_disk_direct"].get<double>(),
      r["pass_to_op_s"].get<double>(), r["pass_to_op_body_s"].get<double>(), r["pass_to_op_overhead_ms"].get<double>(),
      r["memoized_us"].get<double>());
  std::fflush(stdout);
  remove_store(db);
  return r;
}

/// `--w4 --huge`: a value above 4 GiB (five blocks of 1 GiB of doubles: one typed block is at most
/// 2^32 - 1 bytes, docs/guarantees.md) made by an op, stored, and read back in a new storage, in a
/// file store and in an in-memory store (whose files go to TMPDIR: SQLite holds no value above
/// about 1 GB).
json w4_huge(const Config& cfg) {
  constexpr long blocks = 5;
  constexpr long per_block = (1L << 30) / 8;
  const auto make_huge = md::op("make_huge", {"blocks", "per_block"}, [](long k, long m) {
    std::vector<std::vector<double>> v(static_cast<std::size_t>(k));
    for (std::size_t b = 0; b < v.size(); ++b) {
      v[b].resize(static_cast<std::size_t>(m));
      for (std::size_t i = 0; i < v[b].size(); ++i) v[b][i] = static_cast<double>(b * v[b].size() + i) * 0.5;
    }
    return v;
  });
  const auto check = [&](const std::vector<std::vector<double>>& v) {
    if (v.size() != static_cast<std::size_t>(blocks)) throw std::runtime_error("W4 huge: wrong number of blocks");
    for (std::size_t b = 0; b < v.size(); ++b) {
      if (v[b].size() != static_cast<std::size_t>(per_block)) throw std::runtime_error("W4 huge: wrong block size");
      for (std::size_t i = 0; i < v[b].size(); i += 4097)
        if (v[b][i] != static_cast<double>(b * v[b].size() + i) * 0.5)
          throw std::runtime_error("W4 huge: wrong value read back");
    }
  };
  const double bytes = static_cast<double>(blocks * per_block * 8);
  json r{{"bytes", blocks * per_block * 8}};
  for (const bool memory : {false, true}) {
    const fs::path db = cfg.dir / "w4-huge.db";
    remove_store(db);
    json run;
    const auto t0 = Clock::now();
    md::Id hid;
    {
      std::unique_ptr<md::Storage> storage =
          memory ? std::make_unique<md::Storage>() : std::make_unique<md::Storage>(db);
      {
        md::Session session(*storage);
        hid = make_huge(blocks, per_block).hid();
      }  // flushed here: the value is stored
      run["store_s"] = since(t0);
      const auto stats = storage->stats();
      run["blob_files"] = stats.blob_files;
      run["value_bytes"] = stats.value_bytes;
      if (memory) {
        // An in-memory store cannot be reopened: read the value back through a new lazy ref.
        const auto t1 = Clock::now();
        const auto back = storage->ref<std::vector<std::vector<double>>>(hid);
        if (!back) throw std::runtime_error("W4 huge: the value is not in the in-memory store");
        check(back->get());
        run["load_s"] = since(t1);
      }
      run["peak_rss_gib"] = static_cast<double>(max_rss_kib()) / double(1 << 20);
    }
    if (!memory) {
      const auto t1 = Clock::now();
      md::Storage storage(db);
      const auto back = storage.ref<std::vector<std::vector<double>>>(hid);
      if (!back) throw std::runtime_error("W4 huge: the value is not in the reopened store");
      check(back->get());
      run["load_s"] = since(t1);
      const auto report = storage.check_integrity();
      if (!report.ok()) throw std::runtime_error("W4 huge: the integrity check found problems");
    }
    std::printf(
        "  W4 huge, %s store: %.2f GiB value stored in %.2f s (%.0f MB/s, %ld blob file), read back and "
        "checked in %.2f s; peak resident %.1f GiB\n",
        memory ? "in-memory" : "file", bytes / double(1 << 30), run["store_s"].get<double>(),
        bytes / run["store_s"].get<double>() / 1e6, run["blob_files"].get<long>(), run["load_s"].get<double>(),
        run["peak_rss_gib"].get<double>());
    std::fflush(stdout);
    r[memory ? "memory" : "file"] = run;
    remove_store(db);
  }
  return r;
}

/// The issue's targets, judged on the largest sizes of this run.
json targets(const json& w12, const json& w3r, const json& w4r, bool full) {
  const auto& small = w12.front();
  const auto& big = w12.back();
  json t = json::array();
  auto add = [&](const char* name, const std::string& measured, bool met) {
    t.push_back({{"target", name}, {"measured", measured}, {"met", met}});
  };
  char buf[256];
  const double new_us = big["new_us_per_call"].get<double>();
  const double ratio = big["new_vs_baseline"].get<double>();
  const double floor_us = big["sqlite_floor_us_per_call"].get<double>();
  std::snprintf(buf, sizeof buf, "%.2f us/call at N=%ld, x%.2f of raw SQLite (SQLite floor alone: %.2f us)", new_us,
                big["calls"].get<long>(), ratio, floor_us);
  add("1. W1 <= 5 us per new call at 1e6 and <= 3x raw SQLite", buf, new_us <= 5 && ratio <= 3);
  const double same = big["again_same_process_us_per_call"].get<double>();
  const double fresh = big["again_new_process_us_per_call"].get<double>();
  std::snprintf(buf, sizeof buf, "same process %.2f us, new process %.2f us", same, fresh);
  add("2. W2 <= 1 us same process, <= 10 us new process", buf, same <= 1 && fresh <= 10);
  const double growth = new_us / small["new_us_per_call"].get<double>();
  const double floor_growth = floor_us / small["sqlite_floor_us_per_call"].get<double>();
  std::snprintf(buf, sizeof buf, "x%.2f from N=%ld to N=%ld (SQLite floor alone: x%.2f)", growth,
                small["calls"].get<long>(), big["calls"].get<long>(), floor_growth);
  add("3. per-call cost at 1e6 within 1.5x of 1e4", buf, growth <= 1.5);
  // The 10^4 figure: the largest run of at most 10,000 calls (the smallest run when none is).
  const json* w3_small_run = &w3r.front();
  for (const auto& r : w3r)
    if (r["calls"].get<long>() <= 10'000) w3_small_run = &r;
  const auto& w3_small = *w3_small_run;
  const auto& w3_big = w3r.back();
  std::snprintf(buf, sizeof buf, "%.3f s at %ld calls, %.1f ms at %ld calls", w3_big["query_total_s"].get<double>(),
                w3_big["calls"].get<long>(), w3_small["query_total_s"].get<double>() * 1e3,
                w3_small["calls"].get<long>());
  bool w3_met = w3_big["query_total_s"].get<double>() <= 5;
  for (const auto& r : w3r)
    if (r["calls"].get<long>() <= 10'000) w3_met = w3_met && r["query_total_s"].get<double>() <= 0.05;
  add("4. W3 cf+expand_all+eval <= 5 s at 1e6, <= 50 ms at 1e4", buf, w3_met);
  std::snprintf(
      buf, sizeof buf, "hash x%.2f of the sum scan; passing on costs %.2f ms outside the op; memoized %.1f us",
      w4r["hash_vs_sum"].get<double>(), w4r["pass_to_op_overhead_ms"].get<double>(), w4r["memoized_us"].get<double>());
  add("5. W4 hashing >= 0.5x memory scan, no rehash when passed on, memoized in us", buf,
      w4r["hash_vs_sum"].get<double>() >= 0.5 && w4r["pass_to_op_overhead_ms"].get<double>() < 50 &&
          w4r["memoized_us"].get<double>() < 1000);
  std::snprintf(buf, sizeof buf, "stored at %.0f MB/s, disk %.0f MB/s (write + fdatasync, same run): x%.2f",
                w4r["store_mb_s"].get<double>(), w4r["disk_mb_s"].get<double>(), w4r["store_vs_disk"].get<double>());
  add("5b. W4 storing the value at >= 0.5x the disk's write speed", buf, w4r["store_vs_disk"].get<double>() >= 0.5);
  std::snprintf(buf, sizeof buf, "open %.2f ms (store %ld KiB, resident growth %ld KiB)",
                big["w5_open_ms"].get<double>(), big["w5_store_kib"].get<long>(), big["w5_rss_growth_kib"].get<long>());
  add("6. W5 open <= 50 ms without reading all calls", buf,
      big["w5_open_ms"].get<double>() <= 50 &&
          big["w5_rss_growth_kib"].get<long>() < big["w5_store_kib"].get<long>() / 2);
  std::snprintf(buf, sizeof buf, "%.0f bytes/call on disk, %.0f bytes per cached call",
                big["bytes_per_call"].get<double>(), big["cache_bytes_per_call"].get<double>());
  add("7. <= 150 bytes/call on disk, <= 300 bytes per cached call", buf,
      big["bytes_per_call"].get<double>() <= 150 && big["cache_bytes_per_call"].get<double>() <= 300);
  if (!full)
    for (auto& x : t) x["note"] = "short mode: sizes are below the targets' N";
  return t;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--short] [--dir DIR] [--json FILE]\n"
               "       %s --w3 N[,N...] [--keep] [--dir DIR] [--json FILE]\n"
               "       %s --w4 [--short | --huge] [--dir DIR] [--json FILE]\n",
               argv0, argv0, argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 5 && std::string(argv[1]) == "child") {
      const std::string task = argv[2];
      const fs::path db = argv[3];
      const long n = std::atol(argv[4]);
      const json j = task == "again" ? child_again(db, n) : child_open(db, n);
      std::cout << j.dump() << '\n';
      return 0;
    }
    Config cfg;
    cfg.self = fs::canonical("/proc/self/exe").string();
    cfg.dir = fs::temp_directory_path() / ("mandala-bench-" + std::to_string(getpid()));
    std::string json_path;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--short") cfg.full = false;
      else if (a == "--dir" && i + 1 < argc) cfg.dir = argv[++i];
      else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
      else if (a == "--w3" && i + 1 < argc) {
        std::stringstream list(argv[++i]);
        for (std::string n; std::getline(list, n, ',');) {
          char* end = nullptr;
          const long v = std::strtol(n.c_str(), &end, 10);
          if (n.empty() || *end != '\0' || v < 1) {
            std::fprintf(stderr, "--w3 takes positive numbers of calls separated by commas, not %s\n", argv[i]);
            return usage(argv[0]);
          }
          cfg.w3_only.push_back(v);
        }
      } else if (a == "--keep") cfg.keep = true;
      else if (a == "--w4") cfg.w4_only = true;
      else if (a == "--huge") cfg.huge = true;
      else return usage(argv[0]);
    }
    if (cfg.huge && (!cfg.w4_only || !cfg.full)) {
      std::fprintf(stderr, "--huge only applies with --w4 (and not with --short)\n");
      return usage(argv[0]);
    }
    if (cfg.w4_only && !cfg.w3_only.empty()) {
      std::fprintf(stderr, "--w3 and --w4 are separate runs\n");
      return usage(argv[0]);
    }
    if (cfg.keep && cfg.w3_only.empty()) {
      std::fprintf(stderr, "--keep only applies with --w3\n");
      return usage(argv[0]);
    }
    fs::create_directories(cfg.dir);
    std::printf("mandala benchmark suite (%s mode), work directory %s\n",
                !cfg.w3_only.empty() ? "W3 only"
                : cfg.huge           ? "W4 huge"
                : cfg.w4_only        ? (cfg.full ? "W4 only" : "W4 only, short")
                : cfg.full           ? "full"
                                     : "short",
                cfg.dir.c_str());
    const auto t0 = Clock::now();
    json report;
    report["mode"] = cfg.full ? "full" : "short";
    report["load_average_start"] = load_average();
    std::printf(
        "load average at start: %s on %u cores (above the core count, wall times include waiting for a "
        "core; CPU times do not)\n",
        report["load_average_start"].get<std::string>().c_str(), std::thread::hardware_concurrency());
    if (!cfg.w3_only.empty()) {
      report["mode"] = "w3";
      report["w3"] = w3(cfg);
      report["suite_s"] = since(t0);
      report["load_average_end"] = load_average();
      std::printf("W3 took %.1f s; load average at end: %s\n", report["suite_s"].get<double>(),
                  report["load_average_end"].get<std::string>().c_str());
      if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << '\n';
      return 0;
    }
    if (cfg.w4_only) {
      report["mode"] = cfg.huge ? "w4-huge" : "w4";
      report["w4"] = cfg.huge ? w4_huge(cfg) : w4(cfg);
      report["suite_s"] = since(t0);
      report["load_average_end"] = load_average();
      std::printf("W4 took %.1f s; load average at end: %s\n", report["suite_s"].get<double>(),
                  report["load_average_end"].get<std::string>().c_str());
      if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << '\n';
      std::error_code ec;
      fs::remove(cfg.dir, ec);  // only when empty
      return 0;
    }
    report["w1_w2_w5"] = w1_w2_w5(cfg);
    report["w3"] = w3(cfg);
    report["w4"] = w4(cfg);
    report["targets"] = targets(report["w1_w2_w5"], report["w3"], report["w4"], cfg.full);
    report["suite_s"] = since(t0);
    report["load_average_end"] = load_average();
    for (const auto& r : report["w1_w2_w5"])
      remove_store(cfg.dir / ("w1-" + std::to_string(r["calls"].get<long>()) + ".db"));
    std::printf("\nTargets (docs: bench/README.md)%s\n", cfg.full ? "" : " -- short mode, sizes below the targets' N");
    for (const auto& t : report["targets"])
      std::printf("  [%s] %s\n        %s\n", t["met"].get<bool>() ? "met" : "NOT met",
                  t["target"].get<std::string>().c_str(), t["measured"].get<std::string>().c_str());
    std::printf("suite took %.1f s; load average at end: %s\n", report["suite_s"].get<double>(),
                report["load_average_end"].get<std::string>().c_str());
    if (!json_path.empty()) {
      std::ofstream out(json_path);
      out << report.dump(2) << '\n';
      std::printf("JSON written to %s\n", json_path.c_str());
    }
    std::error_code ec;
    fs::remove(cfg.dir, ec);  // only when empty
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mandala_bench: %s\n", e.what());
    return 1;
  }
}
