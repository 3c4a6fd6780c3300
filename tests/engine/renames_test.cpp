// Renames that keep results (docs/storage-format.md 2.2): an op, an input and an output renamed
// in code (formerly) or through Storage::rename_*, on every backend, across reopened stores.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <tuple>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/postgres.hpp"
#include "support/sql.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> runs{0};

double train_fn(int x, double reg) {
  ++runs;
  return x * 10.0 + reg;
}

/// The program before the refactor: train(x, reg) -> loss, and a consumer of its result.
const auto train = md::op("train", {"x", md::arg("reg", 0.0)}, train_fn, {.outputs = {"loss"}});
const auto report = md::op("report", {"loss"},
                           [](double loss) {
                             ++runs;
                             return std::to_string(loss);
                           },
                           {.outputs = {"text"}});

/// The same program after the refactor, saying the old names in code.
const auto fit_model = md::op("fit_model", {"x", md::arg("l2", 0.0).formerly("reg")}, train_fn,
                              {.outputs = {"error"}, .formerly = {"train"}, .output_formerly = {{"error", {"loss"}}}});
/// The same program renamed without saying so (for the commands).
const auto fit_model_plain = md::op("fit_model", {"x", md::arg("l2", 0.0)}, train_fn, {.outputs = {"error"}});

template <class Op>
std::vector<double> run_all(md::Storage& storage, const Op& op) {
  md::Session s(storage);
  std::vector<double> out;
  for (int x = 0; x < 4; ++x) {
    auto r = x % 2 == 0 ? op(x) : op(x, 0.5);
    (void)report(r);
    out.push_back(r.get());
  }
  return out;
}

std::vector<std::string> names_of(const std::vector<std::pair<std::string, md::AnyRef>>& refs) {
  std::vector<std::string> out;
  for (const auto& [name, ref] : refs) out.push_back(name);
  return out;
}

class Renames : public BackendTest {
 protected:
  void SetUp() override {
    runs = 0;
    BackendTest::SetUp();
  }

  /// Runs the old program, then checks that `renamed` reuses every call after a reopen.
  template <class Op>
  void expect_renamed_program_reuses(const Op& renamed) {
    const auto counters = storage().counters();
    runs = 0;
    const auto again = run_all(storage(), renamed);
    EXPECT_EQ(runs, 0) << "the renamed program must execute nothing";
    EXPECT_EQ(storage().counters().executed, counters.executed);
    EXPECT_EQ(again, (std::vector<double>{0.0, 10.5, 20.0, 30.5}));

    // Calls, ops, frames and tables show the new names.
    const auto calls = storage().calls_of("fit_model");
    ASSERT_EQ(calls.size(), 4u);
    for (const auto& c : calls) {
      EXPECT_EQ(c.op, "fit_model");
      EXPECT_EQ(names_of(c.outputs), std::vector<std::string>{"error"});
      for (const auto& name : names_of(c.inputs)) EXPECT_TRUE(name == "x" || name == "l2") << name;
    }
    EXPECT_TRUE(storage().calls_of("train").empty()) << "the old name names nothing now";
    const auto ops = storage().ops();
    const auto it = std::find_if(ops.begin(), ops.end(), [](const auto& o) { return o.name == "fit_model"; });
    ASSERT_NE(it, ops.end());
    EXPECT_EQ(it->calls, 4u);
    EXPECT_EQ(it->inputs, (std::vector<std::string>{"x", "l2"}));
    EXPECT_EQ(it->outputs, std::vector<std::string>{"error"});
    EXPECT_TRUE(std::none_of(ops.begin(), ops.end(), [](const auto& o) { return o.name == "train"; }));
    const auto frame = storage().cf("fit_model");
    EXPECT_EQ(frame.fnames(), std::vector<std::string>{"fit_model"});
    const auto table = frame.func_table("fit_model");
    auto columns = table.column_names();
    std::sort(columns.begin(), columns.end());
    EXPECT_TRUE(std::find(columns.begin(), columns.end(), "error") != columns.end())
        << ::testing::PrintToString(columns);
    EXPECT_TRUE(std::find(columns.begin(), columns.end(), "x") != columns.end());
    EXPECT_TRUE(std::find(columns.begin(), columns.end(), "loss") == columns.end());
    EXPECT_EQ(table.num_rows(), 4u);
    // The downstream op's calls reuse the renamed op's results, so the graph expands through it.
    auto expanded = storage().cf("report").expand_back();
    EXPECT_TRUE(expanded.has_node("fit_model")) << expanded.graph_description();
    EXPECT_TRUE(storage().check_integrity().ok());
  }
};

TEST_P(Renames, DeclaredInCodeTheRenamedProgramExecutesNothing) {
  EXPECT_EQ(run_all(storage(), train), (std::vector<double>{0.0, 10.5, 20.0, 30.5}));
  EXPECT_EQ(runs, 8);
  reopen();
  expect_renamed_program_reuses(fit_model);
  // Recorded in the store: a reopened program without `formerly` keeps the new names.
  reopen();
  runs = 0;
  (void)run_all(storage(), fit_model_plain);
  EXPECT_EQ(runs, 0);
}

TEST_P(Renames, ThroughTheStorageTheRenamedProgramExecutesNothing) {
  (void)run_all(storage(), train);
  reopen();
  storage().rename_op("train", "fit_model");
  storage().rename_input("fit_model", "reg", "l2");
  storage().rename_output("fit_model", "loss", "error");
  reopen();
  expect_renamed_program_reuses(fit_model_plain);
}

TEST_P(Renames, CopiesBetweenStoresKeepTheRenames) {
  (void)run_all(storage(), train);
  storage().rename_op("train", "fit_model");
  storage().rename_input("fit_model", "reg", "l2");
  storage().rename_output("fit_model", "loss", "error");
  md::Storage copy;
  const auto pushed = storage().push(copy);
  EXPECT_TRUE(pushed.conflicts.empty()) << ::testing::PrintToString(pushed.conflicts);
  EXPECT_EQ(copy.calls_of("fit_model").size(), 4u);
  runs = 0;
  (void)run_all(copy, fit_model_plain);
  EXPECT_EQ(runs, 0) << "the copy reuses the renamed op's calls";
}

TEST_P(Renames, TheOldNameCanBeReusedWithoutMixing) {
  (void)run_all(storage(), train);
  storage().rename_op("train", "fit_model");
  reopen();
  // Something new under the old name, with the same parameter names: computed anew.
  const auto new_train = md::op("train", {"x", md::arg("reg", 0.0)},
                                [](int x, double reg) {
                                  ++runs;
                                  return x * 100.0 + reg;
                                },
                                {.outputs = {"loss"}});
  runs = 0;
  {
    md::Session s(storage());
    EXPECT_EQ(new_train(1).get(), 100.0);
    EXPECT_EQ(new_train(2).get(), 200.0);
  }
  EXPECT_EQ(runs, 2) << "the new op named train must not reuse the renamed op's calls";
  reopen();
  runs = 0;
  {
    md::Session s(storage());
    EXPECT_EQ(new_train(1).get(), 100.0);
    EXPECT_EQ(md::op("fit_model", {"x", md::arg("reg", 0.0)}, train_fn, {.outputs = {"loss"}})(2).get(), 20.0);
  }
  EXPECT_EQ(runs, 0) << "both keep their own calls";
  EXPECT_EQ(storage().calls_of("train").size(), 2u);
  EXPECT_EQ(storage().calls_of("fit_model").size(), 4u);
  for (const auto& c : storage().calls_of("train")) EXPECT_EQ(c.op, "train");
  EXPECT_EQ(storage().cf("train").func_table("train").num_rows(), 2u);
  // Renaming back to the old name is refused while the new op holds it.
  try {
    storage().rename_op("fit_model", "train");
    ADD_FAILURE() << "renaming onto an op with calls must be refused";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("'train'"), std::string::npos) << e.what();
  }
}

TEST_P(Renames, ClashesAreRefused) {
  (void)run_all(storage(), train);
  const auto expect_refused = [&](auto&& f, md::Errc code, const std::string& says) {
    try {
      f();
      ADD_FAILURE() << "expected a refusal saying " << says;
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  // The new name is an op with calls; an input or output name in use; unknown names.
  expect_refused([&] { storage().rename_op("train", "report"); }, md::Errc::invalid_argument, "already");
  expect_refused([&] { storage().rename_input("train", "reg", "x"); }, md::Errc::invalid_argument, "already");
  expect_refused([&] { storage().rename_input("train", "reg", "loss"); }, md::Errc::invalid_argument, "output");
  expect_refused([&] { storage().rename_output("train", "loss", "x"); }, md::Errc::invalid_argument, "input");
  expect_refused([&] { storage().rename_op("nothing", "other"); }, md::Errc::not_found, "no op");
  expect_refused([&] { storage().rename_input("train", "nothing", "other"); }, md::Errc::not_found, "no input");
  expect_refused([&] { storage().rename_op("__make_list__", "lists"); }, md::Errc::invalid_argument, "built-in");
  reopen();
  // Nothing changed.
  EXPECT_EQ(storage().calls_of("train").size(), 4u);
  EXPECT_EQ(storage().calls_of("report").size(), 4u);

  // A declaration whose formerly would mix two ops with calls.
  const auto other = md::op("other", {"x"}, [](int x) {
    ++runs;
    return x;
  });
  {
    md::Session s(storage());
    (void)other(1);
  }
  const auto clash = md::op("other", {"x"}, [](int x) { return x; }, {.version = 1, .formerly = {"train"}});
  md::Session s(storage());
  expect_refused([&] { (void)clash(1); }, md::Errc::invalid_argument, "formerly");
}

TEST_P(Renames, ReadOnlyStoresShowTheNewNames) {
  if (!persistent()) GTEST_SKIP() << "an in-memory store cannot be opened twice";
  (void)run_all(storage(), train);
  storage().rename_output("train", "loss", "error");
  md::StorageOptions ro;
  ro.read_only = true;
  md::Storage reader(location(), ro);
  const auto calls = reader.calls_of("train");
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(names_of(calls.front().outputs), std::vector<std::string>{"error"});
  EXPECT_THROW(reader.rename_op("train", "t"), md::Error);
}

TEST_P(Renames, StoresOfTheSchemaBeforeRenamesAreUpgradedInPlace) {
  if (!persistent()) GTEST_SKIP() << "an in-memory store is always new";
  (void)run_all(storage(), train);
  m_storage.reset();
  const bool file = GetParam() == md::testing::Backend::file;
  // The store as the previous schema wrote it: no rename records.
  if (file) {
    md::testing::sql(db_path(),
                     "DROP TABLE renames; UPDATE meta SET value = '6' WHERE key = 'schema_version'; "
                     "PRAGMA user_version = 6; PRAGMA wal_checkpoint(TRUNCATE);");
  } else {
    md::testing::PostgresConnection c(location());
    c.query("DROP TABLE mandala_renames; UPDATE mandala_meta SET value = '1' WHERE key = 'schema_version'");
  }
  {
    md::StorageOptions ro;
    ro.read_only = true;
    md::Storage reader(location(), ro);
    EXPECT_EQ(reader.info().schema_version, file ? 6 : 1);
    EXPECT_EQ(reader.calls_of("train").size(), 4u);
  }
  open();
  EXPECT_EQ(storage().info().schema_version, file ? 8 : 3);
  storage().rename_op("train", "fit_model");
  reopen();
  EXPECT_EQ(storage().calls_of("fit_model").size(), 4u);
  runs = 0;
  {
    md::Session s(storage());
    EXPECT_EQ(md::op("fit_model", {"x", md::arg("reg", 0.0)}, train_fn, {.outputs = {"loss"}})(2).get(), 20.0);
  }
  EXPECT_EQ(runs, 0);
}

MANDALA_INSTANTIATE_BACKENDS(Renames);

}  // namespace
