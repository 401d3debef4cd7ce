// Status reports (docs/monitor.md): the small ops each node with an upstream writes in its own
// channel so that the hub sees every station, also those behind relays. Their body is an ordinary
// {"set": {...}} map, folded into the record (station/<name>, ferry.status) by the merge.
#pragma once

#include <string_view>

namespace ferry {

inline constexpr std::string_view status_kind = "ferry.status";
inline constexpr std::string_view status_key = "ferry.status";

}  // namespace ferry
