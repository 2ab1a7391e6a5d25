// Linux calls that Glibc's Swift module hides behind _GNU_SOURCE.
#ifndef C_SWIFT_GATEWAY_LINUX_H
#define C_SWIFT_GATEWAY_LINUX_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "sg_scoreboard.h"

/// pipe2(fds, O_CLOEXEC | O_NONBLOCK); returns 0 or -1 with errno.
int sg_pipe_cloexec_nonblock(int fds[2]);

/// accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK).
int sg_accept_cloexec_nonblock(int listener);

/// getsockopt(SO_PEERCRED); returns 0 or -1 with errno.
int sg_peer_credentials(int socket, pid_t *pid, uid_t *uid, gid_t *gid);

/// memfd_create(name, MFD_CLOEXEC) grown to size bytes; returns the descriptor or -1 with errno.
int sg_shared_memory_create(const char *name, size_t size);

/// Resource limits a worker starts with; 0: none.
typedef struct {
    uint64_t cpu_soft_seconds;
    uint64_t cpu_hard_seconds;
    uint64_t address_space_bytes;
} sg_spawn_limits;

/// The errno of each limit the child could not set before it executed the program; 0: set.
typedef struct {
    int cpu;
    int address_space;
} sg_spawn_limit_errors;

/// fork + execve(path, argv, envp) of a worker that has, from its first instruction, `limits`,
/// `scoreboard` at `scoreboard_target` (none when -1), the signals in `defaults` and every
/// handled one at their default disposition, and an empty signal mask. Returns 0 and the
/// child's pid once the program runs, or the errno of what failed (the child is reaped). A limit
/// the child could not set does not stop it: its errno is in `limit_errors`.
int sg_spawn_worker(pid_t *pid, const char *path, char *const argv[],
                    char *const envp[], int scoreboard, int scoreboard_target,
                    const sigset_t *defaults, const sg_spawn_limits *limits,
                    sg_spawn_limit_errors *limit_errors);

/// Relaxed atomic loads and stores in memory other processes share.
int32_t sg_atomic_load_int32(const int32_t *address);
void sg_atomic_store_int32(int32_t *address, int32_t value);
int64_t sg_atomic_load_int64(const int64_t *address);
void sg_atomic_store_int64(int64_t *address, int64_t value);

#endif
