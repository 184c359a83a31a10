#pragma once
// Reading TOML (grid and waiver files) with toml++ safely: reports/grid.cpp. Internal to reports/.
#include <string>
#include <string_view>

#define TOML_EXCEPTIONS 1
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

namespace gnv::report {

// Parses TOML text gnv did not write: refuses first what toml++ 3.3.0 cannot read safely
// (non-ASCII outside comments and single-line or literal strings), then parses. Throws GridError
// ("SOURCE:LINE: what").
toml::table read_toml(std::string_view text, const std::string& source);

}  // namespace gnv::report
