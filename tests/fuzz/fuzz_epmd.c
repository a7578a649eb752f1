/*
 * fuzz_epmd.c: libFuzzer harness for the embedded epmd's reading of
 * client requests (otpc__epmd_parse). Whatever it accepts must have a
 * NUL-terminated name of at most 255 bytes where the type has one.
 */
#include <string.h>

#include "dist/dist_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  otpc__epmd_req_t r;
  if (otpc__epmd_parse(data, size, &r) != 0) return 0;
  size_t n = strnlen(r.name, sizeof r.name);
  if (n == sizeof r.name) __builtin_trap();
  if ((r.type == 120 || r.type == 122) && n == 0) __builtin_trap();
  return 0;
}
