#define _GNU_SOURCE
#include "CSwiftGatewayLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int sg_pipe_cloexec_nonblock(int fds[2])
{
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int sg_accept_cloexec_nonblock(int listener)
{
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

/* The parent-death signal belongs to the thread that sets it and is lost when that thread
 * exits; only the main thread lives as long as the process, so a worker sets it here, before
 * the Swift runtime starts any thread of its own. */
__attribute__((constructor)) static void sg_worker_parent_death_signal(void)
{
    const char *role = getenv("SWIFT_GATEWAY_ROLE");

    if (role && strcmp(role, "worker") == 0) {
        prctl(PR_SET_PDEATHSIG, (unsigned long)SIGTERM, 0, 0, 0);
    }
}

int sg_peer_credentials(int socket, pid_t *pid, uid_t *uid, gid_t *gid)
{
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length)
        != 0) {
        return -1;
    }
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int sg_shared_memory_create(const char *name, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    if (ftruncate(fd, (off_t)size) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int32_t sg_atomic_load_int32(const int32_t *address)
{
    return __atomic_load_n(address, __ATOMIC_RELAXED);
}

void sg_atomic_store_int32(int32_t *address, int32_t value)
{
    __atomic_store_n(address, value, __ATOMIC_RELAXED);
}

int64_t sg_atomic_load_int64(const int64_t *address)
{
    return __atomic_load_n(address, __ATOMIC_RELAXED);
}

void sg_atomic_store_int64(int64_t *address, int64_t value)
{
    __atomic_store_n(address, value, __ATOMIC_RELAXED);
}
