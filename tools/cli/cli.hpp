#pragma once
// Shared pieces of the `mandala` command: the subcommand registry, opening stores, resolving
// ids, and output (tables, JSON, times, sizes, colours, progress, confirmation).

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <mandala/mandala.hpp>

namespace mandala::cli {

/// What a subcommand does once its arguments are parsed; returns the exit code.
using Action = std::function<int()>;

/// Each subcommand lives in its own source file and has one registration function, listed
/// once in main.cpp: it adds the subcommand to `app` and, from its callback, sets `action`.
using Registration = void (*)(CLI::App& app, Action& action);

/// Exit codes.
constexpr int exit_ok = 0;
constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

/// Bad arguments found after parsing (exit code 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A clear failure with its message (exit code 1).
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Adds the positional STORE argument.
CLI::Option* add_store_arg(CLI::App& sub, std::string& path);
/// Adds --json.
CLI::Option* add_json_flag(CLI::App& sub, bool& json);
/// A check for a whole-number option: decimal digits only (no sign, no spaces), from `min` to
/// `max`; anything else is a usage error naming the range and the text given.
CLI::Validator whole_number(std::uint64_t min, std::uint64_t max);
/// The largest count a --limit or --offset takes (the store's queries count in 64-bit signed
/// integers).
inline constexpr std::uint64_t max_count = std::numeric_limits<std::int64_t>::max();

/// Opens a store for reading: read-only, leaving its files exactly as they are.
Storage open_for_reading(const std::string& path);
/// Opens an existing store for changes (drop, gc).
Storage open_for_writing(const std::string& path);

/// Resolves a call or ref id, or a unique prefix of one; Failure when unknown or ambiguous.
IdMatch resolve_id(Storage& storage, std::string_view text);

/// The recorded code versions of an op, oldest first; Failure when the store has no such op or
/// the op's code is not tracked.
std::vector<OpVersion> code_versions(Storage& storage, const std::string& op);

struct Terminal {
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool stderr_tty = false;
  bool colour = false;  ///< stdout is a terminal and NO_COLOR is unset
};
const Terminal& terminal();

/// Bold / dim text when colours are on.
std::string bold(std::string_view text);
std::string dim(std::string_view text);

/// "2026-11-26T22:19:07Z".
std::string iso_time(std::chrono::system_clock::time_point t);
/// "12.3 MiB".
std::string human_bytes(std::uint64_t bytes);
/// The first 12 hex digits of an id.
std::string short_id(const Id& id);

/// An aligned text table; cells are cut to `max_width` code points (0: no limit).
void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::size_t max_width = 0);

/// Writes text to a file, or to stdout when `path` is empty or "-".
void write_output(const std::string& text, const std::string& path);
/// Prints a JSON document on stdout.
void print_json(const nlohmann::json& doc);
/// An op summary as JSON (what `ops --json` lists and `info --json` ranks).
nlohmann::json op_json(const OpSummary& op);
/// A code version with the code of its components (what `versions --json` lists).
nlohmann::json version_json(const OpVersion& version);
/// A ref's stored value as a JSON document (arrays cut to `max_items`).
nlohmann::json value_json(const AnyRef& ref, std::size_t max_items);
/// The display text of a ref's value; "<not stored>" for a transient output (its op cannot run here).
std::string value_text(const AnyRef& ref, std::size_t max_chars);

/// On a terminal without --yes: asks `question` on stderr and reads y/n from stdin. Elsewhere
/// (scripts, pipes) and with --yes: true.
bool confirm(const std::string& question, bool yes);

/// A progress line on stderr, only when stderr is a terminal: a bar when the total is known,
/// a spinner with the elapsed time otherwise (updated from a background thread).
class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  /// Reports `done` of `total` units (thread-safe).
  void update(std::uint64_t done, std::uint64_t total);
  /// Clears the line.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

}  // namespace mandala::cli
