#include "protocol/op.h"

#include <algorithm>
#include <msgpack.hpp>
#include <tuple>

#include "protocol/limits.h"
#include "protocol/unpack.h"
#include "protocol/utf8.h"

namespace ferry {
namespace {

constexpr std::size_t envelope_v1_fields = 11;
constexpr std::uint8_t fixarray_first = 0x90;
constexpr std::uint8_t fixarray_last = 0x9f;

// Extension objects must parse (their size bounded like str and bin) so that the body check can
// refuse them as malformed rather than as an exceeded limit.
const msgpack::unpack_limit& element_limit() {
  static const msgpack::unpack_limit limit(
      limits::body_container_items_max, limits::body_container_items_max, limits::op_bytes_max,
      limits::op_bytes_max, limits::op_bytes_max, limits::body_depth_max + 1);
  return limit;
}

// Reads the msgpack objects of one envelope in sequence, tracking where each one starts.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

  std::size_t offset() const { return offset_; }
  void skip(std::size_t n) { offset_ += n; }
  bool at_end() const { return offset_ == bytes_.size(); }

  // Unpacks the next object; msgpack-c throws on bad input, and the exception stops here.
  Result<msgpack::object_handle> next(std::string_view what) {
    try {
      return msgpack::unpack(reinterpret_cast<const char*>(bytes_.data()), bytes_.size(), offset_,
                             nullptr, nullptr, element_limit());
    } catch (const msgpack::insufficient_bytes&) {
      return fail(Errc::malformed, std::string(what) + ": truncated");
    } catch (const msgpack::size_overflow&) {
      return fail(Errc::limit_exceeded, std::string(what) + ": a declared size exceeds the limit");
    } catch (const std::exception& e) {
      return fail(Errc::malformed, std::string(what) + ": " + e.what());
    }
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t offset_ = 0;
};

tl::unexpected<Error> wrong_type(std::string_view what, std::string_view expected) {
  return fail(Errc::malformed, std::string(what) + ": expected " + std::string(expected));
}

Result<std::uint64_t> read_uint(Reader& r, std::string_view what) {
  auto h = r.next(what);
  if (!h) return tl::unexpected(h.error());
  if (h->get().type != msgpack::type::POSITIVE_INTEGER) return wrong_type(what, "unsigned integer");
  return h->get().via.u64;
}

// The rules for every text field of the envelope: non-empty, bounded, UTF-8, no control bytes.
Result<void> check_text_rules(std::string_view text, std::string_view what, std::size_t bytes_max) {
  if (text.empty()) return fail(Errc::malformed, std::string(what) + ": empty");
  if (text.size() > bytes_max) {
    return fail(Errc::limit_exceeded,
                std::string(what) + ": longer than " + std::to_string(bytes_max) + " bytes");
  }
  if (!valid_utf8(text)) return fail(Errc::malformed, std::string(what) + ": invalid UTF-8");
  bool control = std::any_of(text.begin(), text.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (control) return fail(Errc::malformed, std::string(what) + ": control character");
  return {};
}

Result<std::string> check_text(const msgpack::object& o, std::string_view what,
                               std::size_t bytes_max) {
  if (o.type != msgpack::type::STR) return wrong_type(what, "string");
  std::string_view text(o.via.str.ptr, o.via.str.size);
  if (auto valid = check_text_rules(text, what, bytes_max); !valid) {
    return tl::unexpected(valid.error());
  }
  return std::string(text);
}

Result<std::string> read_text(Reader& r, std::string_view what, std::size_t bytes_max) {
  auto h = r.next(what);
  if (!h) return tl::unexpected(h.error());
  return check_text(h->get(), what, bytes_max);
}

Result<Digest> to_digest(const msgpack::object& o, std::string_view what) {
  if (o.type != msgpack::type::BIN || o.via.bin.size != digest_bytes) {
    return wrong_type(what, "32-byte binary");
  }
  Digest d{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), d.size(), d.begin());
  return d;
}

Result<Digest> read_digest(Reader& r, std::string_view what) {
  auto h = r.next(what);
  if (!h) return tl::unexpected(h.error());
  return to_digest(h->get(), what);
}

Result<void> check_deps_rules(std::span<const OpId> deps) {
  if (deps.size() > limits::deps_max) {
    return fail(Errc::limit_exceeded, "deps: more than " + std::to_string(limits::deps_max));
  }
  for (std::size_t i = 0; i < deps.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (deps[i] == deps[j]) return fail(Errc::malformed, "deps: duplicate id");
    }
  }
  return {};
}

Result<std::vector<OpId>> read_deps(Reader& r) {
  auto h = r.next("deps");
  if (!h) return tl::unexpected(h.error());
  const msgpack::object& o = h->get();
  if (o.type != msgpack::type::ARRAY) return wrong_type("deps", "array");
  if (o.via.array.size > limits::deps_max) {
    return fail(Errc::limit_exceeded, "deps: more than " + std::to_string(limits::deps_max));
  }
  std::vector<OpId> deps;
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    auto d = to_digest(o.via.array.ptr[i], "deps");
    if (!d) return tl::unexpected(d.error());
    deps.push_back(*d);
  }
  if (auto valid = check_deps_rules(deps); !valid) return tl::unexpected(valid.error());
  return deps;
}

Result<void> check_value(const msgpack::object& o, std::size_t depth);

Result<void> check_map(const msgpack::object& o, std::size_t depth) {
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const msgpack::object& k = o.via.map.ptr[i].key;
    if (k.type != msgpack::type::STR) return wrong_type("body", "string map keys");
    if (!valid_utf8(std::string_view(k.via.str.ptr, k.via.str.size))) {
      return fail(Errc::malformed, "body: invalid UTF-8 in a map key");
    }
    if (auto v = check_value(o.via.map.ptr[i].val, depth + 1); !v) return v;
  }
  return {};
}

Result<void> check_value(const msgpack::object& o, std::size_t depth) {
  // Only maps and arrays nest: a scalar inside the deepest allowed container is within the limit.
  bool container = o.type == msgpack::type::ARRAY || o.type == msgpack::type::MAP;
  if (container && depth > limits::body_depth_max) {
    return fail(Errc::limit_exceeded,
                "body: nested deeper than " + std::to_string(limits::body_depth_max));
  }
  switch (o.type) {
    case msgpack::type::NIL:
    case msgpack::type::BOOLEAN:
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
    case msgpack::type::BIN:
      return {};
    case msgpack::type::STR:
      if (!valid_utf8(std::string_view(o.via.str.ptr, o.via.str.size))) {
        return fail(Errc::malformed, "body: invalid UTF-8 in a string");
      }
      return {};
    case msgpack::type::ARRAY:
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (auto v = check_value(o.via.array.ptr[i], depth + 1); !v) return v;
      }
      return {};
    case msgpack::type::MAP:
      return check_map(o, depth);
    default:
      return fail(Errc::malformed, "body: extension types are not allowed");
  }
}

// Reads the next element as a body: a map that check_map accepts.
Result<msgpack::object_handle> next_body(Reader& r) {
  auto h = r.next("body");
  if (!h) return tl::unexpected(h.error());
  if (h->get().type != msgpack::type::MAP) return wrong_type("body", "map");
  if (auto v = check_map(h->get(), 1); !v) return tl::unexpected(v.error());
  return h;
}

// Reads the body element and returns where its bytes start.
Result<std::size_t> read_body(Reader& r) {
  std::size_t start = r.offset();
  if (auto h = next_body(r); !h) return tl::unexpected(h.error());
  return start;
}

Result<std::optional<std::string>> read_author(Reader& r) {
  auto h = r.next("author");
  if (!h) return tl::unexpected(h.error());
  if (h->get().type == msgpack::type::NIL) return std::nullopt;
  auto text = check_text(h->get(), "author", limits::author_bytes_max);
  if (!text) return tl::unexpected(text.error());
  return std::optional<std::string>(std::move(*text));
}

}  // namespace
namespace {

Result<void> check_position_rules(std::uint64_t seq, const OpId& prev) {
  if (seq == 0) return fail(Errc::malformed, "seq: feeds start at 1");
  if ((seq == 1) != (prev == OpId{})) {
    return fail(Errc::malformed, "prev: must be all zero exactly when seq is 1");
  }
  return {};
}

Result<void> read_header_fields(Reader& r, OpHeader& h) {
  auto origin = read_digest(r, "origin");
  if (!origin) return tl::unexpected(origin.error());
  h.origin = *origin;
  auto channel = read_text(r, "channel", limits::channel_bytes_max);
  if (!channel) return tl::unexpected(channel.error());
  h.channel = std::move(*channel);
  auto seq = read_uint(r, "seq");
  if (!seq) return tl::unexpected(seq.error());
  if (*seq == 0) return fail(Errc::malformed, "seq: feeds start at 1");
  auto prev = read_digest(r, "prev");
  if (!prev) return tl::unexpected(prev.error());
  if (auto valid = check_position_rules(*seq, *prev); !valid) return valid;
  h.seq = *seq;
  h.prev = *prev;
  auto hlc = read_uint(r, "hlc");
  if (!hlc) return tl::unexpected(hlc.error());
  h.hlc = *hlc;
  auto kind = read_text(r, "kind", limits::kind_bytes_max);
  if (!kind) return tl::unexpected(kind.error());
  h.kind = std::move(*kind);
  auto key = read_text(r, "key", limits::key_bytes_max);
  if (!key) return tl::unexpected(key.error());
  h.key = std::move(*key);
  auto deps = read_deps(r);
  if (!deps) return tl::unexpected(deps.error());
  h.deps = std::move(*deps);
  return {};
}

void pack_text(msgpack::packer<msgpack::sbuffer>& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_digest(msgpack::packer<msgpack::sbuffer>& pk, const Digest& d) {
  pk.pack_bin(static_cast<std::uint32_t>(d.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(d.data()), static_cast<std::uint32_t>(d.size()));
}

}  // namespace

Result<Op> Op::decode(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > limits::op_bytes_max) {
    return fail(Errc::limit_exceeded,
                "op: larger than " + std::to_string(limits::op_bytes_max) + " bytes");
  }
  if (bytes.empty()) return fail(Errc::malformed, "op: empty");
  if (bytes[0] < fixarray_first || bytes[0] > fixarray_last) {
    return fail(Errc::malformed, "op: envelope must start with a short msgpack array");
  }
  std::size_t fields = bytes[0] - fixarray_first;
  Reader r(bytes);
  r.skip(1);
  if (fields == 0) return fail(Errc::malformed, "op: empty envelope");
  auto version = read_uint(r, "version");
  if (!version) return tl::unexpected(version.error());
  if (*version != envelope_version_1) {
    return fail(Errc::malformed, "op: unknown envelope version " + std::to_string(*version));
  }
  if (fields != envelope_v1_fields) {
    return fail(Errc::malformed,
                "op: envelope version 1 has 11 fields, not " + std::to_string(fields));
  }
  Op op;
  op.header_.version = *version;
  if (auto h = read_header_fields(r, op.header_); !h) return tl::unexpected(h.error());
  auto body_start = read_body(r);
  if (!body_start) return tl::unexpected(body_start.error());
  op.body_offset_ = *body_start;
  op.body_size_ = r.offset() - *body_start;
  auto author = read_author(r);
  if (!author) return tl::unexpected(author.error());
  op.header_.author = std::move(*author);
  if (!r.at_end()) return fail(Errc::malformed, "op: trailing bytes after the envelope");
  op.bytes_.assign(bytes.begin(), bytes.end());
  op.id_ = blake2b_256(op.bytes_);
  return op;
}

Result<Op> Op::build(const PublicKey& origin, std::uint64_t seq, const OpId& prev,
                     std::uint64_t hlc, const OpDraft& draft) {
  // The checks decode() makes on a remote op, made on the draft's fields before they are
  // encoded, so that a local op is held to the same rules without decoding what was just written
  // (a test decodes built ops and compares).
  if (auto valid = check_position_rules(seq, prev); !valid) return tl::unexpected(valid.error());
  for (auto [text, what, bytes_max] :
       {std::tuple{std::string_view(draft.channel), "channel", limits::channel_bytes_max},
        std::tuple{std::string_view(draft.kind), "kind", limits::kind_bytes_max},
        std::tuple{std::string_view(draft.key), "key", limits::key_bytes_max}}) {
    if (auto valid = check_text_rules(text, what, bytes_max); !valid) {
      return tl::unexpected(valid.error());
    }
  }
  if (draft.author) {
    if (auto valid = check_text_rules(*draft.author, "author", limits::author_bytes_max); !valid) {
      return tl::unexpected(valid.error());
    }
  }
  if (auto valid = check_deps_rules(draft.deps); !valid) return tl::unexpected(valid.error());
  if (!draft.body_validated) {
    if (auto valid = validate_body(draft.body); !valid) return tl::unexpected(valid.error());
  }

  msgpack::sbuffer buffer(512 + draft.body.size());
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(envelope_v1_fields);
  pk.pack_uint64(envelope_version_1);
  pack_digest(pk, origin);
  pack_text(pk, draft.channel);
  pk.pack_uint64(seq);
  pack_digest(pk, prev);
  pk.pack_uint64(hlc);
  pack_text(pk, draft.kind);
  pack_text(pk, draft.key);
  pk.pack_array(static_cast<std::uint32_t>(draft.deps.size()));
  for (const OpId& dep : draft.deps) pack_digest(pk, dep);
  const std::size_t body_offset = buffer.size();
  buffer.write(reinterpret_cast<const char*>(draft.body.data()), draft.body.size());
  if (draft.author) {
    pack_text(pk, *draft.author);
  } else {
    pk.pack_nil();
  }
  if (buffer.size() > limits::op_bytes_max) {
    return fail(Errc::limit_exceeded,
                "op: larger than " + std::to_string(limits::op_bytes_max) + " bytes");
  }
  Op op;
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  op.bytes_.assign(data, data + buffer.size());
  op.header_ = OpHeader{envelope_version_1, origin,    draft.channel, seq,         prev, hlc,
                        draft.kind,         draft.key, draft.deps,    draft.author};
  op.body_offset_ = body_offset;
  op.body_size_ = draft.body.size();
  op.id_ = blake2b_256(op.bytes_);
  return op;
}

std::span<const std::uint8_t> Op::body() const {
  return std::span<const std::uint8_t>(bytes_).subspan(body_offset_, body_size_);
}

std::array<std::uint8_t, op_signing_message_bytes> op_signing_message(const OpId& id) {
  std::array<std::uint8_t, op_signing_message_bytes> message{};
  auto tag_end =
      std::copy(op_signature_domain_v1.begin(), op_signature_domain_v1.end(), message.begin());
  std::copy(id.begin(), id.end(), tag_end);
  return message;
}

SignedOp sign_op(Op op, const NodeKey& key) {
  FERRY_ASSERT(op.header().origin == key.public_key());
  Signature signature = key.sign(op_signing_message(op.id()));
  return SignedOp{std::move(op), signature};
}

Result<void> verify_op(const Op& op, const Signature& signature) {
  if (!verify_detached(op.header().origin, signature, op_signing_message(op.id()))) {
    return fail(Errc::bad_signature, "op: signature does not verify against its origin");
  }
  return {};
}

Result<msgpack::object_handle> unpack_body(std::span<const std::uint8_t> body) {
  if (body.size() > limits::op_bytes_max) {
    return fail(Errc::limit_exceeded, "body: larger than an op may be");
  }
  if (body.empty()) return fail(Errc::malformed, "body: empty");
  Reader r(body);
  auto h = next_body(r);
  if (!h) return h;
  if (!r.at_end()) return fail(Errc::malformed, "body: trailing bytes after the map");
  return h;
}

Result<void> validate_body(std::span<const std::uint8_t> body) {
  auto unpacked = unpack_body(body);
  if (!unpacked) return tl::unexpected(unpacked.error());
  return {};
}

}  // namespace ferry
