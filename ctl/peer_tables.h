// The tables of `ferryctl peers` and `ferryctl trust list`, laid out for an 80-column terminal.
//
// Pure text: each function takes the daemon's reply as decoded JSON (docs/ipc.md) and returns
// the lines to print, never throwing on a reply that lacks a field or holds the wrong type (it
// shows "?" instead). Text that came from other nodes (names, error messages) is printed with
// control characters replaced, so that a peer cannot drive the admin's terminal. The current
// time is passed in, so that ages are testable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::ctl {

inline constexpr std::size_t screen_columns = 80;
// A public key is shown by its first 16 hex digits: 64 bits, enough to tell nodes apart by eye.
inline constexpr std::size_t fingerprint_digits = 16;

// The first fingerprint_digits of a hex key ("?" for an empty one).
std::string fingerprint(std::string_view key_hex);

// The text with every control character (C0, DEL) replaced by '?'.
std::string terminal_text(std::string_view text);

// Splits the text into lines of at most `columns` characters (UTF-8 code points), breaking at
// spaces where it can and inside a word longer than a line. columns must be at least 1.
std::vector<std::string> wrap_text(std::string_view text, std::size_t columns);

// The `peers` array as a table: one row per peer (name, fingerprint, direction, connected,
// backlog, ops sent and received), then, indented under it, when it was last seen (UTC, and how
// long before now_ms) and its last error, wrapped. A name too long for its column gets a line of
// its own above the row. An empty array gives one line saying there are no peers.
std::vector<std::string> peers_table(const nlohmann::json& peers, std::uint64_t now_ms);

// The reply of `trust_list` ({authority, trust}) as the authority's key, then a table of the
// entries in the order given: name, role, fingerprint, revoked, then the read and write patterns,
// one per line.
std::vector<std::string> trust_table(const nlohmann::json& list);

}  // namespace ferry::ctl
