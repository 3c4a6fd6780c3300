// The correct forms of the snippets next to this file: this one must compile.
#include <mandala/mandala.hpp>

int main() {
  const auto total =
      mandala::op("total", {"xs"}, [](const mandala::MList<int>& xs) { return static_cast<int>(xs.size()); });
  const auto sum = mandala::op("sum", {"d"}, [](const mandala::MDict<std::string, double>& d) { return d.size(); });
  mandala::Storage storage;
  mandala::Session session(storage);
  std::vector<mandala::Ref<int>> refs;
  (void)total(refs);
  (void)sum(std::map<std::string, double>{{"a", 1.0}});
}
