// Reads, from outside, how far one feed has reached in a running node's store: the benchmark's
// observer of "durable at the hub".
//
// It opens the node's ferry.db read-only beside the running ferryd (WAL mode lets a reader in
// another process see each transaction once it has committed, and with synchronous=FULL a commit
// is visible only after its WAL fsync) and reads the feed's head_seq. ferryd's own IPC is no
// observer here: its event loop reads up to replication_drain_max batches from a peer before it
// answers IPC again, so during a catch-up a `track` reply can lag the commit by seconds. Each read
// is one short read transaction, which neither blocks ferryd's commits nor holds back its
// checkpoints for longer than the read. Used from one thread; errors are Result values.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/crypto.h"
#include "protocol/error.h"

namespace ferry::bench {

class FeedWatch {
 public:
  // Watches feed (origin, channel) in data_dir/ferry.db, which must exist.
  [[nodiscard]] static Result<std::unique_ptr<FeedWatch>> open(const std::string& data_dir,
                                                               const PublicKey& origin,
                                                               const std::string& channel);
  ~FeedWatch();
  FeedWatch(const FeedWatch&) = delete;
  FeedWatch& operator=(const FeedWatch&) = delete;

  // The feed's head seq now; 0 while the node holds none of it.
  [[nodiscard]] Result<std::uint64_t> head_seq();

 private:
  FeedWatch() = default;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* head_ = nullptr;
  std::string path_;
};

}  // namespace ferry::bench
