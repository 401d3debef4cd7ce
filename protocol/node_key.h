// A node's identity: its Ed25519 key pair, and the key file that holds it.
//
// The key file is text: a comment line, then `seed <64 hex>` and `public <64 hex>`. It is written
// with mode 0600 and never overwritten; loading refuses a file that group or others may read, a
// file whose public key does not match its seed, and anything malformed. The secret is wiped
// from memory when the NodeKey is destroyed. This is the one module of protocol/ that touches the
// file system: the issue places key files with the keys, and the rules on modes belong with them.
#pragma once

#include <string>

#include "protocol/crypto.h"

namespace ferry {

class CurveSecretKey;

class NodeKey {
 public:
  static NodeKey generate();
  static NodeKey from_seed(std::span<const std::uint8_t, seed_bytes> seed);

  // Loads a key file; Errc::unauthorized if its mode lets group or others read or write it.
  [[nodiscard]] static Result<NodeKey> load(const std::string& path);

  // Creates the key file with mode 0600; refuses to replace an existing file.
  [[nodiscard]] Result<void> save(const std::string& path) const;

  const PublicKey& public_key() const { return pair_.public_key; }
  std::string public_key_hex() const;
  Signature sign(std::span<const std::uint8_t> message) const;

 private:
  // The one reader of the secret outside this class: it derives the CurveZMQ secret (trust.h).
  friend CurveSecretKey curve_secret_of(const NodeKey& key);

  explicit NodeKey(KeyPair pair) : pair_(std::move(pair)) {}
  KeyPair pair_;
};

}  // namespace ferry
