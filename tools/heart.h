/*
 * heart.h: `otpc heart`, the watchdog subcommand (tools/heart.c); the
 * otpc tool's main() dispatches to it.
 */
#ifndef OTPC_TOOLS_HEART_H
#define OTPC_TOOLS_HEART_H

/* argv holds what follows "heart" on the command line. Returns the exit
 * status (see docs/heart.md). */
int otpc__tool_heart(int argc, char **argv);

#endif
