// Transparent collections (MList / MDict): the original's test_lists behaviours, the recorded
// structure of the built-in structural ops, provenance through elements, laziness, dedup and
// errors; every backend, with reopened stores.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> primes_runs{0};
std::atomic<int> sum_runs{0};
std::atomic<int> square_runs{0};

const auto get_sum = md::op("get_sum", {"elts"}, [](const md::MList<int>& elts) {
  ++sum_runs;
  return std::accumulate(elts.begin(), elts.end(), 0);
});

const auto primes_below = md::op("primes_below", {"n"}, [](int n) {
  ++primes_runs;
  md::MList<int> primes;
  for (int i = 2; i < n; ++i) {
    if (std::none_of(primes.begin(), primes.end(), [&](int p) { return i % p == 0; })) primes.push_back(i);
  }
  return primes;
});

const auto chunked_square = md::op("chunked_square", {"elts"}, [](const md::MList<int>& elts) {
  ++square_runs;
  md::MList<int> out;
  for (int x : elts) out.push_back(x * x);
  return out;
});

using Scores = md::MDict<std::string, double>;
const auto make_scores = md::op("make_scores", {"n"}, [](int n) {
  Scores out;
  out["mean"] = n / 2.0;
  out["max"] = n;
  out["min"] = 0.0;
  return out;
});
const auto total = md::op("total", {"scores"}, [](const Scores& scores) {
  double t = 0;
  for (const auto& [k, v] : scores) t += v;
  return t;
});

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });

class Collections : public BackendTest {
 protected:
  void SetUp() override {
    primes_runs = 0;
    sum_runs = 0;
    square_runs = 0;
    BackendTest::SetUp();
  }

  // The store stays consistent for the library's own integrity check.
  void expect_consistent() {
    const auto report = storage().check_integrity();
    for (const auto& p : report.problems) ADD_FAILURE() << p.kind << ": " << p.message;
  }

  std::string input_name_list(const md::CallInfo& call) {
    std::string out;
    for (const auto& [name, ref] : call.inputs) out += (out.empty() ? "" : ",") + name;
    return out;
  }
};

// The original's test_lists, with run counters and a reopened store.
TEST_P(Collections, OriginalTestLists) {
  md::Id primes_hid;
  {
    md::Session s(storage());
    auto primes = primes_below(10);
    auto sum = get_sum(primes);
    EXPECT_EQ(primes.size(), 4u);
    EXPECT_EQ(*primes[0], 2);
    std::vector<int> first_two;
    for (const auto& r : primes.slice(0, 2)) first_two.push_back(*r);
    EXPECT_EQ(first_two, (std::vector<int>{2, 3}));
    EXPECT_EQ(*sum, 17);
    EXPECT_EQ(primes.get(), (md::MList<int>{2, 3, 5, 7}));
    primes_hid = primes.hid();
  }
  reopen();
  {
    // Lists with overlapping elements: sub-ranges of a returned list passed to a list op.
    md::Session s(storage());
    auto primes = primes_below(100);
    ASSERT_EQ(primes.size(), 25u);
    for (std::size_t i = 0; i < primes.size(); i += 2) {
      auto sum = get_sum(primes.slice(0, i + 1));
      int expected = 0;
      for (std::size_t j = 0; j <= i; ++j) expected += *primes[j];
      EXPECT_EQ(*sum, expected);
    }
  }
  EXPECT_EQ(primes_runs, 2);
  EXPECT_EQ(sum_runs, 1 + 13);
  reopen();
  {
    // A list-to-list op.
    md::Session s(storage());
    auto squares = chunked_square(std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    ASSERT_EQ(squares.size(), 10u);
    EXPECT_EQ(*squares[9], 100);
    EXPECT_EQ(get_sum(squares).get(), 385);
  }
  reopen();
  {
    // Everything again: nothing runs, the results are the same refs.
    md::Session s(storage());
    auto primes = primes_below(10);
    EXPECT_EQ(primes.hid(), primes_hid);
    EXPECT_FALSE(primes.in_memory());
    EXPECT_EQ(primes.size(), 4u);
    EXPECT_FALSE(primes[3].in_memory());  // an element loads on its own
    EXPECT_EQ(*primes[3], 7);
    EXPECT_TRUE(primes[3].in_memory());
    EXPECT_FALSE(primes[2].in_memory());
    EXPECT_EQ(*get_sum(primes), 17);
    auto squares = chunked_square(std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
    EXPECT_EQ(squares.get()[4], 25);
  }
  EXPECT_EQ(primes_runs, 2);
  EXPECT_EQ(sum_runs, 1 + 13 + 1);
  EXPECT_EQ(square_runs, 1);
  expect_consistent();
}

// The structural calls are recorded as the original records them: names of ops, inputs and
// outputs, and the ids that follow from them.
TEST_P(Collections, RecordedStructure) {
  md::Id primes_hid, sum_hid, list_input_hid;
  std::vector<md::Id> element_hids;
  {
    md::Session s(storage());
    auto primes = primes_below(10);
    primes_hid = primes.hid();
    for (const auto& e : primes.items()) element_hids.push_back(e.hid());
    auto sum = get_sum(std::vector<int>{2, 3, 5, 7});
    sum_hid = sum.hid();
  }
  reopen();
  auto primes = storage().ref<md::MList<int>>(primes_hid);
  ASSERT_TRUE(primes);
  ASSERT_EQ(primes->size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    // The creator of an element of a returned list is __list_getitem__(list, i).
    const auto el = (*primes)[i];
    EXPECT_EQ(el.hid(), element_hids[i]);
    auto creator = storage().creator_of(el);
    ASSERT_TRUE(creator);
    EXPECT_EQ(creator->op, "__list_getitem__");
    EXPECT_EQ(input_name_list(*creator), "i,list");
    EXPECT_EQ(creator->input("list")->hid(), primes_hid);
    EXPECT_EQ(creator->input("i")->as<std::int64_t>().get(), static_cast<std::int64_t>(i));
    ASSERT_EQ(creator->outputs.size(), 1u);
    EXPECT_EQ(creator->outputs[0].first, "list_item");
    EXPECT_EQ(creator->outputs[0].second.cid(), el.cid());
  }
  auto primes_creator = storage().creator_of(*primes);
  ASSERT_TRUE(primes_creator);
  EXPECT_EQ(primes_creator->op, "primes_below");
  EXPECT_EQ(storage().calls_of("__list_getitem__").size(), 4u);

  // A raw list passed to an MList parameter: a __make_list__ call with inputs elts_0..
  auto sum_call = storage().creator_of(*storage().ref(sum_hid));
  ASSERT_TRUE(sum_call);
  auto list_in = sum_call->input("elts");
  ASSERT_TRUE(list_in);
  list_input_hid = list_in->hid();
  auto make = storage().creator_of(*list_in);
  ASSERT_TRUE(make);
  EXPECT_EQ(make->op, "__make_list__");
  EXPECT_EQ(input_name_list(*make), "elts_0,elts_1,elts_2,elts_3");
  ASSERT_EQ(make->outputs.size(), 1u);
  EXPECT_EQ(make->outputs[0].first, "list");
  // Raw elements are atoms: their history is their content, the same as a raw atom input.
  {
    md::Session s(storage());
    auto via_atom = inc(3);
    auto atom_call = storage().creator_of(via_atom);
    ASSERT_TRUE(atom_call);
    EXPECT_EQ(atom_call->input("x")->hid(), make->input("elts_1")->hid());  // both are the raw value 3
  }
  // The list built from the same values has the content of the returned list.
  EXPECT_EQ(list_in->cid(), primes->cid());
  EXPECT_NE(list_in->hid(), primes->hid());
  // The input list's elements are the __make_list__ inputs, in order.
  auto as_list = list_in->as<md::MList<int>>();
  ASSERT_EQ(as_list.size(), 4u);
  EXPECT_EQ(as_list[2].hid(), make->input("elts_2")->hid());
  EXPECT_EQ(as_list.get(), (md::MList<int>{2, 3, 5, 7}));
  EXPECT_EQ(list_in->to_json(), "[2,3,5,7]");
}

TEST_P(Collections, SubRangeLinksBackToTheElements) {
  md::Id sum_hid;
  std::vector<md::Id> element_hids;
  {
    md::Session s(storage());
    auto primes = primes_below(20);
    auto part = primes.slice(2, 5);
    ASSERT_EQ(part.size(), 3u);
    for (const auto& e : part) element_hids.push_back(e.hid());
    sum_hid = get_sum(part).hid();
    // A slice past the end is clamped, like a Python slice.
    EXPECT_EQ(primes.slice(6, 100).size(), 2u);
    EXPECT_TRUE(primes.slice(9, 3).empty());
  }
  reopen();
  auto sum_call = storage().creator_of(*storage().ref(sum_hid));
  ASSERT_TRUE(sum_call);
  EXPECT_EQ(sum_call->op, "get_sum");
  auto make = storage().creator_of(*sum_call->input("elts"));
  ASSERT_TRUE(make);
  EXPECT_EQ(make->op, "__make_list__");
  for (std::size_t i = 0; i < 3; ++i) {
    const auto in = make->input("elts_" + std::to_string(i));
    ASSERT_TRUE(in);
    EXPECT_EQ(in->hid(), element_hids[i]);
    // ... and each element's creator is a getitem call on the list primes_below returned.
    auto getitem = storage().creator_of(*in);
    ASSERT_TRUE(getitem);
    EXPECT_EQ(getitem->op, "__list_getitem__");
    auto origin = storage().creator_of(*getitem->input("list"));
    ASSERT_TRUE(origin);
    EXPECT_EQ(origin->op, "primes_below");
  }
  EXPECT_EQ(storage().ref(sum_hid)->as<int>().get(), 5 + 7 + 11);
}

TEST_P(Collections, Dicts) {
  md::Id scores_hid, total_hid;
  {
    md::Session s(storage());
    auto scores = make_scores(10);
    scores_hid = scores.hid();
    EXPECT_EQ(scores.size(), 3u);
    EXPECT_EQ(scores.keys(), (std::vector<std::string>{"max", "mean", "min"}));
    EXPECT_EQ(*scores["mean"], 5.0);
    EXPECT_TRUE(scores.contains("max"));
    EXPECT_FALSE(scores.contains("median"));
    total_hid = total(scores).hid();
    // A dict of element refs keeps their histories.
    std::map<std::string, md::Ref<double>> picked{{"a", scores["max"]}, {"b", scores["min"]}};
    EXPECT_EQ(*total(picked), 10.0);
    EXPECT_EQ(*total(Scores{{"x", 1.5}, {"y", 2.5}}), 4.0);
  }
  reopen();
  auto scores = storage().ref<Scores>(scores_hid);
  ASSERT_TRUE(scores);
  EXPECT_EQ(scores->get(), (Scores{{"max", 10.0}, {"mean", 5.0}, {"min", 0.0}}));
  auto creator = storage().creator_of((*scores)["max"]);
  ASSERT_TRUE(creator);
  EXPECT_EQ(creator->op, "__dict_getitem__");
  EXPECT_EQ(input_name_list(*creator), "dict,key");
  EXPECT_EQ(creator->input("key")->as<std::string>().get(), "max");
  EXPECT_EQ(creator->outputs.at(0).first, "dict_value");
  EXPECT_EQ(storage().ref(total_hid)->as<double>().get(), 15.0);
  // Dict inputs: one __make_dict__ input per key.
  std::vector<std::string> make_inputs;
  for (const auto& call : storage().calls_of("__make_dict__")) make_inputs.push_back(input_name_list(call));
  std::sort(make_inputs.begin(), make_inputs.end());
  EXPECT_EQ(make_inputs, (std::vector<std::string>{"a,b", "x,y"}));
  EXPECT_EQ(scores->to_json(), R"({"max":10.0,"mean":5.0,"min":0.0})");
  EXPECT_THROW((void)(*scores)["median"], md::Error);
  expect_consistent();
}

TEST_P(Collections, ContentReuseGivesElementsNewHistories) {
  md::Id hid_a, hid_b;
  {
    md::Session s(storage());
    auto a = primes_below(10);
    auto b = primes_below(inc(9));  // content-equal input, other history
    hid_a = a.hid();
    hid_b = b.hid();
    EXPECT_EQ(primes_runs, 1);
    EXPECT_EQ(a.cid(), b.cid());
    EXPECT_NE(a.hid(), b.hid());
    ASSERT_EQ(b.size(), 4u);
    EXPECT_NE(b[0].hid(), a[0].hid());
    EXPECT_EQ(b[0].cid(), a[0].cid());
    EXPECT_EQ(*b[1], 3);
  }
  reopen();
  // Each element of the reused list has its own getitem creator on that list.
  auto b = storage().ref<md::MList<int>>(hid_b);
  for (const auto& el : b->items()) {
    auto creator = storage().creator_of(el);
    ASSERT_TRUE(creator);
    EXPECT_EQ(creator->op, "__list_getitem__");
    EXPECT_EQ(creator->input("list")->hid(), hid_b);
  }
  EXPECT_EQ(storage().calls_of("__list_getitem__").size(), 8u);
  expect_consistent();
}

TEST_P(Collections, NestedCollections) {
  using Grid = md::MList<md::MList<int>>;
  static std::atomic<int> runs{0};
  const auto grid = md::op("grid", {"n"}, [](int n) {
    ++runs;
    Grid g;
    for (int i = 0; i < n; ++i) {
      md::MList<int> row;
      for (int j = 0; j < n; ++j) row.push_back(i * n + j);
      g.push_back(row);
    }
    return g;
  });
  const auto grid_sum = md::op("grid_sum", {"g"}, [](const Grid& g) {
    int t = 0;
    for (const auto& row : g) t = std::accumulate(row.begin(), row.end(), t);
    return t;
  });
  runs = 0;
  md::Id g_hid;
  {
    md::Session s(storage());
    auto g = grid(3);
    g_hid = g.hid();
    EXPECT_EQ(g.size(), 3u);
    EXPECT_EQ(g[1].size(), 3u);
    EXPECT_EQ(*g[1][2], 5);
    EXPECT_EQ(*grid_sum(g), 36);
    EXPECT_EQ(*grid_sum(Grid{{1, 2}, {3}}), 6);
  }
  reopen();
  auto g = storage().ref<Grid>(g_hid);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->get(), (Grid{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}));
  auto inner = (*g)[2][0];
  auto creator = storage().creator_of(inner);
  ASSERT_TRUE(creator);
  EXPECT_EQ(creator->op, "__list_getitem__");
  auto row_creator = storage().creator_of(*creator->input("list"));
  ASSERT_TRUE(row_creator);
  EXPECT_EQ(row_creator->op, "__list_getitem__");
  EXPECT_EQ(row_creator->input("list")->hid(), g_hid);
  EXPECT_EQ(g->to_json(), "[[0,1,2],[3,4,5],[6,7,8]]");
  // 3 rows + 9 cells; the nested input: 2 inner __make_list__ calls and one outer.
  EXPECT_EQ(storage().calls_of("__list_getitem__").size(), 12u);
  EXPECT_EQ(storage().calls_of("__make_list__").size(), 3u);
  {
    md::Session s(storage());
    EXPECT_EQ(grid(3).hid(), g_hid);
  }
  EXPECT_EQ(runs, 1);
  expect_consistent();
}

TEST_P(Collections, SharedElementsAreStoredOnce) {
  {
    md::Session s(storage());
    (void)get_sum(std::vector<int>{1, 2, 3});
  }
  const auto before = storage().stats();
  {
    md::Session s(storage());
    (void)get_sum(std::vector<int>{3, 2, 1, 2});  // no new element value; a new shape, a new sum
  }
  const auto after = storage().stats();
  EXPECT_EQ(after.values - before.values, 2u);  // the shape [3,2,1,2] and the result 8
}

// Acceptance: two lists sharing 1,000 large elements store each element once.
TEST_P(Collections, ThousandSharedLargeElementsAreStoredOnce) {
  using Chunk = std::vector<double>;
  constexpr std::size_t n = 1000, chunk_doubles = 2048;  // 16 KiB per element, 16 MiB in all
  const auto make_chunks = md::op("make_chunks", {"seed"}, [](int seed) {
    md::MList<Chunk> out;
    for (std::size_t i = 0; i < n; ++i) {
      Chunk c(chunk_doubles);
      for (std::size_t j = 0; j < chunk_doubles; ++j) c[j] = static_cast<double>(seed) + static_cast<double>(i * j);
      out.push_back(std::move(c));
    }
    return out;
  });
  const auto reversed = md::op("reversed", {"chunks"}, [](const md::MList<Chunk>& chunks) {
    return md::MList<Chunk>(chunks.rbegin(), chunks.rend());
  });
  const auto count = md::op("count", {"chunks"}, [](const md::MList<Chunk>& chunks) { return chunks.size(); });
  const std::uint64_t payload = n * chunk_doubles * sizeof(double);
  auto disk_bytes = [&] {
    std::uint64_t bytes = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(m_dir.path()))
      if (e.is_regular_file()) bytes += e.file_size();
    return bytes;
  };
  {
    md::Session s(storage());
    (void)make_chunks(7);
  }
  reopen();
  const auto one_list_values = storage().stats().value_bytes;
  // Bytes on disk: the store file and its blob files (the file backend only).
  const bool on_disk = GetParam() == md::testing::Backend::file;
  const auto one_list_disk = on_disk ? disk_bytes() : 0;
  {
    // A second list holding the same 1,000 elements in another order, made by an op, and a
    // third one passed in as element refs: no element is stored again.
    md::Session s(storage());
    auto chunks = make_chunks(7);
    auto back = reversed(chunks);
    EXPECT_EQ(back.size(), n);
    EXPECT_EQ(back[0].cid(), chunks[n - 1].cid());
    EXPECT_EQ(*count(back.items()), n);
  }
  reopen();
  const auto stats = storage().stats();
  std::cout << "[ dedup    ] " << n << " elements of " << chunk_doubles * sizeof(double) << " bytes: payload "
            << payload << " B; values after one list " << one_list_values << " B, after three lists sharing them "
            << stats.value_bytes << " B";
  EXPECT_GE(one_list_values, payload);
  // The second and third lists add their shapes (16 bytes per element) and the counts only.
  EXPECT_LT(stats.value_bytes - one_list_values, n * 16 * 2 + 4096);
  if (on_disk) {
    const auto disk = disk_bytes();
    std::cout << "; on disk " << one_list_disk << " B -> " << disk << " B";
    // Each element once: the store is far below two copies of the payload (the calls and
    // refs of the second list's getitem calls and the third list's make_list call take the rest).
    EXPECT_LT(disk, payload + payload / 4);
    EXPECT_LT(disk - one_list_disk, payload / 8);
  }
  std::cout << '\n';
}

TEST_P(Collections, EmptyCollections) {
  md::Session s(storage());
  auto sum = get_sum(std::vector<int>{});
  EXPECT_EQ(*sum, 0);
  auto none = primes_below(2);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(none.get().empty());
  EXPECT_EQ(*get_sum(none), 0);
}

TEST_P(Collections, PlainCallsOutsideSessions) {
  // Outside a session an op is a plain function; collection refs still give element refs.
  auto primes = primes_below(10);
  EXPECT_FALSE(primes.has_ids());
  EXPECT_EQ(primes.size(), 4u);
  EXPECT_EQ(*primes[3], 7);
  EXPECT_EQ(*get_sum(primes), 17);
  EXPECT_EQ(*get_sum(primes.slice(0, 2)), 5);
  // Such refs can be passed into a session: the values count.
  md::Session s(storage());
  auto sum = get_sum(primes.slice(1, 3));
  EXPECT_TRUE(sum.has_ids());
  EXPECT_EQ(*sum, 8);
  auto again = get_sum(std::vector<int>{3, 5});
  EXPECT_EQ(again.hid(), sum.hid());
}

TEST_P(Collections, ClearErrors) {
  md::Id inc_hid;
  {
    md::Session s(storage());
    auto primes = primes_below(10);
    try {
      (void)primes[4];
      ADD_FAILURE() << "no error for an index out of range";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("index 4 is out of range"), std::string::npos) << e.what();
    }
    inc_hid = inc(1).hid();
    EXPECT_THROW((void)get_sum(md::Ref<md::MList<int>>()), md::Error);
    EXPECT_THROW((void)get_sum(std::vector<md::Ref<int>>{md::Ref<int>()}), md::Error);
  }
  // A plain value read as a transparent list.
  auto atom = storage().ref<md::MList<int>>(inc_hid);
  ASSERT_TRUE(atom);
  try {
    (void)atom->size();
    ADD_FAILURE() << "no error for a plain value read as a list";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::decode);
    EXPECT_NE(std::string(e.what()).find("not a transparent list"), std::string::npos) << e.what();
  }
  // The structural op names are reserved.
  try {
    (void)md::op("__make_list__", {"x"}, [](int x) { return x; });
    ADD_FAILURE() << "no error for a reserved op name";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("reserved"), std::string::npos) << e.what();
  }
}

MANDALA_INSTANTIATE_BACKENDS(Collections);

}  // namespace
