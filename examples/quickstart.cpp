// The README's quickstart: memoized ops over an SQLite file.
//   mandala_quickstart [STORE]   (default: quickstart.db in the current directory)
#include <iostream>

#include <mandala/mandala.hpp>

namespace md = mandala;

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });
const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});

int main(int argc, char** argv) {
  md::Storage storage(argc > 1 ? argv[1] : "quickstart.db");
  {
    md::Session session(storage);  // like mandala's `with storage:`
    for (int x = 0; x < 5; ++x) {
      md::Ref<int> y = inc(x);  // computed once, ever
      if (x % 2 == 0) {
        md::Ref<int> z = add(x, y);  // refs compose
        std::cout << "add(" << x << ", inc(" << x << ")) = " << *z << '\n';
      }
    }
  }  // flushed here
  const auto c = storage.counters();
  std::cout << "executed " << c.executed << " calls, reused " << c.reused() << '\n';
}
