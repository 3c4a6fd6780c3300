// mandala_claims_worker: the process side of the claims tests (claims_test.cpp).
//
//   mandala_claims_worker STORE AUDIT FIRST COUNT SLEEP_MS LEASE_MS FLUSH_MS [START_MS]
//       makes the calls slow(x) for x = FIRST .. FIRST+COUNT-1 in one session on STORE, with
//       StorageOptions::claim_lease = LEASE_MS and flush_interval = FLUSH_MS; slow(x) appends
//       "run <x> <pid>" to AUDIT (O_APPEND) when it starts, then sleeps SLEEP_MS. With START_MS
//       (unix ms), waits until then before the first call, so processes start together. With
//       CLAIMS_LONG=X:MS in the environment, slow(X) sleeps MS instead.
//       Prints "executed <n>" and exits 0; 2 with the error on stderr when anything throws.

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "mandala/mandala.hpp"

namespace md = mandala;

namespace {

int g_audit = -1;
std::int64_t g_sleep_ms = 0;
std::int64_t g_long_x = -1;
std::int64_t g_long_ms = 0;

const auto slow = md::op("claims_slow", {"x"}, [](std::int64_t x) {
  const std::string line = "run " + std::to_string(x) + " " + std::to_string(::getpid()) + "\n";
  if (::write(g_audit, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::exit(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(x == g_long_x ? g_long_ms : g_sleep_ms));
  return x * x;
});

}  // namespace

int main(int argc, char** argv) {
  md::set_warning_sink([](const std::string&) {});
  if (argc != 8 && argc != 9) {
    std::cerr << "usage: " << argv[0] << " STORE AUDIT FIRST COUNT SLEEP_MS LEASE_MS FLUSH_MS [START_MS]\n";
    return 64;
  }
  try {
    g_audit = ::open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (g_audit < 0) {
      std::perror(argv[2]);
      return 3;
    }
    const std::int64_t first = std::stoll(argv[3]);
    const std::int64_t count = std::stoll(argv[4]);
    g_sleep_ms = std::stoll(argv[5]);
    if (const char* long_run = std::getenv("CLAIMS_LONG")) {
      const std::string text = long_run;
      g_long_x = std::stoll(text.substr(0, text.find(':')));
      g_long_ms = std::stoll(text.substr(text.find(':') + 1));
    }
    md::StorageOptions options;
    options.claim_lease = std::chrono::milliseconds(std::stoll(argv[6]));
    options.flush_interval = std::chrono::milliseconds(std::stoll(argv[7]));
    md::Storage storage(argv[1], options);
    if (argc == 9) {
      const auto start = std::chrono::system_clock::time_point(std::chrono::milliseconds(std::stoll(argv[8])));
      std::this_thread::sleep_until(start);
    }
    {
      md::Session session(storage);
      for (std::int64_t x = first; x < first + count; ++x)
        if (slow(x).get() != x * x) throw std::runtime_error("wrong value for " + std::to_string(x));
    }
    std::cout << "executed " << storage.counters().executed << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 2;
  }
}
