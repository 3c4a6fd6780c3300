// Table and Cell: typed access, sorting, text / Markdown / CSV / JSON rendering. Values of a
// column are loaded in one bulk query.

#include "mandala/table.hpp"

#include <algorithm>
#include <numeric>
#include <ostream>
#include <unordered_map>

#include "frame/table_data.hpp"

namespace mandala {
using detail::CellCode;
using detail::Elem;
using detail::TableData;

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string short_hid(const Id& id) { return id.hex().substr(0, 8); }

Cell::Kind kind_of(const TableData& d, std::size_t col, std::size_t row) {
  const CellCode code = d.cells[col][row];
  if (code == detail::null_cell) return Cell::Kind::null;
  const bool many = code < 0;
  if (d.call_column[col]) return many ? Cell::Kind::calls : Cell::Kind::call;
  return many ? Cell::Kind::values : Cell::Kind::value;
}

/// The JSON a table shows for a transient value that is not stored (OpOptions::transient).
std::string not_stored_json(const TableData& d, Elem e) { return "{\"not_stored\":\"" + d.u->ref_cid(e).hex() + "\"}"; }

/// Per column: JSON of every value element the column holds, loaded in one bulk query.
std::unordered_map<Elem, std::string> value_json(const TableData& d, std::size_t col) {
  std::unordered_map<Elem, std::string> out;
  if (d.call_column[col]) return out;
  std::vector<Elem> elems;
  for (std::size_t r = 0; r < d.rows; ++r)
    for (auto e : d.elements(col, r))
      if (out.emplace(e, std::string()).second) elems.push_back(e);
  auto bytes = d.u->value_bytes(elems);
  for (std::size_t i = 0; i < elems.size(); ++i)
    out[elems[i]] = bytes[i]                   ? DecodedValue(std::span<const std::byte>(*bytes[i])).root().to_json()
                    : d.u->transient(elems[i]) ? not_stored_json(d, elems[i])
                                               : "null";
  return out;
}

/// Renders one cell; `json` holds the column's value JSON (values mode).
std::string render(const TableData& d, std::size_t col, std::size_t row, Values mode,
                   const std::unordered_map<Elem, std::string>& json, bool full_ids) {
  const auto elems = d.elements(col, row);
  if (elems.empty()) return {};
  auto one = [&](Elem e) -> std::string {
    if (d.call_column[col]) {
      const auto& call = d.u->call(e);
      return d.u->name(call.op) + ":" + (full_ids ? call.hid.hex() : short_hid(call.hid));
    }
    if (mode == Values::refs) return full_ids ? d.u->ref_hid(e).hex() : short_hid(d.u->ref_hid(e));
    if (d.u->transient(e) && json.at(e) == not_stored_json(d, e)) return std::string("<not stored>");
    return json.at(e);
  };
  if (elems.size() == 1) return one(elems.front());
  std::string out = "[";
  for (std::size_t i = 0; i < elems.size(); ++i) {
    out += i ? ", " : "";
    out += one(elems[i]);
  }
  return out + "]";
}

std::string truncate(std::string s, std::size_t width) {
  if (width >= 4 && s.size() > width) s = s.substr(0, width - 3) + "...";
  return s;
}

std::shared_ptr<TableData> permuted(const TableData& d, const std::vector<std::size_t>& order) {
  auto out = std::make_shared<TableData>(d);
  for (auto& col : out->cells) {
    std::vector<CellCode> c;
    c.reserve(order.size());
    for (auto i : order) c.push_back(col[i]);
    col = std::move(c);
  }
  out->rows = order.size();
  return out;
}

}  // namespace

// ---- Cell -------------------------------------------------------------------------------------

AnyRef Cell::ref() const {
  if (m_kind != Kind::value) throw Error(Errc::invalid_argument, "this cell does not hold exactly one value");
  return m_data->u->ref(m_elements.front());
}

std::vector<AnyRef> Cell::refs() const {
  if (m_kind == Kind::call || m_kind == Kind::calls) throw Error(Errc::invalid_argument, "this cell holds calls");
  std::vector<AnyRef> out;
  for (auto e : m_elements) out.push_back(m_data->u->ref(e));
  std::sort(out.begin(), out.end(), [](const AnyRef& a, const AnyRef& b) { return a.hid() < b.hid(); });
  return out;
}

CallInfo Cell::call() const {
  if (m_kind != Kind::call) throw Error(Errc::invalid_argument, "this cell does not hold exactly one call");
  return m_data->u->call_info(m_elements.front());
}

std::vector<CallInfo> Cell::calls() const {
  if (m_kind == Kind::value || m_kind == Kind::values) throw Error(Errc::invalid_argument, "this cell holds values");
  std::vector<CallInfo> out;
  for (auto e : m_elements) out.push_back(m_data->u->call_info(e));
  std::sort(out.begin(), out.end(), [](const CallInfo& a, const CallInfo& b) { return a.hid < b.hid; });
  return out;
}

std::vector<Id> Cell::hids() const {
  std::vector<Id> out;
  for (auto e : m_elements)
    out.push_back(m_data->call_column[m_column] ? m_data->u->call(e).hid : m_data->u->ref_hid(e));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::byte> Cell::value_bytes() const {
  if (m_kind != Kind::value) throw Error(Errc::invalid_argument, "this cell does not hold exactly one value");
  auto bytes = m_data->u->value_bytes(std::span<const Elem>(m_elements));
  // A transient value is recomputed (or the error says why it is not there).
  if (!bytes.front()) return detail::load_value_bytes(m_data->u->ref(m_elements.front()).state());
  return std::move(*bytes.front());
}

std::string Cell::to_json() const {
  if (m_kind == Kind::null) return "null";
  std::vector<std::string> parts;
  if (m_kind == Kind::call || m_kind == Kind::calls) {
    for (auto e : m_elements) {
      const auto& c = m_data->u->call(e);
      parts.push_back("{\"op\":" + json_string(m_data->u->name(c.op)) + ",\"hid\":\"" + c.hid.hex() + "\"}");
    }
  } else {
    auto bytes = m_data->u->value_bytes(std::span<const Elem>(m_elements));
    for (std::size_t i = 0; i < bytes.size(); ++i)
      parts.push_back(bytes[i] ? DecodedValue(std::span<const std::byte>(*bytes[i])).root().to_json()
                      : m_data->u->transient(m_elements[i]) ? not_stored_json(*m_data, m_elements[i])
                                                            : "null");
  }
  if (!is_collection()) return parts.front();
  std::string out = "[";
  for (std::size_t i = 0; i < parts.size(); ++i) {
    out += i ? "," : "";
    out += parts[i];
  }
  return out + "]";
}

std::string Cell::to_string(Values mode) const {
  if (m_kind == Kind::null) return "null";
  TableData one;
  one.u = m_data->u;
  one.call_column = {m_data->call_column[m_column]};
  auto pool = std::make_shared<detail::CollectionPool>();
  one.cells = {{pool->code_of(m_elements)}};
  one.pool = pool;
  one.rows = 1;
  const auto json = mode == Values::values ? value_json(one, 0) : std::unordered_map<Elem, std::string>{};
  return render(one, 0, 0, mode, json, false);
}

// ---- ColumnCells ------------------------------------------------------------------------------

void ColumnCells::require(bool calls, std::size_t position) const {
  if (calls != m_calls)
    throw Error(Errc::invalid_argument, calls ? "this column holds values, not calls" : "this column holds calls");
  if (position >= m_elements.size()) throw Error(Errc::invalid_argument, "element position out of range");
}

const Id& ColumnCells::hid(std::size_t position) const {
  require(m_calls, position);
  const Elem e = m_elements[position];
  return m_calls ? m_data->u->call(e).hid : m_data->u->ref_hid(e);
}

const Id& ColumnCells::cid(std::size_t position) const {
  require(m_calls, position);
  const Elem e = m_elements[position];
  return m_calls ? m_data->u->call(e).cid : m_data->u->ref_cid(e);
}

std::vector<std::vector<std::byte>> ColumnCells::values() const {
  const ColumnCells* self = this;
  auto v = values_of(std::span<const ColumnCells* const>(&self, 1));
  std::vector<std::vector<std::byte>> out;
  out.reserve(m_elements.size());
  for (std::size_t p = 0; p < m_elements.size(); ++p) {
    const auto i = v.content_of.front()[p];
    // A transient value is recomputed.
    out.push_back(v.not_stored[i] ? detail::load_value_bytes(m_data->u->ref(m_elements[p]).state()) : v.contents[i]);
  }
  return out;
}

ColumnCells::LoadedValues ColumnCells::values_of(std::span<const ColumnCells* const> columns) {
  LoadedValues out;
  if (columns.empty()) return out;
  // one element per distinct content id (a value is the same for every ref with its content id)
  std::vector<Elem> representatives;
  std::vector<const ColumnCells*> owner;
  std::unordered_map<Id, std::uint32_t> index;
  for (const auto* c : columns) {
    if (c->m_calls) throw Error(Errc::invalid_argument, "this column holds calls, not values");
    auto& of = out.content_of.emplace_back();
    of.reserve(c->m_elements.size());
    const auto& cu = *c->m_data->u;
    for (auto e : c->m_elements) {
      const auto [it, fresh] = index.emplace(cu.ref_cid(e), static_cast<std::uint32_t>(representatives.size()));
      if (fresh) {
        representatives.push_back(e);
        owner.push_back(c);
      }
      of.push_back(it->second);
    }
  }
  // load per universe (one for the columns of one table)
  out.contents.resize(representatives.size());
  out.not_stored.resize(representatives.size(), 0);
  std::vector<char> done(representatives.size(), 0);
  for (std::size_t first = 0; first < representatives.size(); ++first) {
    if (done[first]) continue;
    const auto& universe = owner[first]->m_data->u;
    std::vector<Elem> elems;
    std::vector<std::size_t> at;
    for (std::size_t i = first; i < representatives.size(); ++i)
      if (!done[i] && owner[i]->m_data->u == universe) {
        elems.push_back(representatives[i]);
        at.push_back(i);
        done[i] = 1;
      }
    auto loaded = universe->value_bytes(elems);
    for (std::size_t j = 0; j < loaded.size(); ++j) {
      if (!loaded[j] && universe->transient(elems[j])) {
        out.not_stored[at[j]] = 1;
        continue;
      }
      if (!loaded[j])
        throw Error(Errc::not_found, "the value of ref " + universe->ref_hid(elems[j]).hex() +
                                         " is not in the storage; it may have been removed by cleanup()");
      out.contents[at[j]] = std::move(*loaded[j]);
    }
  }
  return out;
}

AnyRef ColumnCells::ref(std::size_t position) const {
  require(false, position);
  return m_data->u->ref(m_elements[position]);
}

CallInfo ColumnCells::call(std::size_t position) const {
  require(true, position);
  return m_data->u->call_info(m_elements[position]);
}

const std::string& ColumnCells::op(std::size_t position) const {
  require(true, position);
  return m_data->u->op_name(m_elements[position]);
}

std::uint32_t ColumnCells::version(std::size_t position) const {
  require(true, position);
  return m_data->u->call(m_elements[position]).version;
}

// ---- Table ------------------------------------------------------------------------------------

Table::Table() : m_data(std::make_shared<TableData>()) {}
Table::Table(std::shared_ptr<detail::TableData> data) : m_data(std::move(data)) {}

std::size_t Table::num_rows() const noexcept { return m_data->rows; }
std::size_t Table::num_columns() const noexcept { return m_data->names.size(); }
const std::vector<std::string>& Table::column_names() const noexcept { return m_data->names; }
bool Table::has_column(std::string_view name) const {
  return std::find(m_data->names.begin(), m_data->names.end(), name) != m_data->names.end();
}

std::size_t Table::column_index(std::string_view name) const {
  auto it = std::find(m_data->names.begin(), m_data->names.end(), name);
  if (it == m_data->names.end()) throw Error(Errc::invalid_argument, "the table has no column " + std::string(name));
  return static_cast<std::size_t>(it - m_data->names.begin());
}

bool Table::is_call_column(std::string_view name) const { return m_data->call_column[column_index(name)] != 0; }

Cell Table::cell(std::size_t row, std::string_view column) const { return cell(row, column_index(column)); }

Cell Table::cell(std::size_t row, std::size_t column) const {
  if (column >= num_columns()) throw Error(Errc::invalid_argument, "column index out of range");
  if (row >= num_rows()) throw Error(Errc::invalid_argument, "row index out of range");
  return Cell(m_data, column, kind_of(*m_data, column, row), m_data->elements(column, row));
}

std::vector<Cell> Table::cells(std::string_view name) const {
  const auto col = column_index(name);
  std::vector<Cell> out;
  out.reserve(num_rows());
  for (std::size_t r = 0; r < num_rows(); ++r) out.push_back(cell(r, col));
  return out;
}

ColumnCells Table::column_cells(std::string_view name) const {
  const auto col = column_index(name);
  const TableData& d = *m_data;
  ColumnCells out;
  out.m_data = m_data;
  out.m_calls = d.call_column[col] != 0;
  const auto& u = *d.u;
  const bool calls = out.m_calls;
  // positions by element id, given in order of first appearance
  std::vector<std::uint32_t> position(u.space(!calls), detail::no_elem);
  auto position_of = [&](Elem e) {
    if (position[e] == detail::no_elem) {
      position[e] = static_cast<std::uint32_t>(out.m_elements.size());
      out.m_elements.push_back(e);
    }
    return position[e];
  };
  const auto& codes = d.cells[col];
  out.m_offsets.reserve(d.rows + 1);
  out.m_items.reserve(d.rows);
  out.m_offsets.push_back(0);
  std::vector<Elem> sorted;
  for (std::size_t r = 0; r < d.rows; ++r) {
    const CellCode code = codes[r];
    if (code >= 0) {
      out.m_items.push_back(position_of(static_cast<Elem>(code)));
    } else if (code != detail::null_cell) {
      sorted = d.pool->sets[detail::collection_index(code)];
      const auto hid = [&](Elem e) -> const Id& { return calls ? u.call(e).hid : u.ref_hid(e); };
      std::sort(sorted.begin(), sorted.end(), [&](Elem a, Elem b) { return hid(a) < hid(b); });
      for (auto e : sorted) out.m_items.push_back(position_of(e));
    }
    out.m_offsets.push_back(out.m_items.size());
  }
  return out;
}

Table::Row Table::row(std::size_t index) const {
  if (index >= num_rows()) throw Error(Errc::invalid_argument, "row index out of range");
  return Row(this, index);
}

std::vector<std::optional<std::vector<std::byte>>> Table::column_bytes(std::string_view name) const {
  const auto col = column_index(name);
  if (m_data->call_column[col])
    throw Error(Errc::invalid_argument, "column " + std::string(name) + " holds calls, not values");
  std::vector<Elem> elems;
  std::vector<std::size_t> rows;
  for (std::size_t r = 0; r < num_rows(); ++r) {
    const CellCode code = m_data->cells[col][r];
    if (code == detail::null_cell) continue;
    if (code < 0)
      throw Error(Errc::invalid_argument, "row " + std::to_string(r) + " of column " + std::string(name) +
                                              " holds several values; read it with cells()");
    elems.push_back(static_cast<Elem>(code));
    rows.push_back(r);
  }
  auto loaded = m_data->u->value_bytes(elems);
  std::vector<std::optional<std::vector<std::byte>>> out(num_rows());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (!loaded[i])
      throw Error(Errc::not_found, "the value of ref " + m_data->u->ref_hid(elems[i]).hex() + " is not in the storage");
    out[rows[i]] = std::move(loaded[i]);
  }
  return out;
}

Table Table::sorted_by(std::string_view column, Order order) const {
  const auto col = column_index(column);
  const auto& d = *m_data;
  // sort key: (class, number, text); class 0 numbers, 1 strings, 2 other values / calls, 3 null
  struct Key {
    int cls = 3;
    double number = 0;
    std::string text;
  };
  std::vector<Key> keys(num_rows());
  const auto json = value_json(d, col);
  // values of single-value cells, loaded in one bulk query
  std::vector<Elem> singles;
  std::vector<std::size_t> single_rows;
  for (std::size_t r = 0; r < num_rows(); ++r) {
    const auto elems = d.elements(col, r);
    Key& k = keys[r];
    if (elems.empty()) continue;
    if (d.call_column[col] || elems.size() > 1) {
      k.cls = 2;
      k.text = render(d, col, r, Values::values, json, true);
      continue;
    }
    singles.push_back(elems.front());
    single_rows.push_back(r);
  }
  auto loaded = d.u->value_bytes(singles);
  for (std::size_t i = 0; i < singles.size(); ++i) {
    Key& k = keys[single_rows[i]];
    if (!loaded[i]) {
      k.cls = 2;
      continue;
    }
    DecodedValue v{std::span<const std::byte>(*loaded[i])};
    const auto root = v.root();
    switch (root.kind()) {
      case Kind::integer:
        k.cls = 0;
        k.number =
            root.is_negative_integer() ? static_cast<double>(root.as_int64()) : static_cast<double>(root.as_uint64());
        break;
      case Kind::float32: k.cls = 0, k.number = static_cast<double>(root.as_float32()); break;
      case Kind::float64: k.cls = 0, k.number = root.as_float64(); break;
      case Kind::boolean: k.cls = 0, k.number = root.as_bool() ? 1.0 : 0.0; break;
      case Kind::string: k.cls = 1, k.text = std::string(root.as_string()); break;
      default: k.cls = 2, k.text = root.to_json();
    }
  }
  std::vector<std::size_t> idx(num_rows());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    const Key& x = keys[a];
    const Key& y = keys[b];
    if (x.cls != y.cls) return x.cls < y.cls;  // nulls last either way
    if (x.cls == 3) return false;
    const bool less = x.cls == 0 ? x.number < y.number : x.text < y.text;
    const bool greater = x.cls == 0 ? y.number < x.number : y.text < x.text;
    return order == Order::ascending ? less : greater;
  });
  return Table(permuted(d, idx));
}

Table Table::select(const std::vector<std::string>& columns) const {
  auto out = std::make_shared<TableData>();
  out->u = m_data->u;
  out->pool = m_data->pool;
  out->display = m_data->display;
  out->rows = m_data->rows;
  for (const auto& c : columns) {
    const auto i = column_index(c);
    out->names.push_back(c);
    out->call_column.push_back(m_data->call_column[i]);
    out->cells.push_back(m_data->cells[i]);
  }
  return Table(std::move(out));
}

Values Table::display() const noexcept { return m_data->display; }
void Table::set_display(Values mode) {
  auto copy = std::make_shared<TableData>(*m_data);
  copy->display = mode;
  m_data = std::move(copy);
}

namespace {
std::vector<std::vector<std::string>> rendered(const TableData& d, bool full_ids, const char* null_text) {
  std::vector<std::vector<std::string>> cols(d.names.size());
  for (std::size_t c = 0; c < d.names.size(); ++c) {
    const auto json = d.display == Values::values ? value_json(d, c) : std::unordered_map<Elem, std::string>{};
    cols[c].reserve(d.rows);
    for (std::size_t r = 0; r < d.rows; ++r) {
      auto s = render(d, c, r, d.display, json, full_ids);
      cols[c].push_back(d.cells[c][r] == detail::null_cell ? std::string(null_text) : std::move(s));
    }
  }
  return cols;
}
}  // namespace

std::string Table::to_text(std::size_t max_cell_width) const {
  const auto& d = *m_data;
  auto cols = rendered(d, false, "null");
  std::vector<std::size_t> width(d.names.size());
  for (std::size_t c = 0; c < d.names.size(); ++c) {
    width[c] = truncate(d.names[c], max_cell_width).size();
    for (auto& s : cols[c]) {
      s = truncate(s, max_cell_width);
      width[c] = std::max(width[c], s.size());
    }
  }
  std::string out;
  auto line = [&](auto&& cell_of) {
    std::string l;
    for (std::size_t c = 0; c < d.names.size(); ++c) {
      std::string s = cell_of(c);
      if (c + 1 < d.names.size()) s.resize(width[c], ' ');
      {
        l += c ? "  " : "";
        l += s;
      }
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line([&](std::size_t c) { return truncate(d.names[c], max_cell_width); });
  line([&](std::size_t c) { return std::string(width[c], '-'); });
  for (std::size_t r = 0; r < d.rows; ++r) line([&](std::size_t c) { return cols[c][r]; });
  return out;
}

std::string Table::to_markdown(std::size_t max_cell_width) const {
  const auto& d = *m_data;
  auto cols = rendered(d, false, "null");
  auto esc = [&](std::string s) {
    s = truncate(std::move(s), max_cell_width);
    std::string out;
    for (char ch : s) {
      if (ch == '|') out += "\\|";
      else if (ch == '\n') out += ' ';
      else out += ch;
    }
    return out;
  };
  std::string out = "|";
  for (const auto& n : d.names) {
    out += ' ';
    out += esc(n);
    out += " |";
  }
  out += "\n|";
  for (std::size_t c = 0; c < d.names.size(); ++c) out += " --- |";
  out += "\n";
  for (std::size_t r = 0; r < d.rows; ++r) {
    out += "|";
    for (std::size_t c = 0; c < d.names.size(); ++c) {
      out += ' ';
      out += esc(cols[c][r]);
      out += " |";
    }
    out += "\n";
  }
  return out;
}

std::string Table::to_csv() const {
  const auto& d = *m_data;
  auto cols = rendered(d, true, "");
  auto field = [](const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return out + "\"";
  };
  std::string out;
  for (std::size_t c = 0; c < d.names.size(); ++c) {
    out += c ? "," : "";
    out += field(d.names[c]);
  }
  out += "\r\n";
  for (std::size_t r = 0; r < d.rows; ++r) {
    for (std::size_t c = 0; c < d.names.size(); ++c) {
      out += c ? "," : "";
      out += field(cols[c][r]);
    }
    out += "\r\n";
  }
  return out;
}

std::string Table::to_json() const {
  const auto& d = *m_data;
  std::vector<std::unordered_map<Elem, std::string>> json(d.names.size());
  for (std::size_t c = 0; c < d.names.size(); ++c) json[c] = value_json(d, c);
  std::string out = "[";
  for (std::size_t r = 0; r < d.rows; ++r) {
    out += r ? ",\n{" : "\n{";
    for (std::size_t c = 0; c < d.names.size(); ++c) {
      {
        out += c ? "," : "";
        out += json_string(d.names[c]) + ":";
      }
      const auto elems = d.elements(c, r);
      if (elems.empty()) {
        out += "null";
        continue;
      }
      std::vector<std::string> parts;
      for (auto e : elems) {
        if (d.call_column[c]) {
          const auto& call = d.u->call(e);
          parts.push_back("{\"op\":" + json_string(d.u->name(call.op)) + ",\"hid\":\"" + call.hid.hex() + "\"}");
        } else {
          parts.push_back(json[c].at(e));
        }
      }
      if (d.cells[c][r] >= 0) {
        out += parts.front();
      } else {
        out += "[";
        for (std::size_t i = 0; i < parts.size(); ++i) {
          out += i ? "," : "";
          out += parts[i];
        }
        out += "]";
      }
    }
    out += "}";
  }
  return out + (d.rows ? "\n]" : "]");
}

std::ostream& operator<<(std::ostream& os, const Table& table) { return os << table.to_text(); }

}  // namespace mandala
