#pragma once
// Planted mutants: deliberately wrong GroupNorm kernels the property suite must kill. Test builds
// only (the gnv_mutants executable); never in the global registry, so no command, suite or sweep
// ever sees them. Each reuses the shared CPU driver (impls/kernel_common.h): a broken reduction
// policy, or the correct driver fed a broken step (a wrong gather, a wrong index, a dropped
// factor) around it.
#include <memory>
#include <vector>

#include "gnv/impl.h"

namespace gnv::mutants {

struct Mutant {
  std::unique_ptr<Impl> impl;
  const char* bug;  // what is wrong, in words
};

// Every mutant, in a fixed order; names start with "mut-".
const std::vector<Mutant>& all();

}  // namespace gnv::mutants
