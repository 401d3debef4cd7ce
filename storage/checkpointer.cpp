#include "storage/checkpointer.h"

#include "protocol/error.h"

namespace ferry::storage {

void WriteGate::lock() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !checkpoint_wants_ && !checkpointing_; });
  writing_ = true;
}

void WriteGate::unlock() {
  {
    std::lock_guard lock(mutex_);
    writing_ = false;
  }
  changed_.notify_all();
}

void WriteGate::lock_for_checkpoint() {
  std::unique_lock lock(mutex_);
  checkpoint_wants_ = true;
  changed_.wait(lock, [this] { return !writing_; });
  checkpoint_wants_ = false;
  checkpointing_ = true;
}

void WriteGate::unlock_for_checkpoint() {
  {
    std::lock_guard lock(mutex_);
    checkpointing_ = false;
  }
  changed_.notify_all();
}

bool WriteGate::checkpoint_waiting() {
  std::lock_guard lock(mutex_);
  return checkpoint_wants_;
}

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path,
                                                          const std::string& vfs, int pages) {
  FERRY_ASSERT(pages > 0);
  auto db = Database::open(path, false, vfs);
  if (!db) return tl::unexpected(db.error());
  // The writer may hold its lock while this connection looks at the WAL: wait a little rather
  // than fail, and let the next report retry when even that is not enough.
  sqlite3_busy_timeout(db->handle(), 100);
  // A connection learns that the file is in WAL mode only when it first reads it; until then
  // sqlite3_wal_checkpoint_v2 returns SQLITE_OK having done nothing (and reports -1 frames).
  auto mode = db->query_text("PRAGMA journal_mode");
  if (!mode) return tl::unexpected(mode.error());
  if (*mode != "wal") return fail(Errc::io, path + ": not in WAL mode, cannot checkpoint");
  return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(*db), pages));
}

Checkpointer::Checkpointer(Database db, int pages)
    : db_(std::move(db)), pages_(pages), thread_([this] { run(); }) {}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Checkpointer::wal_grew(int wal_pages) {
  {
    std::lock_guard lock(mutex_);
    if (wal_pages < copied_) {  // the WAL has started over
      copied_ = 0;
      restarts_.fetch_add(1);
    }
    if (wal_pages - copied_ < pages_) return;
    due_ = true;
    if (wal_pages >= restart_pages()) restart_due_ = true;
  }
  wake_.notify_one();
}

void Checkpointer::checkpoint_inline(sqlite3* writer) {
  inline_.fetch_add(1);
  (void)sqlite3_wal_checkpoint_v2(writer, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

CheckpointStats Checkpointer::stats() const {
  return CheckpointStats{checkpoints_.load(), failures_.load(), restarts_.load(), inline_.load()};
}

void Checkpointer::run() {
  auto pass = [this] {
    int wal = 0;
    int copied = 0;
    int rc =
        sqlite3_wal_checkpoint_v2(db_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal, &copied);
    (rc == SQLITE_OK ? checkpoints_ : failures_).fetch_add(1);
    if (rc == SQLITE_OK) {
      std::lock_guard lock(mutex_);
      copied_ = copied;
    }
  };
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return due_ || stopping_; });
    if (stopping_) return;
    const bool restart = restart_due_;
    due_ = false;
    restart_due_ = false;
    lock.unlock();
    // The long pass runs beside the writer; only the short one after it keeps the writer out.
    pass();
    if (restart) {
      gate_.lock_for_checkpoint();
      pass();
      gate_.unlock_for_checkpoint();
    }
    lock.lock();
  }
}

}  // namespace ferry::storage
