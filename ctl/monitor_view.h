// The screen of `ferryctl monitor`: the daemon's monitor reply decoded, and laid out like `top`.
//
// Pure code, no I/O and no clock: decode_monitor_reply() turns the IPC reply of
// {"cmd":"monitor"} (docs/monitor.md; msgpack, already converted to JSON by the client) into a
// MonitorReply, and render_monitor() turns that into lines of text for a terminal of a given
// width. Ages are computed from the reply's own `now_ms`, so that a frame depends on its input
// alone. Decoding ignores keys it does not know, takes a missing key as its "none" value (0, "",
// false, null), so that an older daemon still shows, and refuses a value of the wrong type with
// Errc::malformed and a detail naming it. Rendering never fails: every line it returns takes at
// most `width` terminal columns (East Asian wide characters count 2), text from other nodes is
// cut on code point boundaries, and control characters and invalid UTF-8 in it are shown as '?',
// so that no node can drive the admin's terminal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace ferry::ctl {

inline constexpr std::size_t monitor_width_default = 80;

// The fields of /api/status the monitor shows.
struct MonitorStatus {
  std::uint64_t now_ms = 0;  // the daemon's wall clock: every age is computed from it
  std::string name;
  std::string role;
  std::uint64_t ops = 0;
  std::uint64_t feeds = 0;
  std::uint64_t open_conflicts = 0;
  std::uint64_t submit_queue = 0;
  std::uint64_t uptime_ms = 0;
  std::optional<std::uint64_t> disk_free_bytes;  // null when missing
  std::optional<bool> store_writable;            // null when missing
};

// One entry of /api/peers.
struct MonitorPeer {
  std::string name;
  bool upstream = false;
  bool online = false;
  std::uint64_t last_seen_ms = 0;  // 0: never
  std::uint64_t backlog_out = 0;
  std::uint64_t backlog_in = 0;
  std::string last_error;
};

// One entry of /api/stations.
struct MonitorStation {
  std::string name;
  bool online = false;
  bool silent = false;
  std::string via;                            // "": connected to this node directly
  std::uint64_t last_seen_ms = 0;             // 0: never
  std::optional<std::uint64_t> backlog_up;    // null: no status report from it yet
  std::optional<std::uint64_t> backlog_down;  // the same
  std::uint64_t oldest_unsent_ms = 0;         // 0: nothing unsent
  std::optional<double> rate_now;             // ops/s of the current bucket; null: no rate
  std::uint64_t rejected = 0;                 // all reasons together
  std::uint64_t open_conflicts = 0;
};

struct MonitorReply {
  MonitorStatus status;
  std::vector<MonitorPeer> peers;
  std::vector<MonitorStation> stations;
};

// The reply {"ok": true, "status": S, "peers": [P...], "stations": [T...]}. `status` with its
// `now_ms`, `peers`, `stations` and every entry's `name` are required.
[[nodiscard]] Result<MonitorReply> decode_monitor_reply(const nlohmann::json& reply);

// The frame: a header line (node, role, ops, open conflicts, the daemon's time), a summary line,
// then the STATIONS and PEERS tables. `reply` is the latest reply decoded (none yet: the frame
// shows the problem alone); `problem`, when not empty, is shown below the header, wrapped on up
// to 4 lines, for a fetch that failed while older figures are still shown.
std::vector<std::string> render_monitor(const std::optional<MonitorReply>& reply,
                                        std::string_view problem,
                                        std::size_t width = monitor_width_default);

// The frame cut to a terminal of `rows` lines: when it is taller, its first rows - 1 lines and
// one saying how many more there are. rows 0 (unknown) leaves it whole.
std::vector<std::string> fit_rows(std::vector<std::string> lines, std::size_t rows,
                                  std::size_t width = monitor_width_default);

// How long ago `then_ms` was at `now_ms`, in the largest whole unit, in at most 5 characters:
// "12s", "3m", "2h", "5d", after 999 days "2y"; "never" for 0, "0s" for a time ahead of now_ms.
std::string age_text(std::uint64_t now_ms, std::uint64_t then_ms);

// A count in at most 5 characters: 99999 as it is, then "100k", "1.2M", "18E".
std::string compact_count(std::uint64_t count);

// The terminal columns the text takes once made safe as described above.
std::size_t display_columns(std::string_view utf8);

// The text made safe, and cut to at most `columns` terminal columns; a cut text ends with '+'.
std::string fit_columns(std::string_view utf8, std::size_t columns);

}  // namespace ferry::ctl
