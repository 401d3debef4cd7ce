// Strict UTF-8 validation for every string an op carries.
#pragma once

#include <string_view>

namespace ferry {

// True when text is well-formed UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(std::string_view text);

}  // namespace ferry
