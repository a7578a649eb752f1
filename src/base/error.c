/*
 * error.c: text and symbol for every OTPC_E* code, from the one table in
 * otpc/base.h.
 */
#include "base_int.h"

const char *otpc_strerror(int err) {
  switch (err) {
#define OTPC_ERRNO_TEXT_(name, code, text) \
  case code:                               \
    return text;
    OTPC_ERRNO_MAP(OTPC_ERRNO_TEXT_)
#undef OTPC_ERRNO_TEXT_
    case 0:
      return "success";
    default:
      return "unknown error";
  }
}

const char *otpc_err_name(int err) {
  switch (err) {
#define OTPC_ERRNO_NAME_(name, code, text) \
  case code:                               \
    return #name;
    OTPC_ERRNO_MAP(OTPC_ERRNO_NAME_)
#undef OTPC_ERRNO_NAME_
    case 0:
      return "OK";
    default:
      return "EUNKNOWN";
  }
}
