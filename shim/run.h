/* `uvm-shim run`: boot one guest with its console on the terminal. */
#ifndef SHIM_RUN_H
#define SHIM_RUN_H

#include <stddef.h>

/* Exit statuses of `uvm-shim run`. */
#define RUN_EXIT_OK	 0
#define RUN_EXIT_VMM	 1
#define RUN_EXIT_USAGE	 2
#define RUN_EXIT_GUEST	 3

int run_main(int argc, char **argv);

struct run_opts;
/*
 * The kernel command line for o: the base, --cmdline, then "--" and the guest
 * command, each argument quoted for the guest agent's /bin/sh -c. NULL (with
 * a message on stderr) when it cannot be expressed or is too long. Caller frees.
 */
char *run_build_cmdline(const struct run_opts *o);

/* Directory holding the default guest (vmlinuz, initrd.img), or NULL. */
const char *run_default_guest_dir(void);
/* The default guest's kernel in dir: vmlinux if present, else vmlinuz. */
void run_default_guest_kernel(char *buf, size_t len, const char *dir);

#endif
