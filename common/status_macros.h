// Early-return helpers for absl::Status and absl::StatusOr.
//
// Debian's abseil (20220623) ships no public RETURN_IF_ERROR macro, so the
// project keeps this one small header. Thread-safe: macros only.
#ifndef DASH_COMMON_STATUS_MACROS_H_
#define DASH_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function if `expr` yields a non-OK status.
#define DASH_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status dash_status_ = (expr);        \
    if (!dash_status_.ok()) return dash_status_; \
  } while (0)

#define DASH_STATUS_CONCAT_INNER_(a, b) a##b
#define DASH_STATUS_CONCAT_(a, b) DASH_STATUS_CONCAT_INNER_(a, b)

// `DASH_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value of a StatusOr or
// returns its status from the enclosing function.
#define DASH_ASSIGN_OR_RETURN(lhs, expr) \
  DASH_ASSIGN_OR_RETURN_IMPL_(DASH_STATUS_CONCAT_(dash_statusor_, __LINE__), lhs, expr)

#define DASH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#endif  // DASH_COMMON_STATUS_MACROS_H_
