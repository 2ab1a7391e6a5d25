#define _GNU_SOURCE
#include "CSwiftGatewayLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* What the child writes to its report pipe: a step and its errno. A limit
 * that cannot be set is noted and the child goes on; any other failure is
 * the last note before it exits. */
typedef struct {
    int step;
    int error;
} sg_spawn_note;

enum { SG_SPAWN_FATAL, SG_SPAWN_CPU_LIMIT, SG_SPAWN_ADDRESS_SPACE_LIMIT };

/* One note: 8 bytes, far below PIPE_BUF and the pipe's capacity, so the
 * write is atomic and never blocks. */
static void sg_note(int report, int step, int error)
{
    sg_spawn_note note = {.step = step, .error = error};

    while (write(report, &note, sizeof note) < 0 && errno == EINTR) {
    }
}

/* In the forked child: only async-signal-safe calls until execve. */
static void sg_exec_child(const char *path, char *const argv[],
                          char *const envp[], int scoreboard,
                          int scoreboard_target, const sigset_t *defaults,
                          const sg_spawn_limits *limits, int report)
{
    sigset_t empty;
    int error;

    /* Before the mask opens: no handler of the parent may run here (the
     * supervisor's write to its signal pipe, which the child shares). */
    for (int signal_number = 1; signal_number < NSIG; signal_number++) {
        struct sigaction current;

        if (signal_number == SIGKILL || signal_number == SIGSTOP
            || sigaction(signal_number, NULL, &current) != 0) {
            continue;
        }
        if (sigismember(defaults, signal_number) == 1
            || (current.sa_handler != SIG_DFL
                && current.sa_handler != SIG_IGN)) {
            struct sigaction default_action = {0};

            default_action.sa_handler = SIG_DFL;
            sigemptyset(&default_action.sa_mask);
            sigaction(signal_number, &default_action, NULL);
        }
    }
    if (scoreboard >= 0 && dup2(scoreboard, scoreboard_target) < 0) {
        goto failed;
    }
    /* Not fatal: the supervisor logs the note (the child cannot log). */
    if (limits->cpu_soft_seconds > 0) {
        struct rlimit cpu = {.rlim_cur = limits->cpu_soft_seconds,
                             .rlim_max = limits->cpu_hard_seconds};

        if (setrlimit(RLIMIT_CPU, &cpu) != 0) {
            sg_note(report, SG_SPAWN_CPU_LIMIT, errno);
        }
    }
    if (limits->address_space_bytes > 0) {
        struct rlimit space = {.rlim_cur = limits->address_space_bytes,
                               .rlim_max = limits->address_space_bytes};

        if (setrlimit(RLIMIT_AS, &space) != 0) {
            sg_note(report, SG_SPAWN_ADDRESS_SPACE_LIMIT, errno);
        }
    }
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(path, argv, envp);
failed:
    sg_note(report, SG_SPAWN_FATAL, errno);
    _exit(127);
}

/* Reads the child's notes until end of file (execve closed the pipe, or the
 * child exited); returns the errno of a fatal failure, 0 if none. */
static int sg_read_notes(int report, sg_spawn_limit_errors *limit_errors)
{
    sg_spawn_note note;
    ssize_t got;

    for (;;) {
        do {
            got = read(report, &note, sizeof note);
        } while (got < 0 && errno == EINTR);
        if (got != (ssize_t)sizeof note) {
            return 0;
        }
        switch (note.step) {
        case SG_SPAWN_CPU_LIMIT:
            limit_errors->cpu = note.error;
            break;
        case SG_SPAWN_ADDRESS_SPACE_LIMIT:
            limit_errors->address_space = note.error;
            break;
        default:
            return note.error != 0 ? note.error : ECHILD;
        }
    }
}

int sg_spawn_worker(pid_t *pid, const char *path, char *const argv[],
                    char *const envp[], int scoreboard, int scoreboard_target,
                    const sigset_t *defaults, const sg_spawn_limits *limits,
                    sg_spawn_limit_errors *limit_errors)
{
    int report[2];
    sigset_t all, saved;
    pid_t child;
    int error = 0;

    limit_errors->cpu = 0;
    limit_errors->address_space = 0;
    if (pipe2(report, O_CLOEXEC) != 0) {
        return errno;
    }
    /* Signals wait until the child has reset its dispositions. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    child = fork();
    if (child == 0) {
        sg_exec_child(path, argv, envp, scoreboard, scoreboard_target, defaults,
                      limits, report[1]);
    }
    if (child < 0) {
        error = errno;
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    close(report[1]);
    if (child > 0) {
        error = sg_read_notes(report[0], limit_errors);
        if (error != 0) {
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
            }
        }
        else {
            *pid = child;
        }
    }
    close(report[0]);
    return error;
}
