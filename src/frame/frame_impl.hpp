#pragma once
// The data of a ComputationFrame and the graph algorithms over it. Nodes are keyed by name (a
// frame has few nodes and many elements); element sets are sorted vectors of interned ids, and
// element-level adjacency goes through the Universe's creator/consumer indexes.

#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "frame/universe.hpp"
#include "mandala/frame.hpp"

namespace mandala::detail {

struct Node {
  bool is_var = true;
  std::string op;  ///< function nodes: the op name
  ElemSet elems;
  std::map<std::string, std::set<std::string>> in;   ///< label -> source nodes
  std::map<std::string, std::set<std::string>> out;  ///< label -> target nodes
};

using NodeSets = std::map<std::string, ElemSet>;

struct FrameImpl {
  std::shared_ptr<Universe> u;
  std::map<std::string, Node, std::less<>> nodes;

  Node& node(std::string_view name);
  const Node& node(std::string_view name) const;
  [[nodiscard]] bool has(std::string_view name) const { return nodes.find(name) != nodes.end(); }
  Node& add_var(const std::string& name);
  Node& add_func(const std::string& name, const std::string& op);
  void add_edge(const std::string& src, const std::string& dst, const std::string& label);
  void drop_edge(const std::string& src, const std::string& dst, const std::string& label);
  [[nodiscard]] bool has_edge(const std::string& src, const std::string& dst, const std::string& label) const;
  void drop_node(const std::string& name);
  [[nodiscard]] std::vector<Edge> edges() const;
  [[nodiscard]] std::vector<Edge> in_edges(const std::string& name) const;
  [[nodiscard]] std::vector<Edge> out_edges(const std::string& name) const;
  [[nodiscard]] std::set<std::string> in_neighbors(const std::string& name) const;
  [[nodiscard]] std::set<std::string> out_neighbors(const std::string& name) const;

  /// The original's get_new_vname / get_new_fname (hints split at the LAST underscore).
  [[nodiscard]] std::string new_vname(const std::string& hint) const;
  [[nodiscard]] std::string new_fname(const std::string& hint) const;

  /// Adds calls to a function node and their tracked inputs/outputs to the connected variables
  /// (elements are appended unsorted; call finish_adds() before reading sets).
  void add_calls(const std::string& fname, std::span<const Elem> calls);
  /// Appends the inputs/outputs of `calls` (of function node `f`) to the pending lists of the
  /// variables across f's edges with their labels.
  void pend_ios(const Node& f, std::span<const Elem> calls);
  void finish_adds();
  std::map<std::string, ElemSet> m_pending;
  /// During one expansion (expand / expand_all): refs whose consumers were loaded already.
  std::shared_ptr<std::vector<char>> m_consumers_resolved;

  /// Elements of the other endpoint of edge src -[label]-> dst adjacent to `elems` (which
  /// belong to dst when going back, to src when going forward).
  [[nodiscard]] ElemSet adjacent(const std::string& src, const std::string& dst, const std::string& label,
                                 const ElemSet& elems, Direction direction) const;
  [[nodiscard]] NodeSets source_elements() const;
  [[nodiscard]] NodeSets sink_elements() const;
  /// Fixed point of reachability from `initial` (semi-naive worklist); every node in the result.
  [[nodiscard]] NodeSets reachable(const NodeSets& initial, Direction direction, Reach how) const;
  [[nodiscard]] std::set<std::string> reachable_nodes(const std::set<std::string>& from, Direction direction) const;
  [[nodiscard]] std::vector<std::string> topological_order() const;

  // In-place operations used by the public API.
  void select_nodes(const std::set<std::string>& keep);
  void select_subsets(const NodeSets& elems);
  void drop_unreachable(Direction direction, Reach how);
  /// After a restriction of `before` (weak reach keeps calls with only some inputs/outputs): a
  /// connected input/output of a call that is in none of the variables joined by its label goes
  /// back into those of them that held it in `before` (all of them when none did).
  void complete_ios(const FrameImpl& before);
  /// Removes calls with a connected input/output in none of the variables joined by its label,
  /// then what is no longer reachable from sources (after element sets were cut arbitrarily).
  void prune_to_invariant();
  void cleanup();
  void expand(Direction direction, const std::vector<std::string>& vars, Recursive recursive,
              const ExpandOptions& options);
  /// One expansion step on `vars`; returns the names of nodes it added.
  std::set<std::string> expand_step(Direction direction, const std::set<std::string>& vars,
                                    const ExpandOptions& options);
  void merge_into(const std::string& node, const std::string& into);
  void rename(const std::string& from, const std::string& to);

  [[nodiscard]] std::size_t num_refs() const;
  [[nodiscard]] std::size_t num_calls() const;
  [[nodiscard]] std::vector<std::string> violations() const;
};

/// midstream() without completing the inputs/outputs of the calls kept: what df() reads, as the
/// original's df() does.
std::unique_ptr<FrameImpl> midstream_of(const FrameImpl& self, const std::vector<std::string>& nodes, Reach how);

}  // namespace mandala::detail
