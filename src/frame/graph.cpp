// FrameImpl: structure, naming, element adjacency, reachability, topological order,
// expansion, selection and the invariant check.

#include <algorithm>
#include <deque>
#include <functional>
#include <unordered_map>

#include "frame/frame_impl.hpp"

namespace mandala::detail {
namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() < 10 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

/// Index-based view of the frame graph for the element algorithms.
struct GraphView {
  struct E {
    std::size_t other;
    std::uint32_t label;  // universe name id, no_name when no element can have it
  };
  std::vector<const std::string*> names;
  std::vector<const Node*> nodes;
  std::vector<std::vector<E>> in, out;
  std::unordered_map<std::string_view, std::size_t> index;

  explicit GraphView(const FrameImpl& f) {
    for (const auto& [name, node] : f.nodes) {
      index.emplace(name, names.size());
      names.push_back(&name);
      nodes.push_back(&node);
    }
    in.resize(names.size());
    out.resize(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
      for (const auto& [label, dsts] : nodes[i]->out) {
        const auto l = f.u->find_name(label);
        for (const auto& d : dsts) {
          const auto j = index.at(d);
          out[i].push_back({j, l});
          in[j].push_back({i, l});
        }
      }
    }
  }
};

bool has_io(std::span<const Io> ios, std::uint32_t label, Elem ref) {
  return std::any_of(ios.begin(), ios.end(), [&](const Io& io) { return io.label == label && io.ref == ref; });
}

/// Marks in `out` the elements of `other` (a node's members) adjacent to `elems` across an edge
/// with label id `l`: going back, creators of refs (`elems_are_refs`) or inputs of calls; going
/// forward, consumers of refs or outputs of calls.
void mark_adjacent(const Universe& u, std::uint32_t l, const ElemSet& elems, bool elems_are_refs, Direction direction,
                   const ElemBits& other, ElemBits& out) {
  if (direction == Direction::back) {
    if (elems_are_refs) {
      for (auto r : elems) {
        const Elem c = u.creator(r);
        if (c != no_elem && other.test(c) && has_io(u.call(c).outputs, l, r)) out.set(c);
      }
    } else {
      for (auto c : elems)
        for (const auto& io : u.call(c).inputs)
          if (io.label == l && other.test(io.ref)) out.set(io.ref);
    }
  } else {
    if (elems_are_refs) {
      for (auto r : elems)
        for (auto c : u.consumers(r))
          if (other.test(c) && has_io(u.call(c).inputs, l, r)) out.set(c);
    } else {
      for (auto c : elems)
        for (const auto& io : u.call(c).outputs)
          if (io.label == l && other.test(io.ref)) out.set(io.ref);
    }
  }
}

}  // namespace

// ---- structure --------------------------------------------------------------------------------

Node& FrameImpl::node(std::string_view name) {
  auto it = nodes.find(name);
  if (it == nodes.end()) throw Error(Errc::invalid_argument, "node " + std::string(name) + " is not in the frame");
  return it->second;
}

const Node& FrameImpl::node(std::string_view name) const {
  auto it = nodes.find(name);
  if (it == nodes.end()) throw Error(Errc::invalid_argument, "node " + std::string(name) + " is not in the frame");
  return it->second;
}

Node& FrameImpl::add_var(const std::string& name) {
  if (has(name)) throw Error(Errc::invalid_argument, "node " + name + " already exists in the frame");
  Node& n = nodes[name];
  n.is_var = true;
  return n;
}

Node& FrameImpl::add_func(const std::string& name, const std::string& op) {
  if (has(name)) throw Error(Errc::invalid_argument, "node " + name + " already exists in the frame");
  Node& n = nodes[name];
  n.is_var = false;
  n.op = op;
  return n;
}

void FrameImpl::add_edge(const std::string& src, const std::string& dst, const std::string& label) {
  Node& s = node(src);
  Node& d = node(dst);
  if (s.is_var == d.is_var)
    throw Error(Errc::invalid_argument, "an edge joins a variable and a function node, not " + src + " and " + dst);
  s.out[label].insert(dst);
  d.in[label].insert(src);
}

void FrameImpl::drop_edge(const std::string& src, const std::string& dst, const std::string& label) {
  auto erase = [](std::map<std::string, std::set<std::string>>& adj, const std::string& l, const std::string& other) {
    auto it = adj.find(l);
    if (it == adj.end()) return;
    it->second.erase(other);
    if (it->second.empty()) adj.erase(it);
  };
  erase(node(src).out, label, dst);
  erase(node(dst).in, label, src);
}

bool FrameImpl::has_edge(const std::string& src, const std::string& dst, const std::string& label) const {
  auto it = nodes.find(src);
  if (it == nodes.end()) return false;
  auto l = it->second.out.find(label);
  return l != it->second.out.end() && l->second.contains(dst);
}

void FrameImpl::drop_node(const std::string& name) {
  for (const auto& e : in_edges(name)) drop_edge(e.source, e.target, e.label);
  for (const auto& e : out_edges(name)) drop_edge(e.source, e.target, e.label);
  nodes.erase(nodes.find(name));
}

std::vector<Edge> FrameImpl::edges() const {
  std::vector<Edge> out;
  for (const auto& [name, n] : nodes)
    for (const auto& [label, dsts] : n.out)
      for (const auto& d : dsts) out.push_back({name, d, label});
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Edge> FrameImpl::in_edges(const std::string& name) const {
  std::vector<Edge> out;
  for (const auto& [label, srcs] : node(name).in)
    for (const auto& s : srcs) out.push_back({s, name, label});
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<Edge> FrameImpl::out_edges(const std::string& name) const {
  std::vector<Edge> out;
  for (const auto& [label, dsts] : node(name).out)
    for (const auto& d : dsts) out.push_back({name, d, label});
  std::sort(out.begin(), out.end());
  return out;
}

std::set<std::string> FrameImpl::in_neighbors(const std::string& name) const {
  std::set<std::string> out;
  for (const auto& [label, srcs] : node(name).in) out.insert(srcs.begin(), srcs.end());
  return out;
}

std::set<std::string> FrameImpl::out_neighbors(const std::string& name) const {
  std::set<std::string> out;
  for (const auto& [label, dsts] : node(name).out) out.insert(dsts.begin(), dsts.end());
  return out;
}

std::string FrameImpl::new_vname(const std::string& hint) const {
  const auto pos = hint.rfind('_');
  if (pos != std::string::npos && pos > 0 && all_digits(std::string_view(hint).substr(pos + 1))) {
    // "v_3": find the smallest free "v_i" with i >= 3 (split at the last underscore)
    const std::string base = hint.substr(0, pos);
    if (base == "output") return new_vname("var_0");
    auto i = std::stoul(hint.substr(pos + 1));
    while (has(base + "_" + std::to_string(i))) ++i;
    return base + "_" + std::to_string(i);
  }
  if (!has(hint)) return hint;
  std::size_t i = 0;
  while (has(hint + "_" + std::to_string(i))) ++i;
  return hint + "_" + std::to_string(i);
}

std::string FrameImpl::new_fname(const std::string& hint) const {
  if (!has(hint)) return hint;
  std::size_t i = 0;
  while (has(hint + "_" + std::to_string(i))) ++i;
  return hint + "_" + std::to_string(i);
}

void FrameImpl::add_calls(const std::string& fname, std::span<const Elem> calls) {
  auto& own = m_pending[fname];
  own.insert(own.end(), calls.begin(), calls.end());
  pend_ios(node(fname), calls);
}

void FrameImpl::pend_ios(const Node& f, std::span<const Elem> calls) {
  // Per edge label (a universe name id), the pending lists of the variables across such edges.
  std::vector<std::pair<std::uint32_t, ElemSet*>> ins, outs;
  auto targets = [&](const std::map<std::string, std::set<std::string>>& adj, auto& into) {
    for (const auto& [label, vars] : adj) {
      const auto l = u->find_name(label);
      if (l == no_name) continue;  // no call has an input/output with this label
      for (const auto& v : vars) into.emplace_back(l, &m_pending[v]);
    }
  };
  targets(f.in, ins);
  targets(f.out, outs);
  for (auto c : calls) {
    const CallRow& row = u->call(c);
    for (const auto& io : row.inputs)
      for (const auto& [l, pending] : ins)
        if (io.label == l) pending->push_back(io.ref);
    for (const auto& io : row.outputs)
      for (const auto& [l, pending] : outs)
        if (io.label == l) pending->push_back(io.ref);
  }
}

void FrameImpl::finish_adds() {
  for (auto& [name, added] : m_pending) {
    Node& n = node(name);
    const std::size_t space = u->space(n.is_var);
    if (added.size() * 64 < space) {  // few: sort them
      normalize(added);
      n.elems = set_union(n.elems, added);
    } else {  // many: mark them, and read the marks in order
      ElemBits bits(n.elems, space);
      for (auto e : added) bits.set(e);
      n.elems = bits.elems();
    }
  }
  m_pending.clear();
}

std::size_t FrameImpl::num_refs() const {
  std::vector<char> seen(u->num_refs(), 0);
  std::size_t n = 0;
  for (const auto& [name, node] : nodes)
    if (node.is_var)
      for (auto e : node.elems)
        if (!seen[e]) seen[e] = 1, ++n;
  return n;
}

std::size_t FrameImpl::num_calls() const {
  std::vector<char> seen(u->num_calls(), 0);
  std::size_t n = 0;
  for (const auto& [name, node] : nodes)
    if (!node.is_var)
      for (auto e : node.elems)
        if (!seen[e]) seen[e] = 1, ++n;
  return n;
}

// ---- element adjacency ------------------------------------------------------------------------

ElemSet FrameImpl::adjacent(const std::string& src, const std::string& dst, const std::string& label,
                            const ElemSet& elems, Direction direction) const {
  const Node& s = node(src);
  const Node& d = node(dst);
  const auto l = u->find_name(label);
  if (l == no_name) return {};
  const Node& other = direction == Direction::back ? s : d;
  const ElemBits members(other.elems, u->space(other.is_var));
  ElemBits out(u->space(other.is_var));
  mark_adjacent(*u, l, elems, direction == Direction::back ? d.is_var : s.is_var, direction, members, out);
  return out.elems();
}

/// Per node (or per variable), the elements not reached along any edge into it (`direction`
/// forward: sources) or out of it (back: sinks).
static NodeSets unreached_elements(const FrameImpl& f, Direction direction, bool vars_only = false) {
  const bool fwd = direction == Direction::forward;
  NodeSets out;
  for (const auto& [name, n] : f.nodes) {
    if (vars_only && !n.is_var) continue;
    const std::size_t space = f.u->space(n.is_var);
    const ElemBits members(n.elems, space);
    ElemBits reached(space);
    for (const auto& e : fwd ? f.in_edges(name) : f.out_edges(name)) {
      const auto l = f.u->find_name(e.label);
      if (l == no_name) continue;
      const Node& across = f.node(fwd ? e.source : e.target);
      mark_adjacent(*f.u, l, across.elems, across.is_var, direction, members, reached);
    }
    ElemSet unreached;
    for (auto e : n.elems)
      if (!reached.test(e)) unreached.push_back(e);
    out[name] = std::move(unreached);
  }
  return out;
}

NodeSets FrameImpl::source_elements() const { return unreached_elements(*this, Direction::forward); }

NodeSets FrameImpl::sink_elements() const { return unreached_elements(*this, Direction::back); }

// ---- reachability -----------------------------------------------------------------------------

NodeSets FrameImpl::reachable(const NodeSets& initial, Direction direction, Reach how) const {
  const GraphView g(*this);
  const std::size_t n = g.names.size();
  const bool fwd = direction == Direction::forward;
  std::vector<std::vector<char>> reached(n);
  std::vector<std::vector<Elem>> delta(n);
  std::deque<std::size_t> queue;
  std::vector<char> queued(n, 0);
  std::vector<ElemBits> member(n);
  for (std::size_t i = 0; i < n; ++i) {
    reached[i].assign(u->space(g.nodes[i]->is_var), 0);
    member[i] = ElemBits(g.nodes[i]->elems, u->space(g.nodes[i]->is_var));
  }
  auto add = [&](std::size_t i, Elem e) {
    if (reached[i][e]) return;
    reached[i][e] = 1;
    delta[i].push_back(e);
    if (!queued[i]) {
      queued[i] = 1;
      queue.push_back(i);
    }
  };
  for (const auto& [name, elems] : initial) {
    auto it = g.index.find(name);
    if (it == g.index.end()) continue;
    for (auto e : elems)
      if (member[it->second].test(e)) add(it->second, e);
  }
  // A call of function node `m` is strongly reached when each of its inputs (forward) or outputs
  // (back) whose label has an edge at `m` is reached in some variable across such an edge.
  auto strongly_reached = [&](std::size_t m, Elem c) {
    const auto& ios = fwd ? u->call(c).inputs : u->call(c).outputs;
    const auto& edges = fwd ? g.in[m] : g.out[m];
    std::size_t needed = 0;
    for (const auto& io : ios) {
      bool connected = false, found = false;
      for (const auto& e : edges) {
        if (e.label != io.label) continue;
        connected = true;
        if (reached[e.other][io.ref]) {
          found = true;
          break;
        }
      }
      if (!connected) continue;
      ++needed;
      if (!found) return false;
    }
    return needed > 0;
  };
  while (!queue.empty()) {
    const std::size_t i = queue.front();
    queue.pop_front();
    queued[i] = 0;
    std::vector<Elem> d;
    d.swap(delta[i]);
    const Node& from = *g.nodes[i];
    for (const auto& e : fwd ? g.out[i] : g.in[i]) {
      if (e.label == no_name) continue;
      const std::size_t m = e.other;
      const ElemBits& to = member[m];
      if (from.is_var) {
        // to is a function node: consumers (forward) / creators (back) of the new refs
        std::vector<Elem> candidates;
        for (auto r : d) {
          if (fwd) {
            for (auto c : u->consumers(r))
              if (!reached[m][c] && to.test(c) && has_io(u->call(c).inputs, e.label, r)) candidates.push_back(c);
          } else {
            const Elem c = u->creator(r);
            if (c != no_elem && !reached[m][c] && to.test(c) && has_io(u->call(c).outputs, e.label, r))
              candidates.push_back(c);
          }
        }
        for (auto c : candidates)
          if (how == Reach::weak || strongly_reached(m, c)) add(m, c);
      } else {
        // to is a variable: outputs (forward) / inputs (back) of the new calls along the label
        for (auto c : d)
          for (const auto& io : fwd ? u->call(c).outputs : u->call(c).inputs)
            if (io.label == e.label && to.test(io.ref)) add(m, io.ref);
      }
    }
  }
  NodeSets out;
  for (std::size_t i = 0; i < n; ++i) {
    ElemSet s;
    for (auto e : g.nodes[i]->elems)
      if (reached[i][e]) s.push_back(e);
    out[*g.names[i]] = std::move(s);
  }
  return out;
}

std::set<std::string> FrameImpl::reachable_nodes(const std::set<std::string>& from, Direction direction) const {
  std::set<std::string> seen;
  std::vector<std::string> stack(from.begin(), from.end());
  while (!stack.empty()) {
    auto n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (const auto& m : direction == Direction::forward ? out_neighbors(n) : in_neighbors(n))
      if (!seen.contains(m)) stack.push_back(m);
  }
  return seen;
}

std::vector<std::string> FrameImpl::topological_order() const {
  // Tarjan's strongly connected components, then Kahn over the condensation; ties (and nodes
  // within one component) by name, so the order is deterministic.
  const GraphView g(*this);
  const std::size_t n = g.names.size();
  std::vector<std::size_t> comp(n, SIZE_MAX), low(n, 0), idx(n, SIZE_MAX);
  std::vector<char> on_stack(n, 0);
  std::vector<std::size_t> stack;
  std::size_t counter = 0, ncomp = 0;
  std::function<void(std::size_t)> strong = [&](std::size_t v) {
    idx[v] = low[v] = counter++;
    stack.push_back(v);
    on_stack[v] = 1;
    for (const auto& e : g.out[v]) {
      if (idx[e.other] == SIZE_MAX) {
        strong(e.other);
        low[v] = std::min(low[v], low[e.other]);
      } else if (on_stack[e.other]) {
        low[v] = std::min(low[v], idx[e.other]);
      }
    }
    if (low[v] == idx[v]) {
      std::size_t w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = 0;
        comp[w] = ncomp;
      } while (w != v);
      ++ncomp;
    }
  };
  for (std::size_t v = 0; v < n; ++v)
    if (idx[v] == SIZE_MAX) strong(v);
  std::vector<std::vector<std::size_t>> members(ncomp);
  for (std::size_t v = 0; v < n; ++v) members[comp[v]].push_back(v);  // names are in sorted order
  std::vector<std::set<std::size_t>> succ(ncomp);
  std::vector<std::size_t> indegree(ncomp, 0);
  for (std::size_t v = 0; v < n; ++v)
    for (const auto& e : g.out[v])
      if (comp[v] != comp[e.other] && succ[comp[v]].insert(comp[e.other]).second) ++indegree[comp[e.other]];
  // ready components ordered by their first (smallest) member name
  std::set<std::pair<std::size_t, std::size_t>> ready;
  for (std::size_t c = 0; c < ncomp; ++c)
    if (indegree[c] == 0) ready.insert({members[c].front(), c});
  std::vector<std::string> out;
  while (!ready.empty()) {
    const auto c = ready.begin()->second;
    ready.erase(ready.begin());
    for (auto v : members[c]) out.push_back(*g.names[v]);
    for (auto s : succ[c])
      if (--indegree[s] == 0) ready.insert({members[s].front(), s});
  }
  return out;
}

// ---- selection --------------------------------------------------------------------------------

void FrameImpl::select_nodes(const std::set<std::string>& keep) {
  for (auto it = nodes.begin(); it != nodes.end();) {
    if (!keep.contains(it->first)) it = nodes.erase(it);
    else ++it;
  }
  auto prune = [&](std::map<std::string, std::set<std::string>>& adj) {
    for (auto it = adj.begin(); it != adj.end();) {
      std::erase_if(it->second, [&](const std::string& s) { return !keep.contains(s); });
      if (it->second.empty()) it = adj.erase(it);
      else ++it;
    }
  };
  for (auto& [name, n] : nodes) {
    prune(n.in);
    prune(n.out);
  }
}

void FrameImpl::select_subsets(const NodeSets& elems) {
  for (const auto& [name, s] : elems)
    if (auto it = nodes.find(name); it != nodes.end()) it->second.elems = set_intersection(it->second.elems, s);
}

void FrameImpl::drop_unreachable(Direction direction, Reach how) {
  const auto initial = direction == Direction::forward ? source_elements() : sink_elements();
  if (how == Reach::strong) {  // keeps the invariant
    select_subsets(reachable(initial, direction, how));
    return;
  }
  const FrameImpl before = *this;
  select_subsets(reachable(initial, direction, how));
  complete_ios(before);  // weak reach may keep calls with only some inputs/outputs
}

void FrameImpl::complete_ios(const FrameImpl& before) {
  for (const auto& [name, n] : nodes) {
    if (n.is_var) continue;
    for (const auto* adj : {&n.in, &n.out}) {
      const bool inputs = adj == &n.in;
      for (const auto& [label, vars] : *adj) {
        const auto l = u->find_name(label);
        if (l == no_name) continue;
        for (auto c : n.elems)
          for (const auto& io : inputs ? u->call(c).inputs : u->call(c).outputs) {
            if (io.label != l) continue;
            if (std::any_of(vars.begin(), vars.end(),
                            [&](const std::string& v) { return contains(node(v).elems, io.ref); }))
              continue;
            // back into the variables that held it before the restriction (all of them when none did)
            bool placed = false;
            for (const auto& v : vars) {
              auto b = before.nodes.find(v);
              if (b != before.nodes.end() && contains(b->second.elems, io.ref)) {
                m_pending[v].push_back(io.ref);
                placed = true;
              }
            }
            if (!placed)
              for (const auto& v : vars) m_pending[v].push_back(io.ref);
          }
      }
    }
  }
  finish_adds();
}

void FrameImpl::prune_to_invariant() {
  for (auto& [name, n] : nodes) {
    if (n.is_var) continue;
    const auto& ins = n.in;  // lambdas cannot capture structured bindings before clang 16
    const auto& outs = n.out;
    std::erase_if(n.elems, [&](Elem c) {
      const CallRow& row = u->call(c);
      for (const auto* side : {&row.inputs, &row.outputs}) {
        const auto& adj = side == &row.inputs ? ins : outs;
        for (const auto& io : *side) {
          auto it = adj.find(u->name(io.label));
          if (it == adj.end()) continue;
          if (std::none_of(it->second.begin(), it->second.end(),
                           [&](const std::string& v) { return contains(node(v).elems, io.ref); }))
            return true;
        }
      }
      return false;
    });
  }
  // Forward strong reachability keeps the invariant of a frame that satisfies it.
  drop_unreachable(Direction::forward, Reach::strong);
}

void FrameImpl::cleanup() {
  std::vector<std::string> empty;
  for (const auto& [name, n] : nodes)
    if (n.elems.empty()) empty.push_back(name);
  for (const auto& name : empty) drop_node(name);
}

// ---- expansion --------------------------------------------------------------------------------

void FrameImpl::expand(Direction direction, const std::vector<std::string>& vars, Recursive recursive,
                       const ExpandOptions& options) {
  // Consumers loaded once per expansion (the store is not asked twice for the same ref).
  const bool outermost = m_consumers_resolved == nullptr;
  if (outermost) m_consumers_resolved = std::make_shared<std::vector<char>>();
  struct Reset {
    FrameImpl& f;
    bool active;
    ~Reset() {
      if (active) f.m_consumers_resolved.reset();
    }
  } reset{*this, outermost};
  if (vars.empty()) {
    while (true) {
      const auto before = nodes.size();
      std::set<std::string> all;
      for (const auto& [name, n] : nodes)
        if (n.is_var) all.insert(name);
      expand_step(direction, all, options);
      if (recursive == Recursive::no || nodes.size() == before) break;
    }
    return;
  }
  std::set<std::string> current;
  for (const auto& v : vars) {
    if (!node(v).is_var) throw Error(Errc::invalid_argument, v + " is a function node; expansion starts at variables");
    current.insert(v);
  }
  while (!current.empty()) {
    const auto added = expand_step(direction, current, options);
    if (recursive == Recursive::no) break;
    current.clear();
    for (const auto& name : added)
      if (has(name) && node(name).is_var) current.insert(name);
  }
}

std::set<std::string> FrameImpl::expand_step(Direction direction, const std::set<std::string>& vars,
                                             const ExpandOptions& options) {
  const bool back = direction == Direction::back;
  // 1. Expandable elements: refs of `vars` without a creator (back) / consumer (forward) here.
  const auto expandable = unreached_elements(*this, back ? Direction::forward : Direction::back, /*vars_only=*/true);
  ElemSet refs;
  for (const auto& v : vars) refs = set_union(refs, expandable.at(v));
  if (refs.empty()) return {};
  // 2. Their creators / consumers, loaded in bulk.
  auto calls = back ? u->load_creators(refs) : u->load_consumers(refs, m_consumers_resolved.get());
  {
    ElemBits found(u->num_calls());
    for (auto c : calls) found.set(c);
    if (options.skip_existing)
      for (const auto& [name, n] : nodes)
        if (!n.is_var)
          for (auto c : n.elems) found.reset(c);
    calls = found.elems();
  }
  // 3. Group by (op, the variables of `vars` holding each glued-side ref, per label): first by
  // ids (op, then sorted (label, index in `vars`) pairs), then by names, which orders the groups.
  std::vector<const std::string*> var_names;
  std::vector<ElemBits> var_members;
  for (const auto& v : vars) {
    var_names.push_back(&v);
    var_members.emplace_back(node(v).elems, u->num_refs());
  }
  std::map<std::vector<std::uint32_t>, std::vector<Elem>> by_ids;
  auto last = by_ids.end();
  std::vector<std::uint32_t> ids;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> glued_ids;
  for (auto c : calls) {
    const CallRow& row = u->call(c);
    glued_ids.clear();
    for (const auto& io : back ? row.outputs : row.inputs)
      for (std::uint32_t i = 0; i < var_members.size(); ++i)
        if (var_members[i].test(io.ref)) glued_ids.emplace_back(io.label, i);
    std::sort(glued_ids.begin(), glued_ids.end());
    glued_ids.erase(std::unique(glued_ids.begin(), glued_ids.end()), glued_ids.end());
    ids.assign(1, row.op);
    for (const auto& [label, i] : glued_ids) {
      ids.push_back(label);
      ids.push_back(i);
    }
    if (last == by_ids.end() || last->first != ids) {  // consecutive calls mostly share a key
      last = by_ids.find(ids);
      if (last == by_ids.end()) last = by_ids.emplace(ids, std::vector<Elem>{}).first;
    }
    last->second.push_back(c);
  }
  using Key = std::pair<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>>;
  std::map<Key, std::vector<Elem>> groups;
  for (auto& [key_ids, group] : by_ids) {
    std::map<std::string, std::set<std::string>> glued;
    for (std::size_t k = 1; k < key_ids.size(); k += 2) glued[u->name(key_ids[k])].insert(*var_names[key_ids[k + 1]]);
    Key key;
    key.first = u->name(key_ids[0]);
    for (const auto& [label, vs] : glued)
      key.second.emplace_back(label, std::vector<std::string>(vs.begin(), vs.end()));
    groups.emplace(std::move(key), std::move(group));
  }
  // 4. Place each group (in key order) into a function node, reusing nodes like the original.
  std::set<std::string> added;
  for (const auto& [key, group] : groups) {
    const std::string& op = key.first;
    std::string fname;
    if (options.reuse_existing) {
      for (const auto& [name, n] : nodes) {
        if (n.is_var) continue;
        if (is_subset(group, n.elems) || (!n.elems.empty() && is_subset(n.elems, group)) || n.op == op) {
          fname = name;
          break;
        }
      }
    }
    if (fname.empty()) {
      fname = new_fname(op);
      add_func(fname, op);
      added.insert(fname);
    }
    // Labels that get their first edge at this node (on either side) while it holds calls.
    const bool had_calls = !node(fname).elems.empty();
    std::vector<std::string> new_in_labels, new_out_labels;
    for (const auto& [label, vs] : key.second) {
      const Node& f = node(fname);
      if (had_calls && !(back ? f.out : f.in).contains(label)) (back ? new_out_labels : new_in_labels).push_back(label);
      for (const auto& v : vs) {
        if (back) {
          if (!has_edge(fname, v, label)) add_edge(fname, v, label);
        } else if (!has_edge(v, fname, label)) {
          add_edge(v, fname, label);
        }
      }
    }
    // Variables for the other side (inputs when going back, outputs going forward).
    std::map<std::uint32_t, ElemSet> dual_ids;
    for (auto c : group)
      for (const auto& io : back ? u->call(c).inputs : u->call(c).outputs) dual_ids[io.label].push_back(io.ref);
    std::map<std::string, ElemSet> dual;
    for (auto& [label, refs_of_label] : dual_ids) dual.emplace(u->name(label), std::move(refs_of_label));
    for (auto& [label, refs_of_label] : dual) {
      const Node& f = node(fname);
      if ((back ? f.in : f.out).contains(label)) continue;
      normalize(refs_of_label);
      std::string vname;
      if (options.reuse_existing) {
        for (const auto& [name, n] : nodes) {
          if (!n.is_var) continue;
          if (is_subset(refs_of_label, n.elems) || (!n.elems.empty() && is_subset(n.elems, refs_of_label))) {
            vname = name;
            break;
          }
        }
      }
      if (vname.empty()) {
        vname = new_vname(label);
        add_var(vname);
        added.insert(vname);
      }
      if (had_calls) (back ? new_in_labels : new_out_labels).push_back(label);
      if (back) add_edge(vname, fname, label);
      else add_edge(fname, vname, label);
    }
    // The calls new to the node bring their inputs/outputs to every variable now joined to it by
    // their labels (calls already there bring nothing, as in the original). A label new to a node
    // that held calls gets those calls' inputs/outputs too, so each of them has a variable.
    const ElemSet& existing = node(fname).elems;  // unchanged until finish_adds()
    if (existing.empty()) {
      add_calls(fname, group);
    } else {
      ElemSet fresh;
      for (auto c : group)
        if (!contains(existing, c)) fresh.push_back(c);
      add_calls(fname, fresh);
    }
    if (!new_in_labels.empty() || !new_out_labels.empty()) {
      const Node& f = node(fname);
      std::vector<std::pair<ElemSet*, std::uint32_t>> ins, outs;  // (pending list, label id)
      for (const auto& label : new_in_labels)
        for (const auto& v : f.in.at(label)) ins.emplace_back(&m_pending[v], u->find_name(label));
      for (const auto& label : new_out_labels)
        for (const auto& v : f.out.at(label)) outs.emplace_back(&m_pending[v], u->find_name(label));
      for (auto c : existing) {
        const CallRow& row = u->call(c);
        for (const auto& [pending, l] : ins)
          for (const auto& io : row.inputs)
            if (io.label == l) pending->push_back(io.ref);
        for (const auto& [pending, l] : outs)
          for (const auto& io : row.outputs)
            if (io.label == l) pending->push_back(io.ref);
      }
    }
    finish_adds();
  }
  return added;
}

// ---- mutation ---------------------------------------------------------------------------------

void FrameImpl::merge_into(const std::string& name, const std::string& into) {
  if (name == into) throw Error(Errc::invalid_argument, "cannot merge node " + name + " into itself");
  Node& a = node(name);
  Node& b = node(into);
  if (a.is_var != b.is_var)
    throw Error(Errc::invalid_argument,
                "cannot merge " + name + " into " + into + ": one is a variable, the other a function");
  if (!a.is_var && a.op != b.op)
    throw Error(Errc::invalid_argument,
                "cannot merge function node " + name + " (op " + a.op + ") into " + into + " (op " + b.op + ")");
  b.elems = set_union(b.elems, a.elems);
  for (const auto& e : in_edges(name)) {
    drop_edge(e.source, e.target, e.label);
    add_edge(e.source, into, e.label);
  }
  for (const auto& e : out_edges(name)) {
    drop_edge(e.source, e.target, e.label);
    add_edge(into, e.target, e.label);
  }
  drop_node(name);
}

void FrameImpl::rename(const std::string& from, const std::string& to) {
  if (from == to) {
    node(from);
    return;
  }
  if (has(to)) throw Error(Errc::invalid_argument, "cannot rename " + from + " to " + to + ": that name is taken");
  auto it = nodes.find(from);
  if (it == nodes.end()) throw Error(Errc::invalid_argument, "node " + from + " is not in the frame");
  auto handle = nodes.extract(it);
  handle.key() = to;
  nodes.insert(std::move(handle));
  Node& n = node(to);
  for (const auto& [label, srcs] : n.in)
    for (const auto& s : srcs) {
      auto& set = node(s).out[label];
      set.erase(from);
      set.insert(to);
    }
  for (const auto& [label, dsts] : n.out)
    for (const auto& d : dsts) {
      auto& set = node(d).in[label];
      set.erase(from);
      set.insert(to);
    }
}

// ---- invariant --------------------------------------------------------------------------------

std::vector<std::string> FrameImpl::violations() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : nodes) {
    const std::size_t limit = n.is_var ? u->num_refs() : u->num_calls();
    if (!std::is_sorted(n.elems.begin(), n.elems.end()) ||
        std::adjacent_find(n.elems.begin(), n.elems.end()) != n.elems.end())
      out.push_back(name + ": element set is not sorted and unique");
    for (auto e : n.elems)
      if (e >= limit) out.push_back(name + ": element id out of range");
    for (const auto& [label, srcs] : n.in)
      for (const auto& s : srcs) {
        if (!has(s)) out.push_back(name + ": in-edge from missing node " + s);
        else if (!has_edge(s, name, label))
          out.push_back(name + ": in-edge " + s + " -" + label + "-> without out-edge");
        else if (node(s).is_var == n.is_var) out.push_back(name + ": edge between two nodes of one kind: " + s);
      }
    for (const auto& [label, dsts] : n.out)
      for (const auto& d : dsts) {
        if (!has(d)) out.push_back(name + ": out-edge to missing node " + d);
        else if (!node(d).in.contains(label) || !node(d).in.at(label).contains(name))
          out.push_back(name + ": out-edge -" + label + "-> " + d + " without in-edge");
      }
    if (n.is_var) continue;
    for (auto c : n.elems) {
      if (c >= limit) continue;
      const CallRow& row = u->call(c);
      if (u->name(row.op) != n.op)
        out.push_back(name + ": call " + row.hid.hex() + " of op " + u->name(row.op) + " in a node of op " + n.op);
      const std::string& node_name = name;  // lambdas cannot capture structured bindings before clang 16
      auto check = [&](std::span<const Io> ios, const std::map<std::string, std::set<std::string>>& adj,
                       const char* what) {
        for (const auto& io : ios) {
          auto it = adj.find(u->name(io.label));
          if (it == adj.end()) continue;
          const bool held = std::any_of(it->second.begin(), it->second.end(), [&](const std::string& v) {
            return has(v) && contains(node(v).elems, io.ref);
          });
          if (!held) {
            std::string vars;
            for (const auto& v : it->second) vars += (vars.empty() ? "" : " | ") + v;
            out.push_back(node_name + ": " + what + " " + u->name(io.name) + " of call " + row.hid.hex() +
                          " is in none of the variables joined by its label: " + vars);
          }
        }
      };
      check(row.inputs, n.in, "input");
      check(row.outputs, n.out, "output");
    }
  }
  return out;
}

}  // namespace mandala::detail
