/*
 * no_descriptor.c: a shared object that is no otpc module: it has code
 * but no `otpc_module` descriptor. Loading it must fail cleanly.
 */
__attribute__((visibility("default"))) int not_a_module(void);
int not_a_module(void) {
  return 42;
}
