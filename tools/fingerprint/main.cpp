// mandala-fingerprint: writes the source registering each op's code fingerprint. Run by the
// CMake function mandala_track_versions(target); see docs/versioning.md.

#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <CLI/CLI.hpp>

#include "analysis.hpp"

namespace fs = std::filesystem;
using namespace mandala::fingerprint;

namespace {

bool is_translation_unit(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".cpp" || ext == ".cc" || ext == ".cxx" || ext == ".c++" || ext == ".C";
}

/// Writes only when the content changes, so an unchanged fingerprint does not rebuild anything.
void write_if_changed(const fs::path& path, const std::string& text) {
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream old;
      old << in.rdbuf();
      if (old.str() == text) return;
    }
  }
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string depfile_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' || c == '#' || c == '\\') out += '\\';
    if (c == '$') out += '$';
    out += c;
  }
  return out;
}

}  // namespace

// In a LeakSanitizer build, allocations libclang and the LLVM library under it keep until the
// process exits (some of its translation units' strings and buffers, depending on the sources
// analysed) are not this program's leaks.
extern "C" const char* __lsan_default_suppressions() { return "leak:libclang\nleak:libLLVM"; }  // NOLINT

int main(int argc, char** argv) {
  CLI::App app{"Finds the code each mandala op can reach and writes a source registering its fingerprint."};
  Options options;
  fs::path output, json, depfile;
  std::vector<std::string> sources;
  bool quiet = false;
  app.add_option("--compile-commands", options.compile_commands, "directory holding compile_commands.json")->required();
  app.add_option("--root", options.root, "project root: code below it is tracked")->required();
  app.add_option("--exclude", options.excludes, "directories below the root that are not project code");
  app.add_option("--output", output, "the C++ source to write")->required();
  app.add_option("--json", json, "also write the fingerprints as JSON");
  app.add_option("--depfile", depfile, "write the files read, for the build system");
  app.add_flag("--quiet", quiet, "print warnings only");
  app.add_option("sources", sources, "translation units (a ;-separated list is split)")->required();
  CLI11_PARSE(app, argc, argv);

  try {
    const auto start = std::chrono::steady_clock::now();
    const fs::path out_canon = fs::weakly_canonical(output);
    for (const auto& arg : sources) {
      std::stringstream list(arg);
      std::string item;
      while (std::getline(list, item, ';')) {
        if (item.empty()) continue;
        fs::path p(item);
        if (!is_translation_unit(p)) continue;
        if (fs::weakly_canonical(p) == out_canon) continue;  // our own output, also a source of the target
        options.sources.push_back(p);
      }
    }
    options.cache = output.string() + ".cache.json";
    Result result = analyse(options);
    for (const auto& w : result.warnings) std::cerr << "mandala-fingerprint: warning: " << w << '\n';
    write_if_changed(output, generate_source(result));
    if (!json.empty()) write_if_changed(json, generate_json(result));
    if (!depfile.empty()) {
      std::string text = depfile_escape(output.string()) + ":";
      for (const auto& f : result.inputs) text += " \\\n  " + depfile_escape(f);
      write_if_changed(depfile, text + "\n");
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!quiet) {
      std::set<std::string> names;
      for (const auto& op : result.ops) names.insert(op.name);
      std::cout << "mandala-fingerprint: " << names.size() << " ops, " << result.components.size() << " components, "
                << options.sources.size() << " translation units in " << seconds << " s\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "mandala-fingerprint: error: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
