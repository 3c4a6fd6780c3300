// The SQLite store below the engine (docs/storage-format.md 3.2): the compact io column
// round-trips every kind of input and output, digest indexes that hold 8-byte prefixes never
// confuse two ids sharing a prefix, a damaged io column is reported, not misread, and the
// streamed bulk reads hand over each call once, in storage order.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "codec/hash.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace st = mandala::store;
namespace fs = std::filesystem;

namespace {

md::Id id_of(const std::string& text) { return md::codec::content_id(std::as_bytes(std::span(text))); }

/// An id whose first 8 bytes are those of `prefix_of` (so both share every index key).
md::Id sharing_prefix(const md::Id& prefix_of, const std::string& text) {
  md::Id out = id_of(text);
  std::copy_n(prefix_of.bytes.begin(), 8, out.bytes.begin());
  return out;
}

std::vector<std::byte> bytes_of(const std::string& text) {
  const auto b = std::as_bytes(std::span(text));
  return {b.begin(), b.end()};
}

st::IoRef atom(const std::string& name, const std::string& value) {
  const auto cid = id_of(value);
  return {name, md::codec::atom_hid(cid), cid};
}

st::CallRecord call(const std::string& op, const md::Id& hid, std::vector<st::IoRef> inputs,
                    const std::vector<std::pair<std::string, std::string>>& outputs) {
  st::CallRecord r;
  r.hid = hid;
  r.cid = id_of("cid of " + hid.hex());
  r.op = op;
  r.inputs = std::move(inputs);
  for (const auto& [name, value] : outputs) r.outputs.push_back({name, md::codec::output_hid(hid, name), id_of(value)});
  r.created_ms = 1'700'000'000'123;
  return r;
}

/// A batch that registers the op, every value the calls name, and the calls.
st::WriteBatch batch_of(const std::vector<st::CallRecord>& calls) {
  st::WriteBatch b;
  std::vector<std::string> ops;
  for (const auto& c : calls) {
    if (std::find(ops.begin(), ops.end(), c.op) == ops.end()) {
      ops.push_back(c.op);
      std::vector<std::string> outs;
      for (const auto& o : c.outputs) outs.push_back(o.name);
      std::vector<std::string> ins;
      for (const auto& i : c.inputs) ins.push_back(i.name);
      b.ops.push_back({c.op, 0, ins, outs});
    }
    for (const auto* list : {&c.inputs, &c.outputs})
      for (const auto& r : *list) b.values.push_back({r.cid, bytes_of(r.cid.hex())});
    b.calls.push_back(c);
  }
  return b;
}

void expect_same(const st::CallRecord& a, const st::CallRecord& b) {
  EXPECT_EQ(a.hid, b.hid);
  EXPECT_EQ(a.cid, b.cid);
  EXPECT_EQ(a.op, b.op);
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.created_ms, b.created_ms);
  auto same_list = [](const std::vector<st::IoRef>& x, const std::vector<st::IoRef>& y) {
    ASSERT_EQ(x.size(), y.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      EXPECT_EQ(x[i].name, y[i].name);
      EXPECT_EQ(x[i].hid, y[i].hid);
      EXPECT_EQ(x[i].cid, y[i].cid);
    }
  };
  same_list(a.inputs, b.inputs);
  same_list(a.outputs, b.outputs);
}

class StoreSchema : public ::testing::Test {
 protected:
  md::testing::TempDir dir;
  fs::path db = dir.path() / "s.db";
  std::unique_ptr<st::Store> open() { return st::open_store(db.string(), {}); }
};

TEST_F(StoreSchema, EveryKindOfInputAndOutputRoundTrips) {
  // `first` has an atom input and a derived output; `second` takes first's output (an explicit
  // input hid) and an output whose hid is not the derived one (written explicitly).
  const auto first = call("f", id_of("call 1"), {atom("x", "1")}, {{"y", "2"}});
  auto second = call("g", id_of("call 2"), {{"a", first.outputs[0].hid, first.outputs[0].cid}, atom("b", "3")},
                     {{"out", "4"}, {"z", "5"}});
  second.outputs[1].hid = id_of("some other history");
  {
    auto s = open();
    s->write(batch_of({first, second}));
  }
  auto s = open();  // reopened
  expect_same(*s->call_by_hid(first.hid), first);
  expect_same(*s->call_by_hid(second.hid), second);
  expect_same(*s->call_by_content(second.cid, nullptr), second);
  expect_same(*s->creator_of(first.outputs[0].hid), first);
  expect_same(*s->creator_of(second.outputs[1].hid), second);
  const auto consumers = s->consumers_of(first.outputs[0].hid);
  ASSERT_EQ(consumers.size(), 1u);
  expect_same(consumers[0], second);
  EXPECT_EQ(s->ref_cid(second.outputs[1].hid), second.outputs[1].cid);
  EXPECT_EQ(s->ref_cid(first.inputs[0].hid), first.inputs[0].cid);
  EXPECT_FALSE(s->ref_cid(id_of("unknown")).has_value());
  ASSERT_EQ(s->calls_of("g", std::nullopt).size(), 1u);
  expect_same(s->calls_of("g", 0).front(), second);
  EXPECT_EQ(s->stats().calls, 2u);
  EXPECT_EQ(s->stats().refs, 5u);  // x, y (= a), b, out, z
}

TEST_F(StoreSchema, IdsSharingTheirIndexedPrefixAreKeptApart) {
  const auto h1 = id_of("call A");
  const auto h2 = sharing_prefix(h1, "call B");
  auto a = call("f", h1, {atom("x", "1")}, {{"y", "2"}});
  auto b = call("f", h2, {atom("x", "3")}, {{"y", "4"}});
  b.cid = sharing_prefix(a.cid, "content B");
  // b's output hid shares its prefix with a's; b's input shares its prefix with a's input.
  b.outputs[0].hid = sharing_prefix(a.outputs[0].hid, "output B");
  b.inputs[0].hid = sharing_prefix(a.inputs[0].hid, "input B");
  auto consumer = call("g", id_of("consumer"), {{"v", b.outputs[0].hid, b.outputs[0].cid}}, {{"w", "5"}});
  auto s = open();
  s->write(batch_of({a, b, consumer}));

  expect_same(*s->call_by_hid(h1), a);
  expect_same(*s->call_by_hid(h2), b);
  expect_same(*s->call_by_content(b.cid, nullptr), b);
  expect_same(*s->creator_of(a.outputs[0].hid), a);
  expect_same(*s->creator_of(b.outputs[0].hid), b);
  EXPECT_TRUE(s->consumers_of(a.outputs[0].hid).empty());
  ASSERT_EQ(s->consumers_of(b.outputs[0].hid).size(), 1u);
  ASSERT_EQ(s->consumers_of(b.inputs[0].hid).size(), 1u);
  expect_same(s->consumers_of(b.inputs[0].hid)[0], b);
  EXPECT_EQ(s->ref_cid(b.inputs[0].hid), b.inputs[0].cid);

  const md::Id only_a[] = {a.outputs[0].hid};
  const auto creators = s->creators_of_many(only_a);
  ASSERT_EQ(creators.size(), 1u);
  expect_same(creators[0], a);
  const md::Id only_b[] = {h2};
  ASSERT_EQ(s->calls_by_hids(only_b).size(), 1u);
  expect_same(s->calls_by_hids(only_b)[0], b);

  // Dropping a with its dependents leaves b and b's consumer alone.
  const md::Id drop[] = {h1};
  EXPECT_EQ(s->drop_calls(drop, true), 1u);
  EXPECT_FALSE(s->call_by_hid(h1).has_value());
  expect_same(*s->call_by_hid(h2), b);
  EXPECT_EQ(s->consumers_of(b.outputs[0].hid).size(), 1u);
  // Dropping b with its dependents takes the consumer along.
  const md::Id drop_b[] = {h2};
  EXPECT_EQ(s->drop_calls(drop_b, true), 2u);
  EXPECT_EQ(s->stats().calls, 0u);
  EXPECT_EQ(s->stats().refs, 0u);
}

TEST_F(StoreSchema, StreamedBulkReadsSeeEachCallOnceInStorageOrder) {
  // More calls than one IN-list chunk holds; every third is of version 1 of the op.
  std::vector<st::CallRecord> calls;
  std::vector<md::Id> hids, outputs, inputs;
  for (int i = 0; i < 600; ++i) {
    auto c = call("f", id_of("call " + std::to_string(i)), {atom("x", std::to_string(i))}, {{"y", "out"}});
    if (i % 3 == 0) c.version = 1;
    calls.push_back(c);
    hids.push_back(c.hid);
    outputs.push_back(c.outputs[0].hid);
    inputs.push_back(c.inputs[0].hid);
  }
  auto batch = batch_of(calls);
  batch.ops.push_back({"f", 1, {"x"}, {"y"}});
  {
    auto s = open();
    s->write(batch);
  }
  auto s = open();  // reopened
  auto streamed = [](auto&& read) {
    std::vector<md::Id> seen;
    read([&](const st::CallRecord& r) { seen.push_back(r.hid); });
    return seen;
  };
  auto hids_of = [](const std::vector<st::CallRecord>& records) {
    std::vector<md::Id> out;
    for (const auto& r : records) out.push_back(r.hid);
    return out;
  };
  // Every version, merged in storage order; one version.
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->calls_of("f", std::nullopt, sink); }), hids);
  EXPECT_EQ(hids_of(s->calls_of("f", std::nullopt)), hids);
  std::vector<md::Id> v1;
  for (std::size_t i = 0; i < hids.size(); i += 3) v1.push_back(hids[i]);
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->calls_of("f", 1, sink); }), v1);
  EXPECT_TRUE(streamed([&](const st::CallSink& sink) { s->calls_of("g", std::nullopt, sink); }).empty());
  // Asked in reverse order (and twice), creators and consumers come once each, in storage order.
  std::vector<md::Id> asked(outputs.rbegin(), outputs.rend());
  asked.insert(asked.end(), outputs.begin(), outputs.begin() + 10);
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->creators_of_many(asked, sink); }), hids);
  EXPECT_EQ(hids_of(s->creators_of_many(asked)), hids);
  const std::vector<md::Id> some_inputs = {inputs[500], inputs[7], md::Id{}};
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->consumers_of_many(some_inputs, sink); }),
            (std::vector<md::Id>{hids[7], hids[500]}));
  EXPECT_TRUE(streamed([&](const st::CallSink& sink) { s->consumers_of_many(outputs, sink); }).empty());
  // A sink that throws ends the read; the next reads start afresh.
  int left = 5;
  EXPECT_THROW(s->creators_of_many(outputs,
                                   [&](const st::CallRecord&) {
                                     if (--left == 0) throw std::runtime_error("enough");
                                   }),
               std::runtime_error);
  EXPECT_THROW(s->calls_of("f", 0,
                           [&](const st::CallRecord&) {
                             if (--left < 0) throw std::runtime_error("enough");
                           }),
               std::runtime_error);
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->creators_of_many(outputs, sink); }), hids);
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->calls_of("f", std::nullopt, sink); }), hids);
  std::vector<md::Id> v0;
  for (std::size_t i = 0; i < hids.size(); ++i)
    if (i % 3 != 0) v0.push_back(hids[i]);
  EXPECT_EQ(streamed([&](const st::CallSink& sink) { s->calls_of("f", 0, sink); }), v0);
}

TEST_F(StoreSchema, WritingStoredCallsAgainChangesNothing) {
  const auto c = call("f", id_of("call"), {atom("x", "1")}, {{"y", "2"}});
  auto s = open();
  s->write(batch_of({c}));
  s->write(batch_of({c}));
  s.reset();
  auto again = open();
  again->write(batch_of({c}));
  EXPECT_EQ(again->stats().calls, 1u);
  EXPECT_EQ(again->stats().refs, 2u);
  EXPECT_EQ(again->consumers_of(c.inputs[0].hid).size(), 1u);
}

// A writer that looked its calls up may skip the store's own check for stored calls, but only
// while no other connection has written: a call another connection stored between the lookup
// and the write is still recorded once.
TEST_F(StoreSchema, LookedUpCallsStoredMeanwhileByAnotherConnectionAreNotDuplicated) {
  const auto c = call("f", id_of("call"), {atom("x", "1")}, {{"y", "2"}});
  const auto d = call("f", id_of("other call"), {atom("x", "3")}, {{"y", "4"}});
  auto a = open();
  auto b = open();
  EXPECT_FALSE(a->call_by_hid(c.hid));
  a->end_read();
  b->write(batch_of({c}));
  auto batch = batch_of({c, d});
  batch.calls_looked_up = true;
  a->write(batch);
  EXPECT_EQ(a->stats().calls, 2u);
  a->end_read();
  // With no other writer in between, the lookups are trusted (and the result is the same).
  const auto e = call("f", id_of("third call"), {atom("x", "5")}, {{"y", "6"}});
  EXPECT_FALSE(a->call_by_hid(e.hid));
  a->end_read();
  auto next = batch_of({e});
  next.calls_looked_up = true;
  a->write(next);
  a.reset();
  b.reset();
  auto again = open();
  EXPECT_EQ(again->stats().calls, 3u);
  EXPECT_EQ(again->consumers_of(c.inputs[0].hid).size(), 1u);
  for (const auto* x : {&c, &d, &e}) expect_same(*again->call_by_hid(x->hid), *x);
}

TEST_F(StoreSchema, TheIoColumnOfATrivialCallIsAsDocumented) {
  const auto c = call("inc", id_of("call"), {atom("x", "1")}, {{"output_0", "2"}});
  open()->write(batch_of({c}));
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "SELECT io FROM calls", -1, &q, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(q, 0));
  const std::vector<unsigned char> io(p, p + sqlite3_column_bytes(q, 0));
  sqlite3_finalize(q);
  sqlite3_close(raw);
  // 1 input: flags 0, name "x", cid; 1 output: flags 0x05 (output, name index), index 0, cid.
  std::vector<unsigned char> want = {0x01, 0x00, 0x01, 'x'};
  want.insert(want.end(), c.inputs[0].cid.bytes.begin(), c.inputs[0].cid.bytes.end());
  want.insert(want.end(), {0x01, 0x05, 0x00});
  want.insert(want.end(), c.outputs[0].cid.bytes.begin(), c.outputs[0].cid.bytes.end());
  EXPECT_EQ(io, want);
}

/// A call with the ids its op, inputs and semantic version give (docs/storage-format.md 2).
st::CallRecord real_call(const std::string& op, std::vector<st::IoRef> inputs, const std::optional<md::Id>& semantic) {
  st::CallRecord r = call(op, md::Id{}, std::move(inputs), {});
  std::vector<std::pair<std::string_view, md::Id>> hids, cids;
  for (const auto& i : r.inputs) {
    hids.emplace_back(i.name, i.hid);
    cids.emplace_back(i.name, i.cid);
  }
  const md::Id* code = semantic ? &*semantic : nullptr;
  r.hid = md::codec::call_id_sorted(op, 0, hids, code);
  r.cid = md::codec::call_id_sorted(op, 0, cids, code);
  r.outputs.push_back({"y", md::codec::output_hid(r.hid, "y"), id_of("output of " + r.hid.hex())});
  r.semantic = semantic;
  return r;
}

/// The length of each call's stored content id, by hid.
std::map<md::Id, int> stored_cid_lengths(const fs::path& db) {
  std::map<md::Id, int> out;
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(raw, "SELECT hid, length(cid) FROM calls", -1, &q, nullptr), SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW) {
    md::Id hid;
    std::memcpy(hid.bytes.data(), sqlite3_column_blob(q, 0), 16);
    out[hid] = sqlite3_column_int(q, 1);
  }
  sqlite3_finalize(q);
  sqlite3_close(raw);
  return out;
}

// A call whose inputs are all raw values keeps no content id (it is derived from the row, with
// the call's semantic version), and a lookup by content finds it under the hid any call of that
// content and raw inputs has. Other calls keep theirs, in the calls_by_cid index.
TEST_F(StoreSchema, ContentIdsOfCallsOfRawInputsAreDerivedNotStored) {
  const auto plain = real_call("f", {atom("a", "1"), atom("b", "2")}, std::nullopt);
  const auto versioned = real_call("f", {atom("a", "3"), atom("b", "4")}, id_of("semantic version"));
  // Same content as `plain`, but input a came from another call.
  auto derived_input =
      real_call("f", {{"a", id_of("history of a"), plain.inputs[0].cid}, plain.inputs[1]}, std::nullopt);
  ASSERT_EQ(derived_input.cid, plain.cid);
  auto unusual = real_call("f", {atom("a", "5")}, std::nullopt);
  unusual.cid = id_of("a content id not derived from the inputs");
  {
    auto s = open();
    s->write(batch_of({plain, versioned, derived_input, unusual}));
  }
  const auto lengths = stored_cid_lengths(db);
  EXPECT_EQ(lengths.at(plain.hid), 0);
  EXPECT_EQ(lengths.at(versioned.hid), 0);
  EXPECT_EQ(lengths.at(derived_input.hid), 16);
  EXPECT_EQ(lengths.at(unusual.hid), 16);

  auto s = open();  // reopened
  for (const st::CallRecord* c :
       std::initializer_list<const st::CallRecord*>{&plain, &versioned, &derived_input, &unusual})
    expect_same(*s->call_by_hid(c->hid), *c);
  expect_same(s->calls_of("f", std::nullopt).front(), plain);
  // By content: calls of raw inputs under their hid, the others by their stored content id.
  expect_same(*s->call_by_content(versioned.cid, &versioned.hid), versioned);
  EXPECT_FALSE(s->call_by_content(versioned.cid, nullptr).has_value());
  EXPECT_FALSE(s->call_by_content(versioned.cid, &plain.hid).has_value());  // another content there
  expect_same(*s->call_by_content(unusual.cid, nullptr), unusual);
  const auto same_content = s->call_by_content(plain.cid, &plain.hid);
  ASSERT_TRUE(same_content.has_value());
  EXPECT_EQ(same_content->cid, plain.cid);
}

TEST_F(StoreSchema, ADamagedIoColumnIsReportedAsCorruption) {
  const auto c = call("f", id_of("call"), {atom("x", "1")}, {{"y", "2"}});
  open()->write(batch_of({c}));
  for (const char* damage : {"x'01'", "x'0100017805'", "x''", "x'00020001'"}) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, ("UPDATE calls SET io = " + std::string(damage)).c_str(), nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(raw);
    auto s = open();
    try {
      (void)s->call_by_hid(c.hid);
      ADD_FAILURE() << "io " << damage << " must be refused";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::corrupt_store) << e.what();
      EXPECT_NE(std::string(e.what()).find("io column"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
