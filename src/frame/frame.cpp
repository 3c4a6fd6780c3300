// ComputationFrame: construction, structure queries, and the returning / in-place forms of every
// operation over FrameImpl.

#include "mandala/frame.hpp"

#include <algorithm>

#include "engine/engine.hpp"
#include "frame/frame_impl.hpp"

namespace mandala {
using detail::Elem;
using detail::ElemSet;
using detail::FrameImpl;
using detail::NodeSets;

namespace {

std::unique_ptr<FrameImpl> new_impl(Storage& storage) {
  auto impl = std::make_unique<FrameImpl>();
  impl->u = std::make_shared<detail::Universe>(storage.core());
  return impl;
}

std::vector<std::string> to_vector(const std::set<std::string>& s) { return {s.begin(), s.end()}; }

/// The same elements in another universe (frames built separately over one storage).
ElemSet remap(const detail::Universe& from, detail::Universe& to, const detail::Node& node) {
  ElemSet out;
  out.reserve(node.elems.size());
  for (auto e : node.elems) {
    if (node.is_var) {
      out.push_back(to.intern_ref(from.ref_hid(e), from.ref_cid(e)));
    } else {
      const auto& row = from.call(e);
      store::CallRecord rec;
      rec.hid = row.hid;
      rec.cid = row.cid;
      rec.op = from.name(row.op);
      rec.version = row.version;
      rec.created_ms = row.created_ms;
      for (const auto& io : row.inputs)
        rec.inputs.push_back({from.name(io.name), from.ref_hid(io.ref), from.ref_cid(io.ref), from.transient(io.ref)});
      for (const auto& io : row.outputs)
        rec.outputs.push_back({from.name(io.name), from.ref_hid(io.ref), from.ref_cid(io.ref), from.transient(io.ref)});
      out.push_back(to.intern_call(rec));
    }
  }
  detail::normalize(out);
  return out;
}

/// `b`'s nodes with element ids valid in `a`'s universe.
std::map<std::string, ElemSet, std::less<>> elements_in(const FrameImpl& a, const FrameImpl& b) {
  if (a.u->core() != b.u->core())
    throw Error(Errc::invalid_argument, "set operations need frames over the same storage");
  std::map<std::string, ElemSet, std::less<>> out;
  for (const auto& [name, n] : b.nodes) out[name] = a.u == b.u ? n.elems : remap(*b.u, *a.u, n);
  return out;
}

void check_same_kind(const detail::Node& a, const detail::Node& b, const std::string& name) {
  if (a.is_var != b.is_var)
    throw Error(Errc::invalid_argument, "node " + name + " is a variable in one frame and a function in the other");
  if (!a.is_var && a.op != b.op)
    throw Error(Errc::invalid_argument, "function node " + name + " holds calls of op " + a.op +
                                            " in one frame and of " + b.op + " in the other");
}

}  // namespace

ComputationFrame::ComputationFrame(std::unique_ptr<detail::FrameImpl> impl) : m_impl(std::move(impl)) {}
ComputationFrame::ComputationFrame(const ComputationFrame& other)
    : m_impl(std::make_unique<FrameImpl>(*other.m_impl)) {}
ComputationFrame& ComputationFrame::operator=(const ComputationFrame& other) {
  if (this != &other) m_impl = std::make_unique<FrameImpl>(*other.m_impl);
  return *this;
}
ComputationFrame::ComputationFrame(ComputationFrame&&) noexcept = default;
ComputationFrame& ComputationFrame::operator=(ComputationFrame&&) noexcept = default;
ComputationFrame::~ComputationFrame() = default;

// ---- construction -----------------------------------------------------------------------------

ComputationFrame ComputationFrame::from_op(Storage& storage, std::string_view op_name,
                                           std::optional<std::uint32_t> version) {
  auto impl = new_impl(storage);
  auto& u = *impl->u;
  const auto calls = u.load_calls_of(op_name, version);
  const std::string fname(op_name);
  impl->add_func(fname, fname);
  // One variable per input / output label seen in the calls, named after the (sorted) names.
  std::set<std::string> input_names, output_names;
  std::map<std::string, std::string> label_of;
  std::set<std::pair<std::uint32_t, std::uint32_t>> seen_in, seen_out;  // (name, label) ids
  for (auto c : calls) {
    for (const auto& io : u.call(c).inputs) seen_in.emplace(io.name, io.label);
    for (const auto& io : u.call(c).outputs) seen_out.emplace(io.name, io.label);
  }
  for (const auto& [name, label] : seen_in) {
    input_names.insert(u.name(name));
    label_of[u.name(name)] = u.name(label);
  }
  for (const auto& [name, label] : seen_out) {
    output_names.insert(u.name(name));
    label_of[u.name(name)] = u.name(label);
  }
  for (const auto& name : input_names) {
    const auto& label = label_of[name];
    if (impl->node(fname).in.contains(label)) continue;
    const auto v = impl->new_vname(label);
    impl->add_var(v);
    impl->add_edge(v, fname, label);
  }
  for (const auto& name : output_names) {
    const auto& label = label_of[name];
    if (impl->node(fname).out.contains(label)) continue;
    const auto v = impl->new_vname(label);
    impl->add_var(v);
    impl->add_edge(fname, v, label);
  }
  impl->add_calls(fname, calls);
  impl->finish_adds();
  return ComputationFrame(std::move(impl));
}

ComputationFrame ComputationFrame::from_refs(Storage& storage, const std::vector<AnyRef>& refs) {
  return from_vars(storage, {{"v", refs}});
}

ComputationFrame ComputationFrame::from_vars(Storage& storage, const std::map<std::string, std::vector<AnyRef>>& vars) {
  auto impl = new_impl(storage);
  for (const auto& [name, refs] : vars) {
    if (name.empty()) throw Error(Errc::invalid_argument, "a variable name must not be empty");
    auto& node = impl->add_var(name);
    for (const auto& r : refs) node.elems.push_back(impl->u->intern_ref(r));
    detail::normalize(node.elems);
  }
  return ComputationFrame(std::move(impl));
}

ComputationFrame Storage::cf(std::string_view op_name, std::optional<std::uint32_t> version) {
  return ComputationFrame::from_op(*this, op_name, version);
}
ComputationFrame Storage::cf(const AnyRef& ref) { return ComputationFrame::from_refs(*this, {ref}); }
ComputationFrame Storage::cf(const std::vector<AnyRef>& refs) { return ComputationFrame::from_refs(*this, refs); }
ComputationFrame Storage::cf(const std::map<std::string, std::vector<AnyRef>>& vars) {
  return ComputationFrame::from_vars(*this, vars);
}

// ---- structure --------------------------------------------------------------------------------

std::vector<std::string> ComputationFrame::vnames() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : m_impl->nodes)
    if (n.is_var) out.push_back(name);
  return out;
}
std::vector<std::string> ComputationFrame::fnames() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : m_impl->nodes)
    if (!n.is_var) out.push_back(name);
  return out;
}
std::vector<std::string> ComputationFrame::nodes() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : m_impl->nodes) out.push_back(name);
  return out;
}
bool ComputationFrame::has_node(std::string_view name) const { return m_impl->has(name); }
bool ComputationFrame::is_variable(std::string_view name) const { return has_node(name) && m_impl->node(name).is_var; }
bool ComputationFrame::is_function(std::string_view name) const { return has_node(name) && !m_impl->node(name).is_var; }
std::vector<Edge> ComputationFrame::edges() const { return m_impl->edges(); }
std::vector<Edge> ComputationFrame::in_edges(std::string_view node) const {
  return m_impl->in_edges(std::string(node));
}
std::vector<Edge> ComputationFrame::out_edges(std::string_view node) const {
  return m_impl->out_edges(std::string(node));
}
std::vector<std::string> ComputationFrame::in_neighbors(std::string_view node) const {
  return to_vector(m_impl->in_neighbors(std::string(node)));
}
std::vector<std::string> ComputationFrame::out_neighbors(std::string_view node) const {
  return to_vector(m_impl->out_neighbors(std::string(node)));
}
std::vector<std::string> ComputationFrame::sources() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : m_impl->nodes)
    if (n.is_var && n.in.empty()) out.push_back(name);
  return out;
}
std::vector<std::string> ComputationFrame::sinks() const {
  std::vector<std::string> out;
  for (const auto& [name, n] : m_impl->nodes)
    if (n.is_var && n.out.empty()) out.push_back(name);
  return out;
}
std::string ComputationFrame::op_of(std::string_view fname) const {
  const auto& n = m_impl->node(fname);
  if (n.is_var) throw Error(Errc::invalid_argument, std::string(fname) + " is a variable, not a function node");
  return n.op;
}
std::vector<std::string> ComputationFrame::topological_order() const { return m_impl->topological_order(); }
std::size_t ComputationFrame::size(std::string_view node) const { return m_impl->node(node).elems.size(); }
std::size_t ComputationFrame::num_refs() const { return m_impl->num_refs(); }
std::size_t ComputationFrame::num_calls() const { return m_impl->num_calls(); }

std::vector<Id> ComputationFrame::hids(std::string_view node) const {
  const auto& n = m_impl->node(node);
  std::vector<Id> out;
  out.reserve(n.elems.size());
  for (auto e : n.elems) out.push_back(n.is_var ? m_impl->u->ref_hid(e) : m_impl->u->call(e).hid);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<AnyRef> ComputationFrame::refs(std::string_view vname) const {
  const auto& n = m_impl->node(vname);
  if (!n.is_var) throw Error(Errc::invalid_argument, std::string(vname) + " is a function node, not a variable");
  std::vector<AnyRef> out;
  for (auto e : n.elems) out.push_back(m_impl->u->ref(e));
  std::sort(out.begin(), out.end(), [](const AnyRef& a, const AnyRef& b) { return a.hid() < b.hid(); });
  return out;
}

std::vector<CallInfo> ComputationFrame::calls(std::string_view fname) const {
  const auto& n = m_impl->node(fname);
  if (n.is_var) throw Error(Errc::invalid_argument, std::string(fname) + " is a variable, not a function node");
  std::vector<CallInfo> out;
  for (auto e : n.elems) out.push_back(m_impl->u->call_info(e));
  std::sort(out.begin(), out.end(), [](const CallInfo& a, const CallInfo& b) { return a.hid < b.hid; });
  return out;
}

namespace {
std::map<std::string, std::vector<Id>> to_hids(const FrameImpl& f, const NodeSets& sets) {
  std::map<std::string, std::vector<Id>> out;
  for (const auto& [name, s] : sets) {
    const bool var = f.node(name).is_var;
    auto& v = out[name];
    for (auto e : s) v.push_back(var ? f.u->ref_hid(e) : f.u->call(e).hid);
    std::sort(v.begin(), v.end());
  }
  return out;
}
}  // namespace

std::map<std::string, std::vector<Id>> ComputationFrame::source_elements() const {
  return to_hids(*m_impl, m_impl->source_elements());
}
std::map<std::string, std::vector<Id>> ComputationFrame::sink_elements() const {
  return to_hids(*m_impl, m_impl->sink_elements());
}
std::vector<std::string> ComputationFrame::invariant_violations() const { return m_impl->violations(); }

// ---- expansion --------------------------------------------------------------------------------

ComputationFrame ComputationFrame::expand_back(const std::vector<std::string>& vars, Recursive recursive,
                                               ExpandOptions options) const {
  auto r = *this;
  r.expand_back_inplace(vars, recursive, options);
  return r;
}
ComputationFrame& ComputationFrame::expand_back_inplace(const std::vector<std::string>& vars, Recursive recursive,
                                                        ExpandOptions options) {
  m_impl->expand(Direction::back, vars, recursive, options);
  return *this;
}
ComputationFrame ComputationFrame::expand_forward(const std::vector<std::string>& vars, Recursive recursive,
                                                  ExpandOptions options) const {
  auto r = *this;
  r.expand_forward_inplace(vars, recursive, options);
  return r;
}
ComputationFrame& ComputationFrame::expand_forward_inplace(const std::vector<std::string>& vars, Recursive recursive,
                                                           ExpandOptions options) {
  m_impl->expand(Direction::forward, vars, recursive, options);
  return *this;
}
ComputationFrame ComputationFrame::expand_all(ExpandOptions options) const {
  auto r = *this;
  r.expand_all_inplace(options);
  return r;
}
ComputationFrame& ComputationFrame::expand_all_inplace(ExpandOptions options) {
  m_impl->m_consumers_resolved = std::make_shared<std::vector<char>>();
  struct Reset {
    FrameImpl& f;
    ~Reset() { f.m_consumers_resolved.reset(); }
  } reset{*m_impl};
  auto size = num_refs() + num_calls();
  while (true) {
    m_impl->expand(Direction::back, {}, Recursive::yes, options);
    m_impl->expand(Direction::forward, {}, Recursive::yes, options);
    const auto now = num_refs() + num_calls();
    if (now == size) break;
    size = now;
  }
  return *this;
}

// ---- reachability and restriction --------------------------------------------------------------

namespace {
std::set<std::string> checked_nodes(const FrameImpl& f, const std::vector<std::string>& nodes) {
  std::set<std::string> out;
  for (const auto& n : nodes) {
    f.node(n);  // throws for unknown names
    out.insert(n);
  }
  return out;
}

ComputationFrame stream(const ComputationFrame& self, const std::vector<std::string>& nodes, Direction direction,
                        Reach how) {
  auto impl = std::make_unique<FrameImpl>(self.impl());
  const auto given = checked_nodes(*impl, nodes);
  impl->select_nodes(impl->reachable_nodes(given, direction));
  NodeSets initial;
  for (const auto& n : given) initial[n] = impl->node(n).elems;
  impl->select_subsets(impl->reachable(initial, direction, how));
  impl->complete_ios(self.impl());  // weak reach, and calls of the given nodes, may miss inputs/outputs
  return ComputationFrame(std::move(impl));
}
}  // namespace

ComputationFrame ComputationFrame::downstream(const std::vector<std::string>& nodes, Reach how) const {
  return stream(*this, nodes, Direction::forward, how);
}
ComputationFrame ComputationFrame::upstream(const std::vector<std::string>& nodes, Reach how) const {
  return stream(*this, nodes, Direction::back, how);
}

namespace detail {
std::unique_ptr<FrameImpl> midstream_of(const FrameImpl& self, const std::vector<std::string>& nodes, Reach how) {
  auto impl = std::make_unique<FrameImpl>(self);
  const auto given = checked_nodes(*impl, nodes);
  // Nodes on edges of paths between two distinct given nodes: (a, b) lies on a path from s to e
  // when a is reachable from s and e from b.
  std::map<std::string, std::set<std::string>> from, to;
  for (const auto& s : given) {
    from[s] = impl->reachable_nodes({s}, Direction::forward);
    to[s] = impl->reachable_nodes({s}, Direction::back);
  }
  std::set<std::string> keep;
  for (const auto& e : impl->edges())
    for (const auto& s : given)
      for (const auto& t : given)
        if (s != t && from[s].contains(e.source) && to[t].contains(e.target)) {
          keep.insert(e.source);
          keep.insert(e.target);
        }
  impl->select_nodes(keep);
  NodeSets initial;
  for (auto& [name, elems] : impl->source_elements())
    if (given.contains(name)) initial[name] = std::move(elems);
  impl->select_subsets(impl->reachable(initial, Direction::forward, how));
  return impl;
}
}  // namespace detail

ComputationFrame ComputationFrame::midstream(const std::vector<std::string>& nodes, Reach how) const {
  auto impl = detail::midstream_of(*m_impl, nodes, how);
  impl->complete_ios(*m_impl);  // weak reach, and calls of the given nodes, may miss inputs/outputs
  return ComputationFrame(std::move(impl));
}

ComputationFrame ComputationFrame::drop_unreachable(Direction direction, Reach how) const {
  auto r = *this;
  r.drop_unreachable_inplace(direction, how);
  return r;
}
ComputationFrame& ComputationFrame::drop_unreachable_inplace(Direction direction, Reach how) {
  m_impl->drop_unreachable(direction, how);
  return *this;
}

ComputationFrame ComputationFrame::select_nodes(const std::vector<std::string>& nodes) const {
  auto impl = std::make_unique<FrameImpl>(*m_impl);
  impl->select_nodes(checked_nodes(*impl, nodes));
  return ComputationFrame(std::move(impl));
}

ComputationFrame ComputationFrame::select_subsets(const std::map<std::string, std::vector<Id>>& elements) const {
  auto impl = std::make_unique<FrameImpl>(*m_impl);
  NodeSets sets;
  for (const auto& [name, hids] : elements) {
    const auto& n = impl->node(name);
    ElemSet s;
    for (const auto& h : hids) {
      const Elem e = n.is_var ? impl->u->find_ref(h) : impl->u->find_call(h);
      if (e == detail::no_elem || !detail::contains(n.elems, e))
        throw Error(Errc::invalid_argument, h.hex() + " is not an element of node " + name);
      s.push_back(e);
    }
    detail::normalize(s);
    sets[name] = std::move(s);
  }
  impl->select_subsets(sets);
  return ComputationFrame(std::move(impl));
}

namespace {

/// Restricts the given variables to `kept` refs (raw: plus adjacent calls; closed: closure).
ComputationFrame restrict_vars(const ComputationFrame& self, const NodeSets& kept, Closure closure) {
  auto impl = std::make_unique<FrameImpl>(self.impl());
  FrameImpl& f = *impl;
  if (closure == Closure::raw) {
    NodeSets sets = kept;
    for (const auto& [vname, refs] : kept) {
      for (const auto& e : f.in_edges(vname))
        sets[e.source] = detail::set_union(sets[e.source], f.adjacent(e.source, vname, e.label, refs, Direction::back));
      for (const auto& e : f.out_edges(vname))
        sets[e.target] =
            detail::set_union(sets[e.target], f.adjacent(vname, e.target, e.label, refs, Direction::forward));
    }
    f.select_subsets(sets);
    return ComputationFrame(std::move(impl));
  }
  // Closed: what was computed from the kept refs, the history of all of that, and the complete
  // outputs of every kept call.
  auto down = f.reachable(kept, Direction::forward, Reach::weak);
  auto all = f.reachable(down, Direction::back, Reach::weak);
  for (const auto& [name, n] : f.nodes) {
    if (n.is_var) continue;
    for (const auto& e : f.out_edges(name))
      all[e.target] =
          detail::set_union(all[e.target], f.adjacent(name, e.target, e.label, all[name], Direction::forward));
  }
  f.select_subsets(all);
  return ComputationFrame(std::move(impl));
}

template <class Keep>
NodeSets matching(const FrameImpl& f, const std::vector<std::string>& vars, Keep&& keep) {
  NodeSets kept;
  std::vector<std::string> names = vars;
  if (names.empty())
    for (const auto& [name, n] : f.nodes)
      if (n.is_var) names.push_back(name);
  for (const auto& v : names) {
    const auto& n = f.node(v);
    if (!n.is_var) throw Error(Errc::invalid_argument, v + " is a function node; predicates apply to variables");
    ElemSet s;
    keep(n.elems, s);
    kept[v] = std::move(s);
  }
  return kept;
}

template <class Pred>
NodeSets matching_values(const FrameImpl& f, const std::vector<std::string>& vars, Pred&& pred) {
  return matching(f, vars, [&](const ElemSet& elems, ElemSet& out) {
    auto bytes = f.u->value_bytes(elems);
    for (std::size_t i = 0; i < elems.size(); ++i) {
      if (!bytes[i]) continue;
      DecodedValue d{std::span<const std::byte>(*bytes[i])};
      if (pred(d.root())) out.push_back(elems[i]);
    }
  });
}

}  // namespace

ComputationFrame ComputationFrame::isin_cids(const std::vector<Id>& cids, const std::vector<std::string>& vars,
                                             Closure closure) const {
  std::set<Id> wanted(cids.begin(), cids.end());
  const auto& u = *m_impl->u;
  auto kept = matching(*m_impl, vars, [&](const ElemSet& elems, ElemSet& out) {
    for (auto r : elems)
      if (wanted.contains(u.ref_cid(r))) out.push_back(r);
  });
  return restrict_vars(*this, kept, closure);
}

ComputationFrame ComputationFrame::isin_hids(const std::vector<Id>& hids, const std::vector<std::string>& vars,
                                             Closure closure) const {
  std::set<Id> wanted(hids.begin(), hids.end());
  const auto& u = *m_impl->u;
  auto kept = matching(*m_impl, vars, [&](const ElemSet& elems, ElemSet& out) {
    for (auto r : elems)
      if (wanted.contains(u.ref_hid(r))) out.push_back(r);
  });
  return restrict_vars(*this, kept, closure);
}

ComputationFrame ComputationFrame::less_than(double bound, Closure closure) const {
  auto kept = matching_values(*m_impl, {}, [&](ValueView v) {
    switch (v.kind()) {
      case Kind::integer:
        return v.is_negative_integer() ? static_cast<double>(v.as_int64()) < bound
                                       : static_cast<double>(v.as_uint64()) < bound;
      case Kind::float32: return static_cast<double>(v.as_float32()) < bound;
      case Kind::float64: return v.as_float64() < bound;
      default: return false;
    }
  });
  return restrict_vars(*this, kept, closure);
}

ComputationFrame ComputationFrame::where(std::string_view var, const std::function<bool(ValueView)>& pred,
                                         Closure closure) const {
  auto kept = matching_values(*m_impl, {std::string(var)}, pred);
  return restrict_vars(*this, kept, closure);
}

ComputationFrame ComputationFrame::where_json(std::string_view var, const std::function<bool(const std::string&)>& pred,
                                              Closure closure) const {
  auto kept = matching_values(*m_impl, {std::string(var)}, [&](ValueView v) { return pred(v.to_json()); });
  return restrict_vars(*this, kept, closure);
}

// ---- set operations ---------------------------------------------------------------------------

ComputationFrame ComputationFrame::union_with(const ComputationFrame& other) const {
  auto impl = std::make_unique<FrameImpl>(*m_impl);
  const auto elems = elements_in(*impl, *other.m_impl);
  for (const auto& [name, n] : other.m_impl->nodes) {
    if (impl->has(name)) {
      auto& mine = impl->node(name);
      check_same_kind(mine, n, name);
      mine.elems = detail::set_union(mine.elems, elems.at(name));
    } else {
      auto& added = n.is_var ? impl->add_var(name) : impl->add_func(name, n.op);
      added.elems = elems.at(name);
    }
  }
  for (const auto& e : other.m_impl->edges())
    if (!impl->has_edge(e.source, e.target, e.label)) impl->add_edge(e.source, e.target, e.label);
  auto problems = impl->violations();
  if (!problems.empty())
    throw Error(Errc::invalid_argument, "the union of these frames breaks the frame invariant: " + problems.front());
  return ComputationFrame(std::move(impl));
}

ComputationFrame ComputationFrame::intersection_with(const ComputationFrame& other) const {
  auto impl = std::make_unique<FrameImpl>(*m_impl);
  const auto elems = elements_in(*impl, *other.m_impl);
  std::set<std::string> keep;
  for (auto& [name, n] : impl->nodes) {
    auto it = other.m_impl->nodes.find(name);
    if (it == other.m_impl->nodes.end() || it->second.is_var != n.is_var || it->second.op != n.op) continue;
    keep.insert(name);
    n.elems = detail::set_intersection(n.elems, elems.at(name));
  }
  impl->select_nodes(keep);
  for (const auto& e : impl->edges())
    if (!other.m_impl->has_edge(e.source, e.target, e.label)) impl->drop_edge(e.source, e.target, e.label);
  return ComputationFrame(std::move(impl));
}

ComputationFrame ComputationFrame::difference(const ComputationFrame& other) const {
  auto impl = std::make_unique<FrameImpl>(*m_impl);
  const auto elems = elements_in(*impl, *other.m_impl);
  for (auto& [name, n] : impl->nodes) {
    auto it = elems.find(name);
    if (it != elems.end() && other.m_impl->node(name).is_var == n.is_var)
      n.elems = detail::set_difference(n.elems, it->second);
  }
  impl->prune_to_invariant();
  impl->cleanup();
  return ComputationFrame(std::move(impl));
}

// ---- mutation ---------------------------------------------------------------------------------

ComputationFrame ComputationFrame::drop(const std::vector<std::string>& nodes) const {
  auto r = *this;
  r.drop_inplace(nodes);
  return r;
}
ComputationFrame& ComputationFrame::drop_inplace(const std::vector<std::string>& nodes) {
  checked_nodes(*m_impl, nodes);
  for (const auto& n : nodes)
    if (m_impl->has(n)) m_impl->drop_node(n);
  return *this;
}
ComputationFrame ComputationFrame::drop_var(std::string_view vname) const {
  auto r = *this;
  r.drop_var_inplace(vname);
  return r;
}
ComputationFrame& ComputationFrame::drop_var_inplace(std::string_view vname) {
  if (!m_impl->node(vname).is_var) throw Error(Errc::invalid_argument, std::string(vname) + " is not a variable");
  m_impl->drop_node(std::string(vname));
  return *this;
}
ComputationFrame ComputationFrame::drop_func(std::string_view fname) const {
  auto r = *this;
  r.drop_func_inplace(fname);
  return r;
}
ComputationFrame& ComputationFrame::drop_func_inplace(std::string_view fname) {
  if (m_impl->node(fname).is_var) throw Error(Errc::invalid_argument, std::string(fname) + " is not a function node");
  m_impl->drop_node(std::string(fname));
  return *this;
}
ComputationFrame ComputationFrame::rename(std::string_view node, std::string_view new_name) const {
  auto r = *this;
  r.rename_inplace(node, new_name);
  return r;
}
ComputationFrame& ComputationFrame::rename_inplace(std::string_view node, std::string_view new_name) {
  if (new_name.empty()) throw Error(Errc::invalid_argument, "a node name must not be empty");
  m_impl->rename(std::string(node), std::string(new_name));
  return *this;
}
ComputationFrame ComputationFrame::rename(const std::map<std::string, std::string>& names) const {
  auto r = *this;
  r.rename_inplace(names);
  return r;
}
ComputationFrame& ComputationFrame::rename_inplace(const std::map<std::string, std::string>& names) {
  for (const auto& [from, to] : names) rename_inplace(from, to);
  return *this;
}
ComputationFrame ComputationFrame::merge_into(std::string_view node, std::string_view into) const {
  auto r = *this;
  r.merge_into_inplace(node, into);
  return r;
}
ComputationFrame& ComputationFrame::merge_into_inplace(std::string_view node, std::string_view into) {
  m_impl->merge_into(std::string(node), std::string(into));
  return *this;
}
ComputationFrame ComputationFrame::merge_vars() const {
  auto r = *this;
  r.merge_vars_inplace();
  return r;
}
ComputationFrame& ComputationFrame::merge_vars_inplace() {
  bool merged = true;
  while (merged) {
    merged = false;
    for (const auto& [a, na] : m_impl->nodes) {
      if (!na.is_var) continue;
      for (const auto& [b, nb] : m_impl->nodes) {
        if (!nb.is_var || a == b) continue;
        // strictly contained in another variable, as in the original
        if (na.elems.size() < nb.elems.size() && detail::is_subset(na.elems, nb.elems)) {
          const std::string from = a, to = b;
          m_impl->merge_into(from, to);
          merged = true;
          break;
        }
      }
      if (merged) break;
    }
  }
  return *this;
}
ComputationFrame ComputationFrame::cleanup() const {
  auto r = *this;
  r.cleanup_inplace();
  return r;
}
ComputationFrame& ComputationFrame::cleanup_inplace() {
  m_impl->cleanup();
  return *this;
}

// ---- deletion ---------------------------------------------------------------------------------

std::size_t ComputationFrame::delete_calls() {
  std::vector<Id> hids;
  for (const auto& [name, n] : m_impl->nodes)
    if (!n.is_var)
      for (auto c : n.elems) hids.push_back(m_impl->u->call(c).hid);
  std::sort(hids.begin(), hids.end());
  hids.erase(std::unique(hids.begin(), hids.end()), hids.end());
  if (hids.empty()) return 0;
  return m_impl->u->core()->drop_calls(hids, Dependents::yes);
}

std::size_t ComputationFrame::delete_calls(const Table& table) {
  std::vector<Id> hids;
  for (const auto& column : table.column_names()) {
    if (!table.is_call_column(column)) continue;
    for (const auto& cell : table.cells(column))
      for (const auto& h : cell.hids()) hids.push_back(h);
  }
  std::sort(hids.begin(), hids.end());
  hids.erase(std::unique(hids.begin(), hids.end()), hids.end());
  if (hids.empty()) return 0;
  return m_impl->u->core()->drop_calls(hids, Dependents::yes);
}

}  // namespace mandala
