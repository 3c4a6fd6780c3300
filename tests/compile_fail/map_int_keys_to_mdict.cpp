// A map with integer keys passed to an MDict<std::string, V> parameter.
#include <mandala/mandala.hpp>

int main() {
  const auto total = mandala::op("total", {"d"}, [](const mandala::MDict<std::string, double>& d) { return d.size(); });
  std::map<int, double> m{{1, 2.0}};
  (void)total(m);
}
