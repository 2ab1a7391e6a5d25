// Linux calls that Glibc's Swift module hides behind _GNU_SOURCE.
#ifndef C_SWIFT_GATEWAY_LINUX_H
#define C_SWIFT_GATEWAY_LINUX_H

#include <sys/types.h>

/// pipe2(fds, O_CLOEXEC | O_NONBLOCK); returns 0 or -1 with errno.
int sg_pipe_cloexec_nonblock(int fds[2]);

/// accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK).
int sg_accept_cloexec_nonblock(int listener);

/// getsockopt(SO_PEERCRED); returns 0 or -1 with errno.
int sg_peer_credentials(int socket, pid_t *pid, uid_t *uid, gid_t *gid);

#endif
