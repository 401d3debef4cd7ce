#include "protocol/crypto.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "protocol/hex.h"

namespace {

using ferry::as_bytes;
using ferry::blake2b_256;
using ferry::from_hex;
using ferry::to_hex;

struct Rfc8032Vector {
  const char* name;
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1 to TEST 3 (the RFC calls the seed the secret key).
const Rfc8032Vector rfc8032_vectors[] = {
    {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
    {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    {"TEST 3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
     "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"},
};

std::vector<std::uint8_t> bytes_from_hex(const std::string& text) {
  std::vector<std::uint8_t> out(text.size() / 2);
  REQUIRE(ferry::hex_decode_into(text, out));
  return out;
}

}  // namespace

TEST_CASE("Ed25519 signs and verifies the RFC 8032 section 7.1 vectors exactly") {
  for (const Rfc8032Vector& v : rfc8032_vectors) {
    INFO("RFC 8032 " << v.name);
    auto seed = from_hex<ferry::seed_bytes>(v.seed);
    auto public_key = from_hex<ferry::public_key_bytes>(v.public_key);
    auto expected = from_hex<ferry::signature_bytes>(v.signature);
    REQUIRE(seed);
    REQUIRE(public_key);
    REQUIRE(expected);
    std::vector<std::uint8_t> message = bytes_from_hex(v.message);

    ferry::KeyPair pair = ferry::key_pair_from_seed(*seed);
    CHECK(to_hex(pair.public_key) == v.public_key);
    // libsodium's secret key is seed || public key.
    CHECK(to_hex(pair.secret_key.bytes().first<ferry::seed_bytes>()) == v.seed);
    CHECK(to_hex(pair.secret_key.bytes().last<ferry::public_key_bytes>()) == v.public_key);

    ferry::Signature signature = ferry::sign_detached(pair.secret_key, message);
    CHECK(to_hex(signature) == v.signature);
    CHECK(ferry::verify_detached(*public_key, *expected, message));
  }
}

TEST_CASE("Ed25519 verification fails when any one bit of signature, message or key flips") {
  for (const Rfc8032Vector& v : rfc8032_vectors) {
    INFO("RFC 8032 " << v.name);
    auto public_key = from_hex<ferry::public_key_bytes>(v.public_key);
    auto signature = from_hex<ferry::signature_bytes>(v.signature);
    REQUIRE(public_key);
    REQUIRE(signature);
    std::vector<std::uint8_t> message = bytes_from_hex(v.message);
    REQUIRE(ferry::verify_detached(*public_key, *signature, message));

    for (std::size_t bit = 0; bit < signature->size() * 8; ++bit) {
      INFO("signature bit " << bit);
      ferry::Signature flipped = *signature;
      flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      CHECK_FALSE(ferry::verify_detached(*public_key, flipped, message));
    }
    for (std::size_t bit = 0; bit < message.size() * 8; ++bit) {
      INFO("message bit " << bit);
      std::vector<std::uint8_t> flipped = message;
      flipped[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      CHECK_FALSE(ferry::verify_detached(*public_key, *signature, flipped));
    }
    ferry::PublicKey other_key = *public_key;
    other_key[0] ^= 0x01;
    CHECK_FALSE(ferry::verify_detached(other_key, *signature, message));
    std::vector<std::uint8_t> longer = message;
    longer.push_back(0x00);
    CHECK_FALSE(ferry::verify_detached(*public_key, *signature, longer));
  }
}

TEST_CASE("a key pair signs what its own public key verifies, and another key does not") {
  ferry::KeyPair a = ferry::generate_key_pair();
  ferry::KeyPair b = ferry::generate_key_pair();
  REQUIRE(a.public_key != b.public_key);
  ferry::Signature signature = ferry::sign_detached(a.secret_key, as_bytes("station/huaniao"));
  CHECK(ferry::verify_detached(a.public_key, signature, as_bytes("station/huaniao")));
  CHECK_FALSE(ferry::verify_detached(b.public_key, signature, as_bytes("station/huaniao")));
}

TEST_CASE("BLAKE2b-256 matches the known digests of the empty string and \"abc\"") {
  CHECK(to_hex(blake2b_256(as_bytes(""))) ==
        "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  CHECK(to_hex(blake2b_256(as_bytes("abc"))) ==
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  CHECK(blake2b_256(as_bytes("abd")) != blake2b_256(as_bytes("abc")));
}

TEST_CASE("moving a SecretKey wipes the source and keeps the bytes in the target") {
  auto seed = from_hex<ferry::seed_bytes>(rfc8032_vectors[0].seed);
  REQUIRE(seed);
  ferry::KeyPair pair = ferry::key_pair_from_seed(*seed);
  const std::string original = to_hex(pair.secret_key.bytes());
  const std::string zero(ferry::secret_key_bytes * 2, '0');
  REQUIRE(original != zero);

  SECTION("move construction") {
    ferry::SecretKey moved(std::move(pair.secret_key));
    CHECK(to_hex(moved.bytes()) == original);
    CHECK(to_hex(pair.secret_key.bytes()) == zero);  // NOLINT(bugprone-use-after-move)
  }
  SECTION("move assignment") {
    ferry::SecretKey target;
    CHECK(to_hex(target.bytes()) == zero);
    target = std::move(pair.secret_key);
    CHECK(to_hex(target.bytes()) == original);
    CHECK(to_hex(pair.secret_key.bytes()) == zero);  // NOLINT(bugprone-use-after-move)
  }
  SECTION("moving the whole key pair") {
    ferry::KeyPair moved(std::move(pair));
    CHECK(to_hex(moved.secret_key.bytes()) == original);
    CHECK(to_hex(pair.secret_key.bytes()) == zero);  // NOLINT(bugprone-use-after-move)
    ferry::Signature signature = ferry::sign_detached(moved.secret_key, as_bytes(""));
    CHECK(to_hex(signature) == rfc8032_vectors[0].signature);
  }
  SECTION("self move assignment keeps the bytes") {
    ferry::SecretKey& self = pair.secret_key;
    pair.secret_key = std::move(self);
    CHECK(to_hex(pair.secret_key.bytes()) == original);
  }
}
