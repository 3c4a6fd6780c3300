#pragma once
// What kind of file system holds a store: SQLite's locking is unreliable on network file
// systems, so opening a store there warns (docs/guarantees.md).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace mandala::store {

/// The name of the network file system with this statfs magic number ("nfs", "cifs", ...);
/// nullopt for any other.
std::optional<std::string> network_file_system_name(std::uint64_t magic);

/// The network file system holding `path` (its directory when it does not exist yet); nullopt
/// when it is local or cannot be told.
std::optional<std::string> network_file_system(const std::filesystem::path& path);

/// Prints a warning on stderr when `path` is on a network file system.
void warn_if_network_file_system(const std::filesystem::path& path);

}  // namespace mandala::store
