#pragma once
// The named properties of the suite (docs/properties.md "Property suite"). Each is defined once, here, and run
// by the gtest fan-out (every registered impl x dtype x layout) and by the mutant runner.
#include <string_view>
#include <vector>

#include "harness.h"

namespace gnv::prop {

// In the order of issue 3 (1 = ForwardMatchesOracle ... 15 = SpecialValues).
const std::vector<PropertyDef>& all_properties();
const PropertyDef& property(std::string_view name);

}  // namespace gnv::prop
