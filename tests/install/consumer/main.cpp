// Uses libmandala through its installed headers and library only: one memoized op, called
// twice in an in-memory storage; the second call must be reused, not executed.
#include <cstdio>

#include <mandala/mandala.hpp>

namespace md = mandala;

int main() {
  int runs = 0;
  const auto square = md::op("square", {"x"}, [&runs](int x) {
    ++runs;
    return x * x;
  });

  md::Storage storage;  // in memory
  md::Session session(storage);
  const md::Ref<int> first = square(7);
  const md::Ref<int> again = square(7);

  const auto counters = storage.counters();
  if (*first != 49 || *again != 49 || runs != 1 || first.hid() != again.hid() || counters.executed != 1 ||
      counters.reused() != 1) {
    std::fprintf(stderr, "consumer: unexpected result: %d %d, runs %d, executed %llu, reused %llu\n", *first, *again,
                 runs, static_cast<unsigned long long>(counters.executed),
                 static_cast<unsigned long long>(counters.reused()));
    return 1;
  }
  std::printf("consumer: square(7) = %d, computed once (call %s)\n", *first, first.hid().hex().c_str());
  return 0;
}
