// The op envelope: strict decoding, one-time encoding, ids and signatures.
//
// Envelope version 1 names suite 1 (Ed25519 signatures over BLAKE2b-256 ids). An encoded op is a
// msgpack array of 11 elements, see docs/architecture.md. The id is the BLAKE2b-256 digest of the
// encoded bytes; the signature covers the domain tag "ferry-op-v1" followed by the id, and travels
// beside the envelope, not inside it. An Op keeps the exact bytes it was decoded from or encoded
// to, and nothing re-encodes an op. Decoding never throws: every rejection is an Error with code
// Errc::malformed (or Errc::limit_exceeded for oversize input) and a reason.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"
#include "protocol/node_key.h"

namespace ferry {

using OpId = Digest;

inline constexpr std::uint64_t envelope_version_1 = 1;
inline constexpr std::string_view op_signature_domain_v1 = "ferry-op-v1";

// What a writer supplies for a new op; the feed position (seq, prev) and hlc come from the store.
struct OpDraft {
  std::string channel;
  std::string kind;
  std::string key;
  std::vector<OpId> deps;
  std::vector<std::uint8_t> body;  // one encoded msgpack map
  std::optional<std::string> author;
  // Set when the writer named no deps: the store fills in the record's current heads (see
  // storage/op_store.h). Op::build itself ignores it.
  bool deps_from_heads = false;
  // Set by a parser that has run validate_body() on these very bytes (the IPC's submit, which
  // also checks the merge parts): Op::build then skips that check. Anything that changes `body`
  // afterwards must clear it.
  bool body_validated = false;
};

// The decoded fields of an envelope other than the body.
struct OpHeader {
  std::uint64_t version = envelope_version_1;
  PublicKey origin{};
  std::string channel;
  std::uint64_t seq = 0;
  OpId prev{};  // all zero for seq 1
  std::uint64_t hlc = 0;
  std::string kind;
  std::string key;
  std::vector<OpId> deps;
  std::optional<std::string> author;
};

class Op {
 public:
  // Strictly decodes one envelope; the bytes are copied and kept as they are.
  [[nodiscard]] static Result<Op> decode(std::span<const std::uint8_t> bytes);

  // Encodes a new op once, after checking the draft by the very rules decode() applies to remote
  // ops (and with the same errors).
  [[nodiscard]] static Result<Op> build(const PublicKey& origin, std::uint64_t seq,
                                        const OpId& prev, std::uint64_t hlc, const OpDraft& draft);

  const OpHeader& header() const { return header_; }
  std::span<const std::uint8_t> bytes() const { return bytes_; }
  std::span<const std::uint8_t> body() const;
  const OpId& id() const { return id_; }

 private:
  Op() = default;
  std::vector<std::uint8_t> bytes_;
  OpHeader header_;
  std::size_t body_offset_ = 0;
  std::size_t body_size_ = 0;
  OpId id_{};
};

// An op with the origin's signature, as it is stored and sent.
struct SignedOp {
  Op op;
  Signature signature;
};

inline constexpr std::size_t op_signing_message_bytes =
    op_signature_domain_v1.size() + digest_bytes;

// The bytes the origin signs for an op id: the domain tag followed by the id.
std::array<std::uint8_t, op_signing_message_bytes> op_signing_message(const OpId& id);

SignedOp sign_op(Op op, const NodeKey& key);

// Errc::bad_signature unless the signature is the origin's over this op's id.
[[nodiscard]] Result<void> verify_op(const Op& op, const Signature& signature);

// Checks that bytes hold exactly one msgpack map that a body may be (string keys, no ext types,
// valid UTF-8, bounded nesting); used for drafts before they are encoded.
[[nodiscard]] Result<void> validate_body(std::span<const std::uint8_t> body);

}  // namespace ferry
