#pragma once
// Fault injection under SQLite: a VFS that forwards every call to the default VFS and fails the
// n-th write, sync or read (of files whose path contains a given text) with a chosen SQLite
// error, e.g. SQLITE_FULL for a full disk. Installed as the default VFS, so the library's own
// connections go through it unchanged.

#include <sqlite3.h>

#include <atomic>
#include <string>

namespace mandala::reliability {

enum class FaultOn { write, sync, read };

class FaultVfs {
 public:
  /// Registers the shim as the default VFS (once per process) and returns it.
  static FaultVfs& install();

  /// Fails the operation after `skip` successful ones with `rc` (SQLITE_FULL, SQLITE_IOERR_WRITE,
  /// SQLITE_IOERR_FSYNC, ...); once, or every time from then on when `sticky`. Only files whose
  /// path contains `path_part` count (empty: all).
  void arm(FaultOn on, int skip, int rc, bool sticky = false, std::string path_part = "");
  void disarm();
  /// How many operations have failed by injection since the process started.
  [[nodiscard]] int injected() const { return m_injected.load(); }
  /// Whether the armed fault has fired (since the last arm()).
  [[nodiscard]] bool fired() const { return m_fired.load(); }

  /// Called by the shim: the error code to return instead of doing `on` on `path`, or SQLITE_OK.
  int fault_for(FaultOn on, const char* path);

 private:
  FaultVfs() = default;
  std::atomic<bool> m_armed{false};
  FaultOn m_on = FaultOn::write;
  std::atomic<int> m_countdown{0};
  int m_rc = SQLITE_OK;
  bool m_sticky = false;
  std::string m_path_part;
  std::atomic<bool> m_fired{false};
  std::atomic<int> m_injected{0};
};

/// Disarms on scope exit.
class ArmedFault {
 public:
  ArmedFault(FaultOn on, int skip, int rc, bool sticky = false, std::string path_part = "")
      : m_vfs(FaultVfs::install()) {
    m_vfs.arm(on, skip, rc, sticky, std::move(path_part));
  }
  ~ArmedFault() { m_vfs.disarm(); }
  ArmedFault(const ArmedFault&) = delete;
  ArmedFault& operator=(const ArmedFault&) = delete;
  [[nodiscard]] bool fired() const { return m_vfs.fired(); }

 private:
  FaultVfs& m_vfs;
};

}  // namespace mandala::reliability
