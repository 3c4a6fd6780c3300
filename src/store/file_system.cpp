#include "store/file_system.hpp"

#include <sys/vfs.h>

#include <iostream>
#include <utility>

namespace mandala::store {

std::optional<std::string> network_file_system_name(std::uint64_t magic) {
  // Magic numbers from linux/magic.h and the file systems' sources.
  static constexpr std::pair<std::uint64_t, const char*> known[] = {
      {0x6969, "nfs"},        {0x517B, "smb"},      {0xFF534D42, "cifs"},  {0xFE534D42, "smb2"},
      {0x73757245, "coda"},   {0x5346414F, "afs"},  {0x6B414653, "afs"},   {0x564C, "ncp"},
      {0x01021997, "9p"},     {0x00C36400, "ceph"}, {0x01161970, "gfs2"},  {0x7461636F, "ocfs2"},
      {0x0BD00BD0, "lustre"}, {0x47504653, "gpfs"}, {0xAAD7AAEA, "panfs"}, {0x013111A8, "ibrix"},
  };
  for (const auto& [m, name] : known)
    if (m == magic) return std::string(name);
  return std::nullopt;
}

std::optional<std::string> network_file_system(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::path probe = std::filesystem::exists(path, ec) ? path : path.parent_path();
  if (probe.empty()) probe = ".";
  struct statfs info {};
  if (::statfs(probe.c_str(), &info) != 0) return std::nullopt;
  return network_file_system_name(static_cast<std::uint64_t>(static_cast<std::uint32_t>(info.f_type)));
}

void warn_if_network_file_system(const std::filesystem::path& path) {
  if (auto name = network_file_system(path))
    std::cerr << "mandala: warning: " << path.string() << " is on a network file system (" << *name
              << "); SQLite's file locks are unreliable there, so two processes writing the store at once can "
                 "damage it. Keep stores on a local disk, or make sure only one process opens it at a time "
                 "(see docs/guarantees.md).\n";
}

}  // namespace mandala::store
