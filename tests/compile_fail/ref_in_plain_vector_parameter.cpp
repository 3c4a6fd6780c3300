// An op whose parameter is a plain vector of refs.
#include <mandala/mandala.hpp>

int main() {
  const auto total = mandala::op("total", {"xs"},
                                 [](const std::vector<mandala::Ref<int>>& xs) { return static_cast<int>(xs.size()); });
  mandala::Storage storage;
  mandala::Session session(storage);
  (void)total(std::vector<mandala::Ref<int>>{});
}
