/*
 * mod_swift_gateway: the Apache parent's side.
 *
 * For every process group, post_config creates the listening Unix socket,
 * forks, drops privileges in the child and execs the group's program as
 * the group *supervisor* with the socket on fd 3 (LISTEN_FDS=1), the
 * read end of its retire pipe on fd 4 and the group's scoreboard on fd 6
 * (sg_board.c; the children read it for the status page).  The parent
 * watches the supervisor with apr_proc_other_child_register() and
 * restarts it (with backoff) when it dies, unless Apache is stopping.  The
 * parent keeps the listening socket open as long as the group is
 * configured, so connections queue in the kernel while a supervisor
 * restarts.
 *
 * A restart of Apache (graceful or not) keeps each group's socket, token
 * and, when nothing that shapes it changed, its supervisor
 * (sg_generations.c keeps them meanwhile).  A changed group gets a new
 * supervisor on the same socket, handed its predecessor's retire pipe on
 * fd 5: once its workers accept it retires the old one, so the group is
 * rolled rather than cut.
 *
 * The contract with the supervisor is docs/architecture.md.
 */

#include "sg_daemon.h"
#include "sg_board.h"
#include "sg_sockets.h"
#include "sg_generations.h"
#include "sg_exec_plan.h"
#include "sg_options.h"

#include "http_core.h"
#include "http_main.h"
#include "ap_mpm.h"
#include "mpm_common.h"
#include "unixd.h"

#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_time.h"
#include "apr_date.h"
#include "apr_file_info.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

APLOG_USE_MODULE(swift_gateway);

#define SG_BACKOFF_MAX 30 /* seconds */
#define SG_QUICK_DEATH 10 /* a supervisor dying sooner backs off */

struct sg_daemon {
    sg_group *group;
    server_rec *server;
    apr_pool_t *pool;    /* pconf */
    apr_pool_t *oc_pool; /* holds the other-child registration */
    int listen_fd;
    int retire_fd;      /* write end of the supervisor's retire pipe */
    int retire_read_fd; /* its read end, between pipe() and fork() */
    int predecessor_fd; /* fd 5 of the child being forked, or -1 */
    pid_t predecessor;  /* the supervisor this one replaces, while it retires */
    sg_board board;     /* kept across the supervisor's restarts */

    apr_proc_t proc;
    int running;    /* forked and not reaped yet */
    int registered; /* registered as other child */
    int term_sent;
    int kill_sent;
    int stopping;        /* pconf is being cleaned up */
    int restart_pending; /* fork failed: the monitor hook retries */
    apr_time_t retry_at;
    apr_time_t started;  /* when the exec was due (fork + backoff) */
    apr_time_t deadline; /* shutdown: next escalation */
    int backoff;         /* seconds the next child sleeps before exec */
    int restarts;

    sg_exec_plan plan; /* prepared here so the child only makes syscalls */
};

/* Configuration-time state of the parent: the daemons of this generation. */
static apr_array_header_t *sg_daemons;
static pid_t sg_parent_pid;

static int sg_mpm_stopping(void)
{
    int state;

    return ap_mpm_query(AP_MPMQ_MPM_STATE, &state) == APR_SUCCESS
           && state == AP_MPMQ_STOPPING;
}

/* Apache stops, as opposed to restarting: the MPM's state is STOPPING both
 * when it stops and (in httpd 2.4) when it reclaims its children before a
 * hard restart; only a stop has shutdown_pending set. */
static int sg_apache_stopping(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING
           || (sg_mpm_stopping()
               && ap_unixd_mpm_get_retained_data()->shutdown_pending);
}

/* ------------------------------------------------------------------------
 * The child, between fork and exec: only system calls and formatting into
 * stack buffers; every step is fatal.
 */

static void sg_child_say(sg_daemon *d, const char *num, const char *what,
                         int err)
{
    char date[APR_RFC822_DATE_LEN];
    char buf[1024];
    apr_size_t len;

    apr_rfc822_date(date, apr_time_now());
    len = apr_snprintf(buf, sizeof(buf),
                       "[%s] [swift_gateway:emerg] [pid %d] %s: group %s: "
                       "cannot start the supervisor (%s): %s%s%s\n",
                       date, (int)getpid(), num, d->group->name,
                       d->plan.program, what, err ? ": " : "",
                       err ? strerror(err) : "");
    if (write(STDERR_FILENO, buf, len) < 0) {
        /* nowhere else to report it */
    }
}

static void sg_child_fail(sg_daemon *d, const char *num, const char *what,
                          int err) __attribute__((noreturn));
static void sg_child_fail(sg_daemon *d, const char *num, const char *what,
                          int err)
{
    sg_child_say(d, num, what, err);
    _exit(1);
}

static void sg_child_reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;
    int sig;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            (void)sigaction(sig, &sa, NULL);
        }
    }
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Everything from first on. */
static void sg_child_close_fds(int first)
{
    struct rlimit rl;
    int fd, max = 65536;

#if defined(SYS_close_range)
    if (syscall(SYS_close_range, first, ~0U, 0) == 0) {
        return;
    }
#endif
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < 1048576) {
        max = (int)rl.rlim_cur;
    }
    for (fd = first; fd < max; ++fd) {
        (void)close(fd);
    }
}

/* fd 3 the listening socket, 4 the retire pipe, 5 the predecessor's (when
 * handed over), 6 the scoreboard (when there is one).  Each is first copied
 * above 6, so that no source is overwritten by an earlier target; dup2()
 * clears close-on-exec.  A number left out is closed. */
static int sg_child_place_fds(sg_daemon *d)
{
    int from[4], moved[4], i;

    from[0] = d->listen_fd;
    from[1] = d->retire_read_fd;
    from[2] = d->predecessor_fd;
    from[3] = d->board.fd;
    for (i = 0; i < 4; ++i) {
        moved[i] = -1;
        if (from[i] >= 0
            && (moved[i] = fcntl(from[i], F_DUPFD, SG_BOARD_FD + 1)) < 0) {
            sg_child_fail(d, "SG0301", "copying the supervisor's descriptors",
                          errno);
        }
    }
    for (i = 0; i < 4; ++i) {
        if (moved[i] < 0) {
            (void)close(SG_LISTEN_FD + i);
        }
        else if (dup2(moved[i], SG_LISTEN_FD + i) < 0) {
            sg_child_fail(d, "SG0301",
                          "dup2() of the listening socket, the retire "
                          "pipes and the scoreboard to fds 3 to 6",
                          errno);
        }
    }
    return SG_BOARD_FD + 1;
}

static void sg_child_format_pid(char *dest, pid_t pid)
{
    char digits[24];
    int n = 0;
    unsigned long v = (unsigned long)pid;

    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < (int)sizeof(digits));
    while (n) {
        *dest++ = digits[--n];
    }
    *dest = '\0';
}

static void sg_child_drop_privileges(sg_daemon *d)
{
    char what[128];

    if (setgid(d->plan.gid) != 0) {
        apr_snprintf(what, sizeof(what), "setgid(%ld)", (long)d->plan.gid);
        sg_child_fail(d, "SG0304", what, errno);
    }
    if (setgroups((size_t)d->plan.ngroups, d->plan.groups) != 0) {
        sg_child_fail(d, "SG0305", "setgroups() of the supplementary groups",
                      errno);
    }
    if (setuid(d->plan.uid) != 0) {
        apr_snprintf(what, sizeof(what), "setuid(%ld)", (long)d->plan.uid);
        sg_child_fail(d, "SG0306", what, errno);
    }
    if (getuid() != d->plan.uid || geteuid() != d->plan.uid
        || getgid() != d->plan.gid || getegid() != d->plan.gid) {
        apr_snprintf(what, sizeof(what),
                     "credentials are uid %ld/%ld gid "
                     "%ld/%ld after the switch, expected uid %ld gid %ld",
                     (long)getuid(), (long)geteuid(), (long)getgid(),
                     (long)getegid(), (long)d->plan.uid, (long)d->plan.gid);
        sg_child_fail(d, "SG0307", what, 0);
    }
    if (setuid(0) != -1) {
        sg_child_fail(d, "SG0308",
                      "root privileges could be regained after "
                      "setuid()",
                      0);
    }
}

static void sg_child_exec(sg_daemon *d) __attribute__((noreturn));
static void sg_child_exec(sg_daemon *d)
{
    unsigned int left;

    sg_child_reset_signals();
    sg_child_close_fds(sg_child_place_fds(d));

    if (setsid() < 0) {
        sg_child_fail(d, "SG0302", "setsid()", errno);
    }

    /* A supervisor that keeps dying waits here, in the child, so the
     * parent never blocks and never forks in a tight loop. */
    for (left = (unsigned int)d->backoff; left > 0;) {
        left = sleep(left);
    }

    sg_child_format_pid(d->plan.listen_pid_env + sizeof("LISTEN_PID=") - 1,
                        getpid());

    if (d->group->umask >= 0) {
        umask((mode_t)d->group->umask);
    }

    if (d->plan.drop_privileges) {
        sg_child_drop_privileges(d);
    }

    if (chdir(d->plan.home) != 0) {
        if (d->plan.home_explicit) {
            char what[300];

            apr_snprintf(what, sizeof(what), "chdir(%s) (home=)", d->plan.home);
            sg_child_fail(d, "SG0309", what, errno);
        }
        if (chdir("/") != 0) {
            sg_child_fail(d, "SG0309", "chdir(/)", errno);
        }
    }

#ifdef __linux__
    /* Never outlive an Apache parent that was killed outright. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        sg_child_fail(d, "SG0310", "prctl(PR_SET_PDEATHSIG)", errno);
    }
    if (getppid() != sg_parent_pid) {
        sg_child_fail(d, "SG0310", "the Apache parent exited", 0);
    }
#endif

    execve(d->plan.program, d->plan.argv,
           d->predecessor_fd >= 0 ? d->plan.envp_handover : d->plan.envp);
    sg_child_fail(d, "SG0311", "execve()", errno);
}

/* ------------------------------------------------------------------------
 * Supervisor lifecycle in the parent
 */

static void sg_maintenance(int reason, void *data, int status);

static void sg_term(sg_daemon *d)
{
    if (d->running && !d->term_sent) {
        d->term_sent = 1;
        if (kill(d->proc.pid, SIGTERM) != 0 && errno != ESRCH) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, d->server,
                         "SG0220: group %s: cannot send SIGTERM to supervisor "
                         "pid %" APR_PID_T_FMT,
                         d->group->name, d->proc.pid);
        }
    }
}

static void sg_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void sg_close_listener(sg_daemon *d)
{
    sg_close_fd(&d->listen_fd);
}

static void sg_retry_later(sg_daemon *d)
{
    d->restart_pending = 1;
    d->retry_at = apr_time_now()
                  + apr_time_from_sec(d->backoff ? d->backoff : 1);
}

/* Fork and exec the supervisor, with a fresh retire pipe; while its
 * predecessor still retires, with that one's retire pipe too (also after a
 * crash: the predecessor retires only once a successor is ready). */
static apr_status_t sg_start(sg_daemon *d)
{
    apr_status_t rv;
    int pipefd[2];

    d->term_sent = 0;
    d->kill_sent = 0;
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, d->server,
                     "SG0225: group %s: cannot create the supervisor's "
                     "retire pipe; retrying in %d s",
                     d->group->name, d->backoff ? d->backoff : 1);
        sg_retry_later(d);
        return APR_FROM_OS_ERROR(errno);
    }
    d->retire_read_fd = pipefd[0];
    d->predecessor_fd = sg_retire_fd(d->predecessor);
    if (d->predecessor_fd < 0) {
        d->predecessor = 0;
    }
    rv = apr_proc_fork(&d->proc, d->pool);
    if (rv == APR_INCHILD) {
        sg_child_exec(d);
    }
    sg_close_fd(&d->retire_read_fd);
    d->predecessor_fd = -1;
    if (rv != APR_INPARENT) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->server,
                     "SG0211: group %s: cannot fork the supervisor; retrying "
                     "in %d s",
                     d->group->name, d->backoff ? d->backoff : 1);
        close(pipefd[1]);
        sg_retry_later(d);
        return rv;
    }
    /* The old supervisor's pipe dies with it: a successor of this one
     * reads its end of file only when this one is gone. */
    sg_close_fd(&d->retire_fd);
    d->retire_fd = pipefd[1];
    if (d->predecessor) {
        sg_retire_successor(d->predecessor, d->proc.pid);
    }
    d->running = 1;
    d->restart_pending = 0;
    d->started = apr_time_now() + apr_time_from_sec(d->backoff);
    apr_proc_other_child_register(&d->proc, sg_maintenance, d, NULL,
                                  d->oc_pool);
    d->registered = 1;
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->server,
                 "SG0212: group %s: supervisor pid %" APR_PID_T_FMT " %s%s "
                 "(program %s, user %s, uid %ld, gid %ld, socket %s)",
                 d->group->name, d->proc.pid,
                 d->restarts ? "restarted" : "started",
                 d->backoff ? apr_psprintf(d->oc_pool, " after a %d s backoff",
                                           d->backoff)
                            : "",
                 d->plan.program, d->plan.user_name, (long)d->plan.uid,
                 (long)d->plan.gid, d->group->socket_path);
    return APR_SUCCESS;
}

static void sg_died(sg_daemon *d, int reason, int status)
{
    apr_time_t now = apr_time_now();
    apr_time_t lived = now > d->started ? now - d->started : 0;
    const char *how;

    d->running = 0;
    if (d->registered) {
        apr_proc_other_child_unregister(d);
    }
    apr_pool_clear(d->oc_pool);
    how = sg_describe_status(d->oc_pool, reason, status);

    if (d->stopping || sg_mpm_stopping()) {
        /* A restart of Apache starts it again in the next generation. */
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->server,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT " %s "
                     "while Apache %s",
                     d->group->name, d->proc.pid, how,
                     sg_apache_stopping() ? "stops" : "restarts");
        return;
    }

    if (lived < apr_time_from_sec(SG_QUICK_DEATH)) {
        d->backoff = d->backoff ? d->backoff * 2 : 1;
        if (d->backoff > SG_BACKOFF_MAX) {
            d->backoff = SG_BACKOFF_MAX;
        }
    }
    else {
        d->backoff = 0;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, d->server,
                 "SG0213: group %s: supervisor pid %" APR_PID_T_FMT " %s after "
                 "%" APR_TIME_T_FMT " s; restarting it%s",
                 d->group->name, d->proc.pid, how, apr_time_sec(lived),
                 d->backoff ? apr_psprintf(d->oc_pool,
                                           " in %d s (it keeps "
                                           "dying within %d s of starting)",
                                           d->backoff, SG_QUICK_DEATH)
                            : " now");
    d->restarts++;
    sg_start(d);
}

static void sg_maintenance(int reason, void *data, int status)
{
    sg_daemon *d = data;

    switch (reason) {
    case APR_OC_REASON_DEATH:
    case APR_OC_REASON_LOST:
        sg_died(d, reason, status);
        break;
    case APR_OC_REASON_RESTART:
        /* The MPM reclaims its children: when Apache stops, ask the
         * supervisor to drain and drop the parent's copy of the socket so
         * that connections nobody will accept any more are reset instead
         * of hanging.  A hard restart (httpd 2.4 reclaims at the end of
         * the old generation, later versions at the start of the new one)
         * keeps the group. */
        if (sg_apache_stopping()) {
            sg_term(d);
            sg_close_listener(d);
        }
        break;
    case APR_OC_REASON_UNREGISTER:
        /* oc_pool is cleared, as pconf's subpools are before its cleanups:
         * sg_daemons_cleanup() decides what becomes of the supervisor. */
        d->registered = 0;
        break;
    default:
        break;
    }
}

/* Retry forks that failed and SIGKILL draining supervisors that overstay;
 * runs in the parent's main loop (about every ten seconds). */
int sg_daemon_monitor(apr_pool_t *p, server_rec *s)
{
    apr_time_t now = apr_time_now();
    int i;

    (void)p;
    if (!sg_daemons || getpid() != sg_parent_pid || sg_mpm_stopping()) {
        return DECLINED;
    }
    for (i = 0; i < sg_daemons->nelts; ++i) {
        sg_daemon *d = APR_ARRAY_IDX(sg_daemons, i, sg_daemon *);

        if (d->restart_pending && !d->running && !d->stopping
            && now >= d->retry_at) {
            sg_start(d);
        }
    }
    sg_drain_monitor(s, now);
    return DECLINED;
}

/* The group goes: its supervisor drains (SIGTERM), its socket is closed
 * and removed. */
static void sg_let_go(sg_daemon *d, apr_time_t now)
{
    sg_term(d);
    d->deadline = now + apr_time_from_sec(d->group->shutdown_timeout + 1);
    sg_close_listener(d);
    sg_close_fd(&d->retire_fd);
    sg_board_release(&d->board);
    if (unlink(d->group->socket_path) != 0 && errno != ENOENT) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, d->server,
                     "SG0219: group %s: cannot remove socket %s",
                     d->group->name, d->group->socket_path);
    }
}

/* Whether the supervisor is still running (reaped here when it is not). */
static int sg_still_running(sg_daemon *d, const char *when)
{
    int status;

    if (!d->running) {
        return 0;
    }
    if (waitpid(d->proc.pid, &status, WNOHANG) == d->proc.pid) {
        d->running = 0;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->server,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                     " %s while Apache %s",
                     d->group->name, d->proc.pid,
                     sg_describe_wait(d->pool, status), when);
        return 0;
    }
    return 1;
}

/* Hand the group to the next generation: its socket, its token, and its
 * supervisor with the write end of its retire pipe. */
static int sg_keep(sg_daemon *d)
{
    sg_kept_group k;

    if (d->listen_fd < 0) {
        return 0;
    }
    memset(&k, 0, sizeof(k));
    apr_cpystrn(k.name, d->group->name, sizeof(k.name));
    apr_cpystrn(k.socket_path, d->group->socket_path, sizeof(k.socket_path));
    apr_cpystrn(k.token, d->group->token, sizeof(k.token));
    k.listen_fd = d->listen_fd;
    k.retire_fd = -1;
    k.shutdown_timeout = d->group->shutdown_timeout;
    k.predecessor = d->predecessor;
    memcpy(k.config_digest, d->plan.config_digest, sizeof(k.config_digest));
    k.program = d->plan.program_id;
    k.board = d->board;
    if (sg_still_running(d, "restarts") && !d->term_sent) {
        k.pid = d->proc.pid;
        k.started = d->started;
        k.retire_fd = d->retire_fd;
    }
    if (!sg_kept_put(&k)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->server,
                     "SG0227: group %s: no room to keep the group across the "
                     "restart of Apache; it is stopped and started anew",
                     d->group->name);
        return 0;
    }
    d->listen_fd = -1;
    sg_board_init(&d->board); /* the kept group's now */
    if (k.pid) {
        d->retire_fd = -1;
        d->running = 0;
    }
    return 1;
}

/* pconf cleanup, when a generation ends.  On a restart of Apache every
 * group is kept for the next generation (sg_daemon_post_config() takes it
 * or lets it go).  When Apache exits every supervisor, of this generation
 * and of earlier ones, gets SIGTERM, shutdown-timeout + 1 s, then SIGKILL,
 * and every socket is removed. */
static apr_status_t sg_daemons_cleanup(void *data)
{
    apr_array_header_t *daemons = data;
    apr_time_t now = apr_time_now();
    int exiting = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING;
    int i, left;

    if (getpid() != sg_parent_pid) {
        return APR_SUCCESS;
    }
    for (i = 0; i < daemons->nelts; ++i) {
        sg_daemon *d = APR_ARRAY_IDX(daemons, i, sg_daemon *);

        d->stopping = 1;
        d->restart_pending = 0;
        if (d->registered) {
            apr_proc_other_child_unregister(d);
        }
    }

    if (!exiting) {
        for (i = 0; i < daemons->nelts; ++i) {
            sg_daemon *d = APR_ARRAY_IDX(daemons, i, sg_daemon *);

            if (sg_keep(d)) {
                continue;
            }
            sg_let_go(d, now);
            if (sg_still_running(d, "restarts")) {
                sg_drain_add(NULL, d->group->name, d->proc.pid,
                             d->group->shutdown_timeout, d->deadline);
                d->running = 0;
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->server,
                             "SG0215: group %s: supervisor pid %" APR_PID_T_FMT
                             " drains while Apache restarts",
                             d->group->name, d->proc.pid);
            }
        }
        return APR_SUCCESS;
    }

    /* Kept groups no generation took: post_config failed. */
    sg_kept_release_all(daemons->pool, NULL, ap_server_conf, "Apache stops");
    for (i = 0; i < daemons->nelts; ++i) {
        sg_let_go(APR_ARRAY_IDX(daemons, i, sg_daemon *), now);
    }
    sg_drain_stop_all(now);
    do {
        now = apr_time_now();
        left = sg_drain_stop_step(now, daemons->pool);
        for (i = 0; i < daemons->nelts; ++i) {
            sg_daemon *d = APR_ARRAY_IDX(daemons, i, sg_daemon *);

            if (d->running) {
                if (sg_stop_step(d->server, d->group->name, d->proc.pid,
                                 d->group->shutdown_timeout, &d->deadline,
                                 &d->kill_sent, now, d->pool)) {
                    d->running = 0;
                }
                else {
                    left++;
                }
            }
        }
        if (left) {
            apr_sleep(apr_time_from_msec(20));
        }
    } while (left);
    return APR_SUCCESS;
}

static const char *sg_make_token(apr_pool_t *p, server_rec *s)
{
    unsigned char bytes[SG_TOKEN_BYTES];
    char *hex;
    apr_status_t rv = apr_generate_random_bytes(bytes, sizeof(bytes));

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     "SG0210: cannot generate a random group token");
        return NULL;
    }
    hex = apr_palloc(p, 2 * sizeof(bytes) + 1);
    ap_bin2hex(bytes, sizeof(bytes), hex);
    return hex;
}

/* ------------------------------------------------------------------------
 * Groups across a restart of Apache
 */

static const char *sg_what_changed(const sg_daemon *d, const sg_kept_group *k)
{
    int config = memcmp(d->plan.config_digest, k->config_digest,
                        sizeof(d->plan.config_digest))
                 != 0;
    int program = memcmp(&d->plan.program_id, &k->program, sizeof(k->program))
                  != 0;

    if (config && program) {
        return "its configuration and its program file changed";
    }
    return config ? "its configuration changed" : "its program file changed";
}

/* A new scoreboard for the group; without one its supervisor makes its
 * own, which Apache's children cannot see. */
static void sg_make_board(sg_daemon *d)
{
    sg_group *g = d->group;
    apr_status_t rv = sg_board_create(&d->board, g->processes,
                                      sg_group_maximum_processes(g), g->threads,
                                      d->listen_fd);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, d->server,
                     "SG0601: group %s: cannot make its scoreboard "
                     "(memfd_create, ftruncate, seals or mmap); its "
                     "supervisor makes one of its own, and the status page "
                     "shows none of the group's workers",
                     g->name);
    }
}

/* A kept group whose supervisor is started anew keeps its board (and its
 * counters) when the board still fits the group's shape. */
static void sg_reuse_board(sg_daemon *d, sg_kept_group *k)
{
    sg_group *g = d->group;
    struct stat st;

    if (k->board.base
        && k->board.entries
               == sg_scoreboard_entries(sg_group_maximum_processes(g))
        && k->board.request_slots == g->threads) {
        d->board = k->board;
        if (fstat(d->listen_fd, &st) == 0) {
            d->board.socket_ino = (unsigned long)st.st_ino;
        }
    }
    else {
        sg_board_release(&k->board);
        sg_make_board(d);
    }
    sg_board_init(&k->board);
}

/* The group was kept from the previous generation: the same socket (with
 * this generation's listen-backlog) and token; its supervisor is adopted
 * when nothing that shapes it changed, else a new one starts on the same
 * socket and retires the old one once its workers accept. */
static int sg_take_over(sg_daemon *d, sg_kept_group *k, const char *prefix,
                        int generation)
{
    sg_group *g = d->group;
    struct stat st;
    int status, rc;

    g->token = apr_pstrdup(d->pool, k->token);
    if (stat(k->socket_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        g->socket_path = apr_pstrdup(d->pool, k->socket_path);
        d->listen_fd = k->listen_fd;
    }
    else {
        /* Removed (a tmp cleaner): nobody could connect to it any more.  A
         * new socket, and the group rolled onto it. */
        g->socket_path = apr_psprintf(d->pool, "%s/%ld.%d.%s.sock", prefix,
                                      (long)sg_parent_pid, generation, g->name);
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->server,
                     "SG0228: group %s: socket %s was removed; the group moves "
                     "to a new socket, %s",
                     g->name, k->socket_path, g->socket_path);
        close(k->listen_fd);
        k->listen_fd = -1;
        if ((rc = sg_socket_create(d->server, d->group, &d->listen_fd)) != OK) {
            sg_kept_put(k); /* released as Apache exits */
            return rc;
        }
    }
    if ((rc = sg_exec_plan_prepare(&d->plan, d->group, d->server, d->pool))
        != OK) {
        sg_kept_put(k); /* released as Apache exits */
        d->listen_fd = -1;
        return rc;
    }
    d->predecessor = k->predecessor;
    if (k->pid && waitpid(k->pid, &status, WNOHANG) != 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->server,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                     " ended while Apache restarted; starting a new one",
                     g->name, k->pid);
        k->pid = 0;
    }
    if (listen(d->listen_fd, g->listen_backlog) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, d->server,
                     "SG0208: group %s: cannot listen on socket %s", g->name,
                     g->socket_path);
        k->listen_fd = -1;
        sg_kept_put(k); /* its supervisor is stopped as Apache exits */
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!k->pid) {
        if (k->retire_fd >= 0) {
            close(k->retire_fd);
        }
        sg_reuse_board(d, k);
        return sg_start(d) == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!memcmp(d->plan.config_digest, k->config_digest,
                sizeof(d->plan.config_digest))
        && !memcmp(&d->plan.program_id, &k->program, sizeof(k->program))) {
        d->board = k->board;
        d->proc.pid = k->pid;
        d->started = k->started;
        d->retire_fd = k->retire_fd;
        d->running = 1;
        apr_proc_other_child_register(&d->proc, sg_maintenance, d, NULL,
                                      d->oc_pool);
        d->registered = 1;
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->server,
                     "SG0221: group %s: supervisor pid %" APR_PID_T_FMT
                     " kept across the restart (configuration and program "
                     "unchanged; socket %s)",
                     g->name, k->pid, g->socket_path);
        return OK;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, d->server,
                 "SG0222: group %s: %s; a new supervisor starts on socket %s, "
                 "and supervisor pid %" APR_PID_T_FMT
                 " retires once the new one's workers accept",
                 g->name, sg_what_changed(d, k), g->socket_path, k->pid);
    sg_retire_add(d->pool, g->name, k->pid, k->shutdown_timeout, k->retire_fd,
                  0);
    /* The new supervisor gets a board of its own; the retiring one keeps
     * its copy of the old one, which Apache no longer reads. */
    sg_board_release(&k->board);
    sg_make_board(d);
    d->predecessor = k->pid;
    return sg_start(d) == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* A group new in this generation: a new socket, token and supervisor. */
static int sg_set_up(sg_daemon *d, const char *prefix, int generation)
{
    sg_group *g = d->group;
    int rc;

    g->socket_path = apr_psprintf(d->pool, "%s/%ld.%d.%s.sock", prefix,
                                  (long)sg_parent_pid, generation, g->name);
    if ((rc = sg_socket_create(d->server, d->group, &d->listen_fd)) != OK) {
        return rc;
    }
    if (!(g->token = sg_make_token(d->pool, d->server))) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sg_make_board(d);
    if ((rc = sg_exec_plan_prepare(&d->plan, d->group, d->server, d->pool))
        != OK) {
        return rc;
    }
    return sg_start(d) == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

/* ------------------------------------------------------------------------
 * Hooks
 */

int sg_daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    const char *prefix;
    int generation = 0, i, rc;

    (void)plog;
    sg_daemons = NULL;

    /* The first pass only preflights the configuration; a configuration
     * test never gets here but check anyway. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL) {
        return OK;
    }
    sg_parent_pid = getpid();
    sg_daemons = apr_array_make(pconf, 4, sizeof(sg_daemon *));
    sg_drain_adopt(pconf);

    /* Registered before any fork: every supervisor started from here on,
     * and every group kept from the previous generation, is kept or
     * stopped when this generation ends. */
    apr_pool_cleanup_register(pconf, sg_daemons, sg_daemons_cleanup,
                              apr_pool_cleanup_null);

    if (!sg_globals.groups || sg_globals.groups->nelts == 0) {
        sg_kept_release_all(ptemp, pconf, s, "no longer configured");
        return OK;
    }
    ap_mpm_query(AP_MPMQ_GENERATION, &generation);
    prefix = sg_socket_prefix(pconf, s);
    if ((rc = sg_socket_dir_make(pconf, s, prefix)) != OK) {
        return rc;
    }
    sg_socket_remove_stale(ptemp, s, prefix);

    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        sg_kept_group kept;
        sg_daemon *d;

        if (!g->program) {
            continue; /* reported by check_config */
        }
        d = apr_pcalloc(pconf, sizeof(*d));
        d->group = g;
        d->server = g->server;
        d->pool = pconf;
        d->listen_fd = d->retire_fd = d->retire_read_fd = -1;
        d->predecessor_fd = -1;
        sg_board_init(&d->board);
        g->daemon = d;
        apr_pool_create(&d->oc_pool, pconf);
        apr_pool_tag(d->oc_pool, "swift_gateway_supervisor");
        APR_ARRAY_PUSH(sg_daemons, sg_daemon *) = d;

        rc = sg_kept_take(g->name, prefix, &kept)
                 ? sg_take_over(d, &kept, prefix, generation)
                 : sg_set_up(d, prefix, generation);
        if (rc != OK) {
            return rc;
        }
    }
    sg_kept_release_all(ptemp, pconf, s, "no longer configured");
    return OK;
}

/* Apache children never touch the listening sockets (their idle
 * connections to the groups are sg_pool.c's) nor the retire pipes.  With
 * -X the parent serves requests itself: it keeps them, since its
 * supervisors may restart. */
void sg_daemon_child_init(apr_pool_t *p, server_rec *s)
{
    int i;

    (void)p;
    (void)s;
    if (!sg_daemons) {
        return;
    }
    if (getpid() != sg_parent_pid) {
        for (i = 0; i < sg_daemons->nelts; ++i) {
            sg_daemon *d = APR_ARRAY_IDX(sg_daemons, i, sg_daemon *);

            sg_close_listener(d);
            sg_close_fd(&d->retire_fd);
            sg_board_child_init(&d->board);
        }
        sg_generations_child_init();
    }
}

/* ------------------------------------------------------------------------
 * What the status page reads (in the children, from their copy)
 */

const sg_board *sg_daemon_board(const sg_group *g)
{
    return g->daemon ? &g->daemon->board : NULL;
}

const char *sg_daemon_user(const sg_group *g)
{
    return g->daemon && g->daemon->plan.user_name ? g->daemon->plan.user_name
                                                  : "";
}
