// Storage::push / pull between every backend and an SQLite file: what is copied, that a copy
// run again copies nothing, that an interrupted copy resumes, and that conflicts are kept.

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "support/integrity.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto square = md::op("t_square", {"x"}, [](int x) { return x * x; });
const auto total = md::op("t_total", {"xs"}, [](const std::vector<int>& xs) {
  int s = 0;
  for (int x : xs) s += x;
  return s;
});
const auto label = md::op("t_label", {"n"}, [](int n) { return std::string(static_cast<std::size_t>(n), 'a'); });
// Declared with another output in the destination in the conflict test.
const auto shape = md::op("t_shape", {"n"}, [](int n) { return n; }, {.outputs = {"side"}});
const auto shape_other = md::op("t_shape", {"n"}, [](int n) { return n; }, {.outputs = {"edge"}});

/// Eleven calls over three ops: squares of 0..4, their sum (a plain input), labels of 0..4.
void build(md::Storage& storage) {
  md::Session s(storage);
  std::vector<int> squares;
  for (int x = 0; x < 5; ++x) squares.push_back(square(x).get());
  total(squares);
  for (int n = 0; n < 5; ++n) label(n);
}

/// The rows of a frame's table over all calls of `op`, expanded both ways, sorted (the order of
/// rows follows storage order, which a copy keeps per op only).
std::vector<std::string> frame_rows(md::Storage& storage, const std::string& op) {
  std::istringstream text(storage.cf(op).expand_all().df().to_text());
  std::vector<std::string> rows;
  for (std::string line; std::getline(text, line);) rows.push_back(line);
  std::sort(rows.begin(), rows.end());
  return rows;
}

void expect_same_content(md::Storage& a, md::Storage& b) {
  const auto sa = a.stats();
  const auto sb = b.stats();
  EXPECT_EQ(sa.calls, sb.calls);
  EXPECT_EQ(sa.values, sb.values);
  EXPECT_EQ(sa.refs, sb.refs);
  EXPECT_EQ(sa.ops, sb.ops);
  for (const std::string op : {"t_square", "t_total", "t_label"}) {
    auto ca = a.calls_of(op);
    auto cb = b.calls_of(op);
    ASSERT_EQ(ca.size(), cb.size()) << op;
    for (std::size_t i = 0; i < ca.size(); ++i) {
      EXPECT_EQ(ca[i].hid, cb[i].hid) << op;
      EXPECT_EQ(ca[i].cid, cb[i].cid) << op;
    }
    EXPECT_EQ(frame_rows(a, op), frame_rows(b, op)) << op;
  }
  for (auto* s : {&a, &b}) {
    const auto report = s->check_integrity();
    EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  }
}

class Transfer : public BackendTest {
 protected:
  md::Storage& source() {
    if (!m_source) m_source = std::make_unique<md::Storage>(m_dir / "source.db");
    return *m_source;
  }
  std::unique_ptr<md::Storage> m_source;
};

TEST_P(Transfer, PushCopiesWhatIsMissingOnceAndThenNothing) {
  build(source());
  const auto first = source().push(storage());
  EXPECT_EQ(first.calls_copied, 11u);
  EXPECT_EQ(first.calls_present, 0u);
  EXPECT_EQ(first.ops, 3u);
  EXPECT_GT(first.values_copied, 0u);
  EXPECT_TRUE(first.conflicts.empty());
  EXPECT_TRUE(first.skipped.empty());
  reopen();
  expect_same_content(source(), storage());

  const auto again = source().push(storage());
  EXPECT_EQ(again.calls_copied, 0u);
  EXPECT_EQ(again.values_copied, 0u);
  EXPECT_EQ(again.calls_present, 11u);
  expect_same_content(source(), storage());

  // The copied calls are memoized at the destination: the program runs nothing there.
  const auto before = storage().counters().executed;
  build(storage());
  EXPECT_EQ(storage().counters().executed, before);
}

TEST_P(Transfer, PullBringsBackEveryCallAndValue) {
  build(storage());
  md::Storage local(m_dir / "local.db");
  md::TransferOptions options;
  options.batch_calls = 2;  // batches written while the source's calls are still being listed
  const auto report = local.pull(storage(), options);
  EXPECT_EQ(report.calls_copied, 11u);
  expect_same_content(storage(), local);
  // Values are read back from the copy.
  const auto labels = local.calls_of("t_label");
  ASSERT_EQ(labels.size(), 5u);
  EXPECT_EQ(labels[3].output("output_0")->as<std::string>().get(), "aaa");
}

TEST_P(Transfer, AnInterruptedCopyResumesWithNothingTwiceAndNothingMissing) {
  build(source());
  md::TransferOptions options;
  options.batch_calls = 2;
  std::uint64_t reports = 0;
  options.progress = [&](std::uint64_t done, std::uint64_t) {
    if (done > 0 && ++reports == 2) throw std::runtime_error("interrupted");
  };
  EXPECT_THROW(source().push(storage(), options), std::runtime_error);
  reopen();
  const auto partial = storage().stats().calls;
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, 11u);
  EXPECT_TRUE(storage().check_integrity().ok());

  options.progress = {};
  const auto rest = source().push(storage(), options);
  EXPECT_EQ(rest.calls_copied + rest.calls_present, 11u);
  EXPECT_EQ(rest.calls_present, partial);
  expect_same_content(source(), storage());
}

TEST_P(Transfer, OnlyTheNamedOpsAreCopied) {
  build(source());
  md::TransferOptions options;
  options.ops = {"t_label"};
  const auto report = source().push(storage(), options);
  EXPECT_EQ(report.calls_copied, 5u);
  EXPECT_EQ(storage().calls_of("t_label").size(), 5u);
  EXPECT_TRUE(storage().calls_of("t_square").empty());
  options.ops = {"no_such_op"};
  try {
    (void)source().push(storage(), options);
    ADD_FAILURE() << "an unknown op was accepted";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("no_such_op"), std::string::npos) << e.what();
  }
}

TEST_P(Transfer, AnOpDeclaredOtherwiseAtTheDestinationIsAConflictAndKept) {
  {
    md::Session s(source());
    shape(1);
    shape(2);
    square(3);
  }
  {
    md::Session s(storage());
    shape_other(7);
  }
  const auto report = source().push(storage());
  ASSERT_EQ(report.conflicts.size(), 1u);
  EXPECT_NE(report.conflicts[0].find("t_shape"), std::string::npos) << report.conflicts[0];
  EXPECT_NE(report.conflicts[0].find("side"), std::string::npos) << report.conflicts[0];
  EXPECT_NE(report.conflicts[0].find("edge"), std::string::npos) << report.conflicts[0];
  EXPECT_EQ(report.calls_copied, 1u);  // the square
  const auto kept = storage().calls_of("t_shape");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_TRUE(kept[0].output("edge").has_value());
}

TEST_P(Transfer, AStorageCannotPushToItself) {
  try {
    (void)storage().push(storage());
    ADD_FAILURE() << "a push to itself was accepted";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
  }
}

MANDALA_INSTANTIATE_BACKENDS(Transfer);

}  // namespace
