#define _GNU_SOURCE
#include "CSwiftGatewayLinux.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int sg_pipe_cloexec_nonblock(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int sg_accept_cloexec_nonblock(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

/* The parent-death signal belongs to the thread that sets it and is lost when that thread
 * exits; only the main thread lives as long as the process, so a worker sets it here, before
 * the Swift runtime starts any thread of its own. */
__attribute__((constructor))
static void sg_worker_parent_death_signal(void) {
    const char *role = getenv("SWIFT_GATEWAY_ROLE");

    if (role && strcmp(role, "worker") == 0) {
        prctl(PR_SET_PDEATHSIG, (unsigned long)SIGTERM, 0, 0, 0);
    }
}

int sg_peer_credentials(int socket, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        return -1;
    }
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}
