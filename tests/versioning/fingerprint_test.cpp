// The build-time analysis (tools/fingerprint): which code each op reaches, and which edits
// change its fingerprint. Runs libclang over small projects written to a temporary directory.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "analysis.hpp"
#include "support/temp_dir.hpp"

namespace fp = mandala::fingerprint;
namespace fs = std::filesystem;

// In a LeakSanitizer build, allocations libclang and the LLVM library under it keep until the
// process exits are not this program's leaks (as in tools/fingerprint/main.cpp).
extern "C" const char* __lsan_default_suppressions() { return "leak:libclang\nleak:libLLVM"; }  // NOLINT

namespace {

const std::map<std::string, std::string> base_project = {
    {"src/helpers.hpp", R"(#pragma once
int deep(int x);
int mid(int x);
constexpr int kScale = 3;
struct Point {
  int x;
  int y = 2;
  int sum() const { return x + y; }
};
template <class T>
T twice(T v) { return v + v; }
)"},
    {"src/helpers.cpp", R"(#include "helpers.hpp"
// deep is two calls away from f
int deep(int x) { return x * kScale; }
int mid(int x) {
  return deep(x) + 1;
}
int unused(int x) { return x; }
)"},
    {"src/main.cpp", R"(#include <mandala.hpp>
#include "helpers.hpp"
#define OFFSET 7
static int limit = 10;
int f_impl(int x) { return mid(x) + OFFSET; }
int g_impl(int x) { Point p{x}; return p.sum() + limit; }
const auto f = mandala::op("f", {"x"}, f_impl);
const auto g = mandala::op("g", {"x"}, &g_impl);
const auto t = mandala::op("t", {"x"}, twice<int>);
int main() {
  auto h = mandala::op("h", {"x"}, [](int x) { return deep(x); });
  auto lam = [](int x) { return x + 1; };
  auto k = mandala::op("k", {"x"}, lam);
  std::string name = "dyn";
  auto d = mandala::op(name, {"x"}, f_impl);
  (void)h; (void)k; (void)d;
}
)"},
};

// How mandala::op looks to the analysis; parsing the real headers takes seconds per unit, so
// only the first test uses them.
constexpr const char* stub_header = R"(#pragma once
#include <string>
#include <vector>
namespace mandala {
struct Param { Param(const char*) {} };
template <class F>
int op(std::string name, std::vector<Param> params, F&& fn, int options = 0) { return 0; }
}
)";

class Fingerprint : public ::testing::Test {
 protected:
  bool m_real_headers = false;

  void write(const std::map<std::string, std::string>& files) {
    fs::create_directories(m_dir.path() / "stub");
    std::ofstream(m_dir.path() / "stub/mandala.hpp")
        << (m_real_headers ? "#include <mandala/mandala.hpp>\n" : stub_header);
    for (const auto& [path, text] : files) {
      fs::create_directories((m_dir.path() / path).parent_path());
      std::ofstream(m_dir.path() / path) << text;
    }
    nlohmann::json db = nlohmann::json::array();
    for (const char* unit : {"src/main.cpp", "src/helpers.cpp"})
      db.push_back({{"directory", m_dir.path().string()},
                    {"command", std::string("g++ -std=c++20 -Wall -Werror -fconcepts-diagnostics-depth=2 -I") +
                                    MANDALA_INCLUDE_DIR + " -isystem stub -c " + unit + " -o x.o"},
                    {"file", unit}});
    std::ofstream(m_dir.path() / "compile_commands.json") << db.dump();
  }

  [[nodiscard]] fp::Options options() const {
    fp::Options o;
    o.compile_commands = m_dir.path();
    o.root = m_dir.path() / "src";
    o.sources = {m_dir.path() / "src/main.cpp", m_dir.path() / "src/helpers.cpp"};
    return o;
  }

  /// op -> component name -> hash
  std::map<std::string, std::map<std::string, std::string>> analyse(const std::map<std::string, std::string>& files,
                                                                    std::vector<std::string>* warnings = nullptr) {
    write(files);
    const auto result = fp::analyse(options());
    if (warnings) *warnings = result.warnings;
    const auto doc = nlohmann::json::parse(fp::generate_json(result));
    std::map<std::string, std::map<std::string, std::string>> out;
    for (const auto& [op, comps] : doc["ops"].items())
      for (const auto& c : comps) out[op][c["key"].get<std::string>()] = c["hash"].get<std::string>();
    return out;
  }

  static std::map<std::string, std::string> edit(std::map<std::string, std::string> files, const std::string& path,
                                                 const std::string& from, const std::string& to) {
    auto& text = files.at(path);
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return files;
  }

  static std::vector<std::string> names(const std::map<std::string, std::string>& comps) {
    std::vector<std::string> out;
    for (const auto& [k, v] : comps) out.push_back(k);
    return out;
  }

  /// The ops whose fingerprint differs between two analyses.
  static std::vector<std::string> changed(const std::map<std::string, std::map<std::string, std::string>>& a,
                                          const std::map<std::string, std::map<std::string, std::string>>& b) {
    std::vector<std::string> out;
    for (const auto& [op, comps] : a)
      if (!b.contains(op) || b.at(op) != comps) out.push_back(op);
    return out;
  }

  mandala::testing::TempDir m_dir;
};

using Names = std::vector<std::string>;

TEST_F(Fingerprint, FindsWhatEachOpReaches) {
  m_real_headers = true;  // the real mandala::op
  std::vector<std::string> warnings;
  const auto ops = analyse(base_project, &warnings);
  ASSERT_EQ(ops.size(), 5u);
  EXPECT_EQ(names(ops.at("f")),
            (Names{"deep(int)", "f_impl(int)", "kScale [helpers.hpp]", "macro OFFSET", "mid(int)"}));
  EXPECT_EQ(names(ops.at("g")), (Names{"Point::sum()", "class Point", "g_impl(int)", "limit [main.cpp]"}));
  EXPECT_EQ(names(ops.at("t")), (Names{"twice(T)"}));
  ASSERT_EQ(ops.at("h").size(), 3u);
  EXPECT_EQ(names(ops.at("h"))[0], "deep(int)");
  EXPECT_EQ(names(ops.at("h"))[2], "lambda of op h");
  EXPECT_EQ(names(ops.at("k")), Names{"lambda of op k"});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("main.cpp:15"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("not a string literal"), std::string::npos) << warnings[0];
}

TEST_F(Fingerprint, CommentsAndFormattingDoNotCount) {
  const auto before = analyse(base_project);
  auto edited = edit(base_project, "src/helpers.cpp", "int mid(int x) {\n  return deep(x) + 1;\n}",
                     "int mid(int x)\n{\n    // one more than deep\n    return deep( x )+1;   /* sic */\n}");
  edited = edit(edited, "src/main.cpp", "int f_impl(int x) { return mid(x) + OFFSET; }",
                "int f_impl(int x) {\n  return mid(x) + OFFSET;  // f\n}");
  EXPECT_EQ(changed(before, analyse(edited)), Names{});
}

TEST_F(Fingerprint, ChangesReachExactlyTheOpsThatReachThem) {
  const auto before = analyse(base_project);
  // Two calls deep, in another file: f and h reach deep.
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.cpp", "x * kScale", "x * kScale * 1"))),
            (Names{"f", "h"}));
  // A global constant in a header.
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.hpp", "kScale = 3", "kScale = 4"))),
            (Names{"f", "h"}));
  // A global variable, a macro, a data member's default, a method.
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/main.cpp", "limit = 10", "limit = 11"))), Names{"g"});
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/main.cpp", "OFFSET 7", "OFFSET 8"))), Names{"f"});
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.hpp", "int y = 2;", "int y = 3;"))), Names{"g"});
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.hpp", "return x + y;", "return y + x;"))),
            Names{"g"});
  // A function template, a lambda's body, code no op reaches.
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.hpp", "return v + v;", "return v * 2;"))),
            Names{"t"});
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/main.cpp", "x + 1; };", "x + 2; };"))), Names{"k"});
  EXPECT_EQ(changed(before, analyse(edit(base_project, "src/helpers.cpp", "int unused(int x) { return x; }",
                                         "int unused(int x) { return -x; }"))),
            Names{});
}

TEST_F(Fingerprint, GeneratedSourceRegistersEveryOp) {
  write(base_project);
  const auto result = fp::analyse(options());
  const std::string source = fp::generate_source(result);
  EXPECT_NE(source.find("#include <mandala/versioning.hpp>"), std::string::npos);
  EXPECT_NE(source.find("mandala::detail::register_fingerprints("), std::string::npos);
  for (const char* op : {"{\"f\", ", "{\"g\", ", "{\"h\", ", "{\"k\", ", "{\"t\", "})
    EXPECT_NE(source.find(op), std::string::npos) << op;
  // Every project file read is listed for the build system, and nothing outside the project.
  EXPECT_EQ(result.inputs.size(), 3u);
}

TEST_F(Fingerprint, UnchangedUnitsComeFromTheCache) {
  write(base_project);
  auto o = options();
  o.cache = m_dir.path() / "cache.json";
  const auto first = fp::analyse(o);
  EXPECT_EQ(first.reparsed, 2u);
  const auto again = fp::analyse(o);
  EXPECT_EQ(again.reparsed, 0u);
  EXPECT_EQ(fp::generate_source(again), fp::generate_source(first));
  // helpers.cpp changes: only it is parsed again, and the result is a fresh analysis's.
  write(edit(base_project, "src/helpers.cpp", "x * kScale", "x * kScale * 2"));
  const auto edited = fp::analyse(o);
  EXPECT_EQ(edited.reparsed, 1u);
  o.cache.clear();
  EXPECT_EQ(fp::generate_source(edited), fp::generate_source(fp::analyse(o)));
  EXPECT_NE(fp::generate_source(edited), fp::generate_source(first));
  // A header both units include: both.
  write(edit(base_project, "src/helpers.hpp", "int y = 2;", "int y = 5;"));
  o.cache = m_dir.path() / "cache.json";
  EXPECT_EQ(fp::analyse(o).reparsed, 2u);
  // A damaged cache is ignored.
  std::ofstream(o.cache) << "{not json";
  EXPECT_EQ(fp::analyse(o).reparsed, 2u);
}

TEST_F(Fingerprint, ParseErrorsAreReported) {
  auto broken = edit(base_project, "src/helpers.cpp", "return deep(x) + 1;", "return deep(x) + ;");
  try {
    analyse(broken);
    FAIL() << "a source that does not compile must be an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("helpers.cpp"), std::string::npos) << e.what();
  }
  write(base_project);
  fp::Options o = options();
  o.compile_commands = m_dir.path() / "nowhere";
  EXPECT_THROW(fp::analyse(o), std::runtime_error);
  o.compile_commands = m_dir.path();
  o.sources = {m_dir.path() / "src/other.cpp"};
  EXPECT_THROW(fp::analyse(o), std::runtime_error);
}

}  // namespace
