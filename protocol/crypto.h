// The cryptographic primitives of envelope suite 1: Ed25519 signatures and BLAKE2b-256 digests.
//
// An exception-free wrapper over libsodium (verify_detached adds the cofactored fallback of
// protocol/ed25519_batch.h). SecretKey wipes its bytes with sodium_memzero
// when destroyed or moved from. All functions are thread-safe; libsodium is initialised on first
// use.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/error.h"

namespace ferry {

inline constexpr std::size_t public_key_bytes = 32;
inline constexpr std::size_t secret_key_bytes = 64;  // libsodium layout: seed || public key
inline constexpr std::size_t seed_bytes = 32;
inline constexpr std::size_t signature_bytes = 64;
inline constexpr std::size_t digest_bytes = 32;

using PublicKey = std::array<std::uint8_t, public_key_bytes>;
using Signature = std::array<std::uint8_t, signature_bytes>;
using Digest = std::array<std::uint8_t, digest_bytes>;
using Seed = std::array<std::uint8_t, seed_bytes>;

// Owns Ed25519 secret key bytes and wipes them; never copied, only moved (the source is wiped).
class SecretKey {
 public:
  SecretKey();
  explicit SecretKey(std::span<const std::uint8_t, secret_key_bytes> bytes);
  ~SecretKey();
  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;

  std::span<const std::uint8_t, secret_key_bytes> bytes() const { return bytes_; }
  std::span<std::uint8_t, secret_key_bytes> mutable_bytes() { return bytes_; }

 private:
  std::array<std::uint8_t, secret_key_bytes> bytes_;
};

struct KeyPair {
  PublicKey public_key;
  SecretKey secret_key;
};

// A fresh key pair from the operating system's randomness.
KeyPair generate_key_pair();

// The key pair for a 32-byte seed (RFC 8032 calls the seed the secret key).
KeyPair key_pair_from_seed(std::span<const std::uint8_t, seed_bytes> seed);

Signature sign_detached(const SecretKey& secret_key, std::span<const std::uint8_t> message);

// Ed25519 verification by ferry's rule: libsodium's strict encoding checks and the cofactored
// equation (protocol/ed25519_batch.h says why). It accepts every signature libsodium accepts.
bool verify_detached(const PublicKey& public_key, const Signature& signature,
                     std::span<const std::uint8_t> message);

Digest blake2b_256(std::span<const std::uint8_t> data);

// Bytes of a string, for hashing and signing text.
inline std::span<const std::uint8_t> as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace ferry
