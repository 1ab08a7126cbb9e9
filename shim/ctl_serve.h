/* `uvm-shim serve`: the control protocol on stdin/stdout (docs/protocol.md). */
#ifndef SHIM_CTL_SERVE_H
#define SHIM_CTL_SERVE_H

/*
 * Serves requests from stdin until EOF, a broken stdout, SIGTERM/SIGINT/SIGHUP
 * or the parent's death; the VM (if any) is terminated before returning.
 * argv[0] is "serve"; no options yet. Returns the process exit status.
 */
int ctl_serve_main(int argc, char **argv);

struct ctl_method;
/* The method table of `serve` ({NULL} terminated), for tests. */
const struct ctl_method *ctl_serve_methods(void);

#endif
