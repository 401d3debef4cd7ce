#include "tests/support/crash_vfs.h"

#include <sqlite3.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ferry::test::crash_vfs {
namespace {

struct Undo {
  sqlite3_int64 offset;
  std::vector<char> bytes;
};

// What a power cut would do to one file. Kept per file, not per handle: an fsync through any
// handle makes the whole file durable (the store's checkpointer writes and syncs the database
// file through a connection of its own).
struct FileState {
  sqlite3_int64 synced_size = 0;
  std::vector<Undo> undo;
  std::vector<sqlite3_file*> handles;  // the open real handles on this file
};

struct CrashFile {
  sqlite3_file base;
  sqlite3_file* real;
  FileState* state;
};

sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs crash_vfs{};
sqlite3_io_methods methods{};
bool dead = false;
std::uint64_t temp_files = 0;
// The store checkpoints on a thread of its own: every function that reads or changes the state
// above holds this.
std::recursive_mutex state_mutex;
std::map<std::string, std::unique_ptr<FileState>>& files() {
  static std::map<std::string, std::unique_ptr<FileState>> open_files;
  return open_files;
}

CrashFile* as_crash(sqlite3_file* f) { return reinterpret_cast<CrashFile*>(f); }
sqlite3_file* real_of(sqlite3_file* f) { return as_crash(f)->real; }

sqlite3_int64 size_of(sqlite3_file* real) {
  sqlite3_int64 size = 0;
  if (real->pMethods->xFileSize(real, &size) != SQLITE_OK) return 0;
  return size;
}

// Saves the current bytes of [offset, offset + n) that exist, so crash() can put them back.
void remember(CrashFile* f, sqlite3_int64 offset, sqlite3_int64 n) {
  sqlite3_int64 size = size_of(f->real);
  if (offset >= size) return;
  sqlite3_int64 len = std::min(n, size - offset);
  Undo undo{offset, std::vector<char>(static_cast<std::size_t>(len))};
  f->real->pMethods->xRead(f->real, undo.bytes.data(), static_cast<int>(len), offset);
  f->state->undo.push_back(std::move(undo));
}

int x_close(sqlite3_file* f) {
  std::lock_guard lock(state_mutex);
  sqlite3_file* real = real_of(f);
  FileState* state = as_crash(f)->state;
  std::erase(state->handles, real);
  int rc = real->pMethods != nullptr ? real->pMethods->xClose(real) : SQLITE_OK;
  if (state->handles.empty()) {
    std::erase_if(files(), [state](const auto& entry) { return entry.second.get() == state; });
  }
  return rc;
}

int x_read(sqlite3_file* f, void* out, int n, sqlite3_int64 offset) {
  return real_of(f)->pMethods->xRead(real_of(f), out, n, offset);
}

int x_write(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  std::lock_guard lock(state_mutex);
  if (dead) return SQLITE_OK;
  remember(as_crash(f), offset, n);
  return real_of(f)->pMethods->xWrite(real_of(f), data, n, offset);
}

int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  std::lock_guard lock(state_mutex);
  if (dead) return SQLITE_OK;
  sqlite3_int64 current = size_of(real_of(f));
  if (size < current) remember(as_crash(f), size, current - size);
  return real_of(f)->pMethods->xTruncate(real_of(f), size);
}

int x_sync(sqlite3_file* f, int flags) {
  std::lock_guard lock(state_mutex);
  if (dead) return SQLITE_OK;
  int rc = real_of(f)->pMethods->xSync(real_of(f), flags);
  if (rc == SQLITE_OK) {
    FileState& state = *as_crash(f)->state;
    state.undo.clear();
    state.synced_size = size_of(real_of(f));
  }
  return rc;
}

int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return real_of(f)->pMethods->xFileSize(real_of(f), size);
}
int x_lock(sqlite3_file* f, int level) { return real_of(f)->pMethods->xLock(real_of(f), level); }
int x_unlock(sqlite3_file* f, int level) {
  return real_of(f)->pMethods->xUnlock(real_of(f), level);
}
int x_check_reserved(sqlite3_file* f, int* out) {
  return real_of(f)->pMethods->xCheckReservedLock(real_of(f), out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  return real_of(f)->pMethods->xFileControl(real_of(f), op, arg);
}
int x_sector_size(sqlite3_file* f) { return real_of(f)->pMethods->xSectorSize(real_of(f)); }
int x_device(sqlite3_file* f) { return real_of(f)->pMethods->xDeviceCharacteristics(real_of(f)); }
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return real_of(f)->pMethods->xShmMap(real_of(f), page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real_of(f)->pMethods->xShmLock(real_of(f), offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) { real_of(f)->pMethods->xShmBarrier(real_of(f)); }
int x_shm_unmap(sqlite3_file* f, int delete_flag) {
  return real_of(f)->pMethods->xShmUnmap(real_of(f), delete_flag);
}

int x_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  std::lock_guard lock(state_mutex);
  auto* f = as_crash(file);
  f->real = reinterpret_cast<sqlite3_file*>(f + 1);
  std::memset(f->real, 0, static_cast<std::size_t>(real_vfs->szOsFile));
  f->base.pMethods = nullptr;
  int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    return rc;
  }
  // Temporary files have no name: each is a file of its own.
  std::string key = name != nullptr ? std::string(name) : "temp:" + std::to_string(++temp_files);
  std::unique_ptr<FileState>& state = files()[key];
  if (!state) {
    state = std::make_unique<FileState>();
    state->synced_size = size_of(f->real);
  }
  state->handles.push_back(f->real);
  f->state = state.get();
  f->base.pMethods = &methods;
  return SQLITE_OK;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  std::lock_guard lock(state_mutex);
  if (dead) return SQLITE_OK;
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int x_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int x_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
int x_randomness(sqlite3_vfs*, int n, char* out) { return real_vfs->xRandomness(real_vfs, n, out); }
int x_sleep(sqlite3_vfs*, int us) { return real_vfs->xSleep(real_vfs, us); }
int x_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int x_last_error(sqlite3_vfs*, int n, char* out) {
  return real_vfs->xGetLastError(real_vfs, n, out);
}
int x_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

}  // namespace

void install() {
  if (real_vfs != nullptr) return;
  real_vfs = sqlite3_vfs_find(nullptr);
  methods.iVersion = 2;  // shared memory for WAL, but no memory-mapped I/O that bypasses xWrite
  methods.xClose = x_close;
  methods.xRead = x_read;
  methods.xWrite = x_write;
  methods.xTruncate = x_truncate;
  methods.xSync = x_sync;
  methods.xFileSize = x_file_size;
  methods.xLock = x_lock;
  methods.xUnlock = x_unlock;
  methods.xCheckReservedLock = x_check_reserved;
  methods.xFileControl = x_file_control;
  methods.xSectorSize = x_sector_size;
  methods.xDeviceCharacteristics = x_device;
  methods.xShmMap = x_shm_map;
  methods.xShmLock = x_shm_lock;
  methods.xShmBarrier = x_shm_barrier;
  methods.xShmUnmap = x_shm_unmap;
  crash_vfs.iVersion = 2;
  crash_vfs.szOsFile = static_cast<int>(sizeof(CrashFile)) + real_vfs->szOsFile;
  crash_vfs.mxPathname = real_vfs->mxPathname;
  crash_vfs.zName = name;
  crash_vfs.xOpen = x_open;
  crash_vfs.xDelete = x_delete;
  crash_vfs.xAccess = x_access;
  crash_vfs.xFullPathname = x_full_pathname;
  crash_vfs.xRandomness = x_randomness;
  crash_vfs.xSleep = x_sleep;
  crash_vfs.xCurrentTime = x_current_time;
  crash_vfs.xGetLastError = x_last_error;
  crash_vfs.xCurrentTimeInt64 = x_current_time_int64;
  sqlite3_vfs_register(&crash_vfs, 0);
}

void crash() {
  std::lock_guard lock(state_mutex);
  for (auto& [path, state] : files()) {
    sqlite3_file* real = state->handles.front();
    for (auto it = state->undo.rbegin(); it != state->undo.rend(); ++it) {
      real->pMethods->xWrite(real, it->bytes.data(), static_cast<int>(it->bytes.size()),
                             it->offset);
    }
    real->pMethods->xTruncate(real, state->synced_size);
    state->undo.clear();
  }
  dead = true;
}

void reset() {
  std::lock_guard lock(state_mutex);
  dead = false;
}

}  // namespace ferry::test::crash_vfs
