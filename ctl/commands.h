// ferryctl's commands: parsing the command line (CLI11) and running one command.
//
// Online commands (status, submit, op, track, log, pull, get, conflicts, peers, sync, trust,
// monitor) talk to ferryd through ferry_client; offline ones (init, id, verify, export, rebuild)
// read files only, never through the daemon. verify and export open the store read only; rebuild
// opens it for writing, holding the data directory's lock, so it refuses to run beside ferryd.
// Results go to stdout, errors to stderr as one line starting with "ferryctl: ". docs/ferryctl.md
// describes every command. Nothing here throws to the caller of run().
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace ferry::ctl {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

// The config file used when neither --config nor FERRY_CONFIG names one.
inline constexpr const char* default_config_path = "/etc/ferry/ferry.toml";

// Runs ferryctl; returns the process exit code: 0 ok, 1 failure, 2 usage error.
int run(int argc, const char* const* argv);

// The body of `submit --set field=value ...`: each value is a JSON number, true, false or null
// when it parses as one, and a string otherwise. Errc::malformed for a missing `=`, an empty
// field or a field given twice.
[[nodiscard]] Result<nlohmann::json> body_from_sets(const std::vector<std::string>& sets);

// The body of `submit --body JSON`: must be a JSON object.
[[nodiscard]] Result<nlohmann::json> body_from_text(std::string_view text);

// An hlc (or a millisecond time) as UTC ISO 8601 with milliseconds: 2026-09-20T10:11:12.345Z.
std::string utc_text_ms(std::uint64_t ms);

// A duration in whole seconds, largest unit first: "2d 3h 4m 5s", "4m 0s", "7s".
std::string duration_text(std::uint64_t ms);

}  // namespace ferry::ctl
