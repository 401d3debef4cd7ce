#include "ctl/op_json.h"

#include "ctl/msgpack_json.h"
#include "protocol/hex.h"
#include "protocol/limits.h"

namespace ferry::ctl {

using nlohmann::json;

json printable(const json& value) {
  switch (value.type()) {
    case json::value_t::binary: {
      const std::vector<std::uint8_t>& bytes = value.get_binary();
      return json{{"bin", to_hex(bytes)}};
    }
    case json::value_t::object: {
      json out = json::object();
      for (const auto& [key, item] : value.items()) out[key] = printable(item);
      return out;
    }
    case json::value_t::array: {
      json out = json::array();
      for (const json& item : value) out.push_back(printable(item));
      return out;
    }
    default:
      return value;
  }
}

Result<nlohmann::ordered_json> export_record(const storage::StoredOp& stored) {
  const Op& op = stored.signed_op.op;
  const OpHeader& h = op.header();
  client::MsgpackLimits limits;
  limits.depth_max = limits::body_depth_max;
  limits.container_items_max = limits::body_container_items_max;
  limits.string_bytes_max = limits::op_bytes_max;
  auto body = client::json_from_msgpack(op.body(), limits);
  if (!body) {
    Error error = body.error();
    error.detail = "the body of op " + to_hex(op.id()) + ": " + error.detail;
    return tl::unexpected(std::move(error));
  }
  json deps = json::array();
  for (const OpId& dep : h.deps) deps.push_back(to_hex(dep));
  return nlohmann::ordered_json{{"id", to_hex(op.id())},
                                {"origin", to_hex(h.origin)},
                                {"channel", h.channel},
                                {"seq", h.seq},
                                {"prev", to_hex(h.prev)},
                                {"hlc", h.hlc},
                                {"kind", h.kind},
                                {"key", h.key},
                                {"deps", std::move(deps)},
                                {"author", h.author ? json(*h.author) : json(nullptr)},
                                {"body", nlohmann::ordered_json(printable(*body))},
                                {"arrival", stored.arrival},
                                {"stored_at", stored.stored_at_ms},
                                {"envelope", to_hex(op.bytes())},
                                {"signature", to_hex(stored.signed_op.signature)}};
}

std::string json_text(const json& value, bool pretty) {
  return value.dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace);
}

std::string json_text(const nlohmann::ordered_json& value, bool pretty) {
  return value.dump(pretty ? 2 : -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace ferry::ctl
