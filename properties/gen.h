#pragma once
// RapidCheck generators for GroupNorm cases.
//
// A generated case is a CaseSpec: a Problem plus a *description* of its tensors, materialized into
// a Case on demand. Describing instead of listing keeps shrinking tractable: shapes shrink first
// (N, G, channels per group, rank and extents towards 1), then small tensors shrink element by
// element towards simple values (0, small integers), while large tensors (and the stress classes
// of src/stress.cpp, which shape whole groups) shrink through their seed and class.
//
// RapidCheck's own arbitrary floats never produce NaN, Inf, -0 or subnormals; the element domains
// here do, when a profile asks for them, from raw bit patterns of the case's dtype.
#include <rapidcheck.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gnv/case.h"
#include "gnv/problem.h"
#include "gnv/stress.h"

namespace gnv {
// How RapidCheck shows a drawn dtype or layout in a counterexample.
inline void showValue(DType d, std::ostream& os) { os << name(d); }
inline void showValue(Layout l, std::ostream& os) { os << name(l); }
}  // namespace gnv

namespace gnv::prop {

// Element domains, simplest first (shrinking moves towards the front).
enum class Domain : int {
  simple,     // integers in [-8, 8]
  moderate,   // k/256 for |k| <= 4096, rounded to the dtype
  normal,     // approximately N(0, 1)
  wide,       // any finite value of the dtype: every binade, subnormals included
  tiny,       // the bottom binades of the normal range
  subnormal,  // subnormals of the dtype
  special,    // NaN, +Inf, -Inf, -0
};
std::string_view name(Domain d);
// Draws one value of the domain for dtype d from 64 random bits (exactly representable in d).
double draw(Domain dom, DType d, uint64_t bits);

// How a tensor's values are made.
struct ValueSource {
  enum class Kind { elements, stress, procedural };
  Kind kind = Kind::elements;
  std::vector<double> values;  // elements: one per element, logical (n, c, s) order
  double base = 0;             // elements/procedural: an offset added to every element
  double scale = 1;            // elements/procedural: a power of two multiplying every element
  Stress stress;               // stress: the class (generate_x)
  Domain domain = Domain::simple;  // procedural: the main domain
  int mix = 0;                 // procedural: 1 in `mix` elements from `others` (0: none)
  std::vector<Domain> others;  // procedural: the domains mixed in
  int64_t int_range = 0;       // procedural, quantized: uniform integers in [-R, R] instead
  uint64_t seed = 0;           // stress/procedural
};

// What values a property may see.
struct ValueProfile {
  bool specials = false;     // NaN/Inf/-0 in x (and sometimes in gamma, beta, dy)
  bool wide = true;          // whole-range, tiny and subnormal values
  bool stress = true;        // the stress classes of src/stress.cpp
  bool offsets = true;       // a common offset added to explicit elements (cancellation)
  bool quantized = false;    // integers times 2^q: exact shifts and power-of-two scalings
  bool conditioned = false;  // the negative control's judged domain (centered, moderate)
};

struct ShapeOptions {
  int64_t min_N = 1, max_N = 8;
  bool force_G1 = false;   // G = 1 (LayerNorm)
  bool force_GC = false;   // G = C (InstanceNorm)
  int64_t min_G = 1;
  int64_t min_cpg = 1;
  int64_t max_numel = 1536;  // cap of the ordinary shapes
  int64_t max_m = 1 << 30;   // cap of the group size m (the big shapes included)
  bool allow_big = true;     // rarely, groups of thousands of elements
};

struct CaseOptions {
  ShapeOptions shape;
  ValueProfile values;
  std::optional<bool> affine;  // forced on/off, or generated
  // The fused forms that may be drawn (those the impl declares; Ctx::allow_fused): the SiLU
  // epilogue, and per-sample parameters when affine, each half the time.
  bool silu_ok = false;
  bool per_sample_ok = false;
  std::optional<Epilogue> epilogue;     // forced, or (with fused) drawn
  std::optional<AffineMode> affine_mode;  // forced (with affine), or (with fused) drawn
  bool dy = false;             // generate dy (backward)
  bool eps_positive = false;   // eps > 0 (no degenerate groups)
};

struct CaseSpec {
  Problem problem;
  ValueSource x;
  std::vector<double> gamma, beta;  // param_shape() when affine: (C), or (N, C) row by row
  bool has_dy = false;
  ValueSource dy;
  int q = 0;                        // quantized: x values are integers times 2^q

  Case materialize() const;
};
void showValue(const CaseSpec& s, std::ostream& os);

// The case generator, for a fixed dtype and layout.
rc::Gen<CaseSpec> gen_case(DType dtype, Layout layout, const CaseOptions& o);

// Small helpers that shrink the way a counterexample should read.
// Uniform in [lo, hi] whatever RapidCheck's size, shrinking towards lo.
rc::Gen<int64_t> uniform_int(int64_t lo, int64_t hi);
// An index drawn with the given weights, shrinking towards 0.
rc::Gen<int> weighted_index(std::vector<int> weights);
// A permutation of 0..n-1 (perm[i] = where element i goes), shrinking towards the identity.
rc::Gen<std::vector<int64_t>> gen_permutation(int64_t n);

// Logical tensors: value of element (n, c, s) whatever the layout.
Tensor relayout(const Tensor& x, const Problem& from, const Problem& to);

}  // namespace gnv::prop
