#include "protocol/node_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/hex.h"

namespace ferry {
namespace {

constexpr std::size_t key_file_bytes_max = 512;
constexpr std::string_view seed_prefix = "seed ";
constexpr std::string_view public_prefix = "public ";

// Holds text that may contain the secret and wipes it when it goes out of scope.
struct WipedText {
  std::string text;
  ~WipedText() { sodium_memzero(text.data(), text.size()); }
};

std::string errno_text() { return std::strerror(errno); }

Result<void> read_key_file(const std::string& path, WipedText& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return fail(Errc::not_found, "cannot open key file " + path + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::malformed, "key file " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(Errc::unauthorized, "key file " + path + " has mode " + mode +
                                        "; it must not be accessible by group or others "
                                        "(chmod 600 " +
                                        path + ")");
  }
  out.text.resize(key_file_bytes_max + 1);
  ssize_t n = ::read(fd, out.text.data(), out.text.size());
  ::close(fd);
  if (n < 0) return fail(Errc::io, "cannot read key file " + path + ": " + errno_text());
  if (static_cast<std::size_t>(n) > key_file_bytes_max) {
    return fail(Errc::malformed, "key file " + path + " is larger than expected");
  }
  out.text.resize(static_cast<std::size_t>(n));
  return {};
}

// Finds the value after `prefix` on its own line.
std::string_view field(std::string_view text, std::string_view prefix) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (line.substr(0, prefix.size()) == prefix) return line.substr(prefix.size());
    pos = end + 1;
  }
  return {};
}

}  // namespace

NodeKey NodeKey::generate() { return NodeKey(generate_key_pair()); }

NodeKey NodeKey::from_seed(std::span<const std::uint8_t, seed_bytes> seed) {
  return NodeKey(key_pair_from_seed(seed));
}

std::string NodeKey::public_key_hex() const { return to_hex(pair_.public_key); }

Signature NodeKey::sign(std::span<const std::uint8_t> message) const {
  return sign_detached(pair_.secret_key, message);
}

Result<NodeKey> NodeKey::load(const std::string& path) {
  WipedText file;
  if (auto read = read_key_file(path, file); !read) return tl::unexpected(read.error());
  Seed seed{};
  auto decoded = hex_decode_into(field(file.text, seed_prefix), seed);
  if (!decoded) return fail(Errc::malformed, "key file " + path + " has no valid seed line");
  NodeKey key = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  auto stated = from_hex<public_key_bytes>(field(file.text, public_prefix));
  if (!stated) return fail(Errc::malformed, "key file " + path + " has no valid public line");
  if (*stated != key.public_key()) {
    return fail(Errc::corrupt, "key file " + path + ": public key does not match the seed");
  }
  return key;
}

Result<void> NodeKey::save(const std::string& path) const {
  WipedText file;
  // The seed is the first half of libsodium's secret key layout.
  auto seed = pair_.secret_key.bytes().first<seed_bytes>();
  file.text = "# ferry node key (Ed25519). Secret: keep this file at mode 0600.\n";
  file.text.reserve(256);  // no reallocation: every byte of the secret stays in the wiped buffer
  file.text += seed_prefix;
  append_hex(file.text, seed);
  file.text += "\n";
  file.text += std::string(public_prefix) + public_key_hex() + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(Errc::io, "cannot create key file " + path + ": " + errno_text());
  bool written =
      ::write(fd, file.text.data(), file.text.size()) == static_cast<ssize_t>(file.text.size());
  bool synced = written && ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) {
    ::unlink(path.c_str());
    return fail(Errc::io, "cannot write key file " + path + ": " + errno_text());
  }
  return {};
}

}  // namespace ferry
