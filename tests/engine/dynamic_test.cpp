// Dynamic ops (mandala/dynamic.hpp): declarations as data, values encoded; the same calls as
// typed ops of the same declaration.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "mandala/mandala.hpp"
#include "support/backends.hpp"
#include "versioning/components.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

std::atomic<int> typed_runs{0};
std::atomic<int> dynamic_runs{0};

const auto typed_add = md::op("dyn_add", {"x", "y"},
                              [](std::int64_t x, std::int64_t y) {
                                ++typed_runs;
                                return x + y;
                              },
                              {.outputs = {"sum"}});

const md::DynamicOp dynamic_add("dyn_add", {"x", "y"}, 1, {.outputs = {"sum"}});

std::vector<md::EncodedValue> run_add(std::span<const md::DynamicArg> args) {
  ++dynamic_runs;
  std::int64_t sum = 0;
  for (const auto& a : args) sum += md::encoded_value(a).decode<std::int64_t>();
  return {md::EncodedValue::of(sum)};
}

md::DynamicArg value_arg(std::string name, std::int64_t v) { return {std::move(name), md::EncodedValue::of(v)}; }

class Dynamic : public BackendTest {
 protected:
  void SetUp() override {
    typed_runs = 0;
    dynamic_runs = 0;
    BackendTest::SetUp();
  }
};

TEST_P(Dynamic, SameIdsAsTypedOpAndReusesItsCalls) {
  md::Id typed_hid, typed_cid;
  {
    md::Session s(storage());
    const auto r = typed_add(2, 3);  // int converts to the int64 parameter: the same encoding
    typed_hid = r.hid();
    typed_cid = r.cid();
  }
  EXPECT_EQ(typed_runs, 1);
  reopen();
  {
    md::Session s(storage());
    const auto outs = dynamic_add({value_arg("x", 2), value_arg("y", 3)}, run_add);
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_EQ(outs[0].hid(), typed_hid);
    EXPECT_EQ(outs[0].cid(), typed_cid);
    EXPECT_EQ(md::encoded_value(outs[0]).decode<std::int64_t>(), 5);
    EXPECT_EQ(outs[0].as<std::int64_t>().get(), 5) << "a typed view of the lazy output decodes it";
  }
  EXPECT_EQ(dynamic_runs, 0) << "the dynamic op must reuse the typed op's call";
  EXPECT_EQ(storage().counters().reused_by_history, 1u);
}

TEST_P(Dynamic, TypedOpReusesDynamicCallsAndArgumentOrderIsByName) {
  md::Id dyn_hid;
  {
    md::Session s(storage());
    // Keyword order at the call site does not matter.
    const auto outs = dynamic_add({value_arg("y", 30), value_arg("x", 4)}, run_add);
    dyn_hid = outs.at(0).hid();
    EXPECT_TRUE(outs[0].in_memory());
  }
  EXPECT_EQ(dynamic_runs, 1);
  reopen();
  md::Session s(storage());
  const auto r = typed_add(4, 30);
  EXPECT_EQ(r.hid(), dyn_hid);
  EXPECT_EQ(*r, 34);
  EXPECT_EQ(typed_runs, 0) << "the typed op must reuse the dynamic op's call";
}

TEST_P(Dynamic, RefsKeepTheirHistoryAndChainAcrossKinds) {
  md::Session s(storage());
  const auto a = typed_add(1, 2);
  // A typed ref into a dynamic call, and the dynamic output into a typed call.
  const auto b = dynamic_add({{"x", md::AnyRef(a)}, value_arg("y", 10)}, run_add);
  const auto c = typed_add(b.at(0).as<std::int64_t>(), 100);
  EXPECT_EQ(*c, 113);
  const auto b_again = dynamic_add({{"x", md::AnyRef(a)}, value_arg("y", 10)}, run_add);
  EXPECT_EQ(b_again.at(0).hid(), b[0].hid());
  EXPECT_EQ(dynamic_runs, 1);
  // The same value without the history of `a` is another call (by history) of equal content.
  const auto d = dynamic_add({value_arg("x", 3), value_arg("y", 10)}, run_add);
  EXPECT_NE(d.at(0).hid(), b[0].hid());
  EXPECT_EQ(d[0].cid(), b[0].cid());
  EXPECT_EQ(dynamic_runs, 1) << "a content-equal call is reused";
  const auto creator = storage().creator_of(c);
  ASSERT_TRUE(creator.has_value());
  EXPECT_EQ(creator->input("x")->hid(), b[0].hid());
}

TEST_P(Dynamic, OmittedParametersAreLeftOutOfTheIdentity) {
  // A typed op with an ignored parameter: its calls have only the other inputs.
  const auto typed = md::op("dyn_scale", {"x", md::ignored("verbose", false)}, [](std::int64_t x, bool) {
    ++typed_runs;
    return x * 2;
  });
  const md::DynamicOp dynamic("dyn_scale", {"x", "verbose"}, 1);
  md::Session s(storage());
  const auto r = typed(21);
  const auto outs = dynamic({value_arg("x", 21)}, [](std::span<const md::DynamicArg>) {
    ++dynamic_runs;
    return std::vector{md::EncodedValue::of(std::int64_t{0})};
  });
  EXPECT_EQ(outs.at(0).hid(), r.hid());
  EXPECT_EQ(dynamic_runs, 0);
}

TEST_P(Dynamic, OutsideASessionItIsAPlainCall) {
  const auto outs = dynamic_add({value_arg("x", 1), value_arg("y", 2)}, run_add);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_FALSE(outs[0].has_ids());
  EXPECT_EQ(md::encoded_value(outs[0]).decode<std::int64_t>(), 3);
  // Passed into a session, such a ref counts as its value.
  md::Session s(storage());
  const auto r = dynamic_add({{"x", outs[0]}, value_arg("y", 0)}, run_add);
  const auto typed = typed_add(3, 0);
  EXPECT_EQ(r.at(0).hid(), typed.hid());
  EXPECT_EQ(storage().call(dynamic_add, std::vector{value_arg("x", 3), value_arg("y", 0)}, run_add).at(0).hid(),
            typed.hid());
}

TEST_P(Dynamic, ErrorsSayWhatIsWrong) {
  md::Session s(storage());
  const auto message = [&](auto&& f) -> std::string {
    try {
      f();
    } catch (const md::Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message([&] {
              (void)dynamic_add({value_arg("z", 1)}, run_add);
            }).find("op 'dyn_add' has no parameter 'z' (its parameters: x, y)"),
            std::string::npos);
  EXPECT_NE(message([&] {
              (void)dynamic_add({value_arg("x", 1), value_arg("x", 2)}, run_add);
            }).find("given twice"),
            std::string::npos);
  EXPECT_NE(message([&] {
              (void)dynamic_add({value_arg("x", 1)},
                                [](std::span<const md::DynamicArg>) { return std::vector<md::EncodedValue>{}; });
            }).find("returned 0 outputs but declares 1"),
            std::string::npos);
  EXPECT_NE(message([&] { (void)dynamic_add({{"x", md::AnyRef()}}, run_add); }).find("empty ref"), std::string::npos);
  // A declaration that disagrees with the typed op's outputs.
  const md::DynamicOp other("dyn_add", {"x", "y"}, 2);
  (void)typed_add(0, 0);
  EXPECT_NE(message([&] {
              (void)other({value_arg("x", 5)}, [](std::span<const md::DynamicArg>) {
                return std::vector{md::EncodedValue::of(1), md::EncodedValue::of(2)};
              });
            }).find("disagrees"),
            std::string::npos);
  EXPECT_THROW(md::DynamicOp("__make_list__", {"x"}, 1), md::Error);
  EXPECT_THROW(md::DynamicOp("f", {"x", "x"}, 1), md::Error);
}

TEST_P(Dynamic, OpenInputsTakeArgumentsNamedPerCall) {
  // A Python op f(x, *args, **kwargs): the declaration names x; each call adds its own names.
  const md::DynamicOp open("dyn_open", {"x"}, 1, {}, {.open_inputs = true});
  md::Id first;
  {
    md::Session s(storage());
    first = open({value_arg("x", 1), value_arg("args_0", 2), value_arg("z", 3)}, run_add).at(0).hid();
    const auto other = open({value_arg("x", 1), value_arg("w", 3)}, run_add);
    EXPECT_EQ(md::encoded_value(other.at(0)).decode<std::int64_t>(), 4);
    EXPECT_NE(other[0].hid(), first);
    // The order the arguments come in does not matter.
    EXPECT_EQ(open({value_arg("z", 3), value_arg("x", 1), value_arg("args_0", 2)}, run_add).at(0).hid(), first);
    EXPECT_EQ(dynamic_runs, 2);
    EXPECT_THROW((void)open({value_arg("x", 1), value_arg("output_0", 2)}, run_add), md::Error)
        << "an argument named like an output";
    EXPECT_THROW((void)open({value_arg("x", 1), value_arg("z", 2), value_arg("z", 3)}, run_add), md::Error);
  }
  reopen();
  md::Session s(storage());
  const auto again = open({value_arg("x", 1), value_arg("args_0", 2), value_arg("z", 3)}, run_add);
  EXPECT_EQ(again.at(0).hid(), first);
  EXPECT_EQ(dynamic_runs, 2);
  const auto creator = storage().creator_of(again[0]);
  ASSERT_TRUE(creator.has_value());
  EXPECT_EQ(creator->inputs.size(), 3u);
}

TEST_P(Dynamic, CodeGivenAsDataVersionsTheOp) {
  const auto code = [](const std::string& body) {
    const auto content = md::EncodedValue::of(body).content_id();
    return std::vector<md::CodeComponent>{{"op dyn_coded", "function", "", body, content},
                                          {"helpers.offset", "function", "", "def offset(): return 1", content}};
  };
  const md::DynamicOp v1("dyn_coded", {"x"}, 1, {}, {.code = code("return x")});
  const md::DynamicOp v2("dyn_coded", {"x"}, 1, {}, {.code = code("return x + 0")});
  md::Id h1, h2;
  {
    md::Session s(storage());
    h1 = v1({value_arg("x", 1)}, run_add).at(0).hid();
    // Another code in the same program and storage: resolved again, a new version.
    h2 = v2({value_arg("x", 1)}, run_add).at(0).hid();
    EXPECT_NE(h1, h2);
    EXPECT_EQ(dynamic_runs, 2);
    EXPECT_EQ(v1({value_arg("x", 1)}, run_add).at(0).hid(), h1) << "back to the first code: its call";
    EXPECT_EQ(dynamic_runs, 2);
  }
  reopen();
  const auto versions = storage().versions("dyn_coded");
  ASSERT_EQ(versions.size(), 2u);
  ASSERT_EQ(versions[0].components.size(), 2u);
  EXPECT_EQ(versions[0].components[0].name, "helpers.offset");
  EXPECT_EQ(versions[1].components[1].code, "return x + 0");
  EXPECT_NE(storage().diff_versions("dyn_coded", "1", "2").find("+return x + 0"), std::string::npos);
  md::Session s(storage());
  EXPECT_EQ(v2({value_arg("x", 1)}, run_add).at(0).hid(), h2);
  EXPECT_EQ(dynamic_runs, 2);
  EXPECT_THROW(md::DynamicOp("dyn_bad", {"x"}, 1, {},
                             {.code = std::vector<md::CodeComponent>{{"a", "function", "", "", {}},
                                                                     {"a", "function", "", "", {}}}}),
               md::Error);
}

TEST_P(Dynamic, CollectionOutputsAreTheTypedOpsMLists) {
  const auto typed = md::op("dyn_range", {"n"}, [](std::int64_t n) {
    ++typed_runs;
    md::MList<std::int64_t> out;
    for (std::int64_t i = 0; i < n; ++i) out.push_back(i * i);
    return out;
  });
  const auto list = std::make_shared<const md::DynamicShape>(md::DynamicShape{md::CollectionKind::list, nullptr});
  const md::DynamicOp dynamic("dyn_range", {"n"}, 1, {}, {.output_shapes = {*list}});
  const auto squares = [](std::span<const md::DynamicArg> args) {
    ++dynamic_runs;
    md::DynamicValue v;
    v.kind = md::CollectionKind::list;
    for (std::int64_t i = 0; i < md::encoded_value(args[0]).decode<std::int64_t>(); ++i)
      v.items.emplace_back(md::EncodedValue::of(i * i));
    return std::vector{v};
  };
  md::Id hid, element;
  {
    md::Session s(storage());
    const auto outs = dynamic.call_structured(storage().core(), {value_arg("n", 4)}, squares);
    hid = outs.at(0).hid();
    const auto elements = md::detail::load_elements(outs[0].state(), md::CollectionKind::list);
    ASSERT_EQ(elements->items.size(), 4u);
    element = elements->items[3]->hid;
    const auto value = md::encoded_value(outs[0]);
    const auto decoded = value.view();  // the root is a view into it
    const auto root = decoded.root();
    ASSERT_EQ(root.size(), 4u);
    EXPECT_EQ(root.at(3).as_int64(), 9);
    EXPECT_THROW((void)dynamic.call_in(storage().core(), {value_arg("n", 5)}, run_add), md::Error)
        << "collection outputs need call_structured";
    EXPECT_THROW((void)dynamic.call_structured(storage().core(), {value_arg("n", 6)},
                                               [](std::span<const md::DynamicArg>) {
                                                 return std::vector<md::DynamicValue>{md::EncodedValue::of(1)};
                                               }),
                 md::Error)
        << "a plain value for a list output";
  }
  reopen();
  md::Session s(storage());
  const auto r = typed(4);
  EXPECT_EQ(r.hid(), hid) << "the typed op's call";
  EXPECT_EQ(typed_runs, 0);
  EXPECT_EQ(r.size(), 4u);
  EXPECT_EQ(r[3].hid(), element);
  EXPECT_EQ(*r[3], 9);
  EXPECT_EQ(dynamic_runs, 1);
}

TEST_P(Dynamic, AnAtomRefIsTheRawValue) {
  const auto atom = md::atom_ref(md::EncodedValue::of(std::int64_t{41}));
  EXPECT_TRUE(atom.has_ids());
  EXPECT_EQ(atom.cid(), md::EncodedValue::of(std::int64_t{41}).content_id());
  md::Id hid;
  {
    md::Session s(storage());
    const auto a = dynamic_add({{"x", atom}, value_arg("y", 1)}, run_add);
    const auto b = typed_add(41, 1);
    EXPECT_EQ(a.at(0).hid(), b.hid());
    EXPECT_EQ(dynamic_runs + typed_runs, 1);
    hid = b.hid();
  }
  reopen();
  md::Session s(storage());
  const auto creator = storage().creator_of(*storage().ref(hid));
  ASSERT_TRUE(creator.has_value());
  EXPECT_EQ(creator->input("x")->hid(), atom.hid());
  EXPECT_EQ(md::encoded_value(*creator->input("x")).decode<std::int64_t>(), 41) << "its value was stored";
}

// A value whose encoding is made only when it must be stored: counts the encodings made.
struct Deferred {
  std::vector<std::int64_t> numbers;
  mutable std::atomic<int> encodings{0};
};

std::vector<std::byte> encode_deferred(const void* value) {
  const auto& d = *static_cast<const Deferred*>(value);
  ++d.encodings;
  return md::encode_value(d.numbers);
}

TEST_P(Dynamic, ADeferredRefIsEncodedOnlyWhenItsValueMustBeStored) {
  const std::vector<std::int64_t> numbers(20000, 7);
  const auto value = std::make_shared<Deferred>();
  value->numbers = numbers;
  const md::Id cid = md::typed_array_content_id(md::Dtype::i64, std::vector<std::uint64_t>{numbers.size()},
                                                numbers.data(), numbers.size() * sizeof(std::int64_t));
  ASSERT_EQ(cid, md::EncodedValue::of(numbers).content_id());
  const auto deferred = md::deferred_atom_ref(cid, value, &encode_deferred);
  EXPECT_EQ(deferred.hid(), md::atom_ref(md::EncodedValue::of(numbers)).hid()) << "the ids of the raw value";
  const md::DynamicOp length("dyn_length", {"xs"}, 1);
  int encodings_at_run = -1;
  const auto run = [&](std::span<const md::DynamicArg> args) {
    encodings_at_run = value->encodings;
    ++dynamic_runs;
    return std::vector{md::EncodedValue::of(
        static_cast<std::int64_t>(md::encoded_value(args[0]).decode<std::vector<std::int64_t>>().size()))};
  };
  md::Id hid;
  {
    md::Session s(storage());
    hid = length({{"xs", deferred}}, run).at(0).hid();
    EXPECT_EQ(encodings_at_run, 1) << "a new value is encoded before the op runs";
  }
  const int after_new = value->encodings;
  reopen();
  {
    md::Session s(storage());
    EXPECT_EQ(length({{"xs", deferred}}, run).at(0).hid(), hid);
    EXPECT_EQ(length({{"xs", md::EncodedValue::of(numbers)}}, run).at(0).hid(), hid) << "the same call as the value";
  }
  EXPECT_EQ(dynamic_runs, 1);
  EXPECT_EQ(value->encodings, after_new) << "a memoized call never encodes it";
  // Read back: the stored value, and the deferred ref's own value.
  md::Session s(storage());
  const auto creator = storage().creator_of(*storage().ref(hid));
  ASSERT_TRUE(creator.has_value());
  EXPECT_EQ(md::encoded_value(*creator->input("xs")).decode<std::vector<std::int64_t>>(), numbers);
  EXPECT_EQ(*deferred.as<std::vector<std::int64_t>>(), numbers) << "decoded from its encoding";
}

std::vector<std::string> g_warnings;

TEST_P(Dynamic, NoWarningAboutAMissingCodeFingerprint) {
  md::versioning::reset_warnings();
  g_warnings.clear();
  const auto previous = md::set_warning_sink([](const std::string& m) { g_warnings.push_back(m); });
  const md::DynamicOp fresh("dyn_fresh", {"x"}, 1);
  const auto typed = md::op("dyn_fresh_typed", {"x"}, [](int x) { return x; });
  {
    md::Session s(storage());
    (void)fresh({value_arg("x", 1)}, run_add);
    EXPECT_TRUE(g_warnings.empty()) << "a dynamic op's code is not C++: no fingerprint is expected";
    (void)typed(1);
    EXPECT_EQ(g_warnings.size(), 1u) << "typed ops without a fingerprint are still warned about";
  }
  md::set_warning_sink(previous);
}

TEST(EncodedValue, ValidatesAndHashesLikeTheCodec) {
  const auto v = md::EncodedValue::of(std::map<std::string, std::int64_t>{{"a", 1}, {"b", 2}});
  EXPECT_EQ(md::EncodedValue(v.bytes()), v);
  EXPECT_EQ(v.content_id(),
            md::detail::content_id(md::encode_value(std::map<std::string, std::int64_t>{{"a", 1}, {"b", 2}})));
  // The worked example of docs/storage-format.md, section 2.
  EXPECT_EQ(md::EncodedValue::of(5).content_id().hex(), "14bfa3372b6570ae95fc7da47f4114b6");
  EXPECT_THROW(md::EncodedValue({std::byte{0x92}, std::byte{0x01}}), md::Error) << "truncated array";
  EXPECT_THROW(md::EncodedValue({std::byte{0x01}, std::byte{0x01}}), md::Error) << "trailing bytes";
  EXPECT_THROW(md::EncodedValue(std::vector<std::byte>{}), md::Error) << "no value";
}

MANDALA_INSTANTIATE_BACKENDS(Dynamic);

}  // namespace
