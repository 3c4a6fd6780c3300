// pipeline STORE [--policy new|warn|error]       runs every op on 0, 1, 2
// pipeline STORE mark-compatible OP               marks OP's newest version compatible
// pipeline STORE versions OP / diff OP A B        prints the listing / a diff
#include <iostream>
#include <string>

#include <mandala/mandala.hpp>

#include "ops.hpp"

namespace md = mandala;

namespace {
const auto score = md::op("score", {"x"}, score_impl);
const auto scale = md::op("scale", {"x"}, scale_impl);
const auto twin_a = md::op("twin_a", {"x"}, twin_a_impl);
const auto twin_b = md::op("twin_b", {"x"}, twin_b_impl);
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  md::StorageOptions options;
  const std::string command = argc > 2 ? argv[2] : "";
  if (command == "--policy" && argc > 3) {
    const std::string p = argv[3];
    options.on_code_change = p == "error"  ? md::OnCodeChange::error
                             : p == "warn" ? md::OnCodeChange::warn
                                           : md::OnCodeChange::new_version;
  }
  try {
    md::Storage storage(argv[1], options);
    if (command == "mark-compatible" && argc > 3) {
      for (const auto& c : storage.mark_compatible(argv[3])) std::cout << "marked " << c << '\n';
      return 0;
    }
    if (command == "versions" && argc > 3) {
      std::cout << storage.versions_listing(argv[3]);
      return 0;
    }
    if (command == "diff" && argc > 5) {
      std::cout << storage.diff_versions(argv[3], argv[4], argv[5]);
      return 0;
    }
    {
      md::Session session(storage);
      for (int x = 0; x < 3; ++x) {
        auto s = score(x);
        scale(x);
        twin_a(x);
        twin_b(x);
        if (x == 1) std::cout << "score(1) hid " << s.hid().hex() << " = " << *s << '\n';
      }
    }
    for (const char* op : {"score", "scale", "twin_a", "twin_b"})
      std::cout << op << ": executed " << executed(op) << ", versions " << storage.versions(op).size() << '\n';
  } catch (const md::Error& e) {
    std::cout << "error (" << md::to_string(e.code()) << "): " << e.what() << '\n';
    return 3;
  }
  return 0;
}
