// A TCP link on loopback that a test can cut and heal: it listens on 127.0.0.1 and forwards each
// connection to a target port, byte for byte, on a thread of its own. cut() closes every
// connection through it and refuses new ones until heal(): to the nodes on either side it looks
// like a link that went down. Bounded: at most links_max connections at once.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ferry::test {

class LinkProxy {
 public:
  explicit LinkProxy(int target_port);
  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  std::string endpoint() const;  // tcp://127.0.0.1:PORT, for an [[upstream]]
  void cut();
  void heal();
  bool is_cut() const { return cut_; }

 private:
  struct Pair {
    int client = -1;
    int server = -1;
  };
  void run();
  void close_all();

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> cuts_requested_{0};
  std::vector<Pair> pairs_;  // the proxy thread's only
  std::thread thread_;
};

inline constexpr std::size_t links_max = 64;

}  // namespace ferry::test
