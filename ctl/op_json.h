// Ops as JSON text for ferryctl's output: the export schema (docs/ferryctl.md) and printable JSON.
//
// JSON has no bytes, so a msgpack bin value is written as {"bin": "<lowercase hex>"}; ids, public
// keys, the envelope and the signature are lowercase hex strings. Text output never throws:
// invalid UTF-8 in a string is replaced with U+FFFD when printed (the daemon refuses such ops, so
// it only shows up in a damaged store).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "protocol/error.h"
#include "storage/op_store.h"

namespace ferry::ctl {

// A copy of `value` in which every binary value is {"bin": "<hex>"}.
nlohmann::json printable(const nlohmann::json& value);

// One line of `ferryctl export`: the op's fields, its body as JSON, its place in this node, and
// the exact signed bytes, keys in the documented order. Errc::malformed if the body does not
// convert.
[[nodiscard]] Result<nlohmann::ordered_json> export_record(const storage::StoredOp& stored);

// Compact one-line JSON (JSON Lines), or indented for people when `pretty`.
std::string json_text(const nlohmann::json& value, bool pretty = false);
std::string json_text(const nlohmann::ordered_json& value, bool pretty = false);

}  // namespace ferry::ctl
