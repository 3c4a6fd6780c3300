// Shared pieces of the `mandala` command (see cli.hpp).

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli.hpp"

namespace mandala::cli {
namespace fs = std::filesystem;

CLI::Option* add_store_arg(CLI::App& sub, std::string& path) {
  return sub
      .add_option("STORE", path,
                  "The store: the path of its file (an SQLite database made by mandala), sqlite:///ABSOLUTE/PATH or "
                  "sqlite:RELATIVE/PATH")
      ->required();
}

CLI::Option* add_json_flag(CLI::App& sub, bool& json) {
  return sub.add_flag("--json", json, "Print JSON for scripts instead of text");
}

namespace {
/// Read and write commands never create a store: the file a location names must exist.
void require_file(const std::string& location) {
  const auto file = store_file(location);
  if (!file) return;  // another backend: it says itself whether the store exists
  const std::string path = file->string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw Failure("no store at " + path + ": check the path");
  if (fs::is_directory(status)) throw Failure(path + " is a directory: pass the path of a store file");
}
}  // namespace

Storage open_for_reading(const std::string& path) {
  require_file(path);
  StorageOptions options;
  options.read_only = true;
  return Storage(path, options);
}

Storage open_for_writing(const std::string& path) {
  require_file(path);
  StorageOptions options;
  options.create = false;  // a command that changes a store never makes one
  return Storage(path, options);
}

IdMatch resolve_id(Storage& storage, std::string_view text) {
  std::string prefix(text);
  std::transform(prefix.begin(), prefix.end(), prefix.begin(), [](unsigned char c) { return std::tolower(c); });
  if (prefix.empty() || prefix.size() > 32 ||
      !std::all_of(prefix.begin(), prefix.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
    throw UsageError("'" + std::string(text) + "' is not an id: ids are 32 hex digits (a unique prefix will do)");
  const auto matches = storage.find_by_prefix(prefix, 5);
  if (matches.empty())
    throw Failure("no call or ref with id " + prefix + (prefix.size() < 32 ? "..." : "") + " in this store");
  if (matches.size() > 1) {
    std::string list;
    for (std::size_t i = 0; i < matches.size() && i < 4; ++i)
      list += (i ? ", " : "") + std::string(matches[i].kind == IdMatch::Kind::call ? "call " : "ref ") +
              matches[i].hid.hex();
    throw Failure("id prefix " + prefix + " is ambiguous (" + list + (matches.size() > 4 ? ", ..." : "") +
                  "): give more digits");
  }
  return matches.front();
}

std::vector<OpVersion> code_versions(Storage& storage, const std::string& op) {
  auto versions = storage.versions(op);
  if (!versions.empty()) return versions;
  std::string names;
  bool known = false;
  for (const auto& s : storage.ops()) {
    known = known || s.name == op;
    if (names.find(s.name) == std::string::npos) names += (names.empty() ? "" : ", ") + s.name;
  }
  if (known)
    throw Failure("op " + op +
                  " has no recorded code versions: its code is not tracked (build the program with "
                  "mandala_track_versions, see docs/versioning.md)");
  throw Failure("no op '" + op + "' in this store" + (names.empty() ? " (it has no ops)" : " (it has: " + names + ")"));
}

nlohmann::json version_json(const OpVersion& v) {
  nlohmann::json j{{"number", v.number},
                   {"explicit_version", v.explicit_version},
                   {"content_version", v.content_version.hex()},
                   {"semantic_version", v.decided ? nlohmann::json(v.semantic_version.hex()) : nlohmann::json(nullptr)},
                   {"decided", v.decided},
                   {"created", iso_time(v.created)},
                   {"calls", v.calls},
                   {"components", nlohmann::json::array()}};
  for (const auto& c : v.components)
    j["components"].push_back({{"name", c.name},
                               {"kind", c.kind},
                               {"content", c.content.hex()},
                               {"semantic", c.semantic.hex()},
                               {"compatible_with_earlier", c.semantic != c.content},
                               {"code", c.code}});
  return j;
}

const Terminal& terminal() {
  static const Terminal t = [] {
    Terminal r;
    r.stdin_tty = ::isatty(STDIN_FILENO) == 1;
    r.stdout_tty = ::isatty(STDOUT_FILENO) == 1;
    r.stderr_tty = ::isatty(STDERR_FILENO) == 1;
    const char* no_colour = std::getenv("NO_COLOR");
    r.colour = r.stdout_tty && (no_colour == nullptr || *no_colour == '\0');
    return r;
  }();
  return t;
}

std::string bold(std::string_view text) {
  return terminal().colour ? "\033[1m" + std::string(text) + "\033[0m" : std::string(text);
}
std::string dim(std::string_view text) {
  return terminal().colour ? "\033[2m" + std::string(text) + "\033[0m" : std::string(text);
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string human_bytes(std::uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, units[unit]);
  return buf;
}

std::string short_id(const Id& id) { return id.hex().substr(0, 12); }

namespace {
std::size_t code_points(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string cut(const std::string& s, std::size_t max_width) {
  if (max_width == 0 || code_points(s) <= max_width) return s;
  std::string out;
  std::size_t points = 0;
  for (const char c : s) {
    const bool starts = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts && points == max_width - 3) break;
    if (starts) ++points;
    out += c;
  }
  return out + "...";
}
}  // namespace

void print_table(std::ostream& out, const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows, std::size_t max_width) {
  std::vector<std::size_t> widths(header.size());
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  for (std::size_t c = 0; c < header.size(); ++c) widths[c] = code_points(header[c]);
  for (const auto& row : rows) {
    auto& r = cells.emplace_back();
    for (std::size_t c = 0; c < header.size(); ++c) {
      r.push_back(cut(c < row.size() ? row[c] : std::string(), max_width));
      widths[c] = std::max(widths[c], code_points(r.back()));
    }
  }
  auto line = [&](const std::vector<std::string>& r, bool is_header) {
    std::string text;
    for (std::size_t c = 0; c < r.size(); ++c) {
      const bool last = c + 1 == r.size();
      std::string cell = r[c];
      if (!last) cell += std::string(widths[c] - code_points(r[c]) + 2, ' ');
      text += cell;
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out << (is_header ? bold(text) : text) << '\n';
  };
  line(header, true);
  for (const auto& r : cells) line(r, false);
}

void write_output(const std::string& text, const std::string& path) {
  if (path.empty() || path == "-") {
    std::cout << text;
    if (!text.empty() && text.back() != '\n') std::cout << '\n';
    std::cout.flush();
    if (!std::cout) throw Failure("cannot write to standard output");
    return;
  }
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw Failure("cannot write " + path + ": check the directory exists and is writable");
  file << text;
  file.close();
  if (!file) throw Failure("writing " + path + " failed (disk full?)");
}

void print_json(const nlohmann::json& doc) {
  std::cout << doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

nlohmann::json op_json(const OpSummary& op) {
  return {{"name", op.name},
          {"version", op.version},
          {"inputs", op.inputs},
          {"outputs", op.outputs},
          {"calls", op.calls},
          {"output_bytes", op.output_bytes},
          {"last_call", op.last_call ? nlohmann::json(iso_time(*op.last_call)) : nlohmann::json(nullptr)}};
}

nlohmann::json value_json(const AnyRef& ref, std::size_t max_items) {
  try {
    return nlohmann::json::parse(ref.to_json(max_items));
  } catch (const Error& e) {
    // A transient output (not stored): this command cannot run the op that recomputes it.
    if (!ref.transient() || e.code() != Errc::not_found) throw;
    return {{"not_stored", ref.cid().hex()}};
  }
}

std::string value_text(const AnyRef& ref, std::size_t max_chars) {
  try {
    return ref.to_text(max_chars);
  } catch (const Error& e) {
    if (!ref.transient() || e.code() != Errc::not_found) throw;
    return "<not stored>";
  }
}

bool confirm(const std::string& question, bool yes) {
  if (yes || !terminal().stdin_tty || !terminal().stderr_tty) return true;
  std::cerr << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES";
}

struct Progress::Impl {
  std::string label;
  bool enabled = terminal().stderr_tty;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  std::uint64_t done = 0, total = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::thread ticker;
  std::size_t tick = 0;

  void draw_locked() {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char line[160];
    if (total > 0) {
      constexpr int width = 30;
      const double f = std::min(1.0, static_cast<double>(done) / static_cast<double>(total));
      const int filled = static_cast<int>(f * width);
      std::string bar(static_cast<std::size_t>(filled), '=');
      bar += std::string(static_cast<std::size_t>(width - filled), ' ');
      std::snprintf(line, sizeof line, "\r%s [%s] %3d%% %.1fs", label.c_str(), bar.c_str(), static_cast<int>(f * 100),
                    secs);
    } else {
      static constexpr char spin[] = "|/-\\";
      std::snprintf(line, sizeof line, "\r%s %c %.1fs", label.c_str(), spin[tick++ % 4], secs);
    }
    std::cerr << line << "\033[K" << std::flush;
  }
};

Progress::Progress(std::string label) : m_impl(std::make_unique<Impl>()) {
  m_impl->label = std::move(label);
  if (!m_impl->enabled) return;
  m_impl->ticker = std::thread([impl = m_impl.get()] {
    std::unique_lock lock(impl->mutex);
    while (!impl->stop) {
      impl->draw_locked();
      impl->wake.wait_for(lock, std::chrono::milliseconds(200));
    }
  });
}

Progress::~Progress() { finish(); }

void Progress::update(std::uint64_t done, std::uint64_t total) {
  if (!m_impl->enabled) return;
  std::lock_guard lock(m_impl->mutex);
  m_impl->done = done;
  m_impl->total = total;
}

void Progress::finish() {
  if (!m_impl->enabled || !m_impl->ticker.joinable()) return;
  {
    std::lock_guard lock(m_impl->mutex);
    m_impl->stop = true;
  }
  m_impl->wake.notify_all();
  m_impl->ticker.join();
  std::cerr << "\r\033[K" << std::flush;
}

CLI::Validator whole_number(std::uint64_t min, std::uint64_t max) {
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        const bool digits_only =
            !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (!digits_only || ec == std::errc::invalid_argument || ptr != end)
          return "expected a whole number from " + range + ", got '" + text + "'";
        if (ec == std::errc::result_out_of_range || value < min || value > max)
          return text + " is out of range: use a whole number from " + range;
        return {};
      },
      "INT in [" + range + "]");
}

}  // namespace mandala::cli
