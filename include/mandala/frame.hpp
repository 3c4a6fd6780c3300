#pragma once
// ComputationFrame: a "generalized dataframe" over stored calls (mandala's CF). A frame is a
// graph of variable nodes (sets of refs) and function nodes (sets of calls of one op) joined by
// edges labelled with input/output names. It is grown from an op or from refs by expansion and
// turned into a Table whose rows are (partial) executions.
//
//   auto frame = storage.cf(inc).expand_forward();
//   std::cout << frame.graph_description() << '\n' << frame.eval() << '\n';
//
// Invariant: an element sits in the variable(s) its own call connects it to. When function node
// `f` has edges labelled `L`, the input/output `L` of every call in `f` is in at least one of the
// variables joined to `f` by `L`, not necessarily in all of them: when `final(t)` consumes the
// outputs of `mul -> w` and of `add -> z`, mul's outputs stay out of `z`, so the table shows no
// value of mul under `z` and no row that only restates another. (Calls placed later bring their
// inputs/outputs to every variable joined by then; expanding forward from `inc` in that diamond
// places final's calls fed by mul first, so add's outputs also show under `w`, as in the
// original.) Expansion, restriction by reachability, union, difference, merging and renaming keep
// it. As in the original, raw predicate restriction (see Closure), removing a variable
// (select_nodes, drop) and intersecting frames that hold a call's input/output in different
// variables may leave that input/output in none of them. invariant_violations() checks it.
//
// Conventions:
// - Every operation that changes a frame has a returning form, which leaves the frame alone and
//   returns the result (`frame.expand_back()`), and an in-place form with the suffix `_inplace`
//   that changes the frame and returns it (`frame.expand_back_inplace()`).
// - Node names are unique across variables and functions. Unknown node names are
//   Errc::invalid_argument.
// - A frame and the frames derived from it share the elements loaded from the storage; use them
//   from one thread at a time. Frames keep their storage open while they live. A frame is a
//   snapshot: calls stored later are seen by new frames (storage.cf(...)) and by expansion, but
//   what a frame already holds is not refreshed.
//
// Where this differs from the original (shared/reference/mandala-spec.md section 5):
// - Expansion places calls as the original does: a call new to a function node brings its
//   inputs/outputs to the variables joined to the node by their labels at that moment; calls
//   already in the node bring nothing. One addition: when a label gets its first edge at a node
//   that already holds calls, those calls' inputs/outputs along it join the variable (the original
//   leaves them in no variable, so they lose their history in df()).
// - Unions are refused only when they break the invariant above; the original refuses a union
//   unless every input/output is in every variable of its label.
// - A function node keeps a label only through an edge: an intersection that keeps the node but
//   none of the edges of a label shows no `@label` for it (the original keeps the empty label).
// - df() of one node gives its values (or calls); frames of unconnected parts or of isolated
//   variables give the union of their rows (the original raises IndexError).
// - Empty function nodes are valid (printable, drawable); cleanup() and difference() remove
//   empty nodes (the original's removal is a no-op).
// - expand_*(vars, Recursive::yes) continues from the variables each step adds (the original
//   ignores `recursive` when variables are given).
// - New variable names split hints at the last underscore (`a_b_3` -> `a_b_4`, the original
//   gives `a_3`); node names are unique across variables and functions.
// - The graph description sorts `a | b` alternatives and inputs by label, and orders lines by a
//   deterministic topological order (ties by name).
// - df() joins: null matches null as in pandas, except that a row whose shared columns are all
//   null matches nothing (pandas pairs it with every such row: a cartesian product).
// - Restrictions keep the invariant: after weak reachability, a kept call's input/output that is
//   in none of its label's variables returns to those that held it before; difference() removes
//   calls left with an input/output in none of its label's variables. df() reads the strong
//   midstream as it is, as the original.
// - isin() compares canonical encodings (content ids); the `closed` restriction variants keep
//   whole computations, so the result satisfies the invariant.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"
#include "mandala/ref.hpp"
#include "mandala/storage.hpp"
#include "mandala/table.hpp"

namespace mandala {

namespace detail {
struct FrameImpl;
}

enum class Direction { back, forward };
/// Strong (computational) reachability adds a call only when all its connected inputs (going
/// forward) or outputs (going back) are reached; weak reachability when any of them is.
enum class Reach { strong, weak };
enum class Recursive { no, yes };
/// Whether df() includes function-node columns.
enum class Calls { include, exclude };
enum class Join { outer, inner };
/// Predicate restriction: `raw` keeps the matching refs and the calls adjacent to them (the
/// original's isin / `<`; the result may break the invariant); `closed` keeps every computation
/// that involves a matching ref: its history, what was computed from it, and the complete
/// inputs/outputs of every kept call (the invariant holds).
enum class Closure { raw, closed };

struct ExpandOptions {
  /// Drop fetched calls that are already anywhere in the frame.
  bool skip_existing = false;
  /// Put calls into existing nodes where the original would (same op, or subset/superset).
  bool reuse_existing = true;
};

struct Edge {
  std::string source;
  std::string target;
  std::string label;
  friend auto operator<=>(const Edge&, const Edge&) = default;
};

struct NodeStats {
  std::string name;
  bool is_variable = true;
  std::string op;           ///< function nodes: the op name
  std::size_t size = 0;     ///< values of a variable, calls of a function node
  std::size_t sources = 0;  ///< elements not reached along any in-edge
  std::size_t sinks = 0;    ///< elements not reached along any out-edge
};

struct DfOptions {
  /// Columns to keep (node names); empty = all nodes. Columns come out in topological order.
  std::vector<std::string> columns{};
  Calls calls = Calls::include;
  Values values = Values::values;
  Join join = Join::outer;
};

struct DotOptions {
  bool verbose = false;        ///< source/sink counts per variable, value counts per edge
  std::string rankdir = "TB";  ///< "TB" or "LR"
};

class MANDALA_API ComputationFrame {
 public:
  // ---- construction ------------------------------------------------------------------------
  /// All calls of the op (of one version when given), pending ones included: one function node
  /// named after the op, one variable per input and output name seen in the calls. An op without
  /// calls gives a frame with one empty function node.
  static ComputationFrame from_op(Storage& storage, std::string_view op_name,
                                  std::optional<std::uint32_t> version = std::nullopt);
  /// One variable `v` holding the refs (which must come from `storage`).
  static ComputationFrame from_refs(Storage& storage, const std::vector<AnyRef>& refs);
  /// One variable per key.
  static ComputationFrame from_vars(Storage& storage, const std::map<std::string, std::vector<AnyRef>>& vars);

  ComputationFrame(const ComputationFrame& other);
  ComputationFrame& operator=(const ComputationFrame& other);
  ComputationFrame(ComputationFrame&&) noexcept;
  ComputationFrame& operator=(ComputationFrame&&) noexcept;
  ~ComputationFrame();
  [[nodiscard]] ComputationFrame copy() const { return *this; }

  // ---- structure ---------------------------------------------------------------------------
  [[nodiscard]] std::vector<std::string> vnames() const;  ///< sorted
  [[nodiscard]] std::vector<std::string> fnames() const;  ///< sorted
  [[nodiscard]] std::vector<std::string> nodes() const;   ///< sorted
  [[nodiscard]] bool has_node(std::string_view name) const;
  [[nodiscard]] bool is_variable(std::string_view name) const;
  [[nodiscard]] bool is_function(std::string_view name) const;
  [[nodiscard]] std::vector<Edge> edges() const;  ///< sorted
  [[nodiscard]] std::vector<Edge> in_edges(std::string_view node) const;
  [[nodiscard]] std::vector<Edge> out_edges(std::string_view node) const;
  [[nodiscard]] std::vector<std::string> in_neighbors(std::string_view node) const;
  [[nodiscard]] std::vector<std::string> out_neighbors(std::string_view node) const;
  /// Variables without in-edges / out-edges.
  [[nodiscard]] std::vector<std::string> sources() const;
  [[nodiscard]] std::vector<std::string> sinks() const;
  /// The op of a function node.
  [[nodiscard]] std::string op_of(std::string_view fname) const;
  /// Nodes in topological order (cycles: strongly connected components in topological order,
  /// names sorted within one).
  [[nodiscard]] std::vector<std::string> topological_order() const;

  /// Number of elements in a node.
  [[nodiscard]] std::size_t size(std::string_view node) const;
  /// Distinct refs over all variables / distinct calls over all function nodes.
  [[nodiscard]] std::size_t num_refs() const;
  [[nodiscard]] std::size_t num_calls() const;
  [[nodiscard]] bool empty() const { return num_refs() == 0 && num_calls() == 0; }
  /// History ids of a node's elements (sorted).
  [[nodiscard]] std::vector<Id> hids(std::string_view node) const;
  /// The refs of a variable (sorted by hid).
  [[nodiscard]] std::vector<AnyRef> refs(std::string_view vname) const;
  /// The calls of a function node (sorted by hid).
  [[nodiscard]] std::vector<CallInfo> calls(std::string_view fname) const;
  /// Per node: elements not reached along any in-edge (sources) / out-edge (sinks), as hids.
  [[nodiscard]] std::map<std::string, std::vector<Id>> source_elements() const;
  [[nodiscard]] std::map<std::string, std::vector<Id>> sink_elements() const;

  /// Human-readable violations of the invariant and of internal consistency; empty when sound.
  [[nodiscard]] std::vector<std::string> invariant_violations() const;

  // ---- expansion (spec 5.5) -----------------------------------------------------------------
  /// Adds the calls that created refs of the given variables (all variables when empty) that have
  /// no creator in the frame yet, grouping them into function nodes and adding variables for
  /// their inputs. Recursive::yes repeats until nothing changes; with explicit variables it
  /// continues from the variables each step adds (the original ignores `recursive` then).
  [[nodiscard]] ComputationFrame expand_back(const std::vector<std::string>& vars = {},
                                             Recursive recursive = Recursive::no, ExpandOptions options = {}) const;
  ComputationFrame& expand_back_inplace(const std::vector<std::string>& vars = {}, Recursive recursive = Recursive::no,
                                        ExpandOptions options = {});
  [[nodiscard]] ComputationFrame expand_back(Recursive recursive, ExpandOptions options = {}) const {
    return expand_back({}, recursive, options);
  }
  ComputationFrame& expand_back_inplace(Recursive recursive, ExpandOptions options = {}) {
    return expand_back_inplace({}, recursive, options);
  }
  /// The dual of expand_back: the calls that consumed refs of the variables.
  [[nodiscard]] ComputationFrame expand_forward(const std::vector<std::string>& vars = {},
                                                Recursive recursive = Recursive::no, ExpandOptions options = {}) const;
  ComputationFrame& expand_forward_inplace(const std::vector<std::string>& vars = {},
                                           Recursive recursive = Recursive::no, ExpandOptions options = {});
  [[nodiscard]] ComputationFrame expand_forward(Recursive recursive, ExpandOptions options = {}) const {
    return expand_forward({}, recursive, options);
  }
  ComputationFrame& expand_forward_inplace(Recursive recursive, ExpandOptions options = {}) {
    return expand_forward_inplace({}, recursive, options);
  }
  /// expand_back and expand_forward (recursive) alternately until no refs or calls are added.
  [[nodiscard]] ComputationFrame expand_all(ExpandOptions options = {}) const;
  ComputationFrame& expand_all_inplace(ExpandOptions options = {});

  // ---- reachability and restriction (spec 5.6) ------------------------------------------------
  /// The computations downstream of the nodes' elements.
  [[nodiscard]] ComputationFrame downstream(const std::vector<std::string>& nodes, Reach how = Reach::strong) const;
  /// The computations upstream of the nodes' elements.
  [[nodiscard]] ComputationFrame upstream(const std::vector<std::string>& nodes, Reach how = Reach::strong) const;
  /// The subprogram spanned by the nodes: nodes on paths between them, restricted to what is
  /// reachable from their source elements. Empty for one node or unconnected nodes.
  [[nodiscard]] ComputationFrame midstream(const std::vector<std::string>& nodes, Reach how = Reach::strong) const;
  /// Keeps only elements reachable from the source elements (forward) or sink elements (back).
  [[nodiscard]] ComputationFrame drop_unreachable(Direction direction, Reach how = Reach::strong) const;
  ComputationFrame& drop_unreachable_inplace(Direction direction, Reach how = Reach::strong);
  /// The induced sub-frame on the nodes (all edges among them).
  [[nodiscard]] ComputationFrame select_nodes(const std::vector<std::string>& nodes) const;
  [[nodiscard]] ComputationFrame operator[](std::string_view node) const { return select_nodes({std::string(node)}); }
  [[nodiscard]] ComputationFrame operator[](const std::vector<std::string>& nodes) const { return select_nodes(nodes); }
  /// Restricts element sets (by hid) without closure; nodes not mentioned keep their elements.
  /// Hids not in a node are an error.
  [[nodiscard]] ComputationFrame select_subsets(const std::map<std::string, std::vector<Id>>& elements) const;

  /// Keeps the calls of function node `fname` computed under one of the semantic code versions
  /// (OpVersion::semantic_version, see Storage::versions), and, in the variables only that node
  /// creates, the outputs of those calls. Other nodes are unchanged.
  [[nodiscard]] ComputationFrame restrict_versions(std::string_view fname,
                                                   const std::vector<Id>& semantic_versions) const;

  /// Keeps refs equal (by content) to one of `values` in every variable (the original's isin).
  template <class T>
  [[nodiscard]] ComputationFrame isin(const std::vector<T>& values, Closure closure = Closure::raw) const {
    std::vector<Id> cids;
    for (const auto& v : values) cids.push_back(detail::content_id(encode_value(v)));
    return isin_cids(cids, {}, closure);
  }
  /// Keeps refs whose content id is in `cids`; only in `vars` when given (others unrestricted).
  [[nodiscard]] ComputationFrame isin_cids(const std::vector<Id>& cids, const std::vector<std::string>& vars = {},
                                           Closure closure = Closure::raw) const;
  /// Keeps refs whose history id is in `hids` (in every variable, or only in `vars`).
  [[nodiscard]] ComputationFrame isin_hids(const std::vector<Id>& hids, const std::vector<std::string>& vars = {},
                                           Closure closure = Closure::raw) const;
  /// Keeps refs of every variable whose value is a number less than `bound` (the original's
  /// `cf < x`); refs holding other values are dropped.
  [[nodiscard]] ComputationFrame less_than(double bound, Closure closure = Closure::raw) const;
  /// Keeps the refs of `var` whose decoded value satisfies `pred` (other variables unrestricted).
  [[nodiscard]] ComputationFrame where(std::string_view var, const std::function<bool(ValueView)>& pred,
                                       Closure closure = Closure::closed) const;
  /// Same, with the value decoded as T (a value that is not a T is Errc::decode).
  template <class T, class Pred>
  [[nodiscard]] ComputationFrame where_value(std::string_view var, Pred pred, Closure closure = Closure::closed) const {
    return where(
        var, [&](ValueView v) { return static_cast<bool>(pred(decode_value<T>(v))); }, closure);
  }
  /// Same, on the value's JSON text (ValueView::to_json()).
  [[nodiscard]] ComputationFrame where_json(std::string_view var, const std::function<bool(const std::string&)>& pred,
                                            Closure closure = Closure::closed) const;

  // ---- set operations (spec 5.7; over node names) ---------------------------------------------
  /// Union of graphs and elements; nodes of the same name merge. Errc::invalid_argument when a
  /// name is a variable in one frame and a function in the other, the frames come from different
  /// storages, or the union breaks the invariant.
  [[nodiscard]] ComputationFrame union_with(const ComputationFrame& other) const;
  /// Nodes, edges and elements present in both.
  [[nodiscard]] ComputationFrame intersection_with(const ComputationFrame& other) const;
  /// Per node, the elements not in `other`'s node of the same name; then calls left with a
  /// missing input/output are removed, elements no longer reachable from sources are dropped
  /// (forward, strong) and empty nodes removed.
  [[nodiscard]] ComputationFrame difference(const ComputationFrame& other) const;
  friend ComputationFrame operator|(const ComputationFrame& a, const ComputationFrame& b) { return a.union_with(b); }
  friend ComputationFrame operator&(const ComputationFrame& a, const ComputationFrame& b) {
    return a.intersection_with(b);
  }
  friend ComputationFrame operator-(const ComputationFrame& a, const ComputationFrame& b) { return a.difference(b); }

  // ---- mutation (spec 5.9) ---------------------------------------------------------------------
  [[nodiscard]] ComputationFrame drop(const std::vector<std::string>& nodes) const;
  ComputationFrame& drop_inplace(const std::vector<std::string>& nodes);
  [[nodiscard]] ComputationFrame drop_node(std::string_view node) const { return drop({std::string(node)}); }
  ComputationFrame& drop_node_inplace(std::string_view node) { return drop_inplace({std::string(node)}); }
  /// Like drop_node, but Errc::invalid_argument unless the node is a variable / function.
  [[nodiscard]] ComputationFrame drop_var(std::string_view vname) const;
  ComputationFrame& drop_var_inplace(std::string_view vname);
  [[nodiscard]] ComputationFrame drop_func(std::string_view fname) const;
  ComputationFrame& drop_func_inplace(std::string_view fname);
  /// Renames a node (variable or function); the new name must be free.
  [[nodiscard]] ComputationFrame rename(std::string_view node, std::string_view new_name) const;
  ComputationFrame& rename_inplace(std::string_view node, std::string_view new_name);
  [[nodiscard]] ComputationFrame rename(const std::map<std::string, std::string>& names) const;
  ComputationFrame& rename_inplace(const std::map<std::string, std::string>& names);
  /// Moves the elements of `node` into `into` (same kind), redirects its edges and drops it.
  [[nodiscard]] ComputationFrame merge_into(std::string_view node, std::string_view into) const;
  ComputationFrame& merge_into_inplace(std::string_view node, std::string_view into);
  /// Repeatedly merges a variable into another that strictly contains its refs until none is
  /// left (as the original).
  [[nodiscard]] ComputationFrame merge_vars() const;
  ComputationFrame& merge_vars_inplace();
  /// Removes empty nodes.
  [[nodiscard]] ComputationFrame cleanup() const;
  ComputationFrame& cleanup_inplace();

  // ---- extraction (spec 5.8) -------------------------------------------------------------------
  /// The table of (partial) executions: per sink variable, one row per ref with its history in
  /// the frame, joined on shared columns (null matches null). A frame of unconnected parts gives
  /// the union of their rows; one node gives one column of its elements.
  [[nodiscard]] Table df(const DfOptions& options = {}) const;
  /// df() of the given columns (calls included).
  [[nodiscard]] Table eval(const std::vector<std::string>& columns = {}, Values values = Values::values) const;
  /// One row per ref of a variable with its history (df()'s step 4).
  [[nodiscard]] Table history(std::string_view vname, Calls calls = Calls::include) const;
  /// One row per call of a function node; columns are its input and output names (null when the
  /// ref is not in the frame).
  [[nodiscard]] Table func_table(std::string_view fname) const;

  // ---- display (spec 5.10) ---------------------------------------------------------------------
  /// The original's print_graph(): isolated variables, then one line per function node in
  /// topological order, `out@output, ... = f(input=var, ...)`.
  [[nodiscard]] std::string graph_description() const;
  /// Counts and the graph description (the original's repr).
  [[nodiscard]] std::string summary() const;
  [[nodiscard]] std::vector<NodeStats> node_stats() const;
  /// Creator and consumer ops of a variable with call counts (the original's var_info).
  [[nodiscard]] std::string var_info(std::string_view vname) const;
  /// Graphviz DOT: variables as blue boxes with value counts, functions as red boxes with the op
  /// and call counts, edges labelled.
  [[nodiscard]] std::string to_dot(const DotOptions& options = {}) const;
  /// SVG rendered by the Graphviz `dot` program; Errc::not_found when `dot` is not installed.
  [[nodiscard]] std::string to_svg(const DotOptions& options = {}) const;
  friend MANDALA_API std::ostream& operator<<(std::ostream& os, const ComputationFrame& frame);

  // ---- deletion (spec 5.11) --------------------------------------------------------------------
  /// Drops the frame's calls and every call downstream of them from the storage; returns how
  /// many calls were removed. The frame itself is unchanged.
  std::size_t delete_calls();
  /// Drops every call found in the table's cells (and every call downstream of them) from the
  /// storage, like the original's delete_calls_from_df; e.g. the rows of a filtered df().
  std::size_t delete_calls(const Table& table);

  /// Internal: the implementation (src/frame).
  [[nodiscard]] const detail::FrameImpl& impl() const noexcept { return *m_impl; }
  explicit ComputationFrame(std::unique_ptr<detail::FrameImpl> impl);

 private:
  std::unique_ptr<detail::FrameImpl> m_impl;
};

template <class R, class... Ps>
ComputationFrame Storage::cf(const Op<R, Ps...>& op) {
  return ComputationFrame::from_op(*this, op.name(), op.version());
}

}  // namespace mandala
