// Ed25519 batch verification: checks many signatures at once, several times faster per
// signature than one libsodium verify each.
//
// Every node verifies every op it stores, and a catch-up brings hundreds of thousands of them;
// one crypto_sign_verify_detached costs two full scalar multiplications. A batch instead checks
// one random linear combination of all the verification equations (the method of Bernstein et
// al., "High-speed high-security signatures", 2011):
//
//   [8] ( (Σ z_i S_i) B  −  Σ_k (Σ_{i of key k} z_i h_i) A_k  −  Σ z_i R_i )  =  0
//
// with a fresh random 128-bit z_i per signature, so that a batch holding any invalid signature
// passes with probability below 2^-120. The ops of a batch mostly share one origin, so each
// public key enters once; the R_i are summed with Pippenger's bucket method.
//
// The rule, for one signature (R, S) by key A on message M, h = SHA-512(R || A || M) mod L:
//   - S < L; A and R are canonical encodings of points on the curve, neither of small order
//     (libsodium's strict checks, the same encodings it refuses);
//   - [8] (S B − h A − R) = 0 (the cofactored equation).
// libsodium checks S B − h A = R exactly (cofactorless). The two differ only for signatures
// whose R or A carry a small-order component, which libsodium's signer never makes and only the
// key's owner could craft. A batch can only check the cofactored form, and a rule must not
// depend on which batch a signature arrives in, so ferry uses the cofactored rule everywhere:
// verify_detached (protocol/crypto.h) accepts what libsodium accepts, and otherwise asks
// verify_one here. docs/architecture.md, "Id and signature", states the rule for other
// implementations.
//
// Variable time: it handles only public data (keys, signatures, messages).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "protocol/crypto.h"

namespace ferry {

struct SignatureToCheck {
  const PublicKey* key = nullptr;
  const Signature* signature = nullptr;
  std::span<const std::uint8_t> message;
};

// Batches above this size are checked in parts (the memory of a batch grows with it).
inline constexpr std::size_t verify_batch_max = 1024;

// True when every signature is valid under the rule above (an empty batch is). False when at
// least one is not, or one is malformed; the caller then checks them one by one.
[[nodiscard]] bool verify_batch(std::span<const SignatureToCheck> items);

// The rule above for one signature, without libsodium's cofactorless shortcut.
[[nodiscard]] bool verify_one(const PublicKey& key, const Signature& signature,
                              std::span<const std::uint8_t> message);

}  // namespace ferry
