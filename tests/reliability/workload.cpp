// mandala_reliability_workload: the process side of the reliability tests.
//
//   writer STORE PROGRESS STEPS BLOB_EVERY FLUSH_EVERY
//       runs steps 0..STEPS-1 in one session (docs: workload.hpp), calling Storage::flush() every
//       FLUSH_EVERY steps; after each flush returns it appends "flushed <steps> <executed>" to
//       PROGRESS and fsyncs it, so a harness that kills this process knows what must be stored.
//       Starts with "start <calls stored>" and ends with "done <executed>".
//   threads STORE FIRST COUNT THREADS BLOB_EVERY
//       THREADS threads share one Storage; thread t runs steps FIRST + t*COUNT/2 ...
//       (+COUNT), so neighbours overlap by half. Prints "executed <n>".
//   remove STORE OP...
//       drops every call of the ops (not their dependents), then cleans up, as `mandala drop
//       --yes` and `mandala gc --yes` do. Prints "dropped <calls> <values removed>".
// Exit status 0 on success; 2 with the error on stderr when anything throws.

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "workload.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;

namespace {

std::int64_t arg(char** argv, int i) { return std::stoll(argv[i]); }

/// Appends a line to the progress file and makes it durable before returning.
void report(int fd, const std::string& line) {
  const std::string text = line + "\n";
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) || ::fsync(fd) != 0) {
    std::perror("progress file");
    std::exit(3);
  }
}

int writer(char** argv) {
  const std::string store = argv[2];
  const int fd = ::open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(argv[3]);
    return 3;
  }
  const std::int64_t steps = arg(argv, 4);
  const std::int64_t blob_every = arg(argv, 5);
  const std::int64_t flush_every = arg(argv, 6);
  md::Storage storage(store, rel::workload_options());
  report(fd, "start " + std::to_string(storage.stats().calls));
  {
    md::Session session(storage);
    for (std::int64_t i = 0; i < steps; ++i) {
      rel::run_step(i, blob_every);
      if ((i + 1) % flush_every == 0 || i + 1 == steps) {
        storage.flush();
        report(fd, "flushed " + std::to_string(i + 1) + " " + std::to_string(storage.counters().executed));
      }
    }
  }
  report(fd, "done " + std::to_string(storage.counters().executed));
  ::close(fd);
  return 0;
}

int threads(char** argv) {
  const std::int64_t first = arg(argv, 3);
  const std::int64_t count = arg(argv, 4);
  const auto nthreads = static_cast<int>(arg(argv, 5));
  const std::int64_t blob_every = arg(argv, 6);
  auto options = rel::workload_options();
  options.flush_every_calls = 16;  // many small transactions: as much lock contention as possible
  md::Storage storage(argv[2], options);
  std::vector<std::thread> pool;
  std::vector<std::string> errors(static_cast<std::size_t>(nthreads));
  for (int t = 0; t < nthreads; ++t)
    pool.emplace_back([&, t] {
      try {
        md::Session session(storage);
        const std::int64_t begin = first + t * count / 2;
        for (std::int64_t x = begin; x < begin + count; ++x)
          if (rel::run_step(x, blob_every).get() != rel::expected_add(x))
            throw std::runtime_error("wrong value for step " + std::to_string(x));
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  for (auto& th : pool) th.join();
  storage.flush();
  int status = 0;
  for (const auto& e : errors)
    if (!e.empty()) {
      std::cerr << "error: " << e << '\n';
      status = 2;
    }
  std::cout << "executed " << storage.counters().executed << '\n';
  return status;
}

int remove(int argc, char** argv) {
  md::Storage storage(argv[2]);
  std::vector<md::Id> hids;
  for (int i = 3; i < argc; ++i)
    for (const auto& call : storage.calls_of(argv[i])) hids.push_back(call.hid);
  const auto dropped = storage.drop_calls(hids);
  const auto report = storage.cleanup();
  std::cout << "dropped " << dropped << ' ' << report.values_removed << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Not built with mandala_track_versions: its ops are versioned explicitly, and the tests read
  // stderr for errors only.
  mandala::set_warning_sink([](const std::string&) {});
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "writer" && argc == 7) return writer(argv);
    if (mode == "threads" && argc == 7) return threads(argv);
    if (mode == "remove" && argc >= 4) return remove(argc, argv);
    std::cerr << "usage: " << argv[0]
              << " writer STORE PROGRESS STEPS BLOB_EVERY FLUSH_EVERY\n"
                 "       "
              << argv[0] << " threads STORE FIRST COUNT THREADS BLOB_EVERY\n"
              << "       " << argv[0] << " remove STORE OP...\n";
    return 64;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 2;
  }
}
