#pragma once
// Stress classes: named, seeded, reproducible input distributions. The same (class, seed,
// problem) gives bitwise the same tensors on every machine: the generator uses mt19937_64 and
// its own normal/uniform transforms, never the standard library's unspecified distributions.
#include <cstdint>
#include <string>
#include <vector>

#include "gnv/problem.h"
#include "gnv/tensor.h"

namespace gnv {

enum class StressKind { normal, offset, tiny_var, huge, subnormal, constant, outlier, bimodal, special };

struct Stress {
  StressKind kind = StressKind::normal;
  double param = 0;  // K for offset:K
  std::string name() const;  // "normal", "offset:10000", ...
  // True when the class puts NaN/Inf in x, so the non-finite policy applies.
  bool has_specials() const { return kind == StressKind::special; }
};

// Accepts normal, offset:K (1 <= K <= 1e8), tiny-var, huge, subnormal, constant, outlier,
// bimodal, special; throws std::invalid_argument listing them.
Stress parse_stress(const std::string& s);
// The default list: every class once, offsets 1e1..1e8 by decades.
std::vector<Stress> default_stresses();

// Fills x for the problem (x_shape(), p.dtype). Values are generated per (n, g) group.
Tensor generate_x(const Problem& p, const Stress& s, uint64_t seed);
// gamma ~ N(1, 0.5) with a zero and a negative when C allows, beta ~ N(0, 0.5); dy ~ N(0, 1).
Tensor generate_gamma(const Problem& p, uint64_t seed);
Tensor generate_beta(const Problem& p, uint64_t seed);
Tensor generate_dy(const Problem& p, uint64_t seed);

}  // namespace gnv
