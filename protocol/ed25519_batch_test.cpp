#include "protocol/ed25519_batch.h"

#include <sodium.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/hex.h"

namespace {

using ferry::PublicKey;
using ferry::Signature;
using ferry::SignatureToCheck;

struct Signed {
  PublicKey key;
  std::vector<std::uint8_t> message;
  Signature signature;
};

std::vector<std::uint8_t> random_message(std::mt19937& rng, std::size_t max_bytes) {
  std::vector<std::uint8_t> message(rng() % (max_bytes + 1));
  for (auto& b : message) b = static_cast<std::uint8_t>(rng());
  return message;
}

// n signatures over random messages by `keys` libsodium key pairs, in turn.
std::vector<Signed> make_signed(std::size_t n, std::size_t keys, std::mt19937& rng) {
  std::vector<ferry::KeyPair> pairs;
  for (std::size_t k = 0; k < keys; ++k) pairs.push_back(ferry::generate_key_pair());
  std::vector<Signed> out;
  for (std::size_t i = 0; i < n; ++i) {
    const ferry::KeyPair& pair = pairs[i % keys];
    Signed s{pair.public_key, random_message(rng, 300), {}};
    s.signature = ferry::sign_detached(pair.secret_key, s.message);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<SignatureToCheck> items_of(const std::vector<Signed>& all) {
  std::vector<SignatureToCheck> items;
  for (const Signed& s : all) items.push_back(SignatureToCheck{&s.key, &s.signature, s.message});
  return items;
}

bool libsodium_accepts(const Signed& s) {
  return crypto_sign_ed25519_verify_detached(s.signature.data(), s.message.data(), s.message.size(),
                                             s.key.data()) == 0;
}

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(const std::string& hex) {
  auto bytes = ferry::from_hex<N>(hex);
  REQUIRE(bytes);
  return *bytes;
}

// A point of order 8 (its double, of order 4, has y = 0).
const char* const order8_point = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa";

// A signature whose R carries a small-order component: R' = rB + T with T of order 8, and
// S = r + SHA-512(R' || A || M) a. The cofactorless equation fails (S B - h A = rB != R'); the
// cofactored one holds. Only the owner of the key can make one.
Signed torsion_signature(std::mt19937& rng) {
  ferry::Seed seed{};
  for (auto& b : seed) b = static_cast<std::uint8_t>(rng());
  ferry::KeyPair pair = ferry::key_pair_from_seed(seed);
  std::uint8_t expanded[64];
  crypto_hash_sha512(expanded, seed.data(), seed.size());
  expanded[0] &= 248;
  expanded[31] &= 127;
  expanded[31] |= 64;
  std::uint8_t wide[64] = {};
  std::memcpy(wide, expanded, 32);
  std::uint8_t a[32];
  crypto_core_ed25519_scalar_reduce(a, wide);

  std::uint8_t r[32];
  crypto_core_ed25519_scalar_random(r);
  std::uint8_t nonce[32];
  REQUIRE(crypto_scalarmult_ed25519_base_noclamp(nonce, r) == 0);
  const auto torsion = hex_array<32>(order8_point);
  Signed s{pair.public_key, random_message(rng, 64), {}};
  REQUIRE(crypto_core_ed25519_add(s.signature.data(), nonce, torsion.data()) == 0);

  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  crypto_hash_sha512_update(&state, s.signature.data(), 32);
  crypto_hash_sha512_update(&state, s.key.data(), 32);
  crypto_hash_sha512_update(&state, s.message.data(), s.message.size());
  std::uint8_t digest[64];
  crypto_hash_sha512_final(&state, digest);
  std::uint8_t h[32];
  crypto_core_ed25519_scalar_reduce(h, digest);
  std::uint8_t ha[32];
  crypto_core_ed25519_scalar_mul(ha, h, a);
  crypto_core_ed25519_scalar_add(s.signature.data() + 32, r, ha);
  return s;
}

}  // namespace

TEST_CASE("the test's order-8 point has order 8", "[ed25519]") {
  auto t = hex_array<32>(order8_point);
  std::array<std::uint8_t, 32> twice{}, four{}, eight{};
  REQUIRE(crypto_core_ed25519_add(twice.data(), t.data(), t.data()) == 0);
  REQUIRE(crypto_core_ed25519_add(four.data(), twice.data(), twice.data()) == 0);
  REQUIRE(crypto_core_ed25519_add(eight.data(), four.data(), four.data()) == 0);
  std::array<std::uint8_t, 32> identity{};
  identity[0] = 1;
  CHECK(four != identity);
  CHECK(eight == identity);
}

TEST_CASE("verify_one accepts what libsodium signs, RFC 8032 vector included", "[ed25519]") {
  // RFC 8032, section 7.1, TEST 2 (one-byte message 0x72).
  auto key = hex_array<32>("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  auto signature = hex_array<64>(
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
  const std::uint8_t message[] = {0x72};
  CHECK(ferry::verify_one(key, signature, message));
  signature[0] ^= 1;
  CHECK_FALSE(ferry::verify_one(key, signature, message));

  std::mt19937 rng(7);
  for (const Signed& s : make_signed(200, 200, rng)) {
    REQUIRE(ferry::verify_one(s.key, s.signature, s.message));
  }
}

TEST_CASE("verify_one agrees with libsodium on altered signatures, keys and messages",
          "[ed25519]") {
  std::mt19937 rng(11);
  std::vector<Signed> all = make_signed(64, 8, rng);
  std::size_t refused = 0;
  for (std::size_t i = 0; i < 2000; ++i) {
    Signed s = all[i % all.size()];
    const std::size_t where = rng() % 3;
    const std::uint8_t bit = static_cast<std::uint8_t>(1u << (rng() % 8));
    if (where == 0) {
      s.signature[rng() % s.signature.size()] ^= bit;
    } else if (where == 1) {
      s.key[rng() % s.key.size()] ^= bit;
    } else if (!s.message.empty()) {
      s.message[rng() % s.message.size()] ^= bit;
    } else {
      s.message.push_back(0);
    }
    const bool sodium = libsodium_accepts(s);
    INFO("case " << i << ", altered part " << where);
    REQUIRE(ferry::verify_one(s.key, s.signature, s.message) == sodium);
    if (!sodium) ++refused;
  }
  CHECK(refused == 2000);
}

TEST_CASE("verify_one refuses what libsodium's strict checks refuse", "[ed25519]") {
  std::mt19937 rng(13);
  Signed good = make_signed(1, 1, rng)[0];

  SECTION("S not below the group order: S + L") {
    Signed s = good;
    // S + L < 2^256 for any S below L; add with carry.
    const auto order =
        hex_array<32>("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    unsigned carry = 0;
    for (std::size_t i = 0; i < 32; ++i) {
      const unsigned sum = s.signature[32 + i] + order[i] + carry;
      s.signature[32 + i] = static_cast<std::uint8_t>(sum);
      carry = sum >> 8;
    }
    REQUIRE(carry == 0);
    CHECK_FALSE(libsodium_accepts(s));
    CHECK_FALSE(ferry::verify_one(s.key, s.signature, s.message));
  }
  SECTION("R or A of small order, or not canonical") {
    const std::vector<std::string> bad_points = {
        "0100000000000000000000000000000000000000000000000000000000000000",  // identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // (0, -1)
        "0000000000000000000000000000000000000000000000000000000000000000",  // order 4
        order8_point,
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // y = p + 1
    };
    for (const std::string& hex : bad_points) {
      const auto point = hex_array<32>(hex);
      Signed in_r = good;
      std::memcpy(in_r.signature.data(), point.data(), 32);
      Signed in_a = good;
      std::memcpy(in_a.key.data(), point.data(), 32);
      INFO(hex);
      CHECK_FALSE(libsodium_accepts(in_r));
      CHECK_FALSE(ferry::verify_one(in_r.key, in_r.signature, in_r.message));
      CHECK_FALSE(libsodium_accepts(in_a));
      CHECK_FALSE(ferry::verify_one(in_a.key, in_a.signature, in_a.message));
    }
  }
  SECTION("a y with no point on the curve") {
    Signed s = good;
    // y = 2 has no x: (y^2 - 1) / (d y^2 + 1) is not a square.
    std::array<std::uint8_t, 32> no_point{};
    no_point[0] = 2;
    std::memcpy(s.key.data(), no_point.data(), 32);
    CHECK_FALSE(libsodium_accepts(s));
    CHECK_FALSE(ferry::verify_one(s.key, s.signature, s.message));
  }
}

TEST_CASE("a batch of valid signatures passes, from one key or many, at every size", "[ed25519]") {
  std::mt19937 rng(17);
  for (std::size_t n : {0, 1, 2, 3, 63, 64, 200, 1025}) {
    for (std::size_t keys : {std::size_t{1}, std::size_t{5}, n == 0 ? std::size_t{1} : n}) {
      std::vector<Signed> all = make_signed(n, keys, rng);
      INFO(n << " signatures by " << keys << " keys");
      CHECK(ferry::verify_batch(items_of(all)));
    }
  }
}

TEST_CASE("a batch with one bad signature anywhere fails", "[ed25519]") {
  std::mt19937 rng(19);
  std::vector<Signed> all = make_signed(300, 3, rng);
  for (int round = 0; round < 30; ++round) {
    std::vector<Signed> batch = all;
    const std::size_t at = rng() % batch.size();
    Signed& victim = batch[at];
    switch (round % 4) {
      case 0:  // a bit of S
        victim.signature[32 + rng() % 31] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // the message
        victim.message.push_back(static_cast<std::uint8_t>(rng()));
        break;
      case 2:  // the next signer's key (the three keys take turns)
        victim.key = batch[(at + 1) % batch.size()].key;
        break;
      default:  // another valid signature, over another message
        victim.signature = batch[(at + 3) % batch.size()].signature;
        break;
    }
    INFO("round " << round);
    REQUIRE_FALSE(libsodium_accepts(victim));
    CHECK_FALSE(ferry::verify_batch(items_of(batch)));
  }
}

TEST_CASE(
    "a signature with a small-order component in R is valid by the cofactored rule, "
    "in a batch and alone",
    "[ed25519]") {
  std::mt19937 rng(23);
  for (int i = 0; i < 8; ++i) {
    Signed odd = torsion_signature(rng);
    // libsodium's cofactorless check refuses it ...
    CHECK_FALSE(libsodium_accepts(odd));
    // ... ferry's rule accepts it wherever it is checked, so acceptance never depends on
    // which batch it arrives in.
    CHECK(ferry::verify_one(odd.key, odd.signature, odd.message));
    CHECK(ferry::verify_detached(odd.key, odd.signature, odd.message));
    std::vector<Signed> batch = make_signed(100, 2, rng);
    batch.insert(batch.begin() + static_cast<std::ptrdiff_t>(rng() % batch.size()), odd);
    CHECK(ferry::verify_batch(items_of(batch)));
    // And it is still bound to its message.
    odd.message.push_back(0);
    CHECK_FALSE(ferry::verify_one(odd.key, odd.signature, odd.message));
    CHECK_FALSE(ferry::verify_detached(odd.key, odd.signature, odd.message));
  }
}
