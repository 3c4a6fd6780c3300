#pragma once
// Table: what ComputationFrame::eval() / df() return. Named columns (one per frame node) whose
// cells are null, a value (a lazy ref), a call, or a collection of values or of calls (when one
// row holds several elements of a node). Values load from the storage on use, in bulk for whole
// columns; a Table stays usable while any frame or storage handle keeps the storage open.

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/error.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"
#include "mandala/ref.hpp"
#include "mandala/storage.hpp"

namespace mandala {

namespace detail {
struct TableData;
}

/// How cells show values in text and exports: `values` renders each value as JSON, `refs`
/// renders history ids (hex).
enum class Values { values, refs };

/// Ascending or descending order for Table::sorted_by.
enum class Order { ascending, descending };

/// One cell of a Table (a cheap view: the table's data is shared).
class MANDALA_API Cell {
 public:
  enum class Kind { null, value, call, values, calls };

  [[nodiscard]] Kind kind() const noexcept { return m_kind; }
  [[nodiscard]] bool is_null() const noexcept { return m_kind == Kind::null; }
  /// Whether the cell holds several elements (a collection).
  [[nodiscard]] bool is_collection() const noexcept { return m_kind == Kind::values || m_kind == Kind::calls; }
  /// Number of elements: 0 for null, 1 for a value or a call.
  [[nodiscard]] std::size_t size() const noexcept { return m_elements.size(); }

  /// The value of a Kind::value cell; Errc::invalid_argument for other kinds.
  [[nodiscard]] AnyRef ref() const;
  /// The values of a value or values cell (sorted by history id); empty for null.
  [[nodiscard]] std::vector<AnyRef> refs() const;
  /// The call of a Kind::call cell; Errc::invalid_argument for other kinds.
  [[nodiscard]] CallInfo call() const;
  /// The calls of a call or calls cell (sorted by history id); empty for null.
  [[nodiscard]] std::vector<CallInfo> calls() const;
  /// History ids of the elements (sorted); empty for null.
  [[nodiscard]] std::vector<Id> hids() const;
  /// The decoded value of a Kind::value cell (Errc::decode when it is not a T).
  template <class T>
  [[nodiscard]] T as() const {
    auto bytes = value_bytes();
    return decode_value<T>(std::span<const std::byte>(bytes));
  }
  /// JSON: null; the value; an array of values; a call as {"op","hid"}; an array of calls. A
  /// transient value that is not stored (OpOptions::transient) shows as {"not_stored": cid}
  /// (a printed table: <not stored>); as<T>() and ref().get() recompute it.
  [[nodiscard]] std::string to_json() const;
  /// The text a printed table shows (values as JSON, or hids with Values::refs).
  [[nodiscard]] std::string to_string(Values mode = Values::values) const;

 private:
  friend class Table;
  Cell(std::shared_ptr<const detail::TableData> data, std::size_t column, Kind kind,
       std::vector<std::uint32_t> elements)
      : m_data(std::move(data)), m_column(column), m_kind(kind), m_elements(std::move(elements)) {}
  [[nodiscard]] std::vector<std::byte> value_bytes() const;

  std::shared_ptr<const detail::TableData> m_data;
  std::size_t m_column = 0;
  Kind m_kind = Kind::null;
  std::vector<std::uint32_t> m_elements;  // ids in the frame's element space
};

/// A whole column at once, for converting tables in bulk (language bindings, exports): the
/// column's distinct elements (values or calls), each once, and per row the positions of its
/// elements among them. Making one loads nothing; values() loads every value in one bulk query,
/// call() builds a CallInfo only for the call asked for. Shares the table's data: usable while
/// the table's storage is open.
class MANDALA_API ColumnCells {
 public:
  [[nodiscard]] bool holds_calls() const noexcept { return m_calls; }
  [[nodiscard]] std::size_t num_rows() const noexcept { return m_offsets.empty() ? 0 : m_offsets.size() - 1; }
  /// Number of distinct elements (positions run from 0 to this).
  [[nodiscard]] std::size_t num_distinct() const noexcept { return m_elements.size(); }
  /// Positions of the elements of a row: none for a null cell, one for a value or a call, several
  /// for a collection (ordered by history id, as Cell::refs and Cell::calls). Unchecked row.
  [[nodiscard]] std::span<const std::uint32_t> row(std::size_t r) const {
    return std::span<const std::uint32_t>(m_items).subspan(m_offsets[r], m_offsets[r + 1] - m_offsets[r]);
  }
  /// History and content ids of a distinct element (a value's ref or a call).
  [[nodiscard]] const Id& hid(std::size_t position) const;
  [[nodiscard]] const Id& cid(std::size_t position) const;

  /// A value column: the encoded values of all distinct elements, in position order, loaded in
  /// one bulk query (a transparent collection as its elements' values). Errc::not_found when a
  /// value is not in the storage; Errc::invalid_argument for a call column.
  [[nodiscard]] std::vector<std::vector<std::byte>> values() const;
  /// The values of several value columns at once: each distinct value (by content id) once,
  /// all loaded in one bulk query, and per column and position the index of its value.
  struct LoadedValues {
    std::vector<std::vector<std::byte>> contents;        ///< encoded values, each once
    std::vector<std::vector<std::uint32_t>> content_of;  ///< [column][position]: index in contents
    /// Per content: 1 for a transient value that is not stored (OpOptions::transient; its
    /// contents are empty: load it through ref(position), which recomputes it).
    std::vector<char> not_stored;
  };
  /// Errors as values(); `columns` may hold columns of different tables of one storage.
  [[nodiscard]] static LoadedValues values_of(std::span<const ColumnCells* const> columns);
  /// A value column: the ref of a distinct element (lazy; Errc::invalid_argument for a call column).
  [[nodiscard]] AnyRef ref(std::size_t position) const;

  /// A call column (Errc::invalid_argument otherwise): a distinct call, its op name and version.
  [[nodiscard]] CallInfo call(std::size_t position) const;
  [[nodiscard]] const std::string& op(std::size_t position) const;
  [[nodiscard]] std::uint32_t version(std::size_t position) const;

 private:
  friend class Table;
  ColumnCells() = default;
  void require(bool calls, std::size_t position) const;

  std::shared_ptr<const detail::TableData> m_data;
  bool m_calls = false;
  std::vector<std::uint32_t> m_elements;  // element ids in the frame's space, by position
  std::vector<std::size_t> m_offsets;     // row r: m_items[m_offsets[r] .. m_offsets[r + 1])
  std::vector<std::uint32_t> m_items;     // positions
};

class MANDALA_API Table {
 public:
  /// An empty table (no columns, no rows).
  Table();
  explicit Table(std::shared_ptr<detail::TableData> data);

  [[nodiscard]] std::size_t num_rows() const noexcept;
  [[nodiscard]] std::size_t num_columns() const noexcept;
  [[nodiscard]] bool empty() const noexcept { return num_rows() == 0; }
  [[nodiscard]] const std::vector<std::string>& column_names() const noexcept;
  [[nodiscard]] bool has_column(std::string_view name) const;
  /// Whether the column holds calls (a function node) rather than values.
  [[nodiscard]] bool is_call_column(std::string_view name) const;
  /// Errc::invalid_argument for an unknown column or a row out of range.
  [[nodiscard]] Cell cell(std::size_t row, std::string_view column) const;
  [[nodiscard]] Cell cell(std::size_t row, std::size_t column) const;

  /// The values of a value column decoded as T: nullopt for null cells. Values are loaded in
  /// bulk. Errc::invalid_argument for a call column or a collection cell (use cells()),
  /// Errc::decode when a value is not a T.
  template <class T>
  [[nodiscard]] std::vector<std::optional<T>> column(std::string_view name) const {
    auto raw = column_bytes(name);
    std::vector<std::optional<T>> out;
    out.reserve(raw.size());
    for (auto& b : raw) {
      if (!b) out.emplace_back();
      else out.emplace_back(decode_value<T>(std::span<const std::byte>(*b)));
    }
    return out;
  }
  /// All cells of a column.
  [[nodiscard]] std::vector<Cell> cells(std::string_view name) const;
  /// A column in bulk (each distinct element once); Errc::invalid_argument for an unknown name.
  [[nodiscard]] ColumnCells column_cells(std::string_view name) const;

  /// One row: cells by column name or index.
  class Row {
   public:
    [[nodiscard]] Cell operator[](std::string_view column) const { return m_table->cell(m_row, column); }
    [[nodiscard]] Cell operator[](std::size_t column) const { return m_table->cell(m_row, column); }
    [[nodiscard]] std::size_t index() const noexcept { return m_row; }

   private:
    friend class Table;
    Row(const Table* table, std::size_t row) : m_table(table), m_row(row) {}
    const Table* m_table;
    std::size_t m_row;
  };
  class iterator {
   public:
    using value_type = Row;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    Row operator*() const { return Row(m_table, m_row); }
    iterator& operator++() {
      ++m_row;
      return *this;
    }
    iterator operator++(int) {
      auto old = *this;
      ++m_row;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.m_row == b.m_row; }

   private:
    friend class Table;
    iterator(const Table* table, std::size_t row) : m_table(table), m_row(row) {}
    const Table* m_table = nullptr;
    std::size_t m_row = 0;
  };
  [[nodiscard]] iterator begin() const { return {this, 0}; }
  [[nodiscard]] iterator end() const { return {this, num_rows()}; }
  [[nodiscard]] Row row(std::size_t index) const;

  /// A copy with rows ordered by one column: numbers numerically, strings lexicographically,
  /// other values by their JSON text; calls by op and hid; nulls last. Stable.
  [[nodiscard]] Table sorted_by(std::string_view column, Order order = Order::ascending) const;
  /// A copy with only the given columns (in the given order); unknown names are an error.
  [[nodiscard]] Table select(const std::vector<std::string>& columns) const;

  /// How cells render in to_text/to_markdown/to_csv (JSON export always has values as JSON).
  [[nodiscard]] Values display() const noexcept;
  void set_display(Values mode);

  /// Aligned plain text, one line per row, with a header line.
  [[nodiscard]] std::string to_text(std::size_t max_cell_width = 40) const;
  /// A GitHub-flavoured Markdown table.
  [[nodiscard]] std::string to_markdown(std::size_t max_cell_width = 80) const;
  /// RFC 4180 CSV with a header row; null cells are empty fields.
  [[nodiscard]] std::string to_csv() const;
  /// A JSON array of row objects {column: cell JSON}.
  [[nodiscard]] std::string to_json() const;

  friend MANDALA_API std::ostream& operator<<(std::ostream& os, const Table& table);

 private:
  [[nodiscard]] std::vector<std::optional<std::vector<std::byte>>> column_bytes(std::string_view name) const;
  [[nodiscard]] std::size_t column_index(std::string_view name) const;
  std::shared_ptr<detail::TableData> m_data;
};

}  // namespace mandala
