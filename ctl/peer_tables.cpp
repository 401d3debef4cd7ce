#include "ctl/peer_tables.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "ctl/commands.h"
#include "protocol/error.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;

constexpr std::size_t gap = 2;  // spaces between columns
constexpr std::size_t peer_name_columns = 12;
constexpr std::size_t direction_columns = 10;  // "downstream"
constexpr std::size_t connected_columns = 4;   // "CONN"
constexpr std::size_t backlog_columns = 7;     // "BACKLOG"
constexpr std::size_t ops_columns = 8;         // "OPS SENT"
constexpr std::size_t detail_indent = peer_name_columns + gap;
static_assert(peer_name_columns + fingerprint_digits + direction_columns + connected_columns +
                      backlog_columns + 2 * ops_columns + 6 * gap <=
                  screen_columns,
              "a peers row with numbers of their column's width fits the screen");
static_assert(detail_indent < screen_columns);

bool starts_code_point(char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }

std::size_t columns_of(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), starts_code_point));
}

// The bytes of the first `count` code points of the text.
std::size_t prefix_bytes(std::string_view text, std::size_t count) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (starts_code_point(text[i]) && seen++ == count) return i;
  }
  return text.size();
}

std::string pad_right(std::string text, std::size_t width) {
  std::size_t used = columns_of(text);
  if (used < width) text.append(width - used, ' ');
  return text;
}

std::string pad_left(const std::string& text, std::size_t width) {
  std::size_t used = columns_of(text);
  return used < width ? std::string(width - used, ' ') + text : text;
}

std::string trim_right(std::string text) {
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// A string field for the terminal; "?" when it is missing or not a string.
std::string text_at(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "?";
  return terminal_text(it->get<std::string>());
}

// A count: a non-negative integer (JSON built in code holds small ones as signed).
std::optional<std::uint64_t> count_of(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  std::int64_t count = it->get<std::int64_t>();
  if (count < 0) return std::nullopt;
  return static_cast<std::uint64_t>(count);
}

std::string count_at(const json& object, const char* key) {
  auto count = count_of(object, key);
  return count ? std::to_string(*count) : "?";
}

// "yes" or "no" for a boolean field, "?" for anything else.
std::string flag_at(const json& object, const char* key, const char* yes = "yes",
                    const char* no = "no") {
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return "?";
  return it->get<bool>() ? yes : no;
}

std::string join_cells(const std::vector<std::string>& cells) {
  std::string line;
  for (const std::string& cell : cells) line += (line.empty() ? "" : std::string(gap, ' ')) + cell;
  return trim_right(std::move(line));
}

std::string peer_row(const std::string& name, const std::string& key, const std::string& direction,
                     const std::string& connected, const std::string& backlog,
                     const std::string& sent, const std::string& received) {
  return join_cells({pad_right(name, peer_name_columns), pad_right(key, fingerprint_digits),
                     pad_right(direction, direction_columns),
                     pad_right(connected, connected_columns), pad_left(backlog, backlog_columns),
                     pad_left(sent, ops_columns), pad_left(received, ops_columns)});
}

std::string last_seen_text(const json& peer, std::uint64_t now_ms) {
  auto last_seen = count_of(peer, "last_seen");
  if (!last_seen) return "last seen ?";
  std::uint64_t seen = *last_seen;
  if (seen == 0) return "last seen never";
  std::string age =
      seen > now_ms ? "ahead of this host's clock" : duration_text(now_ms - seen) + " ago";
  return "last seen " + utc_text_ms(seen) + " (" + age + ")";
}

void add_peer(std::vector<std::string>& lines, const json& peer, std::uint64_t now_ms) {
  std::string name = text_at(peer, "name");
  std::string name_cell = name;
  if (columns_of(name) > peer_name_columns) {
    lines.push_back(name);  // the row below is this peer's
    name_cell.clear();
  }
  lines.push_back(peer_row(name_cell, fingerprint(text_at(peer, "key")),
                           flag_at(peer, "upstream", "upstream", "downstream"),
                           flag_at(peer, "connected"), count_at(peer, "backlog"),
                           count_at(peer, "ops_sent"), count_at(peer, "ops_received")));
  const std::string indent(detail_indent, ' ');
  lines.push_back(indent + last_seen_text(peer, now_ms));
  auto error = peer.find("last_error");
  if (error != peer.end() && error->is_string() && !error->get<std::string>().empty()) {
    std::string text = "last error: " + terminal_text(error->get<std::string>());
    for (const std::string& line : wrap_text(text, screen_columns - detail_indent)) {
      lines.push_back(indent + line);
    }
  }
}

std::vector<std::string> patterns_at(const json& entry, const char* key) {
  std::vector<std::string> out;
  auto it = entry.find(key);
  if (it == entry.end() || !it->is_array()) return {"?"};
  for (const json& p : *it)
    out.push_back(p.is_string() ? terminal_text(p.get<std::string>()) : "?");
  if (out.empty()) out.push_back("-");  // no channels
  return out;
}

struct TrustRow {
  std::string name, role, key, revoked;
  std::vector<std::string> read, write;
};

std::size_t widest(const std::vector<TrustRow>& rows, std::size_t header,
                   const std::function<std::size_t(const TrustRow&)>& width_of) {
  std::size_t out = header;
  for (const TrustRow& row : rows) out = std::max(out, width_of(row));
  return out;
}

std::size_t widest_pattern(const std::vector<std::string>& patterns) {
  std::size_t out = 0;
  for (const std::string& p : patterns) out = std::max(out, columns_of(p));
  return out;
}

}  // namespace

std::string fingerprint(std::string_view key_hex) {
  if (key_hex.empty()) return "?";
  return std::string(key_hex.substr(0, fingerprint_digits));
}

std::string terminal_text(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = '?';
  }
  return out;
}

std::vector<std::string> wrap_text(std::string_view text, std::size_t columns) {
  FERRY_ASSERT(columns >= 1);
  std::vector<std::string> lines;
  std::string line;
  std::size_t line_columns = 0;
  // Bounded: each pass consumes one word and the space after it.
  while (!text.empty()) {
    std::size_t space = text.find(' ');
    std::string_view word = text.substr(0, space);
    text.remove_prefix(space == std::string_view::npos ? text.size() : space + 1);
    if (word.empty()) continue;
    std::size_t word_columns = columns_of(word);
    if (!line.empty() && line_columns + 1 + word_columns <= columns) {
      line += ' ';
      line += word;
      line_columns += 1 + word_columns;
      continue;
    }
    if (!line.empty()) lines.push_back(std::move(line));
    while (word_columns > columns) {  // a word longer than a line is cut
      std::size_t bytes = prefix_bytes(word, columns);
      lines.emplace_back(word.substr(0, bytes));
      word.remove_prefix(bytes);
      word_columns -= columns;
    }
    line = std::string(word);
    line_columns = word_columns;
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

std::vector<std::string> peers_table(const json& peers, std::uint64_t now_ms) {
  if (!peers.is_array() || peers.empty()) {
    return {"no peers: this node has no [[upstream]] and no peer has connected to it"};
  }
  std::vector<std::string> lines = {
      peer_row("NAME", "FINGERPRINT", "DIRECTION", "CONN", "BACKLOG", "OPS SENT", "OPS RECV")};
  for (const json& peer : peers) {
    if (peer.is_object()) add_peer(lines, peer, now_ms);
  }
  return lines;
}

std::vector<std::string> trust_table(const json& list) {
  std::vector<std::string> lines;
  auto authority = list.find("authority");
  if (authority != list.end() && authority->is_string()) {
    lines.push_back("authority  " + terminal_text(authority->get<std::string>()));
  } else {
    lines.push_back("authority  none: this node has no [authority] and does not replicate");
  }
  std::vector<TrustRow> rows;
  auto entries = list.find("trust");
  if (entries != list.end() && entries->is_array()) {
    for (const json& e : *entries) {
      if (!e.is_object()) continue;
      rows.push_back(TrustRow{text_at(e, "name"), text_at(e, "role"),
                              fingerprint(text_at(e, "key")), flag_at(e, "revoked"),
                              patterns_at(e, "read"), patterns_at(e, "write")});
    }
  }
  if (rows.empty()) {
    lines.emplace_back("no trust entries (ferryctl trust add, on the authority, writes them)");
    return lines;
  }
  std::size_t name_w = widest(rows, 4, [](const TrustRow& r) { return columns_of(r.name); });
  std::size_t role_w = widest(rows, 4, [](const TrustRow& r) { return columns_of(r.role); });
  std::size_t read_w = widest(rows, 4, [](const TrustRow& r) { return widest_pattern(r.read); });
  auto row = [&](const std::string& name, const std::string& role, const std::string& key,
                 const std::string& revoked, const std::string& read, const std::string& write) {
    return join_cells({pad_right(name, name_w), pad_right(role, role_w),
                       pad_right(key, fingerprint_digits), pad_right(revoked, 7),
                       pad_right(read, read_w), write});
  };
  lines.push_back(row("NAME", "ROLE", "FINGERPRINT", "REVOKED", "READ", "WRITE"));
  for (const TrustRow& r : rows) {
    std::size_t height = std::max(r.read.size(), r.write.size());
    for (std::size_t i = 0; i < height; ++i) {
      const std::string read = i < r.read.size() ? r.read[i] : "";
      const std::string write = i < r.write.size() ? r.write[i] : "";
      lines.push_back(i == 0 ? row(r.name, r.role, r.key, r.revoked, read, write)
                             : row("", "", "", "", read, write));
    }
  }
  return lines;
}

}  // namespace ferry::ctl
