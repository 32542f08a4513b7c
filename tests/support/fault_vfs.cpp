#include "support/fault_vfs.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <stdexcept>

// The shim follows https://www.sqlite.org/c3ref/vfs.html and c3ref/io_methods.html: the file
// object SQLite allocates (szOsFile bytes) holds our header followed by the real VFS's file; our
// io_methods forward to the real file's, with the same iVersion so that SQLite uses the shared
// memory methods (WAL) and memory-mapped I/O exactly as it would without the shim.

namespace annals::test {
namespace {

struct ShimFile {
  sqlite3_file base;   // pMethods: ours, or null if the real open failed
  sqlite3_file* real;  // the real VFS's file, in the same allocation right after this header
};

sqlite3_vfs* real_vfs = nullptr;

sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f)->real; }

int fault(IoKind kind) { return FaultVfs::instance().on_call(kind); }

int shim_close(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
}
int shim_read(sqlite3_file* f, void* buf, int amount, sqlite3_int64 offset) {
  if (int rc = fault(IoKind::read)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xRead(r, buf, amount, offset);
}
int shim_write(sqlite3_file* f, const void* buf, int amount, sqlite3_int64 offset) {
  if (int rc = fault(IoKind::write)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xWrite(r, buf, amount, offset);
}
int shim_truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (int rc = fault(IoKind::truncate)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xTruncate(r, size);
}
int shim_sync(sqlite3_file* f, int flags) {
  if (int rc = fault(IoKind::sync)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSync(r, flags);
}
int shim_file_size(sqlite3_file* f, sqlite3_int64* size) {
  if (int rc = fault(IoKind::file_size)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileSize(r, size);
}
int shim_lock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xLock(r, level);
}
int shim_unlock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnlock(r, level);
}
int shim_check_reserved_lock(sqlite3_file* f, int* out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xCheckReservedLock(r, out);
}
int shim_file_control(sqlite3_file* f, int op, void* arg) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileControl(r, op, arg);
}
int shim_sector_size(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSectorSize(r);
}
int shim_device_characteristics(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xDeviceCharacteristics(r);
}
int shim_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  if (int rc = fault(IoKind::shm_map)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmMap(r, region, size, extend, out);
}
int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  if (int rc = fault(IoKind::shm_lock)) return rc;
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmLock(r, offset, n, flags);
}
void shim_shm_barrier(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  r->pMethods->xShmBarrier(r);
}
int shim_shm_unmap(sqlite3_file* f, int delete_flag) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmUnmap(r, delete_flag);
}
int shim_fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFetch(r, offset, amount, out);
}
int shim_unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnfetch(r, offset, p);
}

// One table per io_methods version, so that the shim's file claims what the real one has.
sqlite3_io_methods make_methods(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = shim_close;
  m.xRead = shim_read;
  m.xWrite = shim_write;
  m.xTruncate = shim_truncate;
  m.xSync = shim_sync;
  m.xFileSize = shim_file_size;
  m.xLock = shim_lock;
  m.xUnlock = shim_unlock;
  m.xCheckReservedLock = shim_check_reserved_lock;
  m.xFileControl = shim_file_control;
  m.xSectorSize = shim_sector_size;
  m.xDeviceCharacteristics = shim_device_characteristics;
  if (version >= 2) {
    m.xShmMap = shim_shm_map;
    m.xShmLock = shim_shm_lock;
    m.xShmBarrier = shim_shm_barrier;
    m.xShmUnmap = shim_shm_unmap;
  }
  if (version >= 3) {
    m.xFetch = shim_fetch;
    m.xUnfetch = shim_unfetch;
  }
  return m;
}

const sqlite3_io_methods kMethods[3] = {make_methods(1), make_methods(2), make_methods(3)};

int shim_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* shim = reinterpret_cast<ShimFile*>(f);
  shim->base.pMethods = nullptr;
  shim->real = reinterpret_cast<sqlite3_file*>(shim + 1);
  shim->real->pMethods = nullptr;
  if ((flags & SQLITE_OPEN_MAIN_DB) != 0 && FaultVfs::instance().read_only()) {
    flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
  }
  // (Not xAccess: its SQLITE_ACCESS_EXISTS says no for an empty file.)
  if ((flags & SQLITE_OPEN_WAL) != 0 && FaultVfs::instance().wal_read_only() &&
      ::access(name, F_OK) == 0) {
    flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
  }
  const int rc = real_vfs->xOpen(real_vfs, name, shim->real, flags, out_flags);
  // SQLite calls xClose whenever pMethods is set, even after a failed open: mirror the real file.
  if (const sqlite3_io_methods* m = shim->real->pMethods) {
    const int version = m->iVersion < 1 ? 1 : (m->iVersion > 3 ? 3 : m->iVersion);
    shim->base.pMethods = &kMethods[version - 1];
  }
  return rc;
}

// The VFS's own methods go to the real VFS, with the real VFS as their first argument.
int shim_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int shim_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int shim_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
void* shim_dl_open(sqlite3_vfs*, const char* name) { return real_vfs->xDlOpen(real_vfs, name); }
void shim_dl_error(sqlite3_vfs*, int n, char* out) { real_vfs->xDlError(real_vfs, n, out); }
void (*shim_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs->xDlSym(real_vfs, handle, symbol);
}
void shim_dl_close(sqlite3_vfs*, void* handle) { real_vfs->xDlClose(real_vfs, handle); }
int shim_randomness(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xRandomness(real_vfs, n, out);
}
int shim_sleep(sqlite3_vfs*, int micros) { return real_vfs->xSleep(real_vfs, micros); }
int shim_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int shim_get_last_error(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError(real_vfs, n, out);
}
int shim_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}
int shim_set_system_call(sqlite3_vfs*, const char* name, sqlite3_syscall_ptr p) {
  return real_vfs->xSetSystemCall(real_vfs, name, p);
}
sqlite3_syscall_ptr shim_get_system_call(sqlite3_vfs*, const char* name) {
  return real_vfs->xGetSystemCall(real_vfs, name);
}
const char* shim_next_system_call(sqlite3_vfs*, const char* name) {
  return real_vfs->xNextSystemCall(real_vfs, name);
}

sqlite3_vfs shim_vfs{};

void register_shim() {
  if (sqlite3_initialize() != SQLITE_OK) throw std::runtime_error("sqlite3_initialize failed");
  real_vfs = sqlite3_vfs_find(nullptr);
  if (real_vfs == nullptr) throw std::runtime_error("SQLite has no default VFS");
  shim_vfs.iVersion = real_vfs->iVersion < 3 ? real_vfs->iVersion : 3;
  shim_vfs.szOsFile = static_cast<int>(sizeof(ShimFile)) + real_vfs->szOsFile;
  shim_vfs.mxPathname = real_vfs->mxPathname;
  shim_vfs.zName = FaultVfs::kName;
  shim_vfs.xOpen = shim_open;
  shim_vfs.xDelete = shim_delete;
  shim_vfs.xAccess = shim_access;
  shim_vfs.xFullPathname = shim_full_pathname;
  shim_vfs.xDlOpen = real_vfs->xDlOpen ? shim_dl_open : nullptr;
  shim_vfs.xDlError = real_vfs->xDlError ? shim_dl_error : nullptr;
  shim_vfs.xDlSym = real_vfs->xDlSym ? shim_dl_sym : nullptr;
  shim_vfs.xDlClose = real_vfs->xDlClose ? shim_dl_close : nullptr;
  shim_vfs.xRandomness = shim_randomness;
  shim_vfs.xSleep = shim_sleep;
  shim_vfs.xCurrentTime = shim_current_time;
  shim_vfs.xGetLastError = real_vfs->xGetLastError ? shim_get_last_error : nullptr;
  if (shim_vfs.iVersion >= 2) {
    shim_vfs.xCurrentTimeInt64 = real_vfs->xCurrentTimeInt64 ? shim_current_time_int64 : nullptr;
  }
  if (shim_vfs.iVersion >= 3) {
    shim_vfs.xSetSystemCall = real_vfs->xSetSystemCall ? shim_set_system_call : nullptr;
    shim_vfs.xGetSystemCall = real_vfs->xGetSystemCall ? shim_get_system_call : nullptr;
    shim_vfs.xNextSystemCall = real_vfs->xNextSystemCall ? shim_next_system_call : nullptr;
  }
  if (sqlite3_vfs_register(&shim_vfs, /*makeDflt=*/0) != SQLITE_OK) {
    throw std::runtime_error("could not register the annals_fault VFS");
  }
}

}  // namespace

const char* to_string(IoKind kind) noexcept {
  static constexpr const char* kNames[kIoKinds] = {"read",      "write",   "sync",    "truncate",
                                                   "file_size", "shm_map", "shm_lock"};
  return kNames[static_cast<std::size_t>(kind)];
}

FaultVfs& FaultVfs::instance() {
  static FaultVfs* vfs = [] {
    register_shim();
    return new FaultVfs();  // never destroyed: SQLite may call the shim until the process ends
  }();
  return *vfs;
}

std::uint64_t FaultVfs::calls(IoKind kind) const {
  std::lock_guard lock(mutex_);
  return calls_[static_cast<std::size_t>(kind)];
}

std::array<std::uint64_t, kIoKinds> FaultVfs::snapshot() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::uint64_t FaultVfs::fired() const {
  std::lock_guard lock(mutex_);
  return fired_;
}

void FaultVfs::arm(IoKind kind, std::uint64_t nth, int code, bool sticky) {
  if (nth == 0) throw std::invalid_argument("FaultVfs::arm: calls are counted from 1");
  std::lock_guard lock(mutex_);
  armed_ = true;
  kind_ = kind;
  target_ = calls_[static_cast<std::size_t>(kind)] + nth;
  code_ = code;
  sticky_ = sticky;
  fired_ = 0;
}

void FaultVfs::set_read_only(bool read_only) {
  std::lock_guard lock(mutex_);
  read_only_ = read_only;
}

bool FaultVfs::read_only() const {
  std::lock_guard lock(mutex_);
  return read_only_;
}

void FaultVfs::set_wal_read_only(bool read_only) {
  std::lock_guard lock(mutex_);
  wal_read_only_ = read_only;
}

bool FaultVfs::wal_read_only() const {
  std::lock_guard lock(mutex_);
  return wal_read_only_;
}

void FaultVfs::disarm() {
  std::lock_guard lock(mutex_);
  armed_ = false;
}

int FaultVfs::on_call(IoKind kind) {
  std::lock_guard lock(mutex_);
  const std::uint64_t n = ++calls_[static_cast<std::size_t>(kind)];
  if (!armed_ || kind != kind_) return 0;
  if (n == target_ || (sticky_ && n > target_)) {
    ++fired_;
    return code_;
  }
  return 0;
}

}  // namespace annals::test
