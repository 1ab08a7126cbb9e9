/* `uvm-shim run`: boot one guest with its console on the terminal, or run one command in it. */
#ifndef SHIM_RUN_H
#define SHIM_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

/* Exit statuses of `uvm-shim run`. */
#define RUN_EXIT_OK    0
#define RUN_EXIT_VMM   1
#define RUN_EXIT_USAGE 2
#define RUN_EXIT_GUEST 3

int run_main(int argc, char **argv);

struct run_opts;
/*
 * The kernel command line for o: the base, --cmdline, then, when o has a
 * guest command, "-- /init bridge" (the command itself goes over the
 * bridge). NULL (with a message on stderr) when too long. Caller frees.
 */
char *run_build_cmdline(const struct run_opts *o);

/* A terminal we put in raw mode, to be restored on every way out. */
struct run_tty {
	bool raw;
	int fd;
	struct termios saved;
};
/*
 * Raw mode on fd if it is a terminal. keep_opost keeps output processing
 * (\n -> \r\n) for the serial console; a command's pty wants it off.
 */
void run_tty_raw(struct run_tty *t, int fd, bool keep_opost);
void run_tty_restore(struct run_tty *t);


#endif
