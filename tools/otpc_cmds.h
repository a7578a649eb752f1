/*
 * otpc_cmds.h: the subcommands of the otpc tool that live in files of
 * their own (tools/otpc.c dispatches). Each takes the arguments after its
 * name and returns the exit status.
 */
#ifndef OTPC_TOOL_CMDS_H
#define OTPC_TOOL_CMDS_H

/* otpc node: run a node (otpc_node.c). */
int otpc_cmd_node(int argc, char **argv);
/* otpc load: load a module on a running node (otpc_node.c). */
int otpc_cmd_load(int argc, char **argv);

#endif
