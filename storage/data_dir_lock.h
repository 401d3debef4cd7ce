// Exclusive ownership of a data directory by one process, through flock(2) on `ferry.lock`.
//
// The kernel drops the lock when the process dies, so a crash never leaves a stale lock. The file
// holds the owner's pid, only to name it in the error a second process gets.
#pragma once

#include <string>

#include "protocol/error.h"

namespace ferry::storage {

class DataDirLock {
 public:
  // Errc::busy with the holder's pid when another process holds the directory.
  [[nodiscard]] static Result<DataDirLock> acquire(const std::string& data_dir);

  ~DataDirLock();
  DataDirLock(DataDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  DataDirLock& operator=(DataDirLock&&) = delete;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace ferry::storage
