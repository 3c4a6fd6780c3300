// An MDict whose keys are not strings.
#include <mandala/mandala.hpp>

int main() {
  const auto total = mandala::op("total", {"d"}, [](const mandala::MDict<int, double>& d) { return d.size(); });
  (void)total;
}
