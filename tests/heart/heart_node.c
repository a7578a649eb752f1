/*
 * heart_node.c: the node program that tests/heart/heart_test.sh runs under
 * `otpc heart`. Each mode behaves one way on purpose, and leaves files in
 * DIR for the script to read:
 *
 *   DIR/pid    its pid, written once its node runs
 *   DIR/alive  written after six beat intervals (a watchdog timeout and a
 *              half), which it can only outlive by beating
 *   DIR/got    what otpc_heart_get_cmd answered (setcmd mode)
 *
 *   hang    one scheduler; a process spins forever without yielding
 *   run     runs, healthy, until killed
 *   stop    runs a while, then its node stops cleanly (otpc_main returns)
 *   exit    runs a while, then exits without stopping its node
 *   crash   its first process fails: otpc_main stops the node, returns 1
 *   setcmd CMD   sets, reads, clears and sets CMD with the heart API (from
 *                a plain thread and from a process), then dies
 *   check   healthy, but its health check (otpc_heart_set_check) fails
 *           from its ninth call on, and writes DIR/sick then
 *   many CMD     64 processes and 2 threads set and read commands at
 *                once, 20 times each; then CMD is set and it dies
 *   plain   not meant to run under heart: reports otpc_heart_enabled()
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otpc.h"

static const char *dir;
static const char *cmd;
static int64_t beat_ms = 250;

static void put(const char *name, const char *text) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char tmp[4100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL) {
    perror(tmp);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
  rename(tmp, path); /* the script never sees half a file */
}

static void put_pid(void) {
  char buf[32];
  snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  put("pid", buf);
}

/* Outlives a watchdog timeout and a half: only a beating node gets here. */
static void live_a_while(void) {
  otpc_sleep(6 * beat_ms);
  put("alive", "yes\n");
}

static void hang(void *arg) {
  put_pid();
  live_a_while();
  /* The one scheduler is held from here on: no probe runs, no beat. */
  volatile uint64_t spins = 0;
  for (;;) spins++;
}

static void run(void *arg) {
  put_pid();
  for (;;) otpc_sleep(100);
}

static void stop(void *arg) {
  put_pid();
  live_a_while();
}

static void crash(void *arg) {
  put_pid();
  live_a_while();
  otpc_exit_atom(otpc_atom("boom"));
}

static void exit_unclean(void *arg) {
  put_pid();
  live_a_while();
  _exit(0); /* the node is not stopped: the watchdog takes it as died */
}

static void fail(const char *what, int rc) {
  fprintf(stderr, "heart_node: %s: %s\n", what, otpc_strerror(rc));
  _exit(1);
}

/* The API from a process (the exchange runs as dirty work). */
static void setcmd(void *arg) {
  put_pid();
  char got[OTPC_HEART_MAX_CMD + 1];
  int rc = otpc_heart_get_cmd(got, sizeof got);
  if (rc < 0 || strcmp(got, "from a thread") != 0)
    fail("get_cmd in a process did not see the thread's command", rc);
  if ((rc = otpc_heart_clear_cmd()) != 0) fail("clear_cmd", rc);
  if ((rc = otpc_heart_get_cmd(got, sizeof got)) != 0 || got[0] != '\0')
    fail("get_cmd after clear_cmd is not empty", rc);
  if ((rc = otpc_heart_set_cmd(cmd)) != 0) fail("set_cmd", rc);
  rc = otpc_heart_get_cmd(got, sizeof got);
  if (rc != (int)strlen(cmd)) fail("get_cmd length", rc);
  /* A short buffer gets a cut, terminated copy and the full length. */
  char small[4];
  if (otpc_heart_get_cmd(small, sizeof small) != rc || strlen(small) != 3)
    fail("get_cmd into a short buffer", OTPC_EINVAL);
  char big[OTPC_HEART_MAX_CMD + 2];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  if (otpc_heart_set_cmd(big) != OTPC_EINVAL)
    fail("set_cmd of a too long command", OTPC_EINVAL);
  put("got", got);
  live_a_while();
  _exit(1); /* dies: the watchdog runs the command set above */
}

/* Sets "echo N-I" and reads back a command of that shape (another
 * requester's, maybe: they race), count times. */
static void hammer(long n, int count) {
  for (int i = 0; i < count; i++) {
    char mine[64], got[64];
    snprintf(mine, sizeof mine, "echo %ld-%d", n, i);
    int rc = otpc_heart_set_cmd(mine);
    if (rc != 0) fail("many: set_cmd", rc);
    rc = otpc_heart_get_cmd(got, sizeof got);
    if (rc <= 0 || strncmp(got, "echo ", 5) != 0)
      fail("many: get_cmd", rc < 0 ? rc : OTPC_EINVAL);
  }
}

static void hammer_proc(void *arg) {
  hammer((long)(intptr_t)arg, 20);
}

static void *hammer_thread(void *arg) {
  hammer((long)(intptr_t)arg, 20);
  return NULL;
}

static void many(void *arg) {
  put_pid();
  pthread_t t[2];
  for (long i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, hammer_thread, (void *)(intptr_t)(1000 + i));
  otpc_ref_t refs[64];
  for (long i = 0; i < 64; i++) {
    otpc_spawn_opts_t o = {.monitor = true, .monitor_ref = &refs[i]};
    int rc = otpc_spawn(hammer_proc, (void *)(intptr_t)i, &o, NULL);
    if (rc != 0) fail("many: spawn", rc);
  }
  for (int i = 0; i < 64; i++) { /* each ends normally, or fail() exits */
    otpc_buf_t *down;
    int rc = otpc_receive(NULL, OTPC_INFINITY, &down);
    if (rc != 0) fail("many: receive", rc);
    otpc_buf_unref(down);
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  int rc = otpc_heart_set_cmd(cmd);
  if (rc != 0) fail("many: set_cmd", rc);
  put("alive", "yes\n");
  _exit(1);
}

/* Healthy for eight beats, then sick for good. Runs in the probe
 * process, one call at a time. */
static bool health(void *arg) {
  _Atomic int *calls = arg;
  if (atomic_fetch_add(calls, 1) < 8) return true;
  put("sick", "yes\n");
  return false;
}

static void checked(void *arg) {
  static _Atomic int calls;
  int rc = otpc_heart_set_check(health, &calls);
  if (rc != 0) fail("set_check", rc);
  run(NULL); /* the node itself stays well */
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: heart_node MODE DIR [CMD]\n");
    return 2;
  }
  const char *mode = argv[1];
  dir = argv[2];
  cmd = argc > 3 ? argv[3] : "";
  const char *b = getenv("OTPC_HEART_BEAT_MS");
  if (b != NULL && atoll(b) > 0) beat_ms = atoll(b);
  otpc_node_opts_t opts = {.schedulers = 2};

  if (strcmp(mode, "plain") == 0) {
    printf("enabled=%d set_cmd=%s set_check=%s\n", otpc_heart_enabled(),
           otpc_err_name(otpc_heart_set_cmd("x")),
           otpc_err_name(otpc_heart_set_check(health, NULL)));
    return 0;
  }
  if (strcmp(mode, "hang") == 0) {
    opts.schedulers = 1;
    return otpc_main(&opts, hang, NULL);
  }
  if (strcmp(mode, "run") == 0) return otpc_main(&opts, run, NULL);
  if (strcmp(mode, "many") == 0) return otpc_main(&opts, many, NULL);
  if (strcmp(mode, "check") == 0) return otpc_main(&opts, checked, NULL);
  if (strcmp(mode, "stop") == 0) return otpc_main(&opts, stop, NULL);
  if (strcmp(mode, "crash") == 0) return otpc_main(&opts, crash, NULL);
  if (strcmp(mode, "exit") == 0) return otpc_main(&opts, exit_unclean, NULL);
  if (strcmp(mode, "setcmd") == 0) {
    /* From a plain thread, before any node runs. */
    int rc = otpc_heart_set_cmd("from a thread");
    if (rc != 0) fail("set_cmd from a thread", rc);
    return otpc_main(&opts, setcmd, NULL);
  }
  fprintf(stderr, "heart_node: unknown mode %s\n", mode);
  return 2;
}
