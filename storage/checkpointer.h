// Copies the WAL back into the database file on a thread of its own, off the commit path.
//
// With SQLite's automatic checkpoint, the commit that pushes the WAL past its threshold also
// copies the WAL into the database file and fsyncs it, and every submit in that batch waits for
// it. A Checkpointer instead owns a second connection to the same file and a thread that runs a
// PASSIVE checkpoint whenever the writer reports (wal_grew, from its sqlite3_wal_hook) that the
// WAL holds at least `pages` frames. A PASSIVE checkpoint never blocks the writer.
//
// The WAL only starts over from its beginning when a write transaction finds every frame copied,
// and under a steady stream of commits the thread is always a few commits behind. So once the
// WAL holds restart_pages() (wal_restart_factor times `pages`), the thread finishes the job
// itself: after a pass without the gate it takes the WriteGate, which keeps the writer from
// beginning a transaction, copies the few frames committed meanwhile, syncs, and lets go. The
// writer's next transaction then starts the WAL over. The writer waits only for that short last
// pass, and only when it wants to write during it; readers never wait.
//
// If the thread cannot finish (a reader holds an old snapshot, an I/O error) and the WAL reaches
// inline_pages() (wal_inline_factor times `pages`), the writer checkpoints by itself right after
// its commit, as the bound of last resort. wal_grew may be called from any thread; the destructor
// stops and joins the thread and closes its connection. Failed checkpoints (busy, I/O) are
// counted and retried on the next report: they lose nothing, the frames simply stay in the WAL.
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
inline constexpr int wal_restart_factor = 4;               // the thread restarts the WAL
inline constexpr int wal_inline_factor = 8;                // the writer does, as a last resort

struct CheckpointStats {
  std::uint64_t checkpoints = 0;  // completed PASSIVE checkpoints on the thread
  std::uint64_t failures = 0;     // checkpoints that returned an error (busy, I/O)
  // Times the WAL started over after this thread had copied it (seen at the next commit, whether
  // the writer's transaction came after a plain pass or after the gated one).
  std::uint64_t restarts = 0;
  std::uint64_t inline_checkpoints = 0;  // checkpoints the writer ran itself (last resort)
};

// Keeps the writer out of write transactions while the checkpointer finishes a WAL. The
// checkpointer goes first: once it asks, a writer that has not yet begun waits until it is done,
// so a stream of back-to-back transactions cannot starve it.
class WriteGate {
 public:
  void lock();  // the writer, before BEGIN
  void unlock();
  void lock_for_checkpoint();
  void unlock_for_checkpoint();
  bool checkpoint_waiting();  // the checkpointer has asked and not yet got in

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool writing_ = false;
  bool checkpoint_wants_ = false;
  bool checkpointing_ = false;
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

  // The writer's own checkpoint, right after a commit that left inline_pages() in the WAL.
  void checkpoint_inline(sqlite3* writer);

  // Every write transaction on the store's connection holds this gate.
  WriteGate& write_gate() { return gate_; }

  int restart_pages() const { return pages_ * wal_restart_factor; }
  int inline_pages() const { return pages_ * wal_inline_factor; }

  CheckpointStats stats() const;

 private:
  Checkpointer(Database db, int pages);
  void run();

  Database db_;
  const int pages_;
  WriteGate gate_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool due_ = false;
  bool restart_due_ = false;
  int copied_ = 0;  // frames of the current WAL the last pass left copied
  bool stopping_ = false;
  std::atomic<std::uint64_t> checkpoints_{0};
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<std::uint64_t> restarts_{0};
  std::atomic<std::uint64_t> inline_{0};
  std::thread thread_;  // last: it starts once everything above is ready
};

}  // namespace ferry::storage
