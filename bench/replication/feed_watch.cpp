#include "bench/replication/feed_watch.h"

#include "storage/op_store.h"

namespace ferry::bench {
namespace {

constexpr int busy_timeout_ms = 1000;

}  // namespace

Result<std::unique_ptr<FeedWatch>> FeedWatch::open(const std::string& data_dir,
                                                   const PublicKey& origin,
                                                   const std::string& channel) {
  std::unique_ptr<FeedWatch> watch(new FeedWatch());
  watch->path_ = data_dir + "/" + storage::database_file_name;
  if (sqlite3_open_v2(watch->path_.c_str(), &watch->db_, SQLITE_OPEN_READONLY, nullptr) !=
      SQLITE_OK) {
    return fail(Errc::io, "cannot open " + watch->path_ + " to watch it");
  }
  sqlite3_busy_timeout(watch->db_, busy_timeout_ms);
  const char* sql = "SELECT head_seq FROM feeds WHERE origin = ?1 AND channel = ?2";
  if (sqlite3_prepare_v2(watch->db_, sql, -1, &watch->head_, nullptr) != SQLITE_OK) {
    return fail(Errc::io, watch->path_ + ": " + sqlite3_errmsg(watch->db_));
  }
  sqlite3_bind_blob(watch->head_, 1, origin.data(), static_cast<int>(origin.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_text(watch->head_, 2, channel.c_str(), -1, SQLITE_TRANSIENT);
  return watch;
}

FeedWatch::~FeedWatch() {
  sqlite3_finalize(head_);
  sqlite3_close_v2(db_);
}

Result<std::uint64_t> FeedWatch::head_seq() {
  const int stepped = sqlite3_step(head_);
  std::uint64_t seq = 0;
  if (stepped == SQLITE_ROW) seq = static_cast<std::uint64_t>(sqlite3_column_int64(head_, 0));
  sqlite3_reset(head_);
  if (stepped != SQLITE_ROW && stepped != SQLITE_DONE) {
    return fail(Errc::io, path_ + ": reading the feed head: " + sqlite3_errstr(stepped));
  }
  return seq;
}

}  // namespace ferry::bench
