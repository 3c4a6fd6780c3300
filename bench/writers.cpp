// W6: new-call throughput of 1, 2, 4 and 8 writer processes on one shared store: a PostgreSQL
// database and an SQLite file, against a raw libpq baseline writing the same rows (bench/README.md).
//
//   mandala_bench_writers --postgres SERVER_URL --dir DIR [--calls N] [--writers 1,2,4,8] [--json FILE]
//
// SERVER_URL names a server where this user may create databases (bench/run --writers starts a
// throwaway one); each measurement gets a new database there, and a new file in DIR.

#include <libpq-fe.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mandala/mandala.hpp"

namespace md = mandala;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const auto inc = md::op("inc", {"x"}, [](long x) { return x + 1; });

/// Calls per flush (and per transaction of the baseline).
constexpr std::size_t batch = 5000;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "mandala_bench_writers: %s\n", what.c_str());
  std::exit(1);
}

PGconn* connect(const std::string& url) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) die("cannot connect to " + url + ": " + PQerrorMessage(c));
  return c;
}

void exec(PGconn* c, const std::string& sql) {
  PGresult* r = PQexec(c, sql.c_str());
  const auto status = PQresultStatus(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) die(sql.substr(0, 60) + ": " + PQerrorMessage(c));
  PQclear(r);
}

/// `server` with its database replaced by `name`.
std::string database_url(const std::string& server, const std::string& name) {
  const auto scheme = server.find("://");
  auto path = server.find('/', scheme + 3);
  const auto query = server.find('?', scheme + 3);
  if (path == std::string::npos || (query != std::string::npos && path > query)) path = query;
  const std::string base = server.substr(0, path == std::string::npos ? server.size() : path);
  const std::string params = query == std::string::npos ? "" : server.substr(query);
  return base + "/" + name + params;
}

/// Runs `work(writer)` in `writers` child processes released together; the seconds from the
/// release until the last one exits.
template <class Work>
double in_processes(int writers, Work&& work) {
  int go[2];
  int ready[2];
  if (pipe(go) != 0 || pipe(ready) != 0) die("pipe");
  std::vector<pid_t> children;
  for (int w = 0; w < writers; ++w) {
    const pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(go[1]);
      close(ready[0]);
      try {
        work(w, [&] {
          char c = 1;
          if (write(ready[1], &c, 1) != 1) _exit(3);
          if (read(go[0], &c, 1) != 1) _exit(3);
        });
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer %d: %s\n", w, e.what());
        _exit(2);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(ready[1]);
  for (int w = 0; w < writers; ++w) {
    char c = 0;
    if (read(ready[0], &c, 1) != 1) die("a writer died before it was ready");
  }
  const auto start = std::chrono::steady_clock::now();
  const std::vector<char> release(static_cast<std::size_t>(writers), 1);
  if (write(go[1], release.data(), release.size()) != static_cast<ssize_t>(release.size())) die("release");
  for (const pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("a writer failed");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(go[1]);
  close(ready[0]);
  return seconds;
}

/// Each writer makes `per_writer` new calls of `inc` (its own inputs) in one session.
double mandala_writers(const std::string& location, int writers, long per_writer) {
  {
    md::Storage create(location);  // the schema, before the clock
  }
  return in_processes(writers, [&](int w, auto&& ready) {
    md::StorageOptions options;
    options.flush_every_calls = batch;
    options.flush_interval = std::chrono::hours(1);
    md::Storage storage(location, options);
    ready();
    md::Session session(storage);
    for (long i = 0; i < per_writer; ++i) (void)inc(w * per_writer + i);
  });
}

// ---- the raw libpq baseline: binary COPY of the rows a store holds -------------------------

void put16(std::string& out, std::int16_t v) {
  const auto u = static_cast<std::uint16_t>(v);
  out += static_cast<char>(u >> 8);
  out += static_cast<char>(u & 0xFF);
}
void put32(std::string& out, std::int32_t v) {
  const auto u = static_cast<std::uint32_t>(v);
  for (int s = 24; s >= 0; s -= 8) out += static_cast<char>((u >> s) & 0xFF);
}
void put64(std::string& out, std::int64_t v) {
  const auto u = static_cast<std::uint64_t>(v);
  for (int s = 56; s >= 0; s -= 8) out += static_cast<char>((u >> s) & 0xFF);
}
void field(std::string& out, const std::string& bytes) {
  put32(out, static_cast<std::int32_t>(bytes.size()));
  out += bytes;
}
void field64(std::string& out, std::int64_t v) {
  put32(out, 8);
  put64(out, v);
}

void copy(PGconn* c, const std::string& sql, const std::string& data) {
  PGresult* r = PQexec(c, sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_IN) die(sql + ": " + PQerrorMessage(c));
  PQclear(r);
  static const char header[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
  std::string all(header, sizeof(header) - 1);
  all += data;
  put16(all, -1);
  if (PQputCopyData(c, all.data(), static_cast<int>(all.size())) != 1 || PQputCopyEnd(c, nullptr) != 1)
    die("COPY: " + std::string(PQerrorMessage(c)));
  r = PQgetResult(c);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die("COPY: " + std::string(PQerrorMessage(c)));
  PQclear(r);
  while ((r = PQgetResult(c)) != nullptr) PQclear(r);
}

/// Per call: a values row (9 bytes), a calls row (39-byte io) and two call_refs rows, and the
/// writer's count rows once per batch; random ids made before the clock starts; one
/// transaction per batch, rows by binary COPY (no conflict handling: every id is new).
double libpq_writers(const std::string& location, int writers, long per_writer) {
  { md::Storage create(location); }
  PGconn* admin = connect(location);
  exec(admin, "INSERT INTO mandala_ops(name, version, inputs, outputs) VALUES('inc', 0, '[\"x\"]', '[\"output_0\"]')");
  PQfinish(admin);
  return in_processes(writers, [&](int w, auto&& ready) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(w) * 7919 + 1);
    const auto random_id = [&] {
      std::string id(16, '\0');
      for (int k = 0; k < 16; k += 8) {
        const auto v = rng();
        std::memcpy(id.data() + k, &v, 8);
      }
      return id;
    };
    struct Row {
      std::string value_cid, call_hid, call_cid, out_hid, io;
    };
    std::vector<Row> rows(static_cast<std::size_t>(per_writer));
    for (auto& r : rows) {
      r.value_cid = random_id();
      r.call_hid = random_id();
      r.call_cid = random_id();
      r.out_hid = random_id();
      r.io = std::string(39, 'i');
    }
    const std::string value(9, 'v');
    PGconn* c = connect(location);
    PGresult* seq = PQexec(c, "SELECT nextval(pg_get_serial_sequence('mandala_calls', 'id'))");
    std::int64_t next_id = std::atoll(PQgetvalue(seq, 0, 0)) + 1'000'000'000LL * (w + 1);
    PQclear(seq);
    ready();
    for (std::size_t begin = 0; begin < rows.size(); begin += batch) {
      const std::size_t end = std::min(rows.size(), begin + batch);
      std::string values, calls, refs;
      for (std::size_t i = begin; i < end; ++i) {
        const auto& r = rows[i];
        put16(values, 4);
        field(values, r.value_cid);
        field64(values, static_cast<std::int64_t>(value.size()));
        field(values, value);
        put32(values, 4);
        put32(values, 0);
        const std::int64_t id = next_id++;
        put16(calls, 7);
        field64(calls, id);
        field(calls, r.call_hid);
        field(calls, r.call_cid);
        put32(calls, 4);
        put32(calls, 1);
        field64(calls, 0);
        field(calls, r.io);
        put32(calls, -1);
        for (int dir = 0; dir < 2; ++dir) {
          put16(refs, 3);
          field(refs, dir == 0 ? r.value_cid : r.out_hid);
          put32(refs, 2);
          put16(refs, static_cast<std::int16_t>(dir));
          field64(refs, id);
        }
      }
      exec(c, "BEGIN");
      copy(c, "COPY mandala_values(cid, size, data, chunks) FROM STDIN (FORMAT binary)", values);
      copy(c, "COPY mandala_calls(id, hid, cid, op_id, created, io, semantic) FROM STDIN (FORMAT binary)", calls);
      copy(c, "COPY mandala_call_refs(hid, dir, call_id) FROM STDIN (FORMAT binary)", refs);
      exec(c, "INSERT INTO mandala_op_counts VALUES(1, " + std::to_string(w) + ", " + std::to_string(end - begin) +
                  ", 0) ON CONFLICT (op_id, writer) DO UPDATE SET calls = mandala_op_counts.calls + excluded.calls");
      exec(c, "COMMIT");
    }
    PQfinish(c);
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::string server;
  fs::path dir;
  long calls = 40'000;
  std::vector<int> counts{1, 2, 4, 8};
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--postgres" && i + 1 < argc) server = argv[++i];
    else if (a == "--dir" && i + 1 < argc) dir = argv[++i];
    else if (a == "--calls" && i + 1 < argc) calls = std::atol(argv[++i]);
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (a == "--writers" && i + 1 < argc) {
      counts.clear();
      std::stringstream list(argv[++i]);
      for (std::string n; std::getline(list, n, ',');) counts.push_back(std::atoi(n.c_str()));
    } else {
      std::fprintf(stderr, "usage: %s --postgres SERVER_URL --dir DIR [--calls N] [--writers 1,2,4,8] [--json FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (server.empty() || dir.empty() || calls < 1) die("--postgres, --dir and a positive --calls are needed");
  // The op is deliberately untracked: no warning about it from every writer.
  md::set_warning_sink([](const std::string&) {});
  fs::create_directories(dir);
  PGconn* admin = connect(server);
  int serial = 0;
  const auto fresh_database = [&] {
    const std::string name = "mandala_bench_" + std::to_string(getpid()) + "_" + std::to_string(serial++);
    exec(admin, "CREATE DATABASE " + name);
    return name;
  };
  json report = json::array();
  std::printf("W6: %ld new calls of inc by W writer processes on one store (%zu calls per flush)\n", calls, batch);
  std::printf("%8s %14s %14s %14s %10s %10s\n", "writers", "postgres c/s", "libpq c/s", "sqlite c/s", "pg/libpq",
              "pg/sqlite");
  for (const int writers : counts) {
    const long per_writer = calls / writers;
    const long total = per_writer * writers;
    const auto pg_db = fresh_database();
    const double pg = mandala_writers(database_url(server, pg_db), writers, per_writer);
    const auto raw_db = fresh_database();
    const double raw = libpq_writers(database_url(server, raw_db), writers, per_writer);
    const fs::path file = dir / ("writers-" + std::to_string(writers) + ".db");
    const double sq = mandala_writers(file.string(), writers, per_writer);
    for (const auto& name : {pg_db, raw_db}) exec(admin, "DROP DATABASE " + name + " WITH (FORCE)");
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm", ".claims"}) fs::remove(file.string() + suffix, ec);
    const double pg_rate = static_cast<double>(total) / pg;
    const double raw_rate = static_cast<double>(total) / raw;
    const double sq_rate = static_cast<double>(total) / sq;
    std::printf("%8d %14.0f %14.0f %14.0f %10.2f %10.2f\n", writers, pg_rate, raw_rate, sq_rate, pg_rate / raw_rate,
                pg_rate / sq_rate);
    std::fflush(stdout);
    report.push_back({{"writers", writers},
                      {"calls", total},
                      {"postgres_calls_per_s", pg_rate},
                      {"libpq_baseline_calls_per_s", raw_rate},
                      {"sqlite_calls_per_s", sq_rate},
                      {"postgres_vs_baseline", pg_rate / raw_rate}});
  }
  PQfinish(admin);
  if (!json_path.empty()) std::ofstream(json_path) << report.dump(2) << '\n';
  return 0;
}
