// Code versions at run time: fingerprints registered as the generated source of
// mandala_track_versions would register them, then "rebuilt programs" (other fingerprints, the
// storage reopened) through the original's sequence (spec 6.6) and the queries over versions.

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>

#include "engine/engine.hpp"
#include "mandala/frame.hpp"
#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/integrity.hpp"
#include "support/sql.hpp"
#include "versioning/components.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> f_runs{0};
std::atomic<int> g_runs{0};
std::atomic<int> plain_runs{0};

const auto f = md::op("f", {"x"}, [](int x) {
  ++f_runs;
  return x * 10;
});
const auto g = md::op("g", {"y"}, [](int y) {
  ++g_runs;
  return y + 1;
});
const auto plain = md::op("plain", {"x"}, [](int x) {
  ++plain_runs;
  return x;
});

// k's results depend on its "code": the factor a rebuilt program sets with k's fingerprint.
std::atomic<int> k_factor{1};
const auto scaled = md::op("k", {"x"}, [](int x) { return x * k_factor.load(); });

/// The code of a program: for each op, its components (name -> code).
using Program = std::map<std::string, std::map<std::string, std::string>>;

/// Registers the program's fingerprints like a generated source does.
void install(const Program& program) {
  md::versioning::clear_fingerprints();
  std::vector<std::string> storage;  // keeps the strings alive during registration
  std::vector<md::detail::GeneratedComponent> comps;
  std::vector<std::vector<unsigned>> indices;
  std::vector<md::detail::GeneratedOp> ops;
  std::vector<std::string> texts;
  texts.reserve(1024);
  for (const auto& [op, parts] : program) {
    auto& idx = indices.emplace_back();
    for (const auto& [name, code] : parts) {
      texts.push_back(md::detail::content_id(md::encode_value(code)).hex());
      comps.push_back({name.c_str(), "function", texts.back().c_str(), "src/x.cpp", code.c_str()});
      idx.push_back(static_cast<unsigned>(comps.size() - 1));
    }
  }
  std::size_t k = 0;
  for (const auto& [op, parts] : program) {
    ops.push_back({op.c_str(), indices[k].data(), indices[k].size()});
    ++k;
  }
  md::detail::register_fingerprints(comps.data(), comps.size(), ops.data(), ops.size());
}

/// f reaches helper `h`; g reaches `h` and the constant `A`.
Program program(const std::string& f_body, const std::string& h_body, const std::string& a_value,
                const std::string& g_body = "int g_impl(int y) { return h(y) + A; }") {
  return {{"f", {{"f_impl(int)", f_body}, {"h(int)", h_body}}},
          {"g", {{"g_impl(int)", g_body}, {"h(int)", h_body}, {"A", "constexpr int A = " + a_value}}}};
}
const std::string f1 = "int f_impl(int x) { return h(x) * 10; }";
const std::string f2 = "int f_impl(int x) { return h(x) * 20; }";
const std::string h1 = "int h(int x) { return x; }";
const std::string h2 = "int h(int x) { return x + 0; }";

std::vector<std::string> g_warnings;
void capture(const std::string& message) { g_warnings.push_back(message); }

class Versions : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    f_runs = g_runs = plain_runs = 0;
    g_warnings.clear();
    md::versioning::reset_warnings();
    m_previous_sink = md::set_warning_sink(&capture);
  }
  void TearDown() override {
    md::set_warning_sink(m_previous_sink);
    md::versioning::clear_fingerprints();
  }

  /// A rebuilt program: new fingerprints, the storage opened again (the code versions of a
  /// storage are resolved once per op and process).
  void rebuild(const Program& p, md::StorageOptions options = {}) {
    install(p);
    if (persistent()) {
      open(options);
    } else if (m_first) {
      m_storage = std::make_unique<md::Storage>(std::filesystem::path(), options);
    } else {
      storage().core()->forget_op_versions();
    }
    m_first = false;
  }

  struct Run {
    int f = 0, g = 0;
    md::Id f_hid, g_hid;
  };
  /// f(1) and g(f(1)) in a session; counts executions.
  Run run() {
    const int f0 = f_runs, g0 = g_runs;
    Run r;
    {
      md::Session s(storage());
      auto y = f(1);
      auto z = g(y);
      r.f_hid = y.hid();
      r.g_hid = z.hid();
    }
    r.f = f_runs - f0;
    r.g = g_runs - g0;
    return r;
  }

  /// f(1), g(f(1)) and f(2) under f1, then f(1), g(f(1)) under f2: version 1 of f has two
  /// calls, version 2 one.
  void two_versions_of_f() {
    rebuild(program(f1, h1, "1"));
    run();
    {
      md::Session s(storage());
      f(2);
    }
    rebuild(program(f2, h1, "1"));
    run();
  }

  md::WarningSink m_previous_sink = nullptr;
  bool m_first = true;
};

TEST_P(Versions, TheOriginalSequence) {
  rebuild(program(f1, h1, "1"));
  const Run first = run();
  EXPECT_EQ(first.f, 1);
  EXPECT_EQ(first.g, 1);

  // An op change: a new version of f and recomputation; g's input is a new ref, so g runs too.
  rebuild(program(f2, h1, "1"));
  const Run changed = run();
  EXPECT_EQ(changed.f, 1);
  EXPECT_NE(changed.f_hid, first.f_hid);
  EXPECT_EQ(storage().versions("f").size(), 2u);
  EXPECT_EQ(storage().versions("g").size(), 1u);

  // Restoring the code reuses the old calls: no recomputation, the same ids.
  rebuild(program(f1, h1, "1"));
  const Run restored = run();
  EXPECT_EQ(restored.f, 0);
  EXPECT_EQ(restored.g, 0);
  EXPECT_EQ(restored.f_hid, first.f_hid);
  EXPECT_EQ(restored.g_hid, first.g_hid);
  EXPECT_EQ(storage().versions("f").size(), 2u);

  // A change of the shared helper: new versions of both ops.
  rebuild(program(f1, h2, "1"));
  const Run helper = run();
  EXPECT_EQ(helper.f, 1);
  EXPECT_EQ(helper.g, 1);
  EXPECT_EQ(storage().versions("f").size(), 3u);
  EXPECT_EQ(storage().versions("g").size(), 2u);

  // A change of the constant only g reads: only g gets a new version.
  rebuild(program(f1, h2, "2"));
  const Run constant = run();
  EXPECT_EQ(constant.f, 0);
  EXPECT_EQ(constant.g, 1);
  EXPECT_EQ(storage().versions("f").size(), 3u);
  EXPECT_EQ(storage().versions("g").size(), 3u);

  // g's own body: only g.
  rebuild(program(f1, h2, "2", "int g_impl(int y) { return h(y) + A + 0; }"));
  const Run own = run();
  EXPECT_EQ(own.f, 0);
  EXPECT_EQ(own.g, 1);
  EXPECT_EQ(storage().versions("f").size(), 3u);
  EXPECT_EQ(storage().versions("g").size(), 4u);
}

TEST_P(Versions, MarkCompatibleAfterwardsReusesTheOldResults) {
  rebuild(program(f1, h1, "1"));
  run();
  rebuild(program(f1, h2, "1"));  // an earlier, semantic change of the helper
  const Run first = run();
  EXPECT_EQ(first.f, 1);
  rebuild(program(f2, h2, "1"));
  EXPECT_EQ(run().f, 1);
  // Only this version's own change is marked, not the helper's earlier one.
  const auto marked = storage().mark_compatible("f");
  EXPECT_EQ(marked, std::vector<std::string>{"f_impl(int)"});
  // Same program, still f2: the version is now compatible with (f1, h2), whose calls serve it.
  rebuild(program(f2, h2, "1"));
  const Run after = run();
  EXPECT_EQ(after.f, 0);
  EXPECT_EQ(after.g, 0);
  EXPECT_EQ(after.f_hid, first.f_hid);
  const auto versions = storage().versions("f");
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_NE(versions[0].semantic_version, versions[1].semantic_version);
  EXPECT_EQ(versions[1].semantic_version, versions[2].semantic_version);
  EXPECT_NE(versions[1].content_version, versions[2].content_version);
  // And undone: a new version again.
  EXPECT_EQ(storage().mark_new_version("f"), std::vector<std::string>{"f_impl(int)"});
  rebuild(program(f2, h2, "1"));
  const Run undone = run();
  EXPECT_EQ(undone.f_hid, run().f_hid);
  EXPECT_NE(undone.f_hid, first.f_hid);
}

/// A program with op k only, multiplying by \p factor with the code \p body.
Program k_program(int factor, const std::string& body) {
  k_factor = factor;
  return {{"k", {{"k_impl(int)", "int k_impl(int x) { return " + body + "; }"}}}};
}

TEST_P(Versions, MarkCompatibleByDefaultRefusesAChangeThatIsNotTheProgramsCode) {
  auto k_of = [&](int x) {
    md::Session s(storage());
    return scaled(x).get();
  };
  rebuild(k_program(1, "x * 1"));
  EXPECT_EQ(k_of(2), 2);
  rebuild(k_program(3, "x * 3"));  // version 2: a semantic change, computed anew
  EXPECT_EQ(k_of(2), 6);
  // Edited again (the same results) and rebuilt, but not run: the storage has not seen this
  // code, and its newest version is the earlier change from x * 1 to x * 3.
  rebuild(k_program(3, "3 * x"));
  const auto preview = storage().compatible_preview("k");
  EXPECT_EQ(preview.version, 2u);
  EXPECT_EQ(preview.joins, 1u);
  EXPECT_EQ(preview.components, std::vector<std::string>{"k_impl(int)"});
  EXPECT_NE(preview.diff.find("-int k_impl(int x) { return x * 1; }\n+int k_impl(int x) { return x * 3; }"),
            std::string::npos)
      << preview.diff;
  EXPECT_NE(preview.caution.find("not recorded in the storage yet"), std::string::npos) << preview.caution;
  try {
    storage().mark_compatible("k");
    FAIL() << "marked an earlier change than the program's code by default";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    const std::string what = e.what();
    EXPECT_NE(what.find("not marking version 2 of op k compatible by default"), std::string::npos) << what;
    EXPECT_NE(what.find("mark_compatible(\"k\", \"2\")"), std::string::npos) << what;
    EXPECT_NE(what.find("+int k_impl(int x) { return x * 3; }"), std::string::npos) << what;
  }
  // Version 2 keeps its own results (marked, it would have been given version 1's: 2, not 6).
  rebuild(k_program(3, "x * 3"));
  EXPECT_EQ(k_of(2), 6);
  // Once the edit has run, it is the program's code and the change most recently seen: the
  // default marks it, with version 2's results.
  rebuild(k_program(3, "3 * x"));
  EXPECT_EQ(k_of(2), 6);
  const auto now = storage().compatible_preview("k");
  EXPECT_EQ(now.version, 3u);
  EXPECT_EQ(now.joins, 2u);
  EXPECT_EQ(now.caution, "");
  EXPECT_NE(now.diff.find("--- k_impl(int) (version 2)\n+++ k_impl(int) (version 3)\n"), std::string::npos) << now.diff;
  EXPECT_EQ(storage().mark_compatible("k"), std::vector<std::string>{"k_impl(int)"});
  const auto versions = storage().versions("k");
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[2].semantic_version, versions[1].semantic_version);
  EXPECT_NE(versions[1].semantic_version, versions[0].semantic_version);
  // Back at version 2's code, the newest version (3) is not the code last seen: refused too,
  // also for a program without fingerprints (what the command sees); named, it is marked.
  rebuild(k_program(3, "x * 3"));
  EXPECT_EQ(k_of(2), 6);
  storage().mark_new_version("k", "3");
  md::versioning::clear_fingerprints();
  EXPECT_NE(storage().compatible_preview("k").caution.find("not the code last seen; version 2 is"), std::string::npos);
  EXPECT_THROW(storage().mark_compatible("k"), md::Error);
  EXPECT_EQ(storage().mark_compatible("k", "3"), std::vector<std::string>{"k_impl(int)"});
}

TEST_P(Versions, ErrorPolicyWaitsForADecision) {
  md::StorageOptions error;
  error.on_code_change = md::OnCodeChange::error;
  rebuild(program(f1, h1, "1"), error);
  const Run first = run();
  rebuild(program(f1, h2, "1"), error);
  try {
    run();
    FAIL() << "a code change under OnCodeChange::error must fail";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::code_changed);
    const std::string what = e.what();
    EXPECT_NE(what.find("h(int)"), std::string::npos) << what;
    EXPECT_NE(what.find("mark_compatible(\"f\")"), std::string::npos) << what;
    EXPECT_NE(what.find("+int h(int x) { return x + 0; }"), std::string::npos) << what;
  }
  EXPECT_EQ(f_runs, 1);
  // Still undecided in the next run.
  rebuild(program(f1, h2, "1"), error);
  EXPECT_THROW(run(), md::Error);
  EXPECT_FALSE(storage().versions("f").back().decided);
  EXPECT_EQ(storage().mark_compatible("f"), std::vector<std::string>{"h(int)"});
  rebuild(program(f1, h2, "1"), error);
  const Run after = run();
  EXPECT_EQ(after.f, 0);
  EXPECT_EQ(after.g, 0);
  EXPECT_EQ(after.g_hid, first.g_hid);
}

TEST_P(Versions, WarnPolicyReportsTheDiff) {
  md::StorageOptions warn;
  warn.on_code_change = md::OnCodeChange::warn;
  rebuild(program(f1, h1, "1"), warn);
  run();
  EXPECT_TRUE(g_warnings.empty());
  rebuild(program(f2, h1, "1"), warn);
  EXPECT_EQ(run().f, 1);
  ASSERT_EQ(g_warnings.size(), 1u);
  EXPECT_NE(g_warnings[0].find("-int f_impl(int x) { return h(x) * 10; }"), std::string::npos) << g_warnings[0];
  EXPECT_NE(g_warnings[0].find("+int f_impl(int x) { return h(x) * 20; }"), std::string::npos) << g_warnings[0];
}

TEST_P(Versions, ListingDiffDropAndFrames) {
  two_versions_of_f();

  const auto versions = storage().versions("f");
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[0].calls, 2u);
  EXPECT_EQ(versions[1].calls, 1u);
  ASSERT_EQ(versions[1].components.size(), 2u);
  EXPECT_EQ(versions[1].components[0].name, "f_impl(int)");
  EXPECT_EQ(versions[1].components[0].code, f2);

  const std::string listing = storage().versions_listing("f");
  EXPECT_NE(listing.find("=== version 1:"), std::string::npos) << listing;
  EXPECT_NE(listing.find("=== version 2 (current code):"), std::string::npos) << listing;
  EXPECT_NE(listing.find(f1), std::string::npos) << listing;
  EXPECT_NE(listing.find(f2), std::string::npos) << listing;
  EXPECT_NE(listing.find(h1), std::string::npos) << listing;

  const std::string diff = storage().diff_versions("f", "1", "2");
  EXPECT_NE(diff.find("-" + f1), std::string::npos) << diff;
  EXPECT_NE(diff.find("+" + f2), std::string::npos) << diff;
  EXPECT_EQ(diff.find("h(int)"), std::string::npos) << diff;  // unchanged components are not shown
  EXPECT_EQ(storage().diff_versions("f", "2", versions[1].content_version.hex().substr(0, 8)), "");
  EXPECT_THROW((void)storage().diff_versions("f", "1", "7"), md::Error);

  // A frame restricted to one version has only its calls (and their outputs).
  auto frame = storage().cf("f");
  EXPECT_EQ(frame.size("f"), 3u);
  auto v1 = frame.restrict_versions("f", {versions[0].semantic_version});
  EXPECT_EQ(v1.size("f"), 2u);
  auto v2 = frame.restrict_versions("f", {versions[1].semantic_version});
  ASSERT_EQ(v2.size("f"), 1u);
  const auto out = frame.out_neighbors("f");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(frame.size(out[0]), 3u);
  ASSERT_EQ(v2.size(out[0]), 1u);
  EXPECT_EQ(v2.refs(out[0])[0].as<int>().get(), 10);

  // Dropping version 1 removes its calls and the calls downstream (g of f's output).
  reopen();
  const auto g_before = storage().calls_of("g").size();
  EXPECT_EQ(g_before, 2u);
  EXPECT_EQ(storage().drop_version("f", "1"), 3u);  // f(1), f(2) and g(f(1))
  EXPECT_EQ(storage().calls_of("f").size(), 1u);
  EXPECT_EQ(storage().calls_of("g").size(), 1u);
  EXPECT_EQ(storage().versions("f").size(), 1u);
  // The current code still works after the drop.
  rebuild(program(f2, h1, "1"));
  const Run again = run();
  EXPECT_EQ(again.f, 0);
}

// Schema 4 kept each call's semantic version in a table of its own (vc_calls); schema 5 keeps a
// number in the call's row (calls.semantic -> vc_semantics). A schema 4 store is read as it is
// when opened read-only, and upgraded in place when opened writable, its calls keeping their
// versions.
TEST_P(Versions, AStoreOfSchema4IsReadAsItIsAndUpgraded) {
  if (GetParam() != md::testing::Backend::file) GTEST_SKIP() << "a store file of schema 4, made with SQLite";
  two_versions_of_f();
  const auto summary = [](const std::vector<md::OpVersion>& versions) {
    std::vector<std::pair<md::Id, std::size_t>> out;
    for (const auto& v : versions) out.emplace_back(v.semantic_version, v.calls);
    return out;
  };
  const auto before = summary(storage().versions("f"));
  const auto g_before = summary(storage().versions("g"));
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0].second, 2u);
  EXPECT_EQ(before[1].second, 1u);
  const std::string full_cids = md::testing::content_ids_as_schema_5(storage());
  m_storage.reset();

  md::testing::sql(db_path(), full_cids + md::testing::call_versions_as_schema_4 +
                                  "UPDATE meta SET value = '4' WHERE key = 'schema_version'; PRAGMA user_version = 4;"
                                  "PRAGMA wal_checkpoint(TRUNCATE);");
  {
    md::StorageOptions options;
    options.read_only = true;
    md::Storage old(db_path(), options);
    EXPECT_EQ(old.info().schema_version, 4);
    EXPECT_EQ(summary(old.versions("f")), before);
    EXPECT_EQ(summary(old.versions("g")), g_before);
    EXPECT_TRUE(old.check_integrity().ok());
  }

  rebuild(program(f1, h1, "1"));
  EXPECT_EQ(storage().info().schema_version, 8);
  EXPECT_EQ(summary(storage().versions("f")), before);
  EXPECT_EQ(summary(storage().versions("g")), g_before);
  EXPECT_TRUE(storage().check_integrity().ok()) << md::testing::describe(storage().check_integrity().problems);
  const Run restored = run();  // version 1's calls are found again
  EXPECT_EQ(restored.f, 0);
  EXPECT_EQ(restored.g, 0);
  {
    md::Session s(storage());
    f(3);
  }
  reopen();
  const auto after = summary(storage().versions("f"));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].second, 3u);
  EXPECT_EQ(storage().drop_version("f", "2"), 2u);  // f(1) of version 2 and g of its output
  EXPECT_EQ(storage().calls_of("f").size(), 3u);
  EXPECT_TRUE(storage().check_integrity().ok());
}

TEST_P(Versions, WithoutFingerprintsOneWarningAndExplicitVersions) {
  md::versioning::clear_fingerprints();
  const auto v0 = md::op("ev", {"x"}, [](int x) { return x; });
  const auto v1 = md::op("ev", {"x"}, [](int x) { return x; }, {.version = 1});
  {
    md::Session s(storage());
    plain(1);
    plain(2);
    v0(1);
    v1(1);
  }
  reopen();
  {
    md::Session s(storage());
    plain(1);
  }
  ASSERT_EQ(g_warnings.size(), 1u) << (g_warnings.empty() ? "" : g_warnings.back());
  EXPECT_NE(g_warnings[0].find("mandala_track_versions"), std::string::npos);
  EXPECT_NE(g_warnings[0].find("OpOptions::version"), std::string::npos);
  EXPECT_EQ(plain_runs, 2);
  EXPECT_EQ(storage().calls_of("ev").size(), 2u);  // one per explicit version
  EXPECT_TRUE(storage().versions("plain").empty());
}

TEST_P(Versions, ManualDependencies) {
  md::versioning::clear_fingerprints();
  const auto data = m_dir.path() / "table.csv";
  auto write = [&](const std::string& text) { std::ofstream(data) << text; };
  write("a,b\n1,2\n");
  std::atomic<int> runs{0};
  auto make = [&](int scale, const std::string& lib) {
    return md::op("load", {"x"},
                  [&runs](int x) {
                    ++runs;
                    return x;
                  },
                  {.depends_on = {md::depends_on_file(data), md::depends_on_value("scale", scale),
                                  md::depends_on_library("zlib", lib)}});
  };
  auto call = [&](int scale, const std::string& lib) {
    storage().core()->forget_op_versions();
    auto op = make(scale, lib);
    md::Session s(storage());
    op(1);
  };
  call(2, "1.2.13");
  call(2, "1.2.13");
  EXPECT_EQ(runs, 1);
  write("a,b\n1,3\n");
  call(2, "1.2.13");
  EXPECT_EQ(runs, 2);
  call(3, "1.2.13");
  EXPECT_EQ(runs, 3);
  call(3, "1.3");
  EXPECT_EQ(runs, 4);
  write("a,b\n1,2\n");
  call(2, "1.2.13");
  EXPECT_EQ(runs, 4);  // all back to the first version
  const auto listing = storage().versions_listing("load");
  EXPECT_NE(listing.find("a,b\n    1,3"), std::string::npos) << listing;
  EXPECT_NE(listing.find("scale = 3"), std::string::npos) << listing;
  EXPECT_NE(listing.find("zlib 1.3"), std::string::npos) << listing;
  std::filesystem::remove(data);
  try {
    call(2, "1.2.13");
    FAIL() << "a missing data file must fail";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("table.csv"), std::string::npos);
  }
}

TEST_P(Versions, BadVersionNames) {
  rebuild(program(f1, h1, "1"));
  run();
  EXPECT_NE(storage().versions_listing("nope").find("Versions of op nope: 0"), std::string::npos);
  try {
    storage().mark_compatible("f");
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("first"), std::string::npos);
  }
  EXPECT_THROW(storage().drop_version("f", "zz"), md::Error);
  EXPECT_THROW(storage().drop_version("g", "2"), md::Error);
}

TEST_P(Versions, CollectionsAreNotVersionedThemselves) {
  const auto evens = md::op("evens", {"n"}, [](int n) {
    md::MList<int> out;
    for (int i = 0; i < n; i += 2) out.push_back(i);
    return out;
  });
  rebuild({{"evens", {{"evens_impl(int)", "md::MList<int> evens_impl(int n) { ... }"}}}});
  {
    md::Session s(storage());
    auto list = evens(6);
    EXPECT_EQ(list.get().size(), 3u);
  }
  rebuild({{"evens", {{"evens_impl(int)", "md::MList<int> evens_impl(int n) { ... }"}}}});
  const auto before = storage().counters().executed;
  {
    md::Session s(storage());
    EXPECT_EQ(evens(6).get()[2], 4);
  }
  EXPECT_EQ(storage().counters().executed, before);
  EXPECT_TRUE(g_warnings.empty()) << g_warnings.front();  // no "structural op without fingerprint"
  EXPECT_EQ(storage().versions("evens").size(), 1u);
}

MANDALA_INSTANTIATE_BACKENDS(Versions);

}  // namespace
