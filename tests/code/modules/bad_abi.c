/*
 * bad_abi.c: a module whose descriptor says another ABI version (as one
 * built against a future otpc would). Loading it must fail cleanly.
 */
#include <otpc.h>

static const otpc_gen_server_t never = {.name = "never"};

__attribute__((visibility("default"))) const otpc_module_t otpc_module = {
    .abi = OTPC_MODULE_ABI + 998,
    .name = "counter",
    .vsn = "99",
    .gen_servers = (const otpc_gen_server_t *const[]){&never, NULL}};
