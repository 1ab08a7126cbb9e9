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

struct ctl;
struct loop;
struct serve;
/*
 * serve in-process, for the containerd shim (shim/task*.c): the state and
 * method table of `serve` on the caller's loop, answers and events written
 * to out_fd; requests go in with ctl_feed(*ctl, ...). No stdin, no signals.
 */
int ctl_serve_embed(struct loop *loop, int out_fd, struct serve **s, struct ctl **ctl)
    __attribute__((warn_unused_result));
/* Terminates the VM (if any) and frees. NULL is a no-op. */
void ctl_serve_embed_free(struct serve *s);

#endif
