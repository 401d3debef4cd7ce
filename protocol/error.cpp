#include "protocol/error.h"

#include <cstdio>
#include <cstdlib>

namespace ferry {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::malformed:
      return "malformed";
    case Errc::bad_signature:
      return "bad_signature";
    case Errc::out_of_order:
      return "out_of_order";
    case Errc::fork:
      return "fork";
    case Errc::unauthorized:
      return "unauthorized";
    case Errc::not_found:
      return "not_found";
    case Errc::busy:
      return "busy";
    case Errc::disk_full:
      return "disk_full";
    case Errc::corrupt:
      return "corrupt";
    case Errc::io:
      return "io";
    case Errc::timeout:
      return "timeout";
    case Errc::limit_exceeded:
      return "limit_exceeded";
  }
  return "unknown";
}

std::string to_string(const Error& error) {
  std::string out(errc_name(error.code));
  if (!error.detail.empty()) {
    out += ": ";
    out += error.detail;
  }
  return out;
}

void assert_failed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "ferry: assertion failed: %s (%s:%d)\n", condition, file, line);
  std::abort();
}

}  // namespace ferry
