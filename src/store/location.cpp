// Store locations: which backend a location string names, and what it names there.

#include <cctype>
#include <string>
#include <string_view>

#include "mandala/error.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/renames.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "store/store.hpp"

namespace mandala::store {
namespace {

/// The scheme of a location of the form `scheme:...` (RFC 3986 letters), lower case; empty
/// when the location has none (a plain path).
std::string scheme_of(std::string_view location) {
  const auto colon = location.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  const auto scheme = location.substr(0, colon);
  if (std::isalpha(static_cast<unsigned char>(scheme[0])) == 0) return {};
  for (char c : scheme)
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '+' && c != '-' && c != '.') return {};
  std::string lower(scheme);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // `sqlite:` always is a scheme; any other only with `//` after it (`a:b` may be a file name).
  if (lower != "sqlite" && location.substr(colon + 1).rfind("//", 0) != 0) return {};
  return lower;
}

/// The location with a password (`user:password@`) replaced by `***`, for messages.
std::string redacted(std::string_view location) {
  const auto start = location.find("://");
  if (start == std::string_view::npos) return std::string(location);
  const auto authority_end = location.find_first_of("/?#", start + 3);
  const auto authority = location.substr(
      start + 3, authority_end == std::string_view::npos ? std::string_view::npos : authority_end - start - 3);
  const auto at = authority.rfind('@');
  const auto colon = authority.find(':');
  if (at == std::string_view::npos || colon == std::string_view::npos || colon > at) return std::string(location);
  std::string out(location.substr(0, start + 3 + colon + 1));
  out += "***";
  out += location.substr(start + 3 + at);
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

[[noreturn]] void bad_sqlite(std::string_view location, const std::string& why) {
  throw Error(Errc::invalid_argument, "store location '" + std::string(location) + "': " + why +
                                          " (write sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH or a plain path)");
}

/// Percent-decodes the path part of an `sqlite:` location.
std::string decoded(std::string_view location, std::string_view path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      out += path[i];
      continue;
    }
    const int hi = i + 2 < path.size() ? hex_digit(path[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_digit(path[i + 2]) : -1;
    if (lo < 0) bad_sqlite(location, "'%' must be followed by two hex digits");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  if (out.find('\0') != std::string::npos) bad_sqlite(location, "the path holds a NUL byte");
  return out;
}

}  // namespace

std::optional<std::filesystem::path> sqlite_path(const std::string& location) {
  const std::string scheme = scheme_of(location);
  if (scheme.empty()) return std::filesystem::path(location);
  if (scheme != "sqlite") return std::nullopt;
  std::string_view rest = std::string_view(location).substr(location.find(':') + 1);
  if (rest.find_first_of("?#") != std::string_view::npos)
    bad_sqlite(location, "options in the location are not supported (use StorageOptions)");
  if (rest.rfind("//", 0) == 0) {
    rest.remove_prefix(2);
    const auto slash = rest.find('/');
    const auto host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost")
      bad_sqlite(location, "an SQLite store is a local file; '" + std::string(host) + "' names another host");
    if (slash == std::string_view::npos) bad_sqlite(location, "no file is named");
    rest.remove_prefix(slash);
  }
  if (rest.empty() || rest == "/") bad_sqlite(location, "no file is named");
  return std::filesystem::path(decoded(location, rest));
}

std::unique_ptr<Store> open_store(const std::string& location, const StoreOptions& options) {
  if (auto path = sqlite_path(location)) return with_renames(open_sqlite_store(*path, options), options.read_only);
  const std::string scheme = scheme_of(location);
  if (scheme == "postgresql" || scheme == "postgres")
    return with_renames(open_postgres_store(location, redacted(location), options), options.read_only);
  throw Error(Errc::invalid_argument, "store location '" + redacted(location) + "': unknown scheme '" + scheme +
                                          "'; give a file path, sqlite:///ABSOLUTE/PATH or postgresql://HOST/DATABASE");
}

}  // namespace mandala::store
