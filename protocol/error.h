// Error values for expected failures, and FERRY_ASSERT for our own invariants.
//
// Expected failures (malformed input, a bad signature, a busy or full disk) are returned as
// Result<T>; callers branch on Error::code and never on the detail text. FERRY_ASSERT stays on in
// release builds and aborts: it guards invariants of our own code, never input.
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace ferry {

enum class Errc {
  malformed,       // input that does not decode or breaks a format rule
  bad_signature,   // a signature that does not verify
  out_of_order,    // an op that does not extend its feed (gap, wrong prev)
  fork,            // a second op for a feed position already held with another id
  unauthorized,    // permission denied (file modes, rights)
  not_found,       // the thing asked for is not held
  busy,            // a resource is held by someone else (lock, busy database)
  disk_full,       // the storage device is full
  corrupt,         // stored data is damaged or not ours
  io,              // any other I/O or storage failure
  timeout,         // a bounded wait ran out
  limit_exceeded,  // a configured or protocol limit was hit
};

// Stable lower-case name of a code, for logs, tests and error replies.
std::string_view errc_name(Errc code);

struct Error {
  Errc code;
  std::string detail;
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(Errc code, std::string detail) {
  return tl::unexpected<Error>(Error{code, std::move(detail)});
}

// "code: detail", for messages meant for people.
std::string to_string(const Error& error);

[[noreturn]] void assert_failed(const char* condition, const char* file, int line);

}  // namespace ferry

#define FERRY_ASSERT(condition)                               \
  do {                                                        \
    if (!(condition)) {                                       \
      ::ferry::assert_failed(#condition, __FILE__, __LINE__); \
    }                                                         \
  } while (false)
