// An op returning a plain vector of refs.
#include <mandala/mandala.hpp>

int main() {
  const auto split =
      mandala::op("split", {"n"}, [](int n) { return std::vector<mandala::Ref<int>>(static_cast<std::size_t>(n)); });
  mandala::Storage storage;
  mandala::Session session(storage);
  (void)split(3);
}
