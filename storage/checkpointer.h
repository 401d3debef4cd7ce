// Copies the WAL back into the database file on a thread of its own, off the commit path.
//
// With SQLite's automatic checkpoint, the commit that pushes the WAL past its threshold also
// copies the WAL into the database file and fsyncs it, and every submit in that batch waits for
// it. A Checkpointer instead owns a second connection to the same file and a thread that runs a
// PASSIVE checkpoint whenever the writer reports (wal_grew, from its sqlite3_wal_hook) that the
// WAL holds at least `pages` frames. A PASSIVE checkpoint never blocks the writer. But the WAL
// only starts over from its beginning when a write transaction finds every frame copied, and
// under a steady stream of commits the thread is always a few commits behind. So once the WAL
// reaches inline_pages() (wal_restart_factor times `pages`), the writer checkpoints by itself
// right after its commit: by then the thread has copied and synced nearly every frame, the
// inline checkpoint has only the last few to copy, and the WAL starts over. The file thus stays
// bounded, and the commit path pays a small checkpoint once per that many pages instead of a
// full one every `pages`. wal_grew may be called from any thread; the destructor stops and joins
// the thread and closes its connection. Failed checkpoints (busy, I/O) are counted and retried on
// the next report: they lose nothing, the frames simply stay in the WAL.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "storage/sqlite.h"

namespace ferry::storage {

inline constexpr int wal_checkpoint_pages_default = 1000;  // SQLite's own autocheckpoint size
inline constexpr int wal_restart_factor = 4;

struct CheckpointStats {
  std::uint64_t checkpoints = 0;  // completed PASSIVE checkpoints
  std::uint64_t failures = 0;     // checkpoints that returned an error (busy, I/O)
};

class Checkpointer {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Checkpointer>> start(const std::string& path,
                                                                   const std::string& vfs,
                                                                   int pages);
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // The writer's WAL now holds `wal_pages` frames.
  void wal_grew(int wal_pages);

  // The WAL size at which the writer checkpoints inline.
  int inline_pages() const { return pages_ * wal_restart_factor; }

  CheckpointStats stats() const;

 private:
  Checkpointer(Database db, int pages);
  void run();

  Database db_;
  const int pages_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false;
  bool stopping_ = false;
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::thread thread_;  // last: it starts once everything above is ready
};

}  // namespace ferry::storage
