// A std::vector<Ref<T>> passed to a plain std::vector<T> parameter.
#include <mandala/mandala.hpp>

int main() {
  const auto total =
      mandala::op("total", {"xs"}, [](const std::vector<int>& xs) { return static_cast<int>(xs.size()); });
  std::vector<mandala::Ref<int>> refs;
  (void)total(refs);
}
