// Helpers shared by ferry's tests: temporary directories, a settable wall clock, op bodies.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <msgpack.hpp>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/hlc.h"
#include "protocol/op.h"

namespace ferry::test {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto candidate =
          base / ("ferry-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
      if (std::filesystem::create_directory(candidate)) {
        path_ = candidate;
        return;
      }
    }
    throw std::runtime_error("cannot create a temporary directory");
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string str() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

class FakeWallClock final : public WallClock {
 public:
  explicit FakeWallClock(std::uint64_t ms = 1'790'000'000'000) : ms_(ms) {}
  std::uint64_t now_ms() override { return ms_; }
  void set(std::uint64_t ms) { ms_ = ms; }
  void advance(std::uint64_t ms) { ms_ += ms; }

 private:
  std::uint64_t ms_;
};

// ---- Crafting msgpack by hand (valid or not) ----

using Packer = msgpack::packer<msgpack::sbuffer>;

// The bytes `pack` writes.
template <class F>
std::vector<std::uint8_t> packed(F&& pack) {
  msgpack::sbuffer buffer;
  Packer pk(buffer);
  pack(pk);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

inline void pack_text(Packer& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

inline void pack_bin(Packer& pk, std::span<const std::uint8_t> bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::uint32_t>(bytes.size()));
}

// A msgpack map of string fields, encoded.
inline std::vector<std::uint8_t> body_of(
    std::initializer_list<std::pair<std::string, std::string>> fields) {
  return packed([&](Packer& pk) {
    pk.pack_map(static_cast<std::uint32_t>(fields.size()));
    for (const auto& [k, v] : fields) {
      pk.pack(k);
      pk.pack(v);
    }
  });
}

inline OpDraft draft(std::string channel, std::string key,
                     std::vector<std::uint8_t> body = body_of({{"status", "filed"}})) {
  OpDraft d;
  d.channel = std::move(channel);
  d.kind = "case.submit";
  d.key = std::move(key);
  d.body = std::move(body);
  return d;
}

}  // namespace ferry::test
