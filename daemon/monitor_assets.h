// The dashboard's files (daemon/monitor_assets/), compiled into the daemon by
// cmake/embed_assets.cmake: hubs and islands may have no internet, so nothing comes from a CDN.
#pragma once

#include <string_view>
#include <vector>

namespace ferry::daemon {

struct Asset {
  std::string_view path;  // the URL path: "/", "/dashboard.js"...
  std::string_view text;
};

const std::vector<Asset>& embedded_assets();

}  // namespace ferry::daemon
