// End-to-end tests of the `mandala` command: each test builds the same small store through the
// public API, runs the command as a separate process and checks its output and exit code.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"
#include "versioning/components.hpp"

namespace md = mandala;
using nlohmann::json;

namespace {

using Series = std::vector<double>;

const auto make_series = md::op("make_series", {"n"}, [](int n) {
  Series s;
  for (int i = 0; i < n; ++i) s.push_back(0.5 * i);
  return s;
});
const auto scale = md::op("scale", {"series", "k"}, [](const Series& s, double k) {
  Series out;
  for (double x : s) out.push_back(k * x);
  return out;
});
const auto total =
    md::op("total", {"series"}, [](const Series& s) { return std::accumulate(s.begin(), s.end(), 0.0); });
const auto label = md::op("label", {"x"}, [](double x) { return "sum " + std::to_string(static_cast<long>(x)); });

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// ISO times differ from run to run: replaced by a placeholder of the same width.
std::string mask_times(const std::string& text) {
  static const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");
  return std::regex_replace(text, iso, "YYYY-MM-DDTHH:MM:SSZ");
}

std::string quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

/// Every file in the directory with its bytes.
std::map<std::string, std::string> snapshot(const std::filesystem::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string().rfind("cli-", 0) != 0)
      files[std::filesystem::relative(e.path(), dir).string()] = read_file(e.path());
  return files;
}

/// Every mandala table of a PostgreSQL store with a digest of its rows (a read that wrote
/// anything, even a row it put back as it was, changes a digest: rows are compared with their
/// system columns xmin and ctid).
std::map<std::string, std::string> snapshot_postgres(const std::string& url) {
  md::testing::PostgresConnection c(url);
  std::map<std::string, std::string> tables;
  const auto names =
      c.query("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE tablename LIKE 'mandala\\_%'");
  std::stringstream list(names);
  for (std::string table; std::getline(list, table, ',');)
    tables[table] = c.query(
        "SELECT md5(COALESCE(string_agg(t.xmin::text || t.ctid::text || t::text, ',' ORDER BY "
        "t.ctid), '')) FROM " +
        table + " t");
  return tables;
}

/// Counts taken by scanning an SQLite store's tables directly.
std::map<std::string, std::int64_t> scan_sqlite_counts(const std::filesystem::path& db_path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.string().c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::map<std::string, std::int64_t> out;
  const std::pair<const char*, const char*> queries[] = {
      {"values", "SELECT COUNT(*) FROM \"values\""},
      {"value_bytes", "SELECT COALESCE(SUM(size), 0) FROM \"values\""},
      {"blob_values", "SELECT COUNT(*) FROM \"values\" WHERE data IS NULL"},
      {"refs", "SELECT COUNT(DISTINCT key) FROM call_refs"},
      {"calls", "SELECT COUNT(*) FROM calls"},
  };
  for (const auto& [key, sql] : queries) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sql;
    if (sqlite3_step(st) == SQLITE_ROW) out[key] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

/// The same counts scanned from a PostgreSQL store's tables (no blob files there).
std::map<std::string, std::int64_t> scan_postgres_counts(const std::string& url) {
  md::testing::PostgresConnection c(url);
  const auto count = [&](const char* sql) { return std::stoll(c.query(sql)); };
  return {{"values", count("SELECT COUNT(*) FROM mandala_values")},
          {"value_bytes", count("SELECT COALESCE(SUM(size), 0) FROM mandala_values")},
          {"blob_values", 0},
          {"refs", count("SELECT COUNT(DISTINCT hid) FROM mandala_call_refs")},
          {"calls", count("SELECT COUNT(*) FROM mandala_calls")}};
}

using md::testing::Backend;

/// The backends the command is tested on: a store file, and a PostgreSQL database when the
/// build runs the PostgreSQL suites (an in-memory store has no location a command could open).
std::vector<Backend> cli_backends() {
  std::vector<Backend> out;
  for (const auto b : md::testing::tested_backends())
    if (b != Backend::memory) out.push_back(b);
  return out;
}

class Cli : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::postgres) {
      const auto server = md::testing::postgres_server_url();
      if (!server) {
        if (md::testing::postgres_required())
          FAIL() << "MANDALA_REQUIRE_POSTGRES=1 but " << md::testing::postgres_server_hint();
        GTEST_SKIP() << md::testing::postgres_server_hint();
      }
      m_store_db.emplace(*server);
      m_versions_db.emplace(*server);
    }
    md::StorageOptions options;
    options.blob_threshold_bytes = 100;  // the 20-element series go to blob files (SQLite)
    md::Storage storage(store_location(), options);
    md::Session session(storage);
    for (int n : {3, 20}) {
      auto s = make_series(n);
      for (double k : {1.0, 2.0}) (void)label(total(scale(s, k)));
    }
  }

  /// Runs `mandala ARGS...` in the test directory, stdin from /dev/null (not a terminal).
  Outcome run(const std::vector<std::string>& args) {
    std::string cmd = "cd " + quote(m_dir.path().string()) + " && " + quote(MANDALA_CLI);
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " >cli-out 2>cli-err </dev/null";
    const int status = std::system(cmd.c_str());
    Outcome r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(m_dir / "cli-out");
    r.err = read_file(m_dir / "cli-err");
    return r;
  }

  json run_json(const std::vector<std::string>& args) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return json::parse(r.out);
  }

  /// Runs a command expected to fail with one clear line on stderr.
  void expect_failure(const std::vector<std::string>& args, int code, const std::string& message_part) {
    const auto r = run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    EXPECT_EQ(r.code, code) << cmd << "\n" << r.err;
    EXPECT_EQ(r.out, "") << cmd;
    ASSERT_FALSE(r.err.empty()) << cmd;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.rfind("mandala: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(message_part), std::string::npos) << cmd << ": " << r.err;
  }

  /// The history id of the call of `op` whose output renders as `output_text`.
  std::string call_id(const std::string& op, const std::string& output_text) {
    const auto calls = run_json({"calls", store(), op, "--json", "--limit", "100"});
    for (const auto& c : calls["calls"])
      if (c["outputs"]["output_0"]["value"].dump() == output_text) return c["hid"].get<std::string>();
    ADD_FAILURE() << "no call of " << op << " with output " << output_text;
    return {};
  }

  [[nodiscard]] bool file() const { return GetParam() == Backend::file; }
  /// The store as the command names it (run in the test directory).
  [[nodiscard]] std::string store() const { return file() ? "store.db" : m_store_db->location(); }
  /// The second store, of the code-version tests.
  [[nodiscard]] std::string versions() const { return file() ? "versions.db" : m_versions_db->location(); }
  /// The stores as the library opens them from this process.
  [[nodiscard]] std::string store_location() const { return file() ? (m_dir / "store.db").string() : store(); }
  [[nodiscard]] std::string versions_location() const { return file() ? (m_dir / "versions.db").string() : versions(); }
  /// The store's state: its files (and the test directory's other files), or its tables.
  [[nodiscard]] std::map<std::string, std::string> snapshot_store(const std::string& location) const {
    return file() ? snapshot(m_dir.path()) : snapshot_postgres(location);
  }
  /// Counts taken by scanning the store's tables directly.
  [[nodiscard]] std::map<std::string, std::int64_t> scan_counts() const {
    return file() ? scan_sqlite_counts(m_dir / "store.db") : scan_postgres_counts(store());
  }

  md::testing::TempDir m_dir;
  std::optional<md::testing::TempDatabase> m_store_db;
  std::optional<md::testing::TempDatabase> m_versions_db;
};

INSTANTIATE_TEST_SUITE_P(Backends, Cli, ::testing::ValuesIn(cli_backends()), md::testing::backend_name);

TEST_P(Cli, InfoShowsCountsSizesAndLargestOps) {
  const auto r = run({"info", store()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  // The database size depends on SQLite's page use: checked in JSON, masked here.
  const auto text = std::regex_replace(mask_times(r.out), std::regex(R"(database     .*)"), "database     (size)");
  // PostgreSQL stores keep every value in the database (schema of their own, section 4 of
  // docs/storage-format.md); the SQLite file sends the 20-element series to blob files.
  const std::string head = file()
                               ? "store        store.db\nschema       version 8, created YYYY-MM-DDTHH:MM:SSZ\n"
                               : "store        " + store() + "\nschema       version 3, created YYYY-MM-DDTHH:MM:SSZ\n";
  EXPECT_EQ(text, head + R"(ops          4
calls        14
values       16 (503 B encoded)
refs         18
database     (size)
blob files   )" + (file() ? "2 (346 B)" : "0 (0 B)") +
                      R"(

largest ops by calls
op           version  calls  output bytes
label        0        4      27 B
scale        0        4      420 B
total        0        4      36 B
make_series  0        2      210 B

largest ops by bytes
op           version  calls  output bytes
scale        0        4      420 B
make_series  0        2      210 B
total        0        4      36 B
label        0        4      27 B
)");

  const auto j = run_json({"info", store(), "--json", "--top", "2"});
  EXPECT_EQ(j["schema_version"], file() ? 8 : 3);
  EXPECT_EQ(j["ops"], 4);
  EXPECT_EQ(j["calls"], 14);
  // 16 values: n 3 and 20, k 1 and 2, two series (scale by 1 gives them again), two scaled by 2,
  // four totals, four labels. 18 refs: the four raw inputs and one output per call.
  EXPECT_EQ(j["values"], 16);
  EXPECT_EQ(j["value_bytes"], 503);
  EXPECT_EQ(j["refs"], 18);
  EXPECT_EQ(j["blob_files"], file() ? 2 : 0);
  EXPECT_EQ(j["blob_file_bytes"], file() ? 346 : 0);  // two f64[20] blocks of 173 bytes
  EXPECT_GT(j["database_bytes"].get<std::uint64_t>(), 4096u);
  ASSERT_EQ(j["largest_by_bytes"].size(), 2u);
  EXPECT_EQ(j["largest_by_bytes"][0]["name"], "scale");
  EXPECT_EQ(j["largest_by_bytes"][0]["output_bytes"], 420);
  EXPECT_EQ(j["largest_by_calls"][1]["name"], "scale");
}

TEST_P(Cli, InfoCountsMatchAFullScan) {
  const auto j = run_json({"info", store(), "--json"});
  const auto scan = scan_counts();
  EXPECT_EQ(j["values"], scan.at("values"));
  EXPECT_EQ(j["value_bytes"], scan.at("value_bytes"));
  EXPECT_EQ(j["blob_files"], scan.at("blob_values"));
  EXPECT_EQ(j["refs"], scan.at("refs"));
  EXPECT_EQ(j["calls"], scan.at("calls"));
}

TEST_P(Cli, OpsListsVersionsNamesCountsAndLastUse) {
  const auto r = run({"ops", store()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(mask_times(r.out), R"(op           version  inputs     outputs   calls  output bytes  last call
label        0        x          output_0  4      27 B          YYYY-MM-DDTHH:MM:SSZ
make_series  0        n          output_0  2      210 B         YYYY-MM-DDTHH:MM:SSZ
scale        0        series, k  output_0  4      420 B         YYYY-MM-DDTHH:MM:SSZ
total        0        series     output_0  4      36 B          YYYY-MM-DDTHH:MM:SSZ
)");
  const auto j = run_json({"ops", store(), "--json"});
  ASSERT_EQ(j.size(), 4u);
  EXPECT_EQ(j[2]["name"], "scale");
  EXPECT_EQ(j[2]["inputs"], json({"series", "k"}));  // as declared
  EXPECT_EQ(j[2]["calls"], 4);
  EXPECT_TRUE(j[2]["last_call"].is_string());
}

TEST_P(Cli, CallsTableRendersValuesGenerically) {
  const auto r = run({"calls", store(), "scale"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(mask_times(r.out),
            R"(call          created               k    series                                    -> output_0
df4cc4fb7bd6  YYYY-MM-DDTHH:MM:SSZ  1.0  f64[3] [0.0, 0.5, 1.0]                    f64[3] [0.0, 0.5, 1.0]
4392fad165ae  YYYY-MM-DDTHH:MM:SSZ  2.0  f64[3] [0.0, 0.5, 1.0]                    f64[3] [0.0, 1.0, 2.0]
b17cbc4ef248  YYYY-MM-DDTHH:MM:SSZ  1.0  f64[20] [0.0, 0.5, 1.0, 1.5, 2.0, 2.5...  f64[20] [0.0, 0.5, 1.0, 1.5, 2.0, 2.5...
b55510f6e917  YYYY-MM-DDTHH:MM:SSZ  2.0  f64[20] [0.0, 0.5, 1.0, 1.5, 2.0, 2.5...  f64[20] [0.0, 1.0, 2.0, 3.0, 4.0, 5.0...
)");
  // --full shows whole previews; --limit/--offset page and say so.
  const auto full = run({"calls", store(), "scale", "--full", "--limit", "1", "--offset", "3"});
  ASSERT_EQ(full.code, 0) << full.err;
  EXPECT_NE(full.out.find("f64[20] [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, ...]"), std::string::npos) << full.out;
  EXPECT_NE(full.out.find("(1 of 4 calls from #4; --limit and --offset show others)"), std::string::npos) << full.out;
  const auto newest = run({"calls", store(), "scale", "--limit", "1", "--newest"});
  EXPECT_NE(newest.out.find("b55510f6e917"), std::string::npos) << newest.out;
  const auto strings = run({"calls", store(), "label", "--version", "0", "--limit", "1"});
  EXPECT_NE(strings.out.find("\"sum 1\""), std::string::npos) << strings.out;
}

TEST_P(Cli, ATransientOutputShowsAsNotStored) {
  const auto doubled = md::op("doubled", {"x"}, [](double x) { return 2 * x; }, {.transient = true});
  {
    md::Storage storage(store_location());
    md::Session session(storage);
    (void)doubled(21.0);
  }
  const auto j = run_json({"calls", store(), "doubled", "--json"});
  ASSERT_EQ(j["calls"].size(), 1u);
  const auto& out = j["calls"][0]["outputs"]["output_0"];
  EXPECT_EQ(out["value"]["not_stored"], out["cid"]) << out;
  const auto shown = run({"show", store(), j["calls"][0]["hid"].get<std::string>()});
  EXPECT_EQ(shown.code, 0) << shown.err;
  EXPECT_NE(shown.out.find("<not stored>"), std::string::npos) << shown.out;
  const auto table = run({"calls", store(), "doubled"});
  EXPECT_NE(table.out.find("<not stored>"), std::string::npos) << table.out;
  const auto check = run({"check", store()});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
}

TEST_P(Cli, CallsJsonHasIdsAndValues) {
  const auto j = run_json({"calls", store(), "scale", "--json", "--limit", "2"});
  EXPECT_EQ(j["op"], "scale");
  EXPECT_EQ(j["total"], 4);
  ASSERT_EQ(j["calls"].size(), 2u);
  const auto& c = j["calls"][1];
  EXPECT_EQ(c["hid"].get<std::string>().size(), 32u);
  EXPECT_EQ(c["inputs"]["k"]["value"], 2.0);
  EXPECT_EQ(c["inputs"]["series"]["value"]["dtype"], "f64");
  EXPECT_EQ(c["inputs"]["series"]["value"]["shape"], json({3}));
  EXPECT_EQ(c["outputs"]["output_0"]["value"]["data"], json({0.0, 1.0, 2.0}));
}

TEST_P(Cli, ShowCallByUniquePrefix) {
  const auto id = call_id("total", "3.0");  // k = 2 on the 3-element series
  ASSERT_FALSE(id.empty());
  const auto r = run({"show", store(), id.substr(0, 10)});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto text = mask_times(r.out);
  EXPECT_NE(text.find("call      " + id + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("op        total (version 0)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("created   YYYY-MM-DDTHH:MM:SSZ\n"), std::string::npos) << text;
  EXPECT_NE(text.find("series  f64[3] [0.0, 1.0, 2.0]"), std::string::npos) << text;
  EXPECT_NE(text.find("  scale "), std::string::npos) << text;  // its creator
  EXPECT_NE(text.find("output_0  3.0"), std::string::npos) << text;
  EXPECT_NE(text.find("label "), std::string::npos) << text;  // its consumer

  const auto j = run_json({"show", store(), id, "--json"});
  EXPECT_EQ(j["kind"], "call");
  EXPECT_EQ(j["op"], "total");
  EXPECT_EQ(j["inputs"][0]["creator"]["op"], "scale");
  EXPECT_EQ(j["outputs"][0]["value"], 3.0);
  ASSERT_EQ(j["outputs"][0]["consumers"].size(), 1u);
  EXPECT_EQ(j["outputs"][0]["consumers"][0]["op"], "label");
}

TEST_P(Cli, ShowRefWithCreatorAndConsumers) {
  const auto series = run_json({"calls", store(), "make_series", "--json"});
  const auto ref = series["calls"][0]["outputs"]["output_0"]["hid"].get<std::string>();
  const auto r = run({"show", store(), ref});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto text = mask_times(r.out);
  EXPECT_NE(text.find("ref         " + ref + "\n"), std::string::npos) << text;
  EXPECT_NE(text.find("value       f64[3] [0.0, 0.5, 1.0]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("created by  make_series (version 0) call "), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 4 + 1 + 1 + 2) << text;  // 4 lines, blank, header, 2 uses

  const auto j = run_json({"show", store(), ref, "--json"});
  EXPECT_EQ(j["kind"], "ref");
  EXPECT_EQ(j["creator"]["op"], "make_series");
  EXPECT_EQ(j["creator"]["output"], "output_0");
  ASSERT_EQ(j["consumers"].size(), 2u);
  EXPECT_EQ(j["consumers"][0]["input"], "series");
  EXPECT_EQ(j["value"]["data"], json({0.0, 0.5, 1.0}));

  // A raw input has no creator.
  const auto raw = series["calls"][0]["inputs"]["n"]["hid"].get<std::string>();
  const auto rj = run_json({"show", store(), raw, "--json"});
  EXPECT_TRUE(rj["creator"].is_null());
  EXPECT_EQ(rj["value"], 3);
}

TEST_P(Cli, CfTableInEveryFormat) {
  const auto text = run({"cf", store(), "label", "--expand", "back", "--columns", "n,k,var_0"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_EQ(text.out,
            "k    n   var_0\n"
            "---  --  ---------\n"
            "1.0  3   \"sum 1\"\n"
            "2.0  3   \"sum 3\"\n"
            "1.0  20  \"sum 95\"\n"
            "2.0  20  \"sum 190\"\n");
  const auto csv = run({"cf", store(), "label", "--expand", "back", "--columns", "n,k,var_0", "--format", "csv"});
  ASSERT_EQ(csv.code, 0) << csv.err;
  EXPECT_EQ(csv.out,
            "k,n,var_0\r\n1.0,3,\"\"\"sum 1\"\"\"\r\n2.0,3,\"\"\"sum 3\"\"\"\r\n1.0,20,\"\"\"sum 95\"\"\"\r\n"
            "2.0,20,\"\"\"sum 190\"\"\"\r\n");
  const auto md_table = run({"cf", store(), "total", "--format", "markdown"});
  ASSERT_EQ(md_table.code, 0) << md_table.err;
  EXPECT_EQ(md_table.out.substr(0, 2), "| ") << md_table.out;
  const auto j = run_json({"cf", store(), "label", "--expand", "back", "--json"});
  ASSERT_EQ(j.size(), 4u);
  std::multiset<double> ks;
  for (const auto& row : j) ks.insert(row["k"].get<double>());
  EXPECT_EQ(ks, (std::multiset<double>{1.0, 1.0, 2.0, 2.0}));
  EXPECT_TRUE(j[0].contains("make_series"));
  // -o writes a file.
  const auto to_file = run({"cf", store(), "total", "--format", "csv", "-o", "table.csv"});
  ASSERT_EQ(to_file.code, 0) << to_file.err;
  EXPECT_EQ(to_file.out, "");
  EXPECT_NE(read_file(m_dir / "table.csv").find("series"), std::string::npos);
}

TEST_P(Cli, GraphAsDotTextAndValidSvg) {
  const auto dot = run({"graph", store(), "label", "--expand", "back"});
  ASSERT_EQ(dot.code, 0) << dot.err;
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u) << dot.out;
  const auto text = run({"graph", store(), "label", "--expand", "back", "--format", "text"});
  EXPECT_EQ(text.out,
            "series_0@output_0 = make_series(n=n)\n"
            "series@output_0 = scale(k=k, series=series_0)\n"
            "x@output_0 = total(series=series)\n"
            "var_0@output_0 = label(x=x)\n");

  const auto j = run_json({"graph", store(), "label", "--expand", "back", "--json"});
  ASSERT_EQ(j["nodes"].size(), 10u);
  EXPECT_EQ(j["edges"].size(), 9u);
  EXPECT_EQ(j["nodes"][0]["name"], "k");
  EXPECT_EQ(j["nodes"][0]["kind"], "variable");
  EXPECT_EQ(j["nodes"][0]["size"], 2);

  const auto svg = run({"graph", store(), "label", "--expand", "back", "--format", "svg", "-o", "frame.svg"});
  ASSERT_EQ(svg.code, 0) << svg.err;
  // Parse the SVG and collect its text: every variable and every op must be drawn.
  const std::string script =
      "import sys, xml.etree.ElementTree as E\n"
      "root = E.parse(sys.argv[1]).getroot()\n"
      "assert root.tag == '{http://www.w3.org/2000/svg}svg', root.tag\n"
      "print('\\n'.join(''.join(t.itertext()) for t in root.iter('{http://www.w3.org/2000/svg}text')))\n";
  std::ofstream(m_dir / "check_svg.py") << script;
  const std::string cmd = std::string(MANDALA_PYTHON) + " " + quote((m_dir / "check_svg.py").string()) + " " +
                          quote((m_dir / "frame.svg").string()) + " > " + quote((m_dir / "svg.txt").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "the SVG does not parse";
  const auto texts = read_file(m_dir / "svg.txt");
  for (const char* name : {"make_series", "scale", "total", "label", "series", "series_0", "x", "k", "n", "var_0"})
    EXPECT_NE(texts.find(name), std::string::npos) << name << " not drawn:\n" << texts;
}

TEST_P(Cli, ReadCommandsLeaveTheStoreByteIdentical) {
  const auto before = snapshot_store(store());
  if (file()) {
    ASSERT_EQ(before.count("store.db"), 1u);
    ASSERT_EQ(before.count("store.db-wal"), 0u);
  } else {
    ASSERT_EQ(before.count("mandala_calls"), 1u);
  }
  const auto id = call_id("total", "3.0");
  const std::vector<std::vector<std::string>> reads = {
      {"info", store()},
      {"info", store(), "--json"},
      {"ops", store()},
      {"calls", store(), "scale", "--full"},
      {"show", store(), id},
      {"show", store(), id.substr(0, 8), "--json"},
      {"cf", store(), "label", "--expand", "all"},
      {"graph", store(), "label", "--expand", "all", "--format", "svg"},
      {"drop", store(), id, "--with-dependents", "--dry-run"},
      {"gc", store(), "--dry-run"},
      {"check", store()},
      {"check", store(), "--json"},
  };
  for (const auto& args : reads) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0) << args[0] << ": " << r.err;
    EXPECT_TRUE(snapshot_store(store()) == before) << args[0] << " changed the store";
  }
}

TEST_P(Cli, DropWithDependentsThenGcFreesTheirValues) {
  const auto series = run_json({"calls", store(), "make_series", "--json"});
  const auto root = series["calls"][1]["hid"].get<std::string>();  // n = 20

  EXPECT_EQ(run({"check", store()}).code, 0);
  const auto plan = run_json({"drop", store(), root, "--with-dependents", "--dry-run", "--json"});
  EXPECT_EQ(plan["dry_run"], true);
  EXPECT_EQ(plan["dropped"], 0);
  EXPECT_EQ(plan["calls"].size(), 7u);  // make_series, 2 x (scale, total, label)

  const auto dry_text = run({"drop", store(), root, "--with-dependents", "--dry-run"});
  EXPECT_EQ(dry_text.out, R"(would drop 7 calls (dry run: nothing changed)
op           version  calls
label        0        2
make_series  0        1
scale        0        2
total        0        2
)");

  const auto dropped = run({"drop", store(), root.substr(0, 12), "--with-dependents"});
  ASSERT_EQ(dropped.code, 0) << dropped.err;
  EXPECT_NE(dropped.out.find("dropped 7 calls\n"), std::string::npos) << dropped.out;
  const std::string blob_files = file() ? "2 blob files" : "0 blob files";
  EXPECT_NE(dropped.out.find("'mandala gc " + store() + "' would now free 7 values (380 B, " + blob_files + ")"),
            std::string::npos)
      << dropped.out;
  EXPECT_EQ(run_json({"info", store(), "--json"})["calls"], 7);

  const auto gc_plan = run_json({"gc", store(), "--dry-run", "--json"});
  EXPECT_EQ(gc_plan["would_free"]["values"], 7);
  EXPECT_EQ(gc_plan["would_free"]["blob_files"], file() ? 2 : 0);
  const auto gc = run({"gc", store()});
  ASSERT_EQ(gc.code, 0) << gc.err;
  // 20, the 20-element series (scaling by 1 gives it again), it scaled by 2, two totals, two labels.
  EXPECT_EQ(gc.out, "removed 7 values (380 B) and " + blob_files + "\n");
  const auto again = run({"gc", store()});
  EXPECT_EQ(again.out, "nothing to remove: every value is used by a call\n");

  const auto info = run_json({"info", store(), "--json"});
  EXPECT_EQ(info["values"], 9);
  EXPECT_EQ(info["blob_files"], 0);
  EXPECT_EQ(info["blob_file_bytes"], 0);
  // The counts agree with a full scan after the drop and the cleanup.
  const auto scan = scan_counts();
  EXPECT_EQ(info["values"], scan.at("values"));
  EXPECT_EQ(info["refs"], scan.at("refs"));
  EXPECT_EQ(info["refs"], 10);  // the raw inputs 3, 1.0 and 2.0, and the outputs of the 7 calls left
  EXPECT_EQ(info["value_bytes"], scan.at("value_bytes"));

  // The store is consistent afterwards.
  const auto check = run({"check", store()});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_NE(check.out.find("checked 4 ops, 7 calls, 10 refs, 9 values, 0 blob files\n"), std::string::npos)
      << check.out;
  EXPECT_NE(check.out.find("ok: no problems"), std::string::npos) << check.out;
  const auto cj = run_json({"check", store(), "--json"});
  EXPECT_EQ(cj["ok"], true);
  EXPECT_EQ(cj["problems"].size(), 0u);
  EXPECT_EQ(cj["checked"]["calls"], 7);
}

TEST_P(Cli, CheckNamesEachProblemAndFails) {
  EXPECT_EQ(run({"check", store()}).code, 0);
  if (!file()) {
    // Remove one value a call uses: it is missing, and the kept counts no longer match.
    md::testing::PostgresConnection c(store());
    const auto cid = c.query("SELECT encode(cid, 'hex') FROM mandala_values ORDER BY size DESC LIMIT 1");
    ASSERT_EQ(cid.size(), 32u);
    c.query("DELETE FROM mandala_values WHERE cid = decode('" + cid + "', 'hex')");
    const auto r = run({"check", store()});
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_NE(r.out.find("problem missing_value: value " + cid + " is used by a call but not stored"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("problem count_mismatch: 16 values of 503 bytes counted, 15 of "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" problems found\n"), std::string::npos) << r.out;
    const auto j = json::parse(run({"check", store(), "--json"}).out);
    EXPECT_EQ(j["ok"], false);
    ASSERT_FALSE(j["problems"].empty());
    EXPECT_EQ(j["problems"][0]["kind"], "missing_value");
    return;
  }
  // Remove one blob file: the value it held is missing.
  std::filesystem::path blob;
  for (const auto& e : std::filesystem::recursive_directory_iterator(m_dir / "store.db.blobs"))
    if (e.is_regular_file()) blob = e.path();
  ASSERT_FALSE(blob.empty());
  std::filesystem::remove(blob);
  const auto r = run({"check", store()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("problem missing_blob: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(blob.filename().string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 problem found\n"), std::string::npos) << r.out;
  const auto j = json::parse(run({"check", store(), "--json"}).out);
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["problems"].size(), 1u);
  EXPECT_EQ(j["problems"][0]["kind"], "missing_blob");
}

TEST_P(Cli, DropRefusesARef) {
  const auto series = run_json({"calls", store(), "make_series", "--json"});
  const auto ref = series["calls"][0]["outputs"]["output_0"]["hid"].get<std::string>();
  expect_failure({"drop", store(), ref}, 1, "is a ref, not a call (its creator is call ");
}

TEST_P(Cli, BadInputGivesOneClearLine) {
  std::ofstream(m_dir / "notes.txt") << "not a database\n";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((m_dir / "other.sqlite").string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  expect_failure({"info", "missing.db"}, 1, "no store at missing.db");
  expect_failure({"ops", "notes.txt"}, 1, "not an SQLite database");
  expect_failure({"calls", "other.sqlite", "scale"}, 1, "not a mandala store");
  expect_failure({"info", "."}, 1, "is a directory");
  expect_failure({"calls", store(), "nope"}, 1,
                 "no op 'nope' in this store (it has: label, make_series, scale, total)");
  expect_failure({"calls", store(), "scale", "--version", "7"}, 1, "no op 'scale' of version 7");
  expect_failure({"show", store(), "0123456789abcdef0123456789abcdef"}, 1, "no call or ref with id");
  expect_failure({"show", store(), "xyz"}, 2, "is not an id");
  expect_failure({"cf", store(), "nope"}, 1, "no op 'nope'");
  expect_failure({"cf", store(), "scale", "--columns", "nothing"}, 2, "no column 'nothing'");
  expect_failure({"graph", store(), "scale", "--format", "png"}, 2, "png");
  expect_failure({"frobnicate"}, 2, "unknown command 'frobnicate'");
  expect_failure({"info"}, 2, "STORE is required");
  expect_failure({"calls", store(), "scale", "--limit", "x"}, 2, "--limit");

  // An ambiguous prefix: some hex digit starts at least two of the store's ids.
  std::map<char, int> first_digits;
  const auto listing = run_json({"calls", store(), "scale", "--json"});
  for (const auto& c : listing["calls"]) {
    ++first_digits[c["hid"].get<std::string>()[0]];
    for (const auto& [_, io] : c["inputs"].items()) ++first_digits[io["hid"].get<std::string>()[0]];
    for (const auto& [_, io] : c["outputs"].items()) ++first_digits[io["hid"].get<std::string>()[0]];
  }
  char shared = 0;
  for (const auto& [digit, n] : first_digits)
    if (n >= 2) shared = digit;
  ASSERT_NE(shared, 0);
  expect_failure({"show", store(), std::string(1, shared)}, 1, "is ambiguous");
}

TEST_P(Cli, EveryCommandTakesAStoreLocation) {
  const auto by_path = run_json({"info", store(), "--json"});
  if (!file()) {
    // postgres:// is the same as postgresql://.
    const std::string alias = "postgres" + store().substr(std::string("postgresql").size());
    EXPECT_EQ(run_json({"info", alias, "--json"})["calls"], by_path["calls"]);
    EXPECT_EQ(run_json({"calls", alias, "scale", "--json"})["calls"].size(), 4U);
    // A database that does not exist is named and not created; an empty one is not made a store.
    md::testing::PostgresConnection server(md::testing::postgres_database_url(store(), "postgres"));
    const auto missing = md::testing::postgres_database_url(store(), "mandala_cli_missing_db");
    expect_failure({"ops", missing}, 1,
                   "database \"mandala_cli_missing_db\" does not exist; create the database first");
    EXPECT_FALSE(server.database_exists("mandala_cli_missing_db"));
    md::testing::TempDatabase empty;
    expect_failure({"info", empty.location()}, 1, "no mandala store in");
    expect_failure({"drop", empty.location(), "0123456789abcdef"}, 1, "no mandala store in");
    EXPECT_EQ(md::testing::PostgresConnection(empty.location())
                  .query("SELECT COUNT(*) FROM pg_tables WHERE tablename LIKE 'mandala%'"),
              "0");
    return;
  }
  const std::string absolute = "sqlite://" + (m_dir / "store.db").string();
  for (const std::string& location : {absolute, std::string("sqlite:store.db")}) {
    const auto by_url = run_json({"info", location, "--json"});
    EXPECT_EQ(by_url["calls"], by_path["calls"]) << location;
    EXPECT_EQ(by_url["values"], by_path["values"]) << location;
    EXPECT_EQ(run_json({"calls", location, "scale", "--json"})["calls"].size(), 4U) << location;
  }
  const auto before = read_file(m_dir / "store.db");
  EXPECT_EQ(run({"check", absolute}).code, 0);
  EXPECT_EQ(read_file(m_dir / "store.db"), before);
  // A location never creates a store; a server that is not there is named without its password.
  expect_failure({"info", "sqlite:missing.db"}, 1, "no store at missing.db");
  EXPECT_FALSE(std::filesystem::exists(m_dir / "missing.db"));
  expect_failure({"ops", "sqlite://elsewhere/store.db"}, 1, "names another host");
  expect_failure({"ops", "postgresql://alice:pw@127.0.0.1:1/runs"}, 1, "cannot connect to the PostgreSQL store");
  expect_failure({"ops", "postgresql://alice:pw@127.0.0.1:1/runs"}, 1, "alice:***@127.0.0.1:1/runs");
}

TEST_P(Cli, NumbersOutsideTheirRangeAreUsageErrors) {
  const std::string count_range = "from 0 to 9223372036854775807";
  expect_failure({"calls", store(), "scale", "--limit", "x"}, 2,
                 "expected a whole number " + count_range + ", got 'x'");
  expect_failure({"calls", store(), "scale", "--limit", "-1"}, 2, "got '-1'");
  expect_failure({"calls", store(), "scale", "--limit", "1.5"}, 2, "got '1.5'");
  expect_failure({"calls", store(), "scale", "--limit", "99999999999999999999999"}, 2,
                 "99999999999999999999999 is out of range: use a whole number " + count_range);
  expect_failure({"calls", store(), "scale", "--offset", "18446744073709551617"}, 2, "is out of range");
  expect_failure({"calls", store(), "scale", "--offset", "9223372036854775808"}, 2, "is out of range");
  expect_failure({"info", store(), "--top", "0"}, 2, "0 is out of range: use a whole number from 1 to");
  expect_failure({"calls", store(), "scale", "--version", "4294967296"}, 2, "from 0 to 4294967295");
  expect_failure({"cf", store(), "scale", "--version", "-3"}, 2, "from 0 to 4294967295, got '-3'");
  for (const auto& args : std::vector<std::vector<std::string>>{{"info", store(), "--top", "0"},
                                                                {"calls", store(), "scale", "--limit", "x"}}) {
    const auto r = run(args);
    EXPECT_LT(r.err.size(), 200u) << r.err;  // one short line, not a range of 300 digits
  }

  // The largest values are accepted: an offset past the end gives an empty page with a sane footer.
  const auto page = run({"calls", store(), "scale", "--offset", "9223372036854775807"});
  EXPECT_EQ(page.code, 0) << page.err;
  EXPECT_NE(page.out.find("from #9223372036854775808"), std::string::npos) << page.out;
  EXPECT_EQ(run({"info", store(), "--top", "9223372036854775807"}).code, 0);
}

TEST_P(Cli, RenamesKeepTheStoredCalls) {
  auto r = run({"rename-op", store(), "scale", "multiply"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("renamed op scale to multiply"), std::string::npos) << r.out;
  r = run({"rename-input", store(), "multiply", "k", "factor"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("renamed input k to factor in op multiply"), std::string::npos) << r.out;
  const auto j = run_json({"rename-output", store(), "total", "output_0", "sum", "--json"});
  EXPECT_EQ(j, (json{{"renamed", "output"}, {"op", "total"}, {"from", "output_0"}, {"to", "sum"}}));

  // The commands show the new names.
  const auto ops = run_json({"ops", store(), "--json"});
  std::map<std::string, json> by_name;
  for (const auto& o : ops) by_name[o["name"].get<std::string>()] = o;
  EXPECT_FALSE(by_name.contains("scale")) << ops.dump();
  ASSERT_TRUE(by_name.contains("multiply")) << ops.dump();
  EXPECT_EQ(by_name["multiply"]["calls"], 4);
  EXPECT_EQ(by_name["multiply"]["inputs"], (json{"series", "factor"}));
  EXPECT_EQ(by_name["total"]["outputs"], (json{"sum"}));
  const auto calls = run_json({"calls", store(), "multiply", "--json"});
  ASSERT_EQ(calls["calls"].size(), 4u);
  EXPECT_TRUE(calls["calls"][0]["inputs"].contains("factor")) << calls.dump();
  EXPECT_NE(run({"cf", store(), "total"}).out.find("sum"), std::string::npos);

  // The program with the new names executes nothing.
  std::atomic<int> runs{0};
  const auto multiply = md::op("multiply", {"series", "factor"}, [&](const Series& s, double k) {
    ++runs;
    Series out;
    for (double x : s) out.push_back(k * x);
    return out;
  });
  const auto summed = md::op("total", {"series"},
                             [&](const Series& s) {
                               ++runs;
                               return std::accumulate(s.begin(), s.end(), 0.0);
                             },
                             {.outputs = {"sum"}});
  {
    md::Storage storage(store_location());
    md::Session session(storage);
    for (int n : {3, 20}) {
      auto s = make_series(n);
      for (double k : {1.0, 2.0}) (void)label(summed(multiply(s, k)));
    }
    EXPECT_EQ(storage.counters().executed, 0u);
  }
  EXPECT_EQ(runs, 0);

  // Clashes and unknown names: one clear line, exit code 1, nothing changed.
  const auto before = snapshot_store(store());
  expect_failure({"rename-op", store(), "multiply", "total"}, 1, "the store holds an op 'total' already");
  expect_failure({"rename-op", store(), "scale", "other"}, 1, "no op of that name");
  expect_failure({"rename-input", store(), "multiply", "factor", "series"}, 1, "already");
  expect_failure({"rename-output", store(), "total", "nothing", "x"}, 1, "no output of that name");
  EXPECT_TRUE(snapshot_store(store()) == before);
}

TEST_P(Cli, HelpOnEverySubcommand) {
  const auto top = run({"--help"});
  EXPECT_EQ(top.code, 0);
  for (const char* sub : {"info", "ops", "calls", "show", "cf", "graph", "drop", "gc", "check", "versions", "diff",
                          "mark-compatible", "mark-new-version", "rename-op", "rename-input", "rename-output"}) {
    const auto r = run({sub, "--help"});
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("STORE"), std::string::npos) << sub << ": " << r.out;
    EXPECT_NE(top.out.find(sub), std::string::npos) << sub;
  }
  for (const char* read : {"info", "ops", "calls", "show", "cf", "graph", "check", "versions", "diff"})
    EXPECT_NE(run({read, "--help"}).out.find("--json"), std::string::npos) << read;
  EXPECT_EQ(run({"--version"}).out, "mandala 0.1.0\n");
}

// ---- code versions: versions, diff, mark-compatible, mark-new-version -----------------------

std::atomic<int> tracked_runs{0};
std::atomic<int> tracked_factor{10};  // what the "code" of tracked_impl computes
const auto tracked = md::op("tracked", {"x"}, [](int x) {
  ++tracked_runs;
  return x * tracked_factor.load();
});
const auto once = md::op("once", {"x"}, [](int x) { return x; });

/// Registers fingerprints as the source generated by mandala_track_versions would: `tracked`
/// reaches tracked_impl and the helper h, `once` reaches once_impl.
void install_code(const std::string& impl, const std::string& helper,
                  const std::string& once_code = "int once_impl(int x) { return x; }") {
  md::versioning::clear_fingerprints();
  static std::vector<std::string> texts;
  texts = {impl, helper, once_code};
  static std::vector<std::string> hashes;
  hashes.clear();
  for (const auto& t : texts) hashes.push_back(md::detail::content_id(md::encode_value(t)).hex());
  const md::detail::GeneratedComponent comps[] = {
      {"tracked_impl(int)", "function", hashes[0].c_str(), "src/tracked.cpp", texts[0].c_str()},
      {"h(int)", "function", hashes[1].c_str(), "src/helpers.cpp", texts[1].c_str()},
      {"once_impl(int)", "function", hashes[2].c_str(), "src/once.cpp", texts[2].c_str()},
  };
  const unsigned tracked_parts[] = {0, 1};
  const unsigned once_parts[] = {2};
  const md::detail::GeneratedOp ops[] = {{"tracked", tracked_parts, 2}, {"once", once_parts, 1}};
  md::detail::register_fingerprints(comps, 3, ops, 2);
}

const std::string impl1 = "int tracked_impl(int x) {\n  return h(x) * 10;\n}";
const std::string impl2 = "int tracked_impl(int x) {\n  return h(x) * 20;\n}";
const std::string helper1 = "int h(int x) {\n  return x;\n}";
const std::string helper2 = "int h(int x) {\n  return x + 0;\n}";

class CliVersions : public Cli {
 protected:
  void SetUp() override {
    Cli::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    m_previous_sink = md::set_warning_sink([](const std::string&) {});
    // Version 1: tracked(1), tracked(2); version 2 (its body changed): tracked(1), tracked(3);
    // version 3 (the helper changed): tracked(1). `once` has one version.
    build(impl1, helper1, {1, 2});
    build(impl2, helper1, {1, 3});
    build(impl2, helper2, {1});
  }
  void TearDown() override {
    md::versioning::clear_fingerprints();
    md::set_warning_sink(m_previous_sink);
  }

  /// A run of the "rebuilt program": its fingerprints, a new storage, tracked(x) for each x.
  int build(const std::string& impl, const std::string& helper, const std::vector<int>& xs,
            const std::string& once_code = "int once_impl(int x) { return x; }") {
    install_code(impl, helper, once_code);
    tracked_factor = impl.find("* 30") != std::string::npos ? 30 : 10;
    md::Storage storage(versions_location());
    md::Session session(storage);
    const int before = tracked_runs;
    for (int x : xs) m_last = tracked(x).get();
    (void)once(7);
    return tracked_runs - before;
  }

  md::WarningSink m_previous_sink = nullptr;
  int m_last = 0;  ///< the value of the last call of tracked in build()
};

INSTANTIATE_TEST_SUITE_P(Backends, CliVersions, ::testing::ValuesIn(cli_backends()), md::testing::backend_name);

TEST_P(CliVersions, VersionsListsEachVersionWithItsCode) {
  const auto r = run({"versions", versions(), "tracked"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  {
    md::StorageOptions options;
    options.read_only = true;
    md::Storage storage(versions_location(), options);
    EXPECT_EQ(r.out, storage.versions_listing("tracked"));  // a thin client
  }
  EXPECT_EQ(r.out.rfind("Versions of op tracked: 3\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("=== version 3 (current code)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("    return h(x) * 20;"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--- function h(int)"), std::string::npos) << r.out;

  const auto j = run_json({"versions", versions(), "tracked", "--json"});
  EXPECT_EQ(j["op"], "tracked");
  ASSERT_EQ(j["versions"].size(), 3u);
  const std::size_t calls[] = {2, 2, 1};
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& v = j["versions"][i];
    EXPECT_EQ(v["number"], i + 1);
    EXPECT_EQ(v["calls"], calls[i]) << v.dump();
    EXPECT_TRUE(v["decided"].get<bool>());
    EXPECT_EQ(v["content_version"].get<std::string>().size(), 32u);
    ASSERT_EQ(v["components"].size(), 2u);
    EXPECT_EQ(v["components"][0]["name"], "h(int)");
    EXPECT_EQ(v["components"][1]["name"], "tracked_impl(int)");
    EXPECT_EQ(v["components"][1]["code"], i == 0 ? impl1 : impl2);
    EXPECT_EQ(v["components"][0]["code"], i == 2 ? helper2 : helper1);
  }
}

TEST_P(CliVersions, DiffComparesTheTwoNewestByDefault) {
  const auto r = run({"diff", versions(), "tracked"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, R"(--- h(int) (version 2)
+++ h(int) (version 3)
@@ -1,3 +1,3 @@
 int h(int x) {
-  return x;
+  return x + 0;
 }
)");
  const auto body = run({"diff", versions(), "tracked", "1", "2"});
  ASSERT_EQ(body.code, 0) << body.err;
  EXPECT_NE(body.out.find("-  return h(x) * 10;\n+  return h(x) * 20;"), std::string::npos) << body.out;
  EXPECT_EQ(body.out.find("h(int) (version"), std::string::npos) << body.out;

  // A version named by a prefix of its content id; equal code.
  const auto listing = run_json({"versions", versions(), "tracked", "--json"});
  const auto prefix = listing["versions"][1]["content_version"].get<std::string>().substr(0, 8);
  const auto same = run({"diff", versions(), "tracked", "2", prefix});
  EXPECT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(same.out, "versions 2 and " + prefix + " of op tracked have the same code\n");

  const auto j = run_json({"diff", versions(), "tracked", "1", "--json"});
  EXPECT_EQ(j["from"], "1");
  EXPECT_EQ(j["to"], "3");
  EXPECT_FALSE(j["same_code"].get<bool>());
  EXPECT_NE(j["diff"].get<std::string>().find("+++ tracked_impl(int) (version 3)"), std::string::npos) << j.dump();
}

TEST_P(CliVersions, BadNamesGiveOneClearLine) {
  expect_failure({"versions", versions(), "nope"}, 1, "no op 'nope' in this store (it has: once, tracked)");
  expect_failure({"versions", store(), "total"}, 1, "op total has no recorded code versions");
  expect_failure({"diff", versions(), "tracked", "9"}, 1, "op tracked has no version '9'");
  expect_failure({"diff", versions(), "once"}, 1, "op once has one version of its code");
  expect_failure({"mark-compatible", versions(), "once"}, 1, "is its first code");
  expect_failure({"diff", versions()}, 2, "OP is required");
  expect_failure({"versions", "missing.db", "tracked"}, 1, "no store at missing.db");
}

TEST_P(CliVersions, ReadCommandsLeaveTheStoreByteIdentical) {
  const auto before = snapshot_store(versions());
  for (const auto& args : std::vector<std::vector<std::string>>{{"versions", versions(), "tracked"},
                                                                {"versions", versions(), "tracked", "--json"},
                                                                {"diff", versions(), "tracked"},
                                                                {"diff", versions(), "tracked", "1", "3", "--json"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(snapshot_store(versions()) == before) << args[0] << " changed the store";
  }
}

TEST_P(CliVersions, MarkCompatibleReusesEarlierResultsAndMarkNewVersionUndoesIt) {
  // Version 3 changed only the helper; marked compatible, the calls of version 2 are valid for it.
  const auto r = run({"mark-compatible", versions(), "tracked"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out,
            "version 3 of op tracked joins version 2; its changes:\n"
            "--- h(int) (version 2)\n+++ h(int) (version 3)\n@@ -1,3 +1,3 @@\n int h(int x) {\n-  return x;\n"
            "+  return x + 0;\n }\n"
            "marked the changes of version 3 of op tracked compatible with the code before it: h(int)\n"
            "calls stored under the earlier code are reused for it, without recomputation\n");
  auto j = run_json({"versions", versions(), "tracked", "--json"});
  EXPECT_EQ(j["versions"][2]["semantic_version"], j["versions"][1]["semantic_version"]);
  EXPECT_EQ(j["versions"][2]["calls"], 2);      // tracked(1) and tracked(3), stored under version 2
  EXPECT_EQ(build(impl2, helper2, {1, 3}), 0);  // nothing recomputed
  const auto again = run({"mark-compatible", versions(), "tracked", "3"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("nothing changed"), std::string::npos) << again.out;

  const auto undo = run_json({"mark-new-version", versions(), "tracked", "--json"});
  EXPECT_EQ(undo["version"], "3");
  EXPECT_EQ(undo["components"], json::array({"h(int)"}));
  j = run_json({"versions", versions(), "tracked", "--json"});
  EXPECT_NE(j["versions"][2]["semantic_version"], j["versions"][1]["semantic_version"]);
  EXPECT_EQ(build(impl2, helper2, {1, 3}), 1);  // tracked(3) was never computed under version 3
  EXPECT_EQ(run({"check", versions()}).code, 0);
}

TEST_P(CliVersions, MarkCompatibleByDefaultRefusesAnOlderChange) {
  const std::string impl3 = "int tracked_impl(int x) {\n  return h(x) * 30;\n}";
  const std::string impl4 = "int tracked_impl(int x) {\n  return 30 * h(x);\n}";
  const std::string once2 = "int once_impl(int x) { return x + 0; }";
  // Version 4 multiplies by 30: a semantic change, computed anew.
  EXPECT_EQ(build(impl3, helper2, {1}), 1);
  EXPECT_EQ(m_last, 30);
  // Another op changes and runs.
  EXPECT_EQ(build(impl3, helper2, {1}, once2), 0);
  // tracked is edited (the same results) and rebuilt, but not run: the newest recorded version
  // of tracked is version 4, an older change than this edit.
  const auto r = run({"mark-compatible", versions(), "tracked"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("not marking version 4 of op tracked compatible by default: code changed after version 4 of "
                       "op tracked was recorded (once_impl(int))"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("name it: mandala mark-compatible " + versions() + " tracked 4"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("-  return h(x) * 20;\n+  return h(x) * 30;"), std::string::npos) << r.err;
  // Version 4 keeps its own results (marked, it would get version 3's: 10 instead of 30).
  EXPECT_EQ(build(impl3, helper2, {1}, once2), 0);
  EXPECT_EQ(m_last, 30);
  auto j = run_json({"versions", versions(), "tracked", "--json"});
  EXPECT_NE(j["versions"][3]["semantic_version"], j["versions"][2]["semantic_version"]);

  // Once the edit has run it is the change most recently seen: marked by default, with its diff.
  EXPECT_EQ(build(impl4, helper2, {1}, once2), 1);
  const auto marked = run({"mark-compatible", versions(), "tracked"});
  ASSERT_EQ(marked.code, 0) << marked.err;
  EXPECT_EQ(marked.out,
            "version 5 of op tracked joins version 4; its changes:\n"
            "--- tracked_impl(int) (version 4)\n+++ tracked_impl(int) (version 5)\n@@ -1,3 +1,3 @@\n"
            " int tracked_impl(int x) {\n-  return h(x) * 30;\n+  return 30 * h(x);\n }\n"
            "marked the changes of version 5 of op tracked compatible with the code before it: tracked_impl(int)\n"
            "calls stored under the earlier code are reused for it, without recomputation\n");
  j = run_json({"versions", versions(), "tracked", "--json"});
  EXPECT_EQ(j["versions"][4]["semantic_version"], j["versions"][3]["semantic_version"]);
  EXPECT_EQ(build(impl4, helper2, {1}, once2), 0);
  EXPECT_EQ(m_last, 30);
  // An older version named explicitly is marked (with a note of why it may not be meant).
  const auto named = run({"mark-compatible", versions(), "tracked", "2", "--json"});
  EXPECT_EQ(named.code, 0) << named.err;
  EXPECT_NE(named.err.find("note: "), std::string::npos) << named.err;
  EXPECT_EQ(json::parse(named.out)["joins"], 1);
}

}  // namespace
