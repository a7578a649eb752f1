/*
 * dist_cmds.h: the otpc tool's distribution subcommands (dist_cmds.c):
 * names, ping and rpc. Each takes the arguments after its own name and
 * returns the process's exit status.
 */
#ifndef OTPC_TOOLS_DIST_CMDS_H
#define OTPC_TOOLS_DIST_CMDS_H

/* The usage lines of the three, for the tool's help. */
extern const char otpc__dist_usage[];

int otpc__tool_names(int argc, char **argv);
int otpc__tool_ping(int argc, char **argv);
int otpc__tool_rpc(int argc, char **argv);

#endif /* OTPC_TOOLS_DIST_CMDS_H */
