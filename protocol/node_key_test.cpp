#include "protocol/node_key.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "protocol/hex.h"

namespace {

namespace fs = std::filesystem;
using ferry::Errc;
using ferry::NodeKey;

// A fresh directory for one test, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "ferry-node-key-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Sets the process umask for one scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

const char* rfc8032_seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const char* rfc8032_public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const char* other_public = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

NodeKey rfc8032_key() {
  auto seed = ferry::from_hex<ferry::seed_bytes>(rfc8032_seed);
  REQUIRE(seed);
  return NodeKey::from_seed(*seed);
}

unsigned file_mode(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode & 07777);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Writes a key file by hand, at mode 0600 so that only its content is under test.
void write_key_file(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    REQUIRE(out.good());
  }
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace

TEST_CASE("a saved node key loads back with the same public key and signs for it") {
  TempDir dir;
  const std::string path = dir.file("node.key");
  NodeKey original = NodeKey::generate();
  REQUIRE(original.save(path));
  auto loaded = NodeKey::load(path);
  REQUIRE(loaded);
  CHECK(loaded->public_key() == original.public_key());
  CHECK(loaded->public_key_hex() == original.public_key_hex());
  ferry::Signature signature = loaded->sign(ferry::as_bytes("case.submit"));
  CHECK(ferry::verify_detached(original.public_key(), signature, ferry::as_bytes("case.submit")));
  CHECK_FALSE(
      ferry::verify_detached(original.public_key(), signature, ferry::as_bytes("case.approve")));
  // Ed25519 is deterministic: both keys sign alike only when they hold the same secret.
  CHECK(original.sign(ferry::as_bytes("case.submit")) == signature);
}

TEST_CASE("a node key file holds the seed and the public key as lower-case hex lines") {
  TempDir dir;
  const std::string path = dir.file("node.key");
  REQUIRE(rfc8032_key().save(path));
  std::string text = read_text(path);
  CHECK(text.rfind('#', 0) == 0);  // a comment line first
  CHECK(text.find(std::string("\nseed ") + rfc8032_seed + "\n") != std::string::npos);
  CHECK(text.find(std::string("\npublic ") + rfc8032_public + "\n") != std::string::npos);
  auto loaded = NodeKey::load(path);
  REQUIRE(loaded);
  CHECK(loaded->public_key_hex() == rfc8032_public);
}

TEST_CASE("a node key file is created with mode 0600 whatever the umask") {
  TempDir dir;
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    INFO("umask " << mask);
    const std::string path = dir.file("node-" + std::to_string(mask) + ".key");
    {
      ScopedUmask umask(mask);
      REQUIRE(NodeKey::generate().save(path));
    }
    CHECK(file_mode(path) == 0600);
  }
}

TEST_CASE("loading a node key file that group or others may access fails as unauthorized") {
  TempDir dir;
  const std::string path = dir.file("node.key");
  REQUIRE(NodeKey::generate().save(path));
  for (unsigned mode : {0644u, 0640u, 0604u, 0660u, 0666u, 0620u, 0610u, 0602u, 0601u}) {
    char mode_text[8];
    std::snprintf(mode_text, sizeof mode_text, "%04o", mode);
    INFO("mode " << mode_text);
    REQUIRE(::chmod(path.c_str(), static_cast<mode_t>(mode)) == 0);
    auto loaded = NodeKey::load(path);
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == Errc::unauthorized);
    CHECK_THAT(loaded.error().detail, Catch::Contains(path));
    CHECK_THAT(loaded.error().detail, Catch::Contains(mode_text));
  }
  REQUIRE(::chmod(path.c_str(), 0400) == 0);  // owner read-only is fine
  CHECK(NodeKey::load(path));
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  CHECK(NodeKey::load(path));
}

TEST_CASE("saving a node key refuses to overwrite an existing file") {
  TempDir dir;
  const std::string path = dir.file("node.key");
  NodeKey first = rfc8032_key();
  REQUIRE(first.save(path));
  const std::string before = read_text(path);

  NodeKey second = NodeKey::generate();
  auto again = second.save(path);
  REQUIRE_FALSE(again);
  CHECK_THAT(again.error().detail, Catch::Contains(path));
  CHECK(read_text(path) == before);
  auto loaded = NodeKey::load(path);
  REQUIRE(loaded);
  CHECK(loaded->public_key() == first.public_key());

  const std::string other = dir.file("other-file");
  write_key_file(other, "not a key, but not ours to replace\n");
  CHECK_FALSE(second.save(other));
  CHECK(read_text(other) == "not a key, but not ours to replace\n");
}

TEST_CASE("a node key file whose public line does not match its seed is corrupt") {
  TempDir dir;
  const std::string path = dir.file("node.key");
  write_key_file(path, std::string("# ferry node key\nseed ") + rfc8032_seed + "\npublic " +
                           other_public + "\n");
  auto loaded = NodeKey::load(path);
  REQUIRE_FALSE(loaded);
  CHECK(loaded.error().code == Errc::corrupt);
  CHECK_THAT(loaded.error().detail, Catch::Contains(path));

  // The same file with the matching public line loads, so only the mismatch was refused.
  const std::string good = dir.file("good.key");
  write_key_file(good, std::string("# ferry node key\nseed ") + rfc8032_seed + "\npublic " +
                           rfc8032_public + "\n");
  auto good_key = NodeKey::load(good);
  REQUIRE(good_key);
  CHECK(good_key->public_key_hex() == rfc8032_public);
}

TEST_CASE("a garbled node key file fails as malformed") {
  TempDir dir;
  const std::string seed = rfc8032_seed;
  const std::string pub = rfc8032_public;
  const std::string cases[] = {
      "",
      "garbage\n",
      std::string("\x00\x01\x02\xff", 4),
      "seed\npublic\n",
      "public " + pub + "\n",                                             // no seed line
      "seed " + seed + "\n",                                              // no public line
      "seed " + seed.substr(0, 62) + "\npublic " + pub + "\n",            // short seed
      "seed " + seed + "00\npublic " + pub + "\n",                        // long seed
      "seed " + seed.substr(0, 63) + "g\npublic " + pub + "\n",           // not hex
      "seed " + seed + "\npublic " + pub.substr(0, 63) + "\n",            // short public key
      "seed  " + seed + "\npublic " + pub + "\n",                         // two spaces
      "seed " + seed + "\npublic " + pub + "\n" + std::string(600, '#'),  // too large
  };
  int index = 0;
  for (const std::string& text : cases) {
    INFO("case " << index++ << ": \"" << text.substr(0, 40) << "\"");
    const std::string path = dir.file("bad-" + std::to_string(index) + ".key");
    write_key_file(path, text);
    auto loaded = NodeKey::load(path);
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().code == Errc::malformed);
  }
}

TEST_CASE("loading a node key that does not exist, or is not a regular file, fails") {
  TempDir dir;
  auto missing = NodeKey::load(dir.file("missing.key"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::not_found);
  CHECK_THAT(missing.error().detail, Catch::Contains(dir.file("missing.key")));

  const std::string sub = dir.file("a-directory");
  fs::create_directory(sub);
  fs::permissions(sub, fs::perms::owner_all);
  CHECK_FALSE(NodeKey::load(sub));

  const std::string real = dir.file("node.key");
  REQUIRE(NodeKey::generate().save(real));
  const std::string link = dir.file("link.key");
  fs::create_symlink(real, link);
  CHECK_FALSE(NodeKey::load(link));  // key files are never read through a symlink
}

TEST_CASE("public_key_hex is 64 lower-case hex digits of the public key") {
  for (int i = 0; i < 20; ++i) {
    NodeKey key = NodeKey::generate();
    std::string text = key.public_key_hex();
    REQUIRE(text.size() == 64);
    for (char c : text) {
      INFO("character " << c);
      REQUIRE(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
    }
    CHECK(text == ferry::to_hex(key.public_key()));
  }
  CHECK(rfc8032_key().public_key_hex() == rfc8032_public);
}
