#pragma once
// Exact sums of doubles and of their exact squares in integer digits (a "small superaccumulator",
// after R. M. Neal, "Fast exact summation using small and large superaccumulators", 2015): the
// value is sum_k digit[k] * 2^(32 k + kLowExp). A double x = M 2^e (|M| < 2^53, e >= -1074) adds
// M 2^e's bits to three digits, a product (or square) of two to five; each add changes a digit by less than
// 2^32, so an int64 digit absorbs 2^30 adds before carries must be propagated (done every 2^29).
// The range covers every product of two finite doubles (2^-2148 .. 2^2048) and 2^40 more for the sum:
// overflow-free for any finite input. to_mpfr() hands the exact value to the MPFR side, to_doubles()
// to the double-word side. Only the digits an add touched are cleared and normalized, so a short
// sum costs what its span of exponents does, not the whole range.
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <gmp.h>
#include <mpfr.h>

namespace gnv::exact {

class SuperAcc {
 public:
  static constexpr int kLowExp = -2176;  // below 2^-2148, a multiple of 32
  static constexpr int kDigits = (2048 + 48 - kLowExp) / 32 + 6;

  SuperAcc() {
    digit_.fill(0);
    lo_ = kDigits, hi_ = -1, pending_ = 0;
  }
  void clear() {
    for (int k = lo_; k <= hi_; ++k) digit_[k] = 0;
    lo_ = kDigits, hi_ = -1, pending_ = 0;
  }

  // += x (finite).
  [[gnu::always_inline]] void add(double x) {
    int e;
    int64_t M = split(x, e);
    if (M == 0) return;
    place(static_cast<unsigned __int128>(M < 0 ? -M : M), e - kLowExp, M < 0);
    tick();
  }
  // += a * b, exactly (finite a, b).
  [[gnu::always_inline]] void add_product(double a, double b) {
    int ea, eb;
    const int64_t Ma = split(a, ea), Mb = split(b, eb);
    if (Ma == 0 || Mb == 0) return;
    const auto ua = static_cast<uint64_t>(Ma < 0 ? -Ma : Ma), ub = static_cast<uint64_t>(Mb < 0 ? -Mb : Mb);
    const unsigned __int128 P = static_cast<unsigned __int128>(ua) * ub;  // < 2^106
    place(P, ea + eb - kLowExp, (Ma < 0) != (Mb < 0));
    tick();
  }
  void add_square(double x) { add_product(x, x); }
  // += v * 2^e for an integer |v| < 2^127 and e >= -2148 (NarrowAcc's bins).
  void add_scaled(__int128 v, int e) {
    if (v == 0) return;
    place(static_cast<unsigned __int128>(v < 0 ? -v : v), e - kLowExp, v < 0);
    tick();
  }

  // r = the exact sum (r's precision set to hold it). Propagates carries first.
  void to_mpfr(mpfr_ptr r) {
    normalize();
    const int hi = top();
    int lo = lo_;
    if (hi < 0) {
      mpfr_set_prec(r, MPFR_PREC_MIN);
      mpfr_set_zero(r, 1);
      return;
    }
    while (digit_[lo] == 0) ++lo;
    mpz_t z;
    mpz_init_set_si(z, static_cast<long>(digit_[hi]));  // the top digit carries the sign
    for (int k = hi - 1; k >= lo; --k) {
      mpz_mul_2exp(z, z, 32);
      mpz_add_ui(z, z, static_cast<unsigned long>(digit_[k]));
    }
    const size_t bits = mpz_sizeinbase(z, 2);
    mpfr_set_prec(r, static_cast<mpfr_prec_t>(bits < MPFR_PREC_MIN ? MPFR_PREC_MIN : bits));
    if (mpfr_set_z_2exp(r, z, static_cast<mpfr_exp_t>(32 * lo + kLowExp), MPFR_RNDN) != 0) {
      mpz_clear(z);
      throw_inexact();
    }
    mpz_clear(z);
  }

  // The exact sum as v[0] + v[1] + v[2] + t with v[0] = RN(v[0] + v[1] + v[2]), |v[1]| <= ulp(v[0])/2,
  // v[2] exact below v[1], and |t| < tail, where tail is 0 if the sum has at most 126 significant
  // bits (below 2^-94 |v[0]| otherwise). False where a part would leave [2^-960, 2^960] (the
  // caller then takes to_mpfr). Leaves the digits as a normalized magnitude: clear() before reuse.
  bool to_doubles(double (&v)[3], double& tail) {
    v[0] = v[1] = v[2] = tail = 0;
    normalize();
    int h = top();
    if (h < 0) return true;
    const bool negative = digit_[h] < 0;
    if (negative) {  // the magnitude: every digit negated, carries propagated again
      for (int k = lo_; k <= hi_; ++k) digit_[k] = -digit_[k];
      normalize();
      h = top();
    }
    if (digit_[h] >= (int64_t{1} << 32)) return false;  // only past 2^2048: not for doubles
    // The top four digits as V < 2^128, cut to V < 2^126 so that RN(V) converts back; what is
    // below it makes the tail.
    unsigned __int128 V = 0;
    bool below = false;
    for (int k = h; k >= h - 3; --k) V = (V << 32) | static_cast<uint64_t>(k >= lo_ ? digit_[k] : 0);
    for (int k = lo_; k < h - 3; ++k) below = below || digit_[k] != 0;
    int e = 32 * (h - 3) + kLowExp;
    if (V >> 126) {
      below = below || (V & 3) != 0;
      V >>= 2;
      e += 2;
    }
    if (e < -960 || e + 126 > 960) return false;
    // V = v0 + v1 + v2 exactly: v0 = RN(V), v1 = RN(V - v0) (|V - v0| <= 2^73), v2 what is left
    // (below 2^21: exact).
    __int128 r1, r2;
    const double v0 = rn(V, r1);
    const double v1 = (r1 < 0 ? -1.0 : 1.0) * rn(static_cast<unsigned __int128>(r1 < 0 ? -r1 : r1), r2);
    const double v2 = static_cast<double>(static_cast<int64_t>(r1 < 0 ? -r2 : r2));
    const double scale = (negative ? -1.0 : 1.0) * pow2(e);  // exact products: e >= -960
    v[0] = v0 * scale;
    v[1] = v1 * scale;
    v[2] = v2 * scale;
    tail = below ? pow2(e) : 0.0;
    return true;
  }

 private:
  // 2^e for -1022 <= e <= 1023, from its bits.
  static double pow2(int e) { return std::bit_cast<double>(static_cast<uint64_t>(1023 + e) << 52); }
  // RN(v), ties to even, for v < 2^126 in integer arithmetic (the library's 128-bit conversions
  // are calls), and rest = v - RN(v) exactly.
  static double rn(unsigned __int128 v, __int128& rest) {
    const auto hi = static_cast<uint64_t>(v >> 64), lo = static_cast<uint64_t>(v);
    const int bits = hi ? 128 - __builtin_clzll(hi) : lo ? 64 - __builtin_clzll(lo) : 0;
    if (bits <= 53) {
      rest = 0;
      return static_cast<double>(lo);
    }
    const int sh = bits - 53;
    uint64_t t = static_cast<uint64_t>(v >> sh);
    const unsigned __int128 low = v & ((static_cast<unsigned __int128>(1) << sh) - 1);
    const unsigned __int128 half = static_cast<unsigned __int128>(1) << (sh - 1);
    if (low > half || (low == half && (t & 1))) ++t;  // 2^53 at most: still exact
    rest = static_cast<__int128>(v - (static_cast<unsigned __int128>(t) << sh));
    return static_cast<double>(t) * pow2(sh);
  }
  // The highest nonzero digit (-1 for none); the digits are normalized.
  int top() const {
    int h = hi_;
    while (h >= lo_ && digit_[h] == 0) --h;
    return h >= lo_ ? h : -1;
  }
  // x = M * 2^e with M an integer, |M| < 2^53, e >= -1074.
  [[gnu::always_inline]] static int64_t split(double x, int& e) {
    const auto b = std::bit_cast<uint64_t>(x);
    const int E = static_cast<int>((b >> 52) & 0x7FF);
    int64_t M = static_cast<int64_t>(b & ((uint64_t{1} << 52) - 1));
    if (E != 0) M |= int64_t{1} << 52;
    e = (E != 0 ? E : 1) - 1075;
    return (b >> 63) ? -M : M;
  }
  // += or -= v * 2^pos, v < 2^106 split over the digits at pos / 32 and up.
  [[gnu::always_inline]] void place(unsigned __int128 v, int pos, bool negative) {
    const int k = pos >> 5, s = pos & 31;
    lo_ = k < lo_ ? k : lo_;
    hi_ = k + 4 > hi_ ? k + 4 : hi_;
    const uint64_t lo = static_cast<uint64_t>(v);
    const uint64_t hi = static_cast<uint64_t>(v >> 64);  // < 2^42 for squares, 0 for values
    // v << s < 2^138: five 32-bit pieces.
    const unsigned __int128 w0 = static_cast<unsigned __int128>(lo) << s;
    const unsigned __int128 w1 = static_cast<unsigned __int128>(hi) << s;  // at digit k + 2
    const uint64_t m = 0xFFFFFFFFu;
    const int64_t p0 = static_cast<int64_t>(static_cast<uint64_t>(w0) & m);
    const int64_t p1 = static_cast<int64_t>(static_cast<uint64_t>(w0 >> 32) & m);
    const int64_t p2 = static_cast<int64_t>(static_cast<uint64_t>(w0 >> 64)) +
                       static_cast<int64_t>(static_cast<uint64_t>(w1) & m);
    const int64_t p3 = static_cast<int64_t>(static_cast<uint64_t>(w1 >> 32) & m);
    const int64_t p4 = static_cast<int64_t>(static_cast<uint64_t>(w1 >> 64));
    if (negative) {
      digit_[k] -= p0; digit_[k + 1] -= p1; digit_[k + 2] -= p2; digit_[k + 3] -= p3; digit_[k + 4] -= p4;
    } else {
      digit_[k] += p0; digit_[k + 1] += p1; digit_[k + 2] += p2; digit_[k + 3] += p3; digit_[k + 4] += p4;
    }
  }
  [[gnu::always_inline]] void tick() {
    if (++pending_ >= (int64_t{1} << 29)) normalize();
  }
  // Every touched digit but the top one into [0, 2^32); the top one keeps the sign. The range
  // grows by two digits first: each of fewer than 2^30 adds left a digit below 2^62 in magnitude,
  // so the sum is below 2^(32 hi + 63) and the carry into digit hi + 2 is 0 or -1.
  void normalize() {
    if (hi_ < lo_) return;
    hi_ = hi_ + 2 < kDigits ? hi_ + 2 : kDigits - 1;
    for (int k = lo_; k < hi_; ++k) {
      const int64_t c = digit_[k] >> 32;  // floor division by 2^32
      digit_[k] -= c * (int64_t{1} << 32);
      digit_[k + 1] += c;
    }
    pending_ = 0;
  }
  [[noreturn]] static void throw_inexact();

  std::array<int64_t, kDigits> digit_;
  int lo_, hi_;  // the digits any add touched (every other one is 0)
  int64_t pending_;
};

// The same sums for values of at most 24 significant bits (every f32, f16 and bf16 value, as a
// double): x = M 2^e with |M| < 2^24 and -172 <= e <= 104, so one int64 bin per exponent holds
// the sum of the M's (2^39 adds before it could overflow) and one __int128 bin per exponent the
// products (each < 2^48: 2^79 adds). One add per element instead of SuperAcc's digit scatter;
// fold() hands the bins to a SuperAcc. Worth it from a few hundred elements on (fold and clear
// walk the touched bins only).
class NarrowAcc {
 public:
  static constexpr int kMinExp = -172, kMaxExp = 104;
  static constexpr int kBins = kMaxExp - kMinExp + 1;

  NarrowAcc() {
    sums_.fill(0);
    prods_.fill(0);
  }
  // x must have at most 24 significant bits (the caller's dtype guarantees it).
  [[gnu::always_inline]] void add(double x) {
    int e;
    const int64_t M = split24(x, e);
    const int i = e - kMinExp;
    sums_[i] += M;
    touch(s_lo_, s_hi_, i);
  }
  [[gnu::always_inline]] void add_product(double a, double b) {
    int ea, eb;
    const int64_t Ma = split24(a, ea), Mb = split24(b, eb);
    const int i = ea + eb - 2 * kMinExp;
    prods_[i] += static_cast<__int128>(Ma * Mb);
    touch(p_lo_, p_hi_, i);
  }
  // acc += the sums (fold_sums) or the products (fold_products); the bins are cleared.
  void fold_sums(SuperAcc& acc) {
    for (int i = s_lo_; i <= s_hi_; ++i) {
      acc.add_scaled(sums_[i], i + kMinExp);
      sums_[i] = 0;
    }
    s_lo_ = kBins, s_hi_ = -1;
  }
  void fold_products(SuperAcc& acc) {
    for (int i = p_lo_; i <= p_hi_; ++i) {
      acc.add_scaled(prods_[i], i + 2 * kMinExp);
      prods_[i] = 0;
    }
    p_lo_ = 2 * kBins, p_hi_ = -1;
  }

 private:
  // The double x = M 2^e with M < 2^24: its 53-bit significand shifted right by 29 (a value with
  // at most 24 significant bits has 29 zero bits at the bottom; zero gives M = 0).
  [[gnu::always_inline]] static int64_t split24(double x, int& e) {
    const auto b = std::bit_cast<uint64_t>(x);
    const int E = static_cast<int>((b >> 52) & 0x7FF);
    if (E == 0) {  // zero (a subnormal double is never narrow)
      e = kMinExp;
      return 0;
    }
    const auto M = static_cast<int64_t>(((b & ((uint64_t{1} << 52) - 1)) | (uint64_t{1} << 52)) >> 29);
    e = E - 1075 + 29;
    return (b >> 63) ? -M : M;
  }
  [[gnu::always_inline]] static void touch(int& lo, int& hi, int i) {
    lo = i < lo ? i : lo;
    hi = i > hi ? i : hi;
  }
  std::array<int64_t, kBins> sums_;
  std::array<__int128, 2 * kBins> prods_;
  int s_lo_ = kBins, s_hi_ = -1, p_lo_ = 2 * kBins, p_hi_ = -1;
};

// Exact sums of n values (or of n products) into an MPFR number: through NarrowAcc's bins where the
// values are narrow (the dtype is not f64) and at least `from` of them, else SuperAcc alone.
class ExactSums {
 public:
  ExactSums(bool narrow = false, int64_t from = 0) { configure(narrow, from); }
  void configure(bool narrow, int64_t from) {
    narrow_ = narrow;
    from_ = from;
  }
  // The accumulator holding the sum of v(i), i < n (for more adds, then to_mpfr or to_doubles).
  template <class V>
  SuperAcc& accumulate(int64_t n, V v) {
    acc_.clear();
    if (narrow_ && n >= from_) {
      for (int64_t i = 0; i < n; ++i) na_.add(v(i));
      na_.fold_sums(acc_);
    } else {
      for (int64_t i = 0; i < n; ++i) acc_.add(v(i));
    }
    return acc_;
  }
  // The same for the sum of a(i) * b(i), i < n.
  template <class A, class B>
  SuperAcc& accumulate_products(int64_t n, A a, B b) {
    acc_.clear();
    if (narrow_ && n >= from_) {
      for (int64_t i = 0; i < n; ++i) na_.add_product(a(i), b(i));
      na_.fold_products(acc_);
    } else {
      for (int64_t i = 0; i < n; ++i) acc_.add_product(a(i), b(i));
    }
    return acc_;
  }
  // r = sum of v(i); r = sum of a(i) * b(i).
  template <class V>
  void sum(int64_t n, V v, mpfr_ptr r) {
    accumulate(n, v).to_mpfr(r);
  }
  template <class A, class B>
  void sum_products(int64_t n, A a, B b, mpfr_ptr r) {
    accumulate_products(n, a, b).to_mpfr(r);
  }

 private:
  bool narrow_;
  int64_t from_;
  SuperAcc acc_;
  NarrowAcc na_;
};

}  // namespace gnv::exact
