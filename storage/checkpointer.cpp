#include "storage/checkpointer.h"

#include "protocol/error.h"

namespace ferry::storage {

Result<std::unique_ptr<Checkpointer>> Checkpointer::start(const std::string& path,
                                                          const std::string& vfs, int pages) {
  FERRY_ASSERT(pages > 0);
  auto db = Database::open(path, false, vfs);
  if (!db) return tl::unexpected(db.error());
  // The writer may hold its lock while this connection looks at the WAL: wait a little rather
  // than fail, and let the next report retry when even that is not enough.
  sqlite3_busy_timeout(db->handle(), 100);
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
  if (wal_pages < pages_) return;
  {
    std::lock_guard lock(mutex_);
    due_ = true;
  }
  wake_.notify_one();
}

CheckpointStats Checkpointer::stats() const {
  return CheckpointStats{checkpoints_.load(), failures_.load()};
}

void Checkpointer::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return due_ || stopping_; });
    if (stopping_) return;
    due_ = false;
    lock.unlock();
    int rc = sqlite3_wal_checkpoint_v2(db_.handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                       nullptr);
    (rc == SQLITE_OK ? checkpoints_ : failures_).fetch_add(1);
    lock.lock();
  }
}

}  // namespace ferry::storage
