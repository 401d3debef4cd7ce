#include "protocol/crypto.h"

#include <sodium.h>

#include "protocol/ed25519_batch.h"

namespace ferry {
namespace {

void ensure_sodium() {
  // sodium_init is idempotent and thread-safe; a static makes it run once per process.
  static const int status = sodium_init();
  FERRY_ASSERT(status >= 0);
}

}  // namespace

SecretKey::SecretKey() : bytes_{} {}

SecretKey::SecretKey(std::span<const std::uint8_t, secret_key_bytes> bytes) : bytes_{} {
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
}

SecretKey::~SecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

SecretKey::SecretKey(SecretKey&& other) noexcept : bytes_(other.bytes_) {
  sodium_memzero(other.bytes_.data(), other.bytes_.size());
}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    sodium_memzero(other.bytes_.data(), other.bytes_.size());
  }
  return *this;
}

KeyPair generate_key_pair() {
  ensure_sodium();
  KeyPair pair;
  int rc =
      crypto_sign_ed25519_keypair(pair.public_key.data(), pair.secret_key.mutable_bytes().data());
  FERRY_ASSERT(rc == 0);
  return pair;
}

KeyPair key_pair_from_seed(std::span<const std::uint8_t, seed_bytes> seed) {
  ensure_sodium();
  KeyPair pair;
  int rc = crypto_sign_ed25519_seed_keypair(pair.public_key.data(),
                                            pair.secret_key.mutable_bytes().data(), seed.data());
  FERRY_ASSERT(rc == 0);
  return pair;
}

Signature sign_detached(const SecretKey& secret_key, std::span<const std::uint8_t> message) {
  ensure_sodium();
  Signature signature{};
  int rc = crypto_sign_ed25519_detached(signature.data(), nullptr, message.data(), message.size(),
                                        secret_key.bytes().data());
  FERRY_ASSERT(rc == 0);
  return signature;
}

bool verify_detached(const PublicKey& public_key, const Signature& signature,
                     std::span<const std::uint8_t> message) {
  ensure_sodium();
  // libsodium's check is exact and cheap for the valid signatures ferry's own signers make; what
  // it refuses may still hold by the cofactored rule (protocol/ed25519_batch.h).
  return crypto_sign_ed25519_verify_detached(signature.data(), message.data(), message.size(),
                                             public_key.data()) == 0 ||
         verify_one(public_key, signature, message);
}

Digest blake2b_256(std::span<const std::uint8_t> data) {
  ensure_sodium();
  Digest digest{};
  int rc = crypto_generichash(digest.data(), digest.size(), data.data(), data.size(), nullptr, 0);
  FERRY_ASSERT(rc == 0);
  return digest;
}

}  // namespace ferry
