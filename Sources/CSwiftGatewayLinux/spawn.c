#define _GNU_SOURCE
#include "CSwiftGatewayLinux.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the forked child: only async-signal-safe calls until execve. A failure
 * is written to `report` as an errno value, then the child exits. */
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
    /* A failure here is not fatal: the supervisor applies the limits again
     * after the spawn and logs what fails (the child cannot log). */
    if (limits->cpu_soft_seconds > 0) {
        struct rlimit cpu = {.rlim_cur = limits->cpu_soft_seconds,
                             .rlim_max = limits->cpu_hard_seconds};

        setrlimit(RLIMIT_CPU, &cpu);
    }
    if (limits->address_space_bytes > 0) {
        struct rlimit space = {.rlim_cur = limits->address_space_bytes,
                               .rlim_max = limits->address_space_bytes};

        setrlimit(RLIMIT_AS, &space);
    }
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    execve(path, argv, envp);
failed:
    error = errno;
    while (write(report, &error, sizeof error) < 0 && errno == EINTR) {
    }
    _exit(127);
}

int sg_spawn_worker(pid_t *pid, const char *path, char *const argv[],
                    char *const envp[], int scoreboard, int scoreboard_target,
                    const sigset_t *defaults, const sg_spawn_limits *limits)
{
    int report[2];
    sigset_t all, saved;
    pid_t child;
    int error = 0;
    int child_error;
    ssize_t got;

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
        /* End of file: execve closed the pipe, the program runs. */
        do {
            got = read(report[0], &child_error, sizeof child_error);
        } while (got < 0 && errno == EINTR);
        if (got == (ssize_t)sizeof child_error) {
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
            }
            error = child_error;
        }
        else {
            *pid = child;
        }
    }
    close(report[0]);
    return error;
}
