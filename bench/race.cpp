// W7: processes and threads racing over the same new calls of a slow op on one shared store:
// every call must be stored once and computed once (bench/README.md).
//
//   mandala_bench_race --location LOC --processes P --threads T --calls N [--sleep-ms MS] [--audit FILE]
//
// Each of the P processes opens LOC once; each of its T threads makes all N calls slow(x), in
// an order of its own (rotated and reversed), so every call is reached by P*T threads at
// different moments. slow(x) appends "x pid" to the audit file (O_APPEND) when it starts, then
// sleeps MS. Afterwards the parent checks the audit (each x computed once), the store (each
// call stored once) and the store's integrity, and prints the figures; exit 1 when any fails.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "mandala/mandala.hpp"

namespace md = mandala;

namespace {

int g_audit = -1;
int g_sleep_ms = 10;

const auto slow = md::op("race_slow", {"x"}, [](std::int64_t x) {
  const std::string line = std::to_string(x) + " " + std::to_string(::getpid()) + "\n";
  if (::write(g_audit, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(g_sleep_ms));
  return x * 3;
});

int worker(const std::string& location, int process, int threads, std::int64_t calls) {
  md::Storage storage(location);
  std::vector<std::thread> pool;
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        md::Session session(storage);
        const std::int64_t lane = process * threads + t;
        const std::int64_t shift = (lane * calls) / 7 % calls;
        for (std::int64_t i = 0; i < calls; ++i) {
          std::int64_t x = (i + shift) % calls;
          if (lane % 2 == 1) x = calls - 1 - x;
          if (slow(x).get() != x * 3) throw std::runtime_error("a wrong result for " + std::to_string(x));
        }
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  for (auto& th : pool) th.join();
  storage.flush();
  int failed = 0;
  for (const auto& e : errors)
    if (!e.empty()) {
      std::fprintf(stderr, "process %d: %s\n", process, e.c_str());
      failed = 1;
    }
  return failed;
}

}  // namespace

int main(int argc, char** argv) {
  md::set_warning_sink([](const std::string&) {});
  std::string location;
  std::string audit = "race-audit.txt";
  int processes = 8;
  int threads = 2;
  std::int64_t calls = 10'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--location") location = v;
    else if (a == "--processes") processes = std::stoi(v);
    else if (a == "--threads") threads = std::stoi(v);
    else if (a == "--calls") calls = std::stoll(v);
    else if (a == "--sleep-ms") g_sleep_ms = std::stoi(v);
    else if (a == "--audit") audit = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (location.empty() || processes < 1 || threads < 1 || calls < 1) {
    std::fprintf(stderr,
                 "usage: %s --location LOC --processes P --threads T --calls N [--sleep-ms MS] [--audit FILE]\n",
                 argv[0]);
    return 2;
  }
  g_audit = ::open(audit.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (g_audit < 0) {
    std::perror(audit.c_str());
    return 2;
  }
  { md::Storage create(location); }
  const auto start = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) std::_Exit(worker(location, p, threads, calls));
    children.push_back(pid);
  }
  int failed = 0;
  for (const pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(g_audit);

  std::map<std::int64_t, int> runs;
  std::ifstream in(audit);
  std::int64_t x = 0;
  long pid = 0;
  std::size_t lines = 0;
  while (in >> x >> pid) {
    ++runs[x];
    ++lines;
  }
  std::size_t twice = 0;
  for (const auto& [call, n] : runs)
    if (n > 1) twice += static_cast<std::size_t>(n - 1);
  md::StorageOptions read;
  read.read_only = true;
  md::Storage storage(location, read);
  const auto stored = storage.calls_of("race_slow").size();
  const auto report = storage.check_integrity();
  const double ideal = static_cast<double>(calls) * g_sleep_ms / 1000.0 / (processes * threads);
  std::printf(
      "W7: %d processes x %d threads over %lld calls of a %d ms op on %s\n"
      "  %.2f s (the op's work alone, spread evenly: %.2f s)\n"
      "  computed: %zu runs of %zu distinct calls (%zu extra)\n"
      "  stored: %zu calls; integrity: %s (%zu problems)\n",
      processes, threads, static_cast<long long>(calls), g_sleep_ms, location.c_str(), seconds, ideal, lines,
      runs.size(), twice, stored, report.ok() ? "clean" : "PROBLEMS", report.problems.size());
  for (const auto& p : report.problems) std::printf("  problem %s: %s\n", p.kind.c_str(), p.message.c_str());
  const bool ok = failed == 0 && runs.size() == static_cast<std::size_t>(calls) && twice == 0 &&
                  stored == static_cast<std::size_t>(calls) && report.ok();
  std::printf("  %s\n", ok ? "ok: every call computed once and stored once" : "FAILED");
  return ok ? 0 : 1;
}
