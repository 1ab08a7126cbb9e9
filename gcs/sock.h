/*
 * Connecting a stream socket, the one piece of socket code the GCS and the
 * shim share (gcs/sock.c is compiled into both, as the bridge codec is):
 * the GCS dials the host over vsock or, in its test mode, over Unix
 * sockets; the shim connects to the Unix sockets a parent names for a
 * process's stdio.
 */
#ifndef GCS_SOCK_H
#define GCS_SOCK_H

#include <sys/socket.h>

/* A new SOCK_STREAM | SOCK_CLOEXEC socket of addr's family, connected (blocking): fd or -errno. */
int sock_connect(const struct sockaddr *addr, socklen_t len);

/* The same to the Unix socket at path: -ENAMETOOLONG when it does not fit sun_path. */
int sock_connect_unix(const char *path);

#endif
