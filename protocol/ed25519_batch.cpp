#include "protocol/ed25519_batch.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <vector>

#include "protocol/error.h"

namespace ferry {

namespace {

static_assert(std::endian::native == std::endian::little, "the field code loads little-endian");

__extension__ typedef unsigned __int128 u128;
using u64 = std::uint64_t;

// ---- The field GF(2^255 - 19), five limbs of 51 bits. ----
//
// Every operation returns limbs below 2^51 + 2^17 (weakly reduced); fe_tobytes reduces fully.

constexpr u64 mask51 = (u64{1} << 51) - 1;

struct Fe {
  u64 v[5];
};

constexpr Fe fe_zero{{0, 0, 0, 0, 0}};
constexpr Fe fe_one{{1, 0, 0, 0, 0}};
// d = -121665/121666, 2d and sqrt(-1), as limbs.
constexpr Fe fe_d{
    {929955233495203, 466365720129213, 1662059464998953, 2033849074728123, 1442794654840575}};
constexpr Fe fe_d2{
    {1859910466990425, 932731440258426, 1072319116312658, 1815898335770999, 633789495995903}};
constexpr Fe fe_sqrtm1{
    {1718705420411056, 234908883556509, 2233514472574048, 2117202627021982, 765476049583133}};

u64 load64(const std::uint8_t* s) {
  u64 r;
  std::memcpy(&r, s, sizeof r);
  return r;
}

// The low 255 bits of s (the top bit is a point's sign, not part of y).
Fe fe_frombytes(const std::uint8_t* s) {
  return Fe{{load64(s) & mask51, (load64(s + 6) >> 3) & mask51, (load64(s + 12) >> 6) & mask51,
             (load64(s + 19) >> 1) & mask51, (load64(s + 24) >> 12) & mask51}};
}

Fe fe_carry(Fe a) {
  for (int i = 0; i < 4; ++i) {
    a.v[i + 1] += a.v[i] >> 51;
    a.v[i] &= mask51;
  }
  const u64 c = a.v[4] >> 51;
  a.v[4] &= mask51;
  a.v[0] += 19 * c;
  return a;
}

void fe_tobytes(std::uint8_t* out, Fe h) {
  h = fe_carry(fe_carry(h));  // limbs below 2^51, except v[0] below 2^51 + 19: h < 2p
  u64 q = (h.v[0] + 19) >> 51;
  q = (h.v[1] + q) >> 51;
  q = (h.v[2] + q) >> 51;
  q = (h.v[3] + q) >> 51;
  q = (h.v[4] + q) >> 51;  // 1 when h >= p
  h.v[0] += 19 * q;
  for (int i = 0; i < 4; ++i) {
    h.v[i + 1] += h.v[i] >> 51;
    h.v[i] &= mask51;
  }
  h.v[4] &= mask51;  // drops the 2^255 that q subtracted with the 19
  const u64 words[4] = {h.v[0] | (h.v[1] << 51), (h.v[1] >> 13) | (h.v[2] << 38),
                        (h.v[2] >> 26) | (h.v[3] << 25), (h.v[3] >> 39) | (h.v[4] << 12)};
  std::memcpy(out, words, 32);
}

Fe fe_add(const Fe& a, const Fe& b) {
  return fe_carry(
      Fe{{a.v[0] + b.v[0], a.v[1] + b.v[1], a.v[2] + b.v[2], a.v[3] + b.v[3], a.v[4] + b.v[4]}});
}

// a + 4p - b: never below zero for weakly reduced b.
Fe fe_sub(const Fe& a, const Fe& b) {
  constexpr u64 four_p0 = (u64{1} << 53) - 76;
  constexpr u64 four_pi = (u64{1} << 53) - 4;
  return fe_carry(
      Fe{{a.v[0] + four_p0 - b.v[0], a.v[1] + four_pi - b.v[1], a.v[2] + four_pi - b.v[2],
          a.v[3] + four_pi - b.v[3], a.v[4] + four_pi - b.v[4]}});
}

Fe fe_neg(const Fe& a) { return fe_sub(fe_zero, a); }

Fe fe_reduce(u128 r0, u128 r1, u128 r2, u128 r3, u128 r4) {
  Fe h;
  r1 += static_cast<u64>(r0 >> 51);
  h.v[0] = static_cast<u64>(r0) & mask51;
  r2 += static_cast<u64>(r1 >> 51);
  h.v[1] = static_cast<u64>(r1) & mask51;
  r3 += static_cast<u64>(r2 >> 51);
  h.v[2] = static_cast<u64>(r2) & mask51;
  r4 += static_cast<u64>(r3 >> 51);
  h.v[3] = static_cast<u64>(r3) & mask51;
  const u64 c = static_cast<u64>(r4 >> 51);  // below 2^57 for weakly reduced inputs
  h.v[4] = static_cast<u64>(r4) & mask51;
  h.v[0] += 19 * c;
  h.v[1] += h.v[0] >> 51;
  h.v[0] &= mask51;
  return h;
}

Fe fe_mul(const Fe& a, const Fe& b) {
  const u64 a0 = a.v[0], a1 = a.v[1], a2 = a.v[2], a3 = a.v[3], a4 = a.v[4];
  const u64 b0 = b.v[0], b1 = b.v[1], b2 = b.v[2], b3 = b.v[3], b4 = b.v[4];
  const u64 b1_19 = 19 * b1, b2_19 = 19 * b2, b3_19 = 19 * b3, b4_19 = 19 * b4;
  const u128 r0 =
      u128{a0} * b0 + u128{a1} * b4_19 + u128{a2} * b3_19 + u128{a3} * b2_19 + u128{a4} * b1_19;
  const u128 r1 =
      u128{a0} * b1 + u128{a1} * b0 + u128{a2} * b4_19 + u128{a3} * b3_19 + u128{a4} * b2_19;
  const u128 r2 =
      u128{a0} * b2 + u128{a1} * b1 + u128{a2} * b0 + u128{a3} * b4_19 + u128{a4} * b3_19;
  const u128 r3 = u128{a0} * b3 + u128{a1} * b2 + u128{a2} * b1 + u128{a3} * b0 + u128{a4} * b4_19;
  const u128 r4 = u128{a0} * b4 + u128{a1} * b3 + u128{a2} * b2 + u128{a3} * b1 + u128{a4} * b0;
  return fe_reduce(r0, r1, r2, r3, r4);
}

Fe fe_sq(const Fe& a) {
  const u64 a0 = a.v[0], a1 = a.v[1], a2 = a.v[2], a3 = a.v[3], a4 = a.v[4];
  const u64 d0 = 2 * a0, d1 = 2 * a1, d2 = 2 * a2, d3 = 2 * a3;
  const u64 a3_19 = 19 * a3, a4_19 = 19 * a4;
  const u128 r0 = u128{a0} * a0 + u128{d1} * a4_19 + u128{d2} * a3_19;
  const u128 r1 = u128{d0} * a1 + u128{d2} * a4_19 + u128{a3} * a3_19;
  const u128 r2 = u128{d0} * a2 + u128{a1} * a1 + u128{d3} * a4_19;
  const u128 r3 = u128{d0} * a3 + u128{d1} * a2 + u128{a4} * a4_19;
  const u128 r4 = u128{d0} * a4 + u128{d1} * a3 + u128{a2} * a2;
  return fe_reduce(r0, r1, r2, r3, r4);
}

Fe fe_sq_times(Fe a, int n) {
  for (int i = 0; i < n; ++i) a = fe_sq(a);
  return a;
}

// z^((p-5)/8) = z^(2^252 - 3), for the square root in decompression.
Fe fe_pow22523(const Fe& z) {
  Fe t0 = fe_sq(z);                       // 2
  Fe t1 = fe_mul(z, fe_sq_times(t0, 2));  // 9
  t0 = fe_mul(t0, t1);                    // 11
  t0 = fe_mul(t1, fe_sq(t0));             // 31 = 2^5 - 1
  t0 = fe_mul(fe_sq_times(t0, 5), t0);    // 2^10 - 1
  t1 = fe_mul(fe_sq_times(t0, 10), t0);   // 2^20 - 1
  t1 = fe_mul(fe_sq_times(t1, 20), t1);   // 2^40 - 1
  t0 = fe_mul(fe_sq_times(t1, 10), t0);   // 2^50 - 1
  t1 = fe_mul(fe_sq_times(t0, 50), t0);   // 2^100 - 1
  t1 = fe_mul(fe_sq_times(t1, 100), t1);  // 2^200 - 1
  t0 = fe_mul(fe_sq_times(t1, 50), t0);   // 2^250 - 1
  return fe_mul(fe_sq_times(t0, 2), z);   // 2^252 - 3
}

bool fe_iszero(const Fe& a) {
  std::uint8_t s[32];
  fe_tobytes(s, a);
  std::uint8_t any = 0;
  for (std::uint8_t b : s) any |= b;
  return any == 0;
}

bool fe_isnegative(const Fe& a) {
  std::uint8_t s[32];
  fe_tobytes(s, a);
  return (s[0] & 1) != 0;
}

// ---- Points of the twisted Edwards curve -x^2 + y^2 = 1 + d x^2 y^2. ----

// Extended coordinates: x = X/Z, y = Y/Z, x*y = T/Z.
struct Ge {
  Fe X, Y, Z, T;
};

// A point readied for additions: Y+X, Y-X, 2Z, 2dT.
struct Cached {
  Fe YplusX, YminusX, Z2, T2d;
};

constexpr Ge ge_identity{fe_zero, fe_one, fe_one, fe_zero};

Cached ge_cached(const Ge& p) {
  return Cached{fe_add(p.Y, p.X), fe_sub(p.Y, p.X), fe_add(p.Z, p.Z), fe_mul(p.T, fe_d2)};
}

Ge ge_neg(const Ge& p) { return Ge{fe_neg(p.X), p.Y, p.Z, fe_neg(p.T)}; }

// p + q (Hisil, Wong, Carter and Dawson 2008, "add-2008-hwcd-3", a = -1).
Ge ge_add(const Ge& p, const Cached& q) {
  const Fe a = fe_mul(fe_sub(p.Y, p.X), q.YminusX);
  const Fe b = fe_mul(fe_add(p.Y, p.X), q.YplusX);
  const Fe c = fe_mul(p.T, q.T2d);
  const Fe d = fe_mul(p.Z, q.Z2);
  const Fe e = fe_sub(b, a), f = fe_sub(d, c), g = fe_add(d, c), h = fe_add(b, a);
  return Ge{fe_mul(e, f), fe_mul(g, h), fe_mul(f, g), fe_mul(e, h)};
}

// 2p ("dbl-2008-hwcd", a = -1).
Ge ge_dbl(const Ge& p) {
  const Fe a = fe_sq(p.X);
  const Fe b = fe_sq(p.Y);
  const Fe zz = fe_sq(p.Z);
  const Fe c = fe_add(zz, zz);
  const Fe e = fe_sub(fe_sub(fe_sq(fe_add(p.X, p.Y)), a), b);
  const Fe g = fe_sub(b, a);  // a*A + B with a = -1
  const Fe f = fe_sub(g, c);
  const Fe h = fe_neg(fe_add(a, b));  // a*A - B
  return Ge{fe_mul(e, f), fe_mul(g, h), fe_mul(f, g), fe_mul(e, h)};
}

bool ge_is_identity(const Ge& p) { return fe_iszero(p.X) && fe_iszero(fe_sub(p.Y, p.Z)); }

bool ge_small_order(const Ge& p) { return ge_is_identity(ge_dbl(ge_dbl(ge_dbl(p)))); }

// The point encoded by s: y in the low 255 bits, the sign of x in the top bit. Refuses an
// encoding of y >= p (not canonical) and a y with no x on the curve.
bool ge_decode(Ge& out, const std::uint8_t* s) {
  const Fe y = fe_frombytes(s);
  std::uint8_t canonical[32];
  fe_tobytes(canonical, y);
  if (std::memcmp(canonical, s, 31) != 0 || canonical[31] != (s[31] & 0x7f)) return false;
  const Fe y2 = fe_sq(y);
  const Fe u = fe_sub(y2, fe_one);                // y^2 - 1
  const Fe v = fe_add(fe_mul(y2, fe_d), fe_one);  // d y^2 + 1
  const Fe v3 = fe_mul(fe_sq(v), v);
  const Fe uv7 = fe_mul(fe_mul(fe_sq(v3), v), u);
  Fe x = fe_mul(fe_mul(fe_pow22523(uv7), v3), u);  // u v^3 (u v^7)^((p-5)/8)
  const Fe vxx = fe_mul(fe_sq(x), v);
  if (!fe_iszero(fe_sub(vxx, u))) {
    if (!fe_iszero(fe_add(vxx, u))) return false;  // u/v is not a square: no such point
    x = fe_mul(x, fe_sqrtm1);
  }
  if (fe_isnegative(x) != ((s[31] >> 7) != 0)) x = fe_neg(x);
  out = Ge{x, y, fe_one, fe_mul(x, y)};
  return true;
}

const Ge& base_point() {
  static const Ge base = [] {
    std::uint8_t encoded[32];
    std::memset(encoded, 0x66, sizeof encoded);
    encoded[0] = 0x58;  // y = 4/5, x even
    Ge b;
    const bool ok = ge_decode(b, encoded);
    FERRY_ASSERT(ok);
    return b;
  }();
  return base;
}

// ---- Scalars (little-endian, below L = 2^252 + 27742317777372353535851937790883648493). ----

using Scalar = std::array<std::uint8_t, 32>;

constexpr Scalar group_order{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                             0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                             0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};

bool scalar_canonical(const std::uint8_t* s) {
  for (int i = 31; i >= 0; --i) {
    if (s[i] != group_order[i]) return s[i] < group_order[i];
  }
  return false;  // equal to L
}

// Σ scalar_j · point_j for a few points with full-size scalars: 4-bit windows, shared doublings.
Ge multi_scalar_straus(std::span<const Scalar> scalars, std::span<const Ge> points) {
  std::vector<std::array<Cached, 16>> tables(points.size());
  for (std::size_t j = 0; j < points.size(); ++j) {
    const Cached one = ge_cached(points[j]);
    Ge multiple = points[j];
    tables[j][1] = one;
    for (int k = 2; k < 16; ++k) {
      multiple = ge_add(multiple, one);
      tables[j][k] = ge_cached(multiple);
    }
  }
  Ge q = ge_identity;
  for (int nibble = 63; nibble >= 0; --nibble) {
    if (nibble != 63) q = ge_dbl(ge_dbl(ge_dbl(ge_dbl(q))));
    for (std::size_t j = 0; j < points.size(); ++j) {
      const int digit = (scalars[j][nibble / 2] >> (4 * (nibble % 2))) & 15;
      if (digit != 0) q = ge_add(q, tables[j][digit]);
    }
  }
  return q;
}

constexpr int short_scalar_bits = 128;

// The bucket width that minimises Pippenger's additions for n points of short_scalar_bits.
int bucket_bits(std::size_t n) {
  int best = 1;
  double best_cost = 0;
  for (int c = 1; c <= 12; ++c) {
    const double windows = static_cast<double>((short_scalar_bits + c - 1) / c);
    const double cost = windows * (static_cast<double>(n) + 2.0 * static_cast<double>(1 << c));
    if (c == 1 || cost < best_cost) {
      best = c;
      best_cost = cost;
    }
  }
  return best;
}

// Σ z_j · point_j for many points with 128-bit scalars (Pippenger's bucket method).
Ge multi_scalar_pippenger(std::span<const u128> z, std::span<const Ge> points) {
  FERRY_ASSERT(z.size() == points.size());
  const int c = bucket_bits(points.size());
  const int windows = (short_scalar_bits + c - 1) / c;
  const std::size_t bucket_count = (std::size_t{1} << c) - 1;  // digit d goes to bucket d - 1
  std::vector<Cached> cached(points.size());
  for (std::size_t j = 0; j < points.size(); ++j) cached[j] = ge_cached(points[j]);
  std::vector<Ge> buckets(bucket_count);
  std::vector<bool> filled(bucket_count);
  Ge q = ge_identity;
  for (int w = windows - 1; w >= 0; --w) {
    for (int i = 0; i < c; ++i) q = ge_dbl(q);
    std::fill(filled.begin(), filled.end(), false);
    for (std::size_t j = 0; j < points.size(); ++j) {
      const std::size_t digit =
          static_cast<std::size_t>(z[j] >> (w * c)) & ((std::size_t{1} << c) - 1);
      if (digit == 0) continue;
      if (filled[digit - 1]) {
        buckets[digit - 1] = ge_add(buckets[digit - 1], cached[j]);
      } else {
        buckets[digit - 1] = points[j];
        filled[digit - 1] = true;
      }
    }
    // Σ d · bucket_d as running sums from the top bucket down.
    Ge running = ge_identity, sum = ge_identity;
    bool started = false;
    for (std::size_t b = bucket_count; b-- > 0;) {
      if (filled[b]) {
        running = started ? ge_add(running, ge_cached(buckets[b])) : buckets[b];
        started = true;
      }
      if (started) sum = ge_add(sum, ge_cached(running));
    }
    q = ge_add(q, ge_cached(sum));
  }
  return q;
}

Scalar challenge(const Signature& signature, const PublicKey& key,
                 std::span<const std::uint8_t> message) {
  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  crypto_hash_sha512_update(&state, signature.data(), 32);
  crypto_hash_sha512_update(&state, key.data(), key.size());
  crypto_hash_sha512_update(&state, message.data(), message.size());
  std::uint8_t digest[64];
  crypto_hash_sha512_final(&state, digest);
  Scalar h;
  crypto_core_ed25519_scalar_reduce(h.data(), digest);
  return h;
}

struct KeyTerm {
  const PublicKey* key;
  Ge point;
  Scalar scalar{};  // Σ z_i h_i over the signatures by this key
};

// The cofactored check of up to verify_batch_max signatures; with `randomize` false every
// z_i is 1 (a single signature needs no random weight).
bool check(std::span<const SignatureToCheck> items, bool randomize) {
  FERRY_ASSERT(items.size() <= verify_batch_max);
  if (sodium_init() < 0) return false;
  std::vector<u128> z(items.size(), 1);
  if (randomize) {
    randombytes_buf(z.data(), z.size() * sizeof(u128));
    for (u128& zi : z) zi |= 1;  // odd, so never 0
  }
  std::vector<Ge> nonces(items.size());
  std::vector<KeyTerm> keys;
  Scalar s_sum{};
  for (std::size_t i = 0; i < items.size(); ++i) {
    const SignatureToCheck& item = items[i];
    const std::uint8_t* sig = item.signature->data();
    if (!scalar_canonical(sig + 32)) return false;
    if (!ge_decode(nonces[i], sig) || ge_small_order(nonces[i])) return false;
    auto key = std::find_if(keys.begin(), keys.end(),
                            [&](const KeyTerm& k) { return *k.key == *item.key; });
    if (key == keys.end()) {
      KeyTerm term{item.key, {}, {}};
      if (!ge_decode(term.point, item.key->data()) || ge_small_order(term.point)) return false;
      keys.push_back(term);
      key = keys.end() - 1;
    }
    Scalar zi{};
    std::memcpy(zi.data(), &z[i], sizeof(u128));
    const Scalar h = challenge(*item.signature, *item.key, item.message);
    Scalar product;
    crypto_core_ed25519_scalar_mul(product.data(), zi.data(), sig + 32);
    crypto_core_ed25519_scalar_add(s_sum.data(), s_sum.data(), product.data());
    crypto_core_ed25519_scalar_mul(product.data(), zi.data(), h.data());
    crypto_core_ed25519_scalar_add(key->scalar.data(), key->scalar.data(), product.data());
  }
  // (Σ z_i S_i) B - Σ_k a_k A_k - Σ z_i R_i, times the cofactor 8, must be the identity.
  std::vector<Scalar> scalars{s_sum};
  std::vector<Ge> points{base_point()};
  for (const KeyTerm& k : keys) {
    scalars.push_back(k.scalar);
    points.push_back(ge_neg(k.point));
  }
  const Ge fixed = multi_scalar_straus(scalars, points);
  const Ge nonce_sum = multi_scalar_pippenger(z, nonces);
  const Ge total = ge_add(fixed, ge_cached(ge_neg(nonce_sum)));
  return ge_small_order(total);
}

}  // namespace

bool verify_batch(std::span<const SignatureToCheck> items) {
  for (std::size_t first = 0; first < items.size(); first += verify_batch_max) {
    const std::size_t n = std::min(verify_batch_max, items.size() - first);
    if (!check(items.subspan(first, n), true)) return false;
  }
  return true;
}

bool verify_one(const PublicKey& key, const Signature& signature,
                std::span<const std::uint8_t> message) {
  const SignatureToCheck item{&key, &signature, message};
  return check(std::span<const SignatureToCheck>(&item, 1), false);
}

}  // namespace ferry
