#include "fault_vfs.hpp"

#include <cstring>
#include <mutex>

namespace mandala::reliability {
namespace {

sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_shim;
sqlite3_io_methods g_methods;

/// Our file: the header, then the real VFS's file object.
struct ShimFile {
  sqlite3_file base;
  sqlite3_file* real;
  char path[480];
};

sqlite3_file* inner(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f)->real; }
const char* path_of(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f)->path; }

int shim_close(sqlite3_file* f) { return inner(f)->pMethods->xClose(inner(f)); }
int shim_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  if (const int rc = FaultVfs::install().fault_for(FaultOn::read, path_of(f)); rc != SQLITE_OK) return rc;
  return inner(f)->pMethods->xRead(inner(f), buf, n, off);
}
int shim_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (const int rc = FaultVfs::install().fault_for(FaultOn::write, path_of(f)); rc != SQLITE_OK) return rc;
  return inner(f)->pMethods->xWrite(inner(f), buf, n, off);
}
int shim_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = FaultVfs::install().fault_for(FaultOn::write, path_of(f)); rc != SQLITE_OK) return rc;
  return inner(f)->pMethods->xTruncate(inner(f), size);
}
int shim_sync(sqlite3_file* f, int flags) {
  if (const int rc = FaultVfs::install().fault_for(FaultOn::sync, path_of(f)); rc != SQLITE_OK) return rc;
  return inner(f)->pMethods->xSync(inner(f), flags);
}
int shim_file_size(sqlite3_file* f, sqlite3_int64* size) { return inner(f)->pMethods->xFileSize(inner(f), size); }
int shim_lock(sqlite3_file* f, int level) { return inner(f)->pMethods->xLock(inner(f), level); }
int shim_unlock(sqlite3_file* f, int level) { return inner(f)->pMethods->xUnlock(inner(f), level); }
int shim_check_reserved(sqlite3_file* f, int* out) { return inner(f)->pMethods->xCheckReservedLock(inner(f), out); }
int shim_file_control(sqlite3_file* f, int op, void* arg) {
  return inner(f)->pMethods->xFileControl(inner(f), op, arg);
}
int shim_sector_size(sqlite3_file* f) { return inner(f)->pMethods->xSectorSize(inner(f)); }
int shim_device(sqlite3_file* f) { return inner(f)->pMethods->xDeviceCharacteristics(inner(f)); }
int shim_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return inner(f)->pMethods->xShmMap(inner(f), page, size, extend, out);
}
int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return inner(f)->pMethods->xShmLock(inner(f), offset, n, flags);
}
void shim_shm_barrier(sqlite3_file* f) { inner(f)->pMethods->xShmBarrier(inner(f)); }
int shim_shm_unmap(sqlite3_file* f, int del) { return inner(f)->pMethods->xShmUnmap(inner(f), del); }
int shim_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  // With a read fault armed, memory-mapped reads are refused so that pages go through xRead.
  if (FaultVfs::install().fault_for(FaultOn::read, nullptr) != SQLITE_OK) {
    *out = nullptr;
    return SQLITE_OK;
  }
  return inner(f)->pMethods->xFetch(inner(f), off, n, out);
}
int shim_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) { return inner(f)->pMethods->xUnfetch(inner(f), off, p); }

int shim_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* shim = reinterpret_cast<ShimFile*>(file);
  shim->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + sizeof(ShimFile));
  shim->path[0] = '\0';
  if (name != nullptr) {
    std::strncpy(shim->path, name, sizeof(shim->path) - 1);
    shim->path[sizeof(shim->path) - 1] = '\0';
  }
  const int rc = g_real->xOpen(g_real, name, shim->real, flags, out_flags);
  shim->base.pMethods = shim->real->pMethods != nullptr ? &g_methods : nullptr;
  return rc;
}

int shim_delete(sqlite3_vfs*, const char* name, int sync) { return g_real->xDelete(g_real, name, sync); }
int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_real->xAccess(g_real, name, flags, out);
}
int shim_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_real->xFullPathname(g_real, name, n, out);
}
void* shim_dl_open(sqlite3_vfs*, const char* name) { return g_real->xDlOpen(g_real, name); }
void shim_dl_error(sqlite3_vfs*, int n, char* out) { g_real->xDlError(g_real, n, out); }
void (*shim_dl_sym(sqlite3_vfs*, void* h, const char* sym))(void) { return g_real->xDlSym(g_real, h, sym); }
void shim_dl_close(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int shim_randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int shim_sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int shim_current_time(sqlite3_vfs*, double* out) { return g_real->xCurrentTime(g_real, out); }
int shim_last_error(sqlite3_vfs*, int n, char* out) { return g_real->xGetLastError(g_real, n, out); }
int shim_current_time64(sqlite3_vfs*, sqlite3_int64* out) { return g_real->xCurrentTimeInt64(g_real, out); }
int shim_set_syscall(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr p) {
  return g_real->xSetSystemCall(g_real, name, p);
}
sqlite3_syscall_ptr shim_get_syscall(sqlite3_vfs*, const char* name) { return g_real->xGetSystemCall(g_real, name); }
const char* shim_next_syscall(sqlite3_vfs*, const char* name) { return g_real->xNextSystemCall(g_real, name); }

void register_shim() {
  g_real = sqlite3_vfs_find(nullptr);
  g_shim = sqlite3_vfs{};
  g_shim.iVersion = 3;
  g_shim.szOsFile = static_cast<int>(sizeof(ShimFile)) + g_real->szOsFile;
  g_shim.mxPathname = g_real->mxPathname;
  g_shim.zName = "mandala-fault";
  g_shim.xOpen = shim_open;
  g_shim.xDelete = shim_delete;
  g_shim.xAccess = shim_access;
  g_shim.xFullPathname = shim_full_pathname;
  g_shim.xDlOpen = shim_dl_open;
  g_shim.xDlError = shim_dl_error;
  g_shim.xDlSym = shim_dl_sym;
  g_shim.xDlClose = shim_dl_close;
  g_shim.xRandomness = shim_randomness;
  g_shim.xSleep = shim_sleep;
  g_shim.xCurrentTime = shim_current_time;
  g_shim.xGetLastError = shim_last_error;
  g_shim.xCurrentTimeInt64 = shim_current_time64;
  g_shim.xSetSystemCall = shim_set_syscall;
  g_shim.xGetSystemCall = shim_get_syscall;
  g_shim.xNextSystemCall = shim_next_syscall;

  g_methods = sqlite3_io_methods{};
  g_methods.iVersion = 3;
  g_methods.xClose = shim_close;
  g_methods.xRead = shim_read;
  g_methods.xWrite = shim_write;
  g_methods.xTruncate = shim_truncate;
  g_methods.xSync = shim_sync;
  g_methods.xFileSize = shim_file_size;
  g_methods.xLock = shim_lock;
  g_methods.xUnlock = shim_unlock;
  g_methods.xCheckReservedLock = shim_check_reserved;
  g_methods.xFileControl = shim_file_control;
  g_methods.xSectorSize = shim_sector_size;
  g_methods.xDeviceCharacteristics = shim_device;
  g_methods.xShmMap = shim_shm_map;
  g_methods.xShmLock = shim_shm_lock;
  g_methods.xShmBarrier = shim_shm_barrier;
  g_methods.xShmUnmap = shim_shm_unmap;
  g_methods.xFetch = shim_fetch;
  g_methods.xUnfetch = shim_unfetch;
  sqlite3_vfs_register(&g_shim, 1);
}

}  // namespace

FaultVfs& FaultVfs::install() {
  static FaultVfs vfs;
  static std::once_flag once;
  std::call_once(once, register_shim);
  return vfs;
}

void FaultVfs::arm(FaultOn on, int skip, int rc, bool sticky, std::string path_part) {
  m_armed = false;
  m_on = on;
  m_rc = rc;
  m_sticky = sticky;
  m_path_part = std::move(path_part);
  m_countdown = skip;
  m_fired = false;
  m_armed = true;
}

void FaultVfs::disarm() { m_armed = false; }

int FaultVfs::fault_for(FaultOn on, const char* path) {
  if (!m_armed.load() || on != m_on) return SQLITE_OK;
  if (path == nullptr) return m_rc;  // a query from xFetch: is a read fault armed?
  if (!m_path_part.empty() && std::strstr(path, m_path_part.c_str()) == nullptr) return SQLITE_OK;
  if (m_countdown.fetch_sub(1) > 0) return SQLITE_OK;
  if (!m_sticky) m_armed = false;
  m_fired = true;
  ++m_injected;
  return m_rc;
}

}  // namespace mandala::reliability
