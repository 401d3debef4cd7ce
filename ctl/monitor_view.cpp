#include "ctl/monitor_view.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "ctl/commands.h"
#include "ctl/peer_tables.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;

// ---- terminal text ----------------------------------------------------------------------------

// The code point at the start of `text` and its length in bytes; length 0 when the bytes there
// are not well-formed UTF-8 (overlong forms, surrogates and values past U+10FFFF included).
std::pair<char32_t, std::size_t> next_code_point(std::string_view text) {
  auto lead = static_cast<unsigned char>(text[0]);
  if (lead < 0x80) return {lead, 1};
  std::size_t length = 0;
  char32_t least = 0;
  char32_t point = 0;
  if ((lead & 0xe0) == 0xc0) {
    length = 2, least = 0x80, point = lead & 0x1fu;
  } else if ((lead & 0xf0) == 0xe0) {
    length = 3, least = 0x800, point = lead & 0x0fu;
  } else if ((lead & 0xf8) == 0xf0) {
    length = 4, least = 0x10000, point = lead & 0x07u;
  } else {
    return {0, 0};
  }
  if (text.size() < length) return {0, 0};
  for (std::size_t i = 1; i < length; ++i) {
    auto next = static_cast<unsigned char>(text[i]);
    if ((next & 0xc0) != 0x80) return {0, 0};
    point = (point << 6) | (next & 0x3fu);
  }
  if (point < least || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) return {0, 0};
  return {point, length};
}

// C0, DEL and C1 controls, and the bidirectional overrides that could reorder a row.
bool is_control(char32_t c) {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
         (c >= 0x2066 && c <= 0x2069);
}

// East Asian Wide and Fullwidth characters (Unicode 15, in blocks): they take two columns.
// Everything else counts one, which is never less than a terminal gives it, except for these.
bool is_wide(char32_t c) {
  static constexpr std::pair<char32_t, char32_t> wide[] = {
      {0x1100, 0x115f},   {0x231a, 0x231b},   {0x2329, 0x232a},   {0x23e9, 0x23ec},
      {0x23f0, 0x23f0},   {0x23f3, 0x23f3},   {0x25fd, 0x25fe},   {0x2614, 0x2615},
      {0x2648, 0x2653},   {0x267f, 0x267f},   {0x2693, 0x2693},   {0x26a1, 0x26a1},
      {0x26aa, 0x26ab},   {0x26bd, 0x26be},   {0x26c4, 0x26c5},   {0x26ce, 0x26ce},
      {0x26d4, 0x26d4},   {0x26ea, 0x26ea},   {0x26f2, 0x26f5},   {0x26fa, 0x26fd},
      {0x2705, 0x2705},   {0x270a, 0x270b},   {0x2728, 0x2728},   {0x274c, 0x274c},
      {0x274e, 0x274e},   {0x2753, 0x2755},   {0x2757, 0x2757},   {0x2795, 0x2797},
      {0x27b0, 0x27b0},   {0x27bf, 0x27bf},   {0x2b1b, 0x2b1c},   {0x2b50, 0x2b50},
      {0x2b55, 0x2b55},   {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},
      {0x4e00, 0x9fff},   {0xa000, 0xa4cf},   {0xa960, 0xa97f},   {0xac00, 0xd7a3},
      {0xf900, 0xfaff},   {0xfe10, 0xfe19},   {0xfe30, 0xfe6f},   {0xff00, 0xff60},
      {0xffe0, 0xffe6},   {0x16fe0, 0x16fe4}, {0x17000, 0x18cff}, {0x1b000, 0x1b2ff},
      {0x1f004, 0x1f004}, {0x1f0cf, 0x1f0cf}, {0x1f18e, 0x1f18e}, {0x1f191, 0x1f19a},
      {0x1f200, 0x1f251}, {0x1f300, 0x1f64f}, {0x1f680, 0x1f6ff}, {0x1f7e0, 0x1f7eb},
      {0x1f90c, 0x1f9ff}, {0x1fa70, 0x1faff}, {0x20000, 0x2fffd}, {0x30000, 0x3fffd}};
  return std::any_of(std::begin(wide), std::end(wide),
                     [c](const auto& range) { return c >= range.first && c <= range.second; });
}

// One character as it goes to the terminal: its bytes ("?" for a control or a malformed byte)
// and its columns.
struct Glyph {
  std::string_view bytes;
  std::size_t columns = 1;
  std::size_t consumed = 1;  // bytes of the input it stands for
};

Glyph next_glyph(std::string_view text) {
  auto [point, length] = next_code_point(text);
  if (length == 0 || is_control(point)) return Glyph{"?", 1, std::max<std::size_t>(length, 1)};
  return Glyph{text.substr(0, length), is_wide(point) ? 2u : 1u, length};
}

// The text made safe, its first glyphs up to `columns` columns; `cut` says whether any was left.
std::string take_columns(std::string_view text, std::size_t columns, bool& cut) {
  std::string out;
  std::size_t used = 0;
  cut = false;
  while (!text.empty()) {  // bounded: each pass consumes at least one byte
    Glyph glyph = next_glyph(text);
    if (used + glyph.columns > columns) {
      cut = true;
      break;
    }
    out += glyph.bytes;
    used += glyph.columns;
    text.remove_prefix(glyph.consumed);
  }
  return out;
}

std::string pad_right(std::string_view text, std::size_t width) {
  std::string out = fit_columns(text, width);
  out.append(width - display_columns(out), ' ');
  return out;
}

std::string pad_left(std::string_view text, std::size_t width) {
  std::string out = fit_columns(text, width);
  return std::string(width - display_columns(out), ' ') + out;
}

// The cells joined by one space, cut to the width, without trailing spaces.
std::string row_text(const std::vector<std::string>& cells, std::size_t width) {
  std::string line;
  for (const std::string& cell : cells) line += (line.empty() ? "" : " ") + cell;
  line = fit_columns(line, width);
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

// ---- decoding ---------------------------------------------------------------------------------

std::string describe(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number_integer() && !value.is_number_unsigned() && value.get<std::int64_t>() < 0) {
    return "a negative number";
  }
  if (value.is_number_float()) return "a fraction";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "a map";
  return "binary";
}

std::optional<std::uint64_t> as_count(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::uint64_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

// Reads the fields of one map of the reply. The first value of the wrong type is kept as the
// error; reads after it return their defaults, and the caller looks at `error` once at the end.
class FieldReader {
 public:
  FieldReader(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  std::optional<Error> error;

  const json* find(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  void wrong(const char* key, const json& value, const char* expected) {
    if (error) return;
    error = Error{Errc::malformed, "monitor reply: " + path_ + "." + key + " is " +
                                       describe(value) + ", not " + expected};
  }

  void missing(const char* key, const char* expected) {
    if (error) return;
    error =
        Error{Errc::malformed, "monitor reply: " + path_ + " lacks " + expected + " `" + key + "`"};
  }

  std::optional<std::uint64_t> nullable_count(const char* key) {
    const json* value = find(key);
    if (value == nullptr || value->is_null()) return std::nullopt;
    auto count = as_count(*value);
    if (!count) wrong(key, *value, "a count or null");
    return count;
  }

  std::uint64_t count(const char* key) {
    const json* value = find(key);
    if (value == nullptr) return 0;
    auto count = as_count(*value);
    if (!count) wrong(key, *value, "a count");
    return count.value_or(0);
  }

  std::optional<bool> nullable_flag(const char* key) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_boolean()) {
      wrong(key, *value, "true or false");
      return std::nullopt;
    }
    return value->get<bool>();
  }

  bool flag(const char* key) { return nullable_flag(key).value_or(false); }

  std::string text(const char* key) {
    const json* value = find(key);
    if (value == nullptr) return {};
    if (!value->is_string()) {
      wrong(key, *value, "a string");
      return {};
    }
    return value->get<std::string>();
  }

  std::string required_text(const char* key) {
    if (find(key) == nullptr) missing(key, "its string");
    return text(key);
  }

  // A map of reason -> count (`rejected`), summed, saturating.
  std::uint64_t count_total(const char* key) {
    const json* value = find(key);
    if (value == nullptr) return 0;
    if (!value->is_object()) {
      wrong(key, *value, "a map of counts");
      return 0;
    }
    std::uint64_t total = 0;
    for (const auto& [reason, count] : value->items()) {
      auto n = as_count(count);
      if (!n) {
        wrong(key, count, "a map of counts");
        return 0;
      }
      total = *n > std::numeric_limits<std::uint64_t>::max() - total
                  ? std::numeric_limits<std::uint64_t>::max()
                  : total + *n;
    }
    return total;
  }

  // The last entry of a `rate` array (the current bucket); null for an empty or missing one.
  std::optional<double> last_rate(const char* key) {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_array()) {
      wrong(key, *value, "an array of rates");
      return std::nullopt;
    }
    for (const json& rate : *value) {
      if (!rate.is_number() || !std::isfinite(rate.get<double>()) || rate.get<double>() < 0) {
        wrong(key, rate, "an array of rates");
        return std::nullopt;
      }
    }
    if (value->empty()) return std::nullopt;
    return value->back().get<double>();
  }

 private:
  const json& object_;
  std::string path_;
};

Result<MonitorStatus> decode_status(const json& status) {
  FieldReader in(status, "status");
  MonitorStatus s;
  if (in.find("now_ms") == nullptr) in.missing("now_ms", "its count");
  s.now_ms = in.count("now_ms");
  if (const json* node = in.find("node"); node != nullptr && !node->is_object()) {
    in.wrong("node", *node, "a map");
  } else if (node != nullptr) {
    FieldReader node_in(*node, "status.node");
    s.name = node_in.text("name");
    s.role = node_in.text("role");
    if (node_in.error) return tl::unexpected(*node_in.error);
  }
  s.ops = in.count("ops");
  s.feeds = in.count("feeds");
  s.open_conflicts = in.count("open_conflicts");
  s.submit_queue = in.count("submit_queue");
  s.uptime_ms = in.count("uptime_ms");
  s.disk_free_bytes = in.nullable_count("disk_free_bytes");
  s.store_writable = in.nullable_flag("store_writable");
  if (in.error) return tl::unexpected(*in.error);
  return s;
}

Result<MonitorPeer> decode_peer(const json& peer, const std::string& path) {
  FieldReader in(peer, path);
  MonitorPeer p;
  p.name = in.required_text("name");
  p.upstream = in.flag("upstream");
  p.online = in.flag("online");
  p.last_seen_ms = in.count("last_seen_ms");
  p.backlog_out = in.count("backlog_out");
  p.backlog_in = in.count("backlog_in");
  p.last_error = in.text("last_error");
  if (in.error) return tl::unexpected(*in.error);
  return p;
}

Result<MonitorStation> decode_station(const json& station, const std::string& path) {
  FieldReader in(station, path);
  MonitorStation t;
  t.name = in.required_text("name");
  t.online = in.flag("online");
  t.silent = in.flag("silent");
  t.via = in.text("via");
  t.last_seen_ms = in.count("last_seen_ms");
  t.backlog_up = in.nullable_count("backlog_up");
  t.backlog_down = in.nullable_count("backlog_down");
  t.oldest_unsent_ms = in.count("oldest_unsent_ms");
  t.rate_now = in.last_rate("rate");
  t.rejected = in.count_total("rejected");
  t.open_conflicts = in.count("open_conflicts");
  if (in.error) return tl::unexpected(*in.error);
  return t;
}

// The reply's array `key`, each entry a map decoded by `decode`.
template <class Entry, class Decode>
Result<std::vector<Entry>> decode_entries(const json& reply, const char* key, Decode decode) {
  auto it = reply.find(key);
  if (it == reply.end() || !it->is_array()) {
    return fail(Errc::malformed, std::string("monitor reply: `") + key + "` is " +
                                     (it == reply.end() ? "missing" : describe(*it)) +
                                     ", not an array");
  }
  std::vector<Entry> entries;
  entries.reserve(it->size());
  for (std::size_t i = 0; i < it->size(); ++i) {
    std::string path = std::string(key) + "[" + std::to_string(i) + "]";
    const json& entry = (*it)[i];
    if (!entry.is_object()) {
      return fail(Errc::malformed,
                  "monitor reply: " + path + " is " + describe(entry) + ", not a map");
    }
    auto decoded = decode(entry, path);
    if (!decoded) return tl::unexpected(decoded.error());
    entries.push_back(std::move(*decoded));
  }
  return entries;
}

// ---- rendering --------------------------------------------------------------------------------

constexpr std::size_t state_columns = 7;  // "offline"
constexpr std::size_t age_columns = 5;    // "never"
constexpr std::size_t count_columns = 6;  // compact_count takes at most 5
constexpr std::size_t small_columns = 5;  // "CONFL"
constexpr std::size_t name_columns_min = 4;
constexpr std::size_t via_columns_min = 3;
constexpr std::size_t direction_columns = 4;      // "down"
constexpr std::size_t online_columns = 6;         // "ONLINE"
constexpr std::size_t error_header_columns = 10;  // "LAST ERROR"
constexpr std::size_t problem_lines_max = 4;
// The fixed columns of a station row, and the spaces between its 10 cells.
constexpr std::size_t station_fixed_columns =
    state_columns + age_columns + 3 * count_columns + count_columns + 2 * small_columns + 9;
constexpr std::size_t peer_fixed_columns =
    direction_columns + online_columns + age_columns + 2 * count_columns + 6;
static_assert(station_fixed_columns + 12 + 8 <= monitor_width_default,
              "at 80 columns a station row has room for a 12-column name and an 8-column via");
static_assert(peer_fixed_columns + 16 + 20 <= monitor_width_default,
              "at 80 columns a peer row has room for a name and an error");

std::string rate_text(const std::optional<double>& rate) {
  if (!rate) return "-";
  if (*rate == 0) return "0";
  if (*rate < 10) {
    auto tenths = static_cast<std::uint64_t>(std::llround(*rate * 10));
    return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10);
  }
  return compact_count(static_cast<std::uint64_t>(std::llround(std::min(*rate, 1e18))));
}

std::string nullable_count_text(const std::optional<std::uint64_t>& count) {
  return count ? compact_count(*count) : "-";
}

std::string station_state(const MonitorStation& t) {
  if (t.online) return "online";
  return t.silent ? "SILENT" : "offline";
}

// A text column: the columns its widest entry needs, and the least it gets.
struct TextColumn {
  std::size_t wants = 0;
  std::size_t least = 0;
};

// The widths of two text columns that share `room`: each gets what it wants when both fit, else
// the second at most 2/5 of the room. Each gets at least its least, even beyond the room.
std::pair<std::size_t, std::size_t> share_columns(TextColumn first, TextColumn second,
                                                  std::size_t room) {
  std::size_t second_w = std::min(second.wants, std::max(second.least, room * 2 / 5));
  std::size_t first_w =
      std::max(first.least, std::min(first.wants, room - std::min(room, second_w)));
  second_w = std::max(second.least, std::min(second.wants, room - std::min(room, first_w)));
  return {first_w, second_w};
}

// The problem of a failed fetch, wrapped: it names the endpoint and the reason, which do not
// fit one line. A longer one is cut at the end of its last line.
void add_problem(std::vector<std::string>& lines, std::string_view problem, std::size_t width) {
  std::vector<std::string> wrapped = wrap_text(problem, std::max<std::size_t>(width, 1));
  for (std::size_t i = 0; i < wrapped.size() && i < problem_lines_max; ++i) {
    bool last = i + 1 == problem_lines_max && i + 1 < wrapped.size();
    lines.push_back(fit_columns(last ? wrapped[i] + " " + wrapped[i + 1] : wrapped[i], width));
  }
}

void add_header(std::vector<std::string>& lines, const MonitorStatus& s, std::size_t width) {
  std::string time = utc_text_ms(s.now_ms);  // 2026-09-21T14:13:20.123Z
  time = time.size() >= 19 ? time.substr(0, 10) + " " + time.substr(11, 8) + "Z" : time;
  std::string left = "ferry " + (s.name.empty() ? "?" : s.name) + " (" +
                     (s.role.empty() ? "?" : s.role) + ")  ops " + compact_count(s.ops) +
                     "  open conflicts " + std::to_string(s.open_conflicts);
  std::size_t used = display_columns(left) + 2 + time.size();
  std::string gap = used < width ? std::string(width - used + 2, ' ') : "  ";
  lines.push_back(fit_columns(fit_columns(left, width) + gap + time, width));
  std::string summary = "up " + duration_text(s.uptime_ms) + "  feeds " + compact_count(s.feeds) +
                        "  submit queue " + compact_count(s.submit_queue) + "  disk free " +
                        (s.disk_free_bytes ? compact_count(*s.disk_free_bytes) + "B" : "?");
  if (s.store_writable.has_value() && !*s.store_writable) summary += "  STORE NOT WRITABLE";
  lines.push_back(fit_columns(summary, width));
}

void add_stations(std::vector<std::string>& lines, const MonitorReply& r, std::size_t width) {
  const auto& stations = r.stations;
  std::size_t online = 0, silent = 0, name_wants = 0, via_wants = 0;
  for (const MonitorStation& t : stations) {
    online += t.online ? 1 : 0;
    silent += !t.online && t.silent ? 1 : 0;
    name_wants = std::max(name_wants, display_columns(t.name));
    via_wants = std::max(via_wants, display_columns(t.via));
  }
  lines.push_back(fit_columns("STATIONS  " + std::to_string(stations.size()) + ", " +
                                  std::to_string(online) + " online, " + std::to_string(silent) +
                                  " silent",
                              width));
  if (stations.empty()) {
    lines.push_back(fit_columns("  none enrolled in this node's trust view", width));
    return;
  }
  std::size_t room = width > station_fixed_columns ? width - station_fixed_columns : 0;
  auto [name_w, via_w] =
      share_columns({std::max(name_wants, name_columns_min), name_columns_min},
                    {std::max(via_wants, via_columns_min), via_columns_min}, room);
  auto row = [&, name_w = name_w, via_w = via_w](
                 std::string_view name, std::string_view state, std::string_view via,
                 std::string_view seen, std::string_view up, std::string_view down,
                 std::string_view oldest, std::string_view rate, std::string_view rejected,
                 std::string_view conflicts) {
    return row_text(
        {pad_right(name, name_w), pad_right(state, state_columns), pad_right(via, via_w),
         pad_left(seen, age_columns), pad_left(up, count_columns), pad_left(down, count_columns),
         pad_left(oldest, count_columns), pad_left(rate, count_columns),
         pad_left(rejected, small_columns), pad_left(conflicts, small_columns)},
        width);
  };
  lines.push_back(
      row("NAME", "STATE", "VIA", "SEEN", "UP", "DOWN", "OLDEST", "OPS/S", "REJ", "CONFL"));
  for (const MonitorStation& t : stations) {
    std::uint64_t now = r.status.now_ms;
    lines.push_back(
        row(t.name, station_state(t), t.via.empty() ? "-" : t.via, age_text(now, t.last_seen_ms),
            nullable_count_text(t.backlog_up), nullable_count_text(t.backlog_down),
            t.oldest_unsent_ms == 0 ? "-" : age_text(now, t.oldest_unsent_ms),
            rate_text(t.rate_now), compact_count(t.rejected), compact_count(t.open_conflicts)));
  }
}

void add_peers(std::vector<std::string>& lines, const MonitorReply& r, std::size_t width) {
  std::size_t online = 0, name_wants = 0, error_wants = 0;
  for (const MonitorPeer& p : r.peers) {
    online += p.online ? 1 : 0;
    name_wants = std::max(name_wants, display_columns(p.name));
    error_wants = std::max(error_wants, display_columns(p.last_error));
  }
  lines.push_back(fit_columns(
      "PEERS  " + std::to_string(r.peers.size()) + ", " + std::to_string(online) + " online",
      width));
  if (r.peers.empty()) {
    lines.push_back(fit_columns("  none: no [[upstream]], and no peer has connected", width));
    return;
  }
  std::size_t room = width > peer_fixed_columns ? width - peer_fixed_columns : 0;
  auto [name_w, error_w] = share_columns({std::max(name_wants, name_columns_min), name_columns_min},
                                         {std::max(error_wants, error_header_columns), 0}, room);
  auto row = [&, name_w = name_w, error_w = error_w](
                 std::string_view name, std::string_view direction, std::string_view is_online,
                 std::string_view seen, std::string_view out, std::string_view in,
                 std::string_view error) {
    return row_text(
        {pad_right(name, name_w), pad_right(direction, direction_columns),
         pad_right(is_online, online_columns), pad_left(seen, age_columns),
         pad_left(out, count_columns), pad_left(in, count_columns), fit_columns(error, error_w)},
        width);
  };
  lines.push_back(row("NAME", "DIR", "ONLINE", "SEEN", "OUT", "IN", "LAST ERROR"));
  for (const MonitorPeer& p : r.peers) {
    lines.push_back(row(p.name, p.upstream ? "up" : "down", p.online ? "yes" : "no",
                        age_text(r.status.now_ms, p.last_seen_ms), compact_count(p.backlog_out),
                        compact_count(p.backlog_in), p.last_error));
  }
}

}  // namespace

Result<MonitorReply> decode_monitor_reply(const json& reply) {
  if (!reply.is_object()) {
    return fail(Errc::malformed, "monitor reply: the reply is " + describe(reply) + ", not a map");
  }
  auto status = reply.find("status");
  if (status == reply.end() || !status->is_object()) {
    return fail(Errc::malformed, "monitor reply: `status` is " +
                                     (status == reply.end() ? "missing" : describe(*status)) +
                                     ", not a map");
  }
  auto decoded_status = decode_status(*status);
  if (!decoded_status) return tl::unexpected(decoded_status.error());
  auto peers = decode_entries<MonitorPeer>(reply, "peers", decode_peer);
  if (!peers) return tl::unexpected(peers.error());
  auto stations = decode_entries<MonitorStation>(reply, "stations", decode_station);
  if (!stations) return tl::unexpected(stations.error());
  return MonitorReply{std::move(*decoded_status), std::move(*peers), std::move(*stations)};
}

std::vector<std::string> render_monitor(const std::optional<MonitorReply>& reply,
                                        std::string_view problem, std::size_t width) {
  std::vector<std::string> lines;
  if (!reply) {
    lines.push_back(fit_columns("ferry monitor", width));
    add_problem(lines, problem, width);
    return lines;
  }
  add_header(lines, reply->status, width);
  add_problem(lines, problem, width);
  lines.emplace_back();
  add_stations(lines, *reply, width);
  lines.emplace_back();
  add_peers(lines, *reply, width);
  return lines;
}

std::vector<std::string> fit_rows(std::vector<std::string> lines, std::size_t rows,
                                  std::size_t width) {
  if (rows == 0 || lines.size() <= rows) return lines;
  std::size_t hidden = lines.size() - (rows - 1);
  lines.resize(rows - 1);
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
  // "(" + std::to_string(...) and fails a -Werror Release build.
  std::string note = "(";
  note += std::to_string(hidden);
  note += " more lines: make the terminal taller)";
  lines.push_back(fit_columns(note, width));
  return lines;
}

std::string age_text(std::uint64_t now_ms, std::uint64_t then_ms) {
  if (then_ms == 0) return "never";
  std::uint64_t s = then_ms >= now_ms ? 0 : (now_ms - then_ms) / 1000;
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m";
  if (s < 86400) return std::to_string(s / 3600) + "h";
  std::uint64_t days = s / 86400;
  if (days < 1000) return std::to_string(days) + "d";
  return days / 365 < 1000 ? std::to_string(days / 365) + "y" : ">999y";
}

std::string compact_count(std::uint64_t count) {
  if (count < 100'000) return std::to_string(count);
  static constexpr const char* units[] = {"k", "M", "G", "T", "P", "E"};
  std::uint64_t unit = 1000;
  std::size_t index = 0;
  while (count / unit >= 1000) {  // bounded: at most 5 passes for 64 bits
    unit *= 1000;
    ++index;
  }
  std::uint64_t whole = count / unit;
  if (whole >= 10) return std::to_string(whole) + units[index];
  return std::to_string(whole) + "." + std::to_string(count % unit / (unit / 10)) + units[index];
}

std::size_t display_columns(std::string_view utf8) {
  std::size_t columns = 0;
  while (!utf8.empty()) {  // bounded: each pass consumes at least one byte
    Glyph glyph = next_glyph(utf8);
    columns += glyph.columns;
    utf8.remove_prefix(glyph.consumed);
  }
  return columns;
}

std::string fit_columns(std::string_view utf8, std::size_t columns) {
  bool cut = false;
  std::string whole = take_columns(utf8, columns, cut);
  if (!cut) return whole;
  if (columns == 0) return {};
  std::string out = take_columns(utf8, columns - 1, cut);
  return out + "+";
}

}  // namespace ferry::ctl
