// mandala_kill_harness: crash safety under SIGKILL.
//
// Starts the workload writer (mandala_reliability_workload writer) on one store, kills it with
// SIGKILL at a random moment, and checks the store, many times:
//   - it opens, and its integrity check finds no problem (and no detached ref);
//   - every call flushed before the kill (the writer fsyncs its progress after each flush
//     returns) is present and complete: retracing those steps with new calls disallowed
//     executes nothing, and sampled values are right;
//   - the next run computes only what is missing: its executed count at each flush equals the
//     calls of the steps so far minus what the store held when it started.
// A writer that finishes before its kill is checked the same way, and the next run starts a new
// store. The last run of each harness goes to the end unkilled.
//
//   mandala_kill_harness [--kills N] [--steps N] [--blob-every N] [--max-delay-ms N] [--seed N]
//                        [--dir PATH] [--keep]
// Short form (ctest): --kills 20 --steps 20000. Long form: --kills 200 --steps 50000 (100,200
// calls per store). Exit status 0 when every check passed.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mandala/mandala.hpp"
#include "process.hpp"
#include "workload.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;
namespace fs = std::filesystem;

namespace {

struct Settings {
  int kills = 20;
  std::int64_t steps = 20'000;
  std::int64_t blob_every = 500;
  int max_delay_ms = 400;
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  fs::path dir;
  bool keep = false;
};

struct Totals {
  int kills = 0;
  int kills_after_a_flush = 0;  ///< the killed run had flushed at least once
  int completed_runs = 0;
  int stores = 1;
  std::uint64_t flushed_calls_checked = 0;
  std::uint64_t integrity_problems = 0;
  std::uint64_t calls_lost = 0;
  std::uint64_t wrong_values = 0;
  std::uint64_t extra_executions = 0;
  std::uint64_t failures = 0;
};

/// What a writer reported before it ended.
struct Progress {
  std::optional<std::uint64_t> start;                           ///< calls stored when it opened the store
  std::int64_t flushed_steps = 0;                               ///< steps whose calls a returned flush wrote
  std::vector<std::pair<std::int64_t, std::uint64_t>> flushes;  ///< (steps, executed so far)
  std::optional<std::uint64_t> done;                            ///< executed, when it finished
};

Progress read_progress(const fs::path& file) {
  Progress p;
  std::ifstream in(file);
  std::string word;
  while (in >> word) {
    if (word == "start") {
      std::uint64_t n = 0;
      in >> n;
      p.start = n;
    } else if (word == "flushed") {
      std::int64_t steps = 0;
      std::uint64_t executed = 0;
      in >> steps >> executed;
      if (!in) break;  // a line cut short by the kill
      p.flushes.emplace_back(steps, executed);
      p.flushed_steps = steps;
    } else if (word == "done") {
      std::uint64_t n = 0;
      in >> n;
      if (in) p.done = n;
    }
  }
  return p;
}

class Harness {
 public:
  explicit Harness(Settings s) : m_s(std::move(s)), m_rng(m_s.seed) {}

  int run() {
    std::cout << "kill harness: seed " << m_s.seed << ", " << m_s.kills << " kills, " << m_s.steps
              << " steps per store (" << rel::calls_of_steps(m_s.steps, m_s.blob_every) << " calls, a "
              << rel::blob_doubles * sizeof(double) / 1024 << " KiB blob value every " << m_s.blob_every
              << " steps), in " << m_s.dir << std::endl;
    const auto start = std::chrono::steady_clock::now();
    while (m_t.kills < m_s.kills) one_run(true);
    one_run(false);  // the last run goes to the end
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "\n| measure | value |\n|---|---|\n"
              << "| kills survived | " << m_t.kills << " |\n"
              << "| kills after the run's first flush | " << m_t.kills_after_a_flush << " |\n"
              << "| runs that finished before their kill (+ the final run) | " << m_t.completed_runs << " |\n"
              << "| stores filled | " << m_t.stores << " |\n"
              << "| flushed calls checked (after each kill and each finished run) | " << m_t.flushed_calls_checked
              << " |\n"
              << "| integrity problems | " << m_t.integrity_problems << " |\n"
              << "| calls lost | " << m_t.calls_lost << " |\n"
              << "| wrong values | " << m_t.wrong_values << " |\n"
              << "| reruns executing more than what was missing | " << m_t.extra_executions << " |\n"
              << "| other failures | " << m_t.failures << " |\n"
              << "| time | " << static_cast<int>(secs) << " s |\n";
    const bool ok = m_t.integrity_problems == 0 && m_t.calls_lost == 0 && m_t.wrong_values == 0 &&
                    m_t.extra_executions == 0 && m_t.failures == 0;
    std::cout << (ok ? "PASS" : "FAIL") << std::endl;
    return ok ? 0 : 1;
  }

 private:
  [[nodiscard]] fs::path store() const { return m_s.dir / ("store" + std::to_string(m_t.stores) + ".db"); }

  void fail(std::uint64_t& counter, const std::string& what) {
    ++counter;
    std::cout << "  FAILED: " << what << std::endl;
  }

  void one_run(bool kill) {
    const fs::path progress = m_s.dir / "progress";
    const fs::path err = m_s.dir / "writer.err";
    fs::remove(progress);
    fs::remove(err);
    const std::int64_t flush_every = std::uniform_int_distribution<std::int64_t>(25, 1500)(m_rng);
    rel::Child writer(MANDALA_WORKLOAD,
                      {"writer", store().string(), progress.string(), std::to_string(m_s.steps),
                       std::to_string(m_s.blob_every), std::to_string(flush_every)},
                      m_s.dir / "writer.out", err);
    int status = -1;
    bool ended = false;
    if (kill) {
      // Half the kills land at a random moment after the writer has opened the store (while it
      // retraces, computes, writes blob files or commits); the other half just after its n-th
      // flush of this run, so that commits and blob writes are hit often.
      const bool after_flushes = std::uniform_int_distribution<int>(0, 1)(m_rng) == 1;
      const int flushes = std::uniform_int_distribution<int>(1, 6)(m_rng);
      const int delay = std::uniform_int_distribution<int>(0, after_flushes ? 30 : m_s.max_delay_ms)(m_rng);
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      auto reached = [&] {
        const Progress now = read_progress(progress);
        return after_flushes ? static_cast<int>(now.flushes.size()) >= flushes : now.start.has_value();
      };
      while (!(ended = writer.poll(status)) && !reached() && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
      while (!ended && !(ended = writer.poll(status)) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (!ended) {
        writer.kill(SIGKILL);
        status = writer.wait();
        ++m_t.kills;
        if (!read_progress(progress).flushes.empty()) ++m_t.kills_after_a_flush;
      }
    } else {
      status = writer.wait();
      ended = true;
    }
    const Progress p = read_progress(progress);
    if (ended) {
      ++m_t.completed_runs;
      if (status != 0 || !p.done) {
        std::ifstream e(err);
        std::stringstream text;
        text << e.rdbuf();
        fail(m_t.failures, "writer exited with status " + std::to_string(status) + ": " + text.str());
      }
    }
    check_store(
        p, ended ? "run " + std::to_string(m_t.completed_runs) + " (finished)" : "kill " + std::to_string(m_t.kills));
    if (ended) ++m_t.stores;  // the next run starts a new store, so kills keep hitting writes
  }

  void check_store(const Progress& p, const std::string& label) {
    // The writer computed only what was missing when it started.
    if (p.start) {
      for (const auto& [steps, executed] : p.flushes) {
        const auto calls = rel::calls_of_steps(steps, m_s.blob_every);
        const std::uint64_t missing = calls > *p.start ? calls - *p.start : 0;
        if (executed != missing)
          fail(m_t.extra_executions, label + ": after " + std::to_string(steps) + " steps the writer had executed " +
                                         std::to_string(executed) + " calls; " + std::to_string(missing) +
                                         " were missing");
      }
    }
    if (!fs::exists(store())) return;  // killed before it created the store
    try {
      md::Storage storage(store(), rel::workload_options());
      const auto report = storage.check_integrity();
      for (const auto& problem : report.problems)
        fail(m_t.integrity_problems, label + ": " + problem.kind + ": " + problem.message);
      for (const auto& w : report.warnings)
        if (w.kind == "detached_ref") fail(m_t.integrity_problems, label + ": " + w.kind + ": " + w.message);
      const auto flushed_calls = rel::calls_of_steps(p.flushed_steps, m_s.blob_every);
      if (report.calls < flushed_calls)
        fail(m_t.calls_lost, label + ": the store holds " + std::to_string(report.calls) + " calls but " +
                                 std::to_string(flushed_calls) + " were flushed");
      // Every flushed step is there, complete: retracing it executes nothing.
      storage.allow_new_calls(false);
      md::Session session(storage);
      for (std::int64_t x = 0; x < p.flushed_steps; ++x) {
        try {
          auto z = rel::run_step(x, m_s.blob_every);
          if ((x % 101 == 0 || x + 1 == p.flushed_steps) && z.get() != rel::expected_add(x))
            fail(m_t.wrong_values, label + ": wrong value at step " + std::to_string(x));
          if (rel::has_blob(x, m_s.blob_every) && rel::total(rel::big(x)).get() != rel::expected_total(x))
            fail(m_t.wrong_values, label + ": wrong blob total at step " + std::to_string(x));
        } catch (const md::Error& e) {
          if (e.code() != md::Errc::new_calls_not_allowed) throw;
          fail(m_t.calls_lost, label + ": flushed step " + std::to_string(x) + " is missing");
        }
      }
      session.close();
      if (storage.counters().executed != 0)
        fail(m_t.extra_executions, label + ": retracing flushed steps executed calls");
      m_t.flushed_calls_checked += flushed_calls;
      if (p.done && report.calls != rel::calls_of_steps(m_s.steps, m_s.blob_every))
        fail(m_t.calls_lost, label + ": a finished run left " + std::to_string(report.calls) + " calls");
    } catch (const std::exception& e) {
      fail(m_t.failures, label + ": " + e.what());
    }
  }

  Settings m_s;
  std::mt19937 m_rng;
  Totals m_t;
};

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(64);
      }
      return argv[++i];
    };
    if (a == "--kills") s.kills = std::stoi(next());
    else if (a == "--steps") s.steps = std::stoll(next());
    else if (a == "--blob-every") s.blob_every = std::stoll(next());
    else if (a == "--max-delay-ms") s.max_delay_ms = std::stoi(next());
    else if (a == "--seed") s.seed = static_cast<unsigned>(std::stoul(next()));
    else if (a == "--dir") s.dir = next();
    else if (a == "--keep") s.keep = true;
    else {
      std::cerr << "usage: " << argv[0]
                << " [--kills N] [--steps N] [--blob-every N] [--max-delay-ms N] [--seed N] [--dir PATH] [--keep]\n";
      return 64;
    }
  }
  const bool own_dir = s.dir.empty();
  if (own_dir) {
    std::string tmpl = (fs::temp_directory_path() / "mandala-kill-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    s.dir = tmpl;
  }
  fs::create_directories(s.dir);
  const bool keep = s.keep;
  const fs::path dir = s.dir;
  const int status = Harness(std::move(s)).run();
  if (own_dir && !keep && status == 0) fs::remove_all(dir);
  return status;
}
