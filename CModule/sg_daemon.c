/*
 * mod_swift_gateway: the Apache parent's side.
 *
 * For every process group, post_config creates the listening Unix socket,
 * forks, drops privileges in the child and execs the group's program as
 * the group *supervisor* with the socket on fd 3 (LISTEN_FDS=1) and the
 * read end of its retire pipe on fd 4.  The parent watches the supervisor
 * with apr_proc_other_child_register() and restarts it (with backoff) when
 * it dies, unless Apache is stopping.  The parent keeps the listening
 * socket open as long as the group is configured, so connections queue in
 * the kernel while a supervisor restarts.
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
#include "sg_sockets.h"
#include "sg_generations.h"

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

#define SG_LISTEN_FD      3
#define SG_RETIRE_FD      4  /* read end of the supervisor's retire pipe */
#define SG_PREDECESSOR_FD 5  /* write end of its predecessor's, on a handover */
#define SG_BACKOFF_MAX    30 /* seconds */
#define SG_QUICK_DEATH    10 /* a supervisor dying sooner backs off */

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

    /* exec plan, prepared in the parent so the child only makes syscalls */
    int drop_privileges;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    int ngroups;
    const char *user_name;
    const char *home;
    int home_explicit;
    const char *program;
    char **argv;
    char **envp;
    char **envp_handover; /* envp and SWIFT_GATEWAY_PREDECESSOR_FD */
    char *listen_pid_env; /* "LISTEN_PID=" + room for the pid */

    /* what shapes the supervisor: a kept one is adopted only if equal */
    unsigned char config_digest[APR_MD5_DIGESTSIZE];
    sg_program_id program_id;
};

/* Configuration-time state of the parent: the daemons of this generation. */
static apr_array_header_t *sg_daemons;
static pid_t sg_parent_pid;

static int sg_am_root(void)
{
    return geteuid() == 0;
}

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
                       date, (int)getpid(), num, d->group->name, d->program,
                       what, err ? ": " : "", err ? strerror(err) : "");
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
 * handed over).  Each is first copied above 5, so that no source is
 * overwritten by an earlier target; dup2() clears close-on-exec. */
static int sg_child_place_fds(sg_daemon *d)
{
    int from[3], moved[3], n, i;

    from[0] = d->listen_fd;
    from[1] = d->retire_read_fd;
    from[2] = d->predecessor_fd;
    n = d->predecessor_fd >= 0 ? 3 : 2;
    for (i = 0; i < n; ++i) {
        if ((moved[i] = fcntl(from[i], F_DUPFD, SG_PREDECESSOR_FD + 1)) < 0) {
            sg_child_fail(d, "SG0301", "copying the supervisor's descriptors",
                          errno);
        }
    }
    for (i = 0; i < n; ++i) {
        if (dup2(moved[i], SG_LISTEN_FD + i) < 0) {
            sg_child_fail(d, "SG0301",
                          "dup2() of the listening socket and the retire "
                          "pipes to fds 3 to 5",
                          errno);
        }
    }
    return SG_LISTEN_FD + n;
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

    if (setgid(d->gid) != 0) {
        apr_snprintf(what, sizeof(what), "setgid(%ld)", (long)d->gid);
        sg_child_fail(d, "SG0304", what, errno);
    }
    if (setgroups((size_t)d->ngroups, d->groups) != 0) {
        sg_child_fail(d, "SG0305", "setgroups() of the supplementary groups",
                      errno);
    }
    if (setuid(d->uid) != 0) {
        apr_snprintf(what, sizeof(what), "setuid(%ld)", (long)d->uid);
        sg_child_fail(d, "SG0306", what, errno);
    }
    if (getuid() != d->uid || geteuid() != d->uid || getgid() != d->gid
        || getegid() != d->gid) {
        apr_snprintf(what, sizeof(what),
                     "credentials are uid %ld/%ld gid "
                     "%ld/%ld after the switch, expected uid %ld gid %ld",
                     (long)getuid(), (long)geteuid(), (long)getgid(),
                     (long)getegid(), (long)d->uid, (long)d->gid);
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

    sg_child_format_pid(d->listen_pid_env + sizeof("LISTEN_PID=") - 1,
                        getpid());

    if (d->group->umask >= 0) {
        umask((mode_t)d->group->umask);
    }

    if (d->drop_privileges) {
        sg_child_drop_privileges(d);
    }

    if (chdir(d->home) != 0) {
        if (d->home_explicit) {
            char what[300];

            apr_snprintf(what, sizeof(what), "chdir(%s) (home=)", d->home);
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

    execve(d->program, d->argv,
           d->predecessor_fd >= 0 ? d->envp_handover : d->envp);
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
                 d->program, d->user_name, (long)d->uid, (long)d->gid,
                 d->group->socket_path);
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
    memcpy(k.config_digest, d->config_digest, sizeof(k.config_digest));
    k.program = d->program_id;
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

/* ------------------------------------------------------------------------
 * Exec plan
 */

static const char *sg_display_name(apr_pool_t *p, const sg_group *g)
{
    const char *name = g->display_name;
    const char *hit;
    const char *out = "";

    if (!name) {
        return g->program;
    }
    while ((hit = strstr(name, "%{GROUP}")) != NULL) {
        out = apr_pstrcat(p, out, apr_pstrmemdup(p, name, hit - name),
                          "(swift:", g->name, ")", NULL);
        name = hit + 8;
    }
    return apr_pstrcat(p, out, name, NULL);
}

static void sg_env_set(apr_array_header_t *env, apr_pool_t *p, const char *name,
                       apr_size_t nlen, const char *value)
{
    const char *entry = apr_pstrcat(p, apr_pstrmemdup(p, name, nlen), "=",
                                    value, NULL);
    int i;

    for (i = 0; i < env->nelts; ++i) {
        const char *e = APR_ARRAY_IDX(env, i, const char *);

        if (!strncmp(e, name, nlen) && e[nlen] == '=') {
            APR_ARRAY_IDX(env, i, const char *) = entry;
            return;
        }
    }
    APR_ARRAY_PUSH(env, const char *) = entry;
}

#define SG_SETENV(env, p, n, v) sg_env_set((env), (p), (n), strlen(n), (v))

/* The environment as execve() takes it, LISTEN_PID last (filled in by the
 * child). */
static char **sg_envp(apr_array_header_t *env, apr_pool_t *p,
                      char *listen_pid_env)
{
    char **envp = apr_palloc(p, sizeof(char *) * (env->nelts + 2));
    int i;

    for (i = 0; i < env->nelts; ++i) {
        envp[i] = (char *)APR_ARRAY_IDX(env, i, const char *);
    }
    envp[i++] = listen_pid_env;
    envp[i] = NULL;
    return envp;
}

/* maximum-processes, or processes, or 1 for a transient group. */
static int sg_maximum_processes(const sg_group *g)
{
    if (g->maximum_processes) {
        return g->maximum_processes;
    }
    return g->processes ? g->processes : 1;
}

/* The LogLevel in force for the module in the group's server, as Apache
 * names it: workers send no application line below it.  Being part of the
 * environment, it is part of the fingerprint: a graceful restart that
 * changes it hands the group over to a supervisor that knows it. */
static const char *sg_log_level_name(const server_rec *s)
{
    static const char *const names[] = {"emerg",  "alert",  "crit",   "error",
                                        "warn",   "notice", "info",   "debug",
                                        "trace1", "trace2", "trace3", "trace4",
                                        "trace5", "trace6", "trace7", "trace8"};
    int level = ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX);

    if (level < APLOG_EMERG) {
        level = APLOG_EMERG;
    }
    if (level > APLOG_TRACE8) {
        level = APLOG_TRACE8;
    }
    return names[level];
}

static int sg_is_executable_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode)
           && (st.st_mode & S_IXOTH);
}

/* The Swift runtime's crash helper for the group's program: a statically
 * linked program cannot find it by itself (the runtime looks beside
 * libswiftCore.so, which such a program does not have).  Beside the program
 * first (a deploy may copy it there), then where toolchains install it. */
static const char *sg_swift_backtrace_helper(apr_pool_t *p, const char *program)
{
    static const char *const dirs[] = {"/usr/libexec/swift/linux",
                                       "/usr/local/libexec/swift/linux",
                                       "/opt/swift/usr/libexec/swift/linux",
                                       NULL};
    const char *slash = strrchr(program, '/');
    const char *path;
    int i;

    if (slash) {
        path = apr_pstrcat(p, apr_pstrmemdup(p, program, slash - program),
                           "/swift-backtrace-static", NULL);
        if (sg_is_executable_file(path)) {
            return path;
        }
    }
    for (i = 0; dirs[i]; ++i) {
        path = apr_pstrcat(p, dirs[i], "/swift-backtrace-static", NULL);
        if (sg_is_executable_file(path)) {
            return path;
        }
    }
    return NULL;
}

/* SWIFT_BACKTRACE for a group whose env= sets none: the crashed thread's
 * backtrace, symbolicated, on stderr (the error log), never waiting for a
 * debugger to attach. */
static const char *sg_swift_backtrace(apr_pool_t *p, const char *program)
{
    const char *helper = sg_swift_backtrace_helper(p, program);

    return apr_pstrcat(p,
                       "enable=yes,interactive=no,color=no,output-to=stderr,"
                       "threads=crashed,registers=none,images=none",
                       helper ? ",swift-backtrace=" : "", helper ? helper : "",
                       NULL);
}

/* Whether env= sets the variable. */
static int sg_env_has(const apr_array_header_t *env, const char *name)
{
    apr_size_t len = strlen(name);
    int i;

    for (i = 0; i < env->nelts; ++i) {
        const char *e = APR_ARRAY_IDX(env, i, const char *);

        if (!strncmp(e, name, len) && e[len] == '=') {
            return 1;
        }
    }
    return 0;
}

static void sg_md5_string(apr_md5_ctx_t *md5, const char *s)
{
    apr_md5_update(md5, s, strlen(s) + 1);
}

/* What shapes the supervisor: a kept one is adopted by the next generation
 * only if both are the same.  The program file's identity tells a deploy
 * (replaced: another inode; rewritten: another size or time). */
static void sg_fingerprint(sg_daemon *d)
{
    apr_md5_ctx_t md5;
    struct stat st;
    long ids[5];
    int i;

    apr_md5_init(&md5);
    sg_md5_string(&md5, d->program);
    for (i = 0; d->argv[i]; ++i) {
        sg_md5_string(&md5, d->argv[i]);
    }
    sg_md5_string(&md5, "\n");
    for (i = 0; d->envp[i] != d->listen_pid_env; ++i) {
        sg_md5_string(&md5, d->envp[i]);
    }
    sg_md5_string(&md5, "\n");
    ids[0] = (long)d->uid;
    ids[1] = (long)d->gid;
    ids[2] = d->group->umask;
    ids[3] = d->ngroups;
    ids[4] = d->drop_privileges;
    apr_md5_update(&md5, ids, sizeof(ids));
    apr_md5_update(&md5, d->groups, sizeof(gid_t) * d->ngroups);
    sg_md5_string(&md5, d->home);
    apr_md5_final(d->config_digest, &md5);

    memset(&d->program_id, 0, sizeof(d->program_id));
    if (stat(d->program, &st) == 0) {
        d->program_id.dev = st.st_dev;
        d->program_id.ino = st.st_ino;
        d->program_id.size = st.st_size;
        d->program_id.mtime = apr_time_from_sec(st.st_mtim.tv_sec)
                              + st.st_mtim.tv_nsec / 1000;
    }
}

static int sg_prepare(sg_daemon *d, apr_pool_t *p)
{
    sg_group *g = d->group;
    struct passwd *pw;
    apr_array_header_t *env = apr_array_make(p, 32, sizeof(const char *));
    uid_t peer_uid;
    int i;

    d->program = g->program;
    if (sg_am_root()) {
        d->drop_privileges = 1;
        d->uid = g->user ? g->uid : ap_unixd_config.user_id;
        d->gid = g->group ? g->gid : ap_unixd_config.group_id;
        peer_uid = ap_unixd_config.user_id;
        if (d->uid == (uid_t)-1 || d->gid == (gid_t)-1) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, d->server,
                         "SG0123: group %s: Apache's User or Group is not set "
                         "(uid %ld gid %ld); set User and Group, or user= and "
                         "group=",
                         g->name, (long)d->uid, (long)d->gid);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (d->uid == 0 || d->gid == 0) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, d->server,
                         "SG0121: group %s would run as root (uid %ld gid %ld); "
                         "set user= and group= or Apache's User/Group to an "
                         "unprivileged account",
                         g->name, (long)d->uid, (long)d->gid);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else {
        d->drop_privileges = 0;
        d->uid = geteuid();
        d->gid = getegid();
        peer_uid = geteuid();
        if (g->user || g->group || g->supp_groups) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, d->server,
                         "SG0101: group %s (%s): user=, group= and "
                         "supplementary-groups= are ignored because Apache was "
                         "not started as root; it runs as uid %ld",
                         g->name, g->defined_at, (long)d->uid);
        }
    }

    pw = getpwuid(d->uid);
    d->user_name = pw ? apr_pstrdup(p, pw->pw_name)
                      : apr_psprintf(p, "#%ld", (long)d->uid);
    d->home_explicit = g->home != NULL;
    d->home = g->home                             ? g->home
              : (pw && pw->pw_dir && *pw->pw_dir) ? apr_pstrdup(p, pw->pw_dir)
                                                  : "/";

    if (g->supp_groups) {
        d->ngroups = g->supp_groups->nelts + 1;
        d->groups = apr_palloc(p, sizeof(gid_t) * d->ngroups);
        d->groups[0] = d->gid;
        for (i = 0; i < g->supp_groups->nelts; ++i) {
            d->groups[i + 1] = APR_ARRAY_IDX(g->supp_groups, i, gid_t);
        }
    }
    else if (pw && d->drop_privileges) {
        int n = 32;

        for (;;) {
            int want = n;

            d->groups = apr_palloc(p, sizeof(gid_t) * n);
            if (getgrouplist(pw->pw_name, d->gid, d->groups, &want) >= 0) {
                d->ngroups = want;
                break;
            }
            if (want <= n || n > 65536) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, d->server,
                             "SG0122: group %s: cannot list the groups of "
                             "user %s",
                             g->name, pw->pw_name);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            n = want;
        }
    }
    else {
        d->ngroups = 1;
        d->groups = apr_palloc(p, sizeof(gid_t));
        d->groups[0] = d->gid;
    }

    /* argv: display name, then arguments= */
    d->argv = apr_palloc(p, sizeof(char *) * (g->arguments->nelts + 2));
    d->argv[0] = (char *)sg_display_name(p, g);
    for (i = 0; i < g->arguments->nelts; ++i) {
        d->argv[i + 1] = (char *)APR_ARRAY_IDX(g->arguments, i, const char *);
    }
    d->argv[i + 1] = NULL;

    /* a clean environment, env= values, then the contract's variables */
    SG_SETENV(env, p, "PATH", "/usr/local/bin:/usr/bin:/bin");
    SG_SETENV(env, p, "HOME", d->home);
    SG_SETENV(env, p, "USER", d->user_name);
    SG_SETENV(env, p, "LOGNAME", d->user_name);
    SG_SETENV(env, p, "LANG", "C.UTF-8");
    for (i = 0; i < g->env->nelts; ++i) {
        const char *e = APR_ARRAY_IDX(g->env, i, const char *);
        const char *eq = strchr(e, '=');

        sg_env_set(env, p, e, eq - e, eq + 1);
    }
    if (!sg_env_has(g->env, "SWIFT_BACKTRACE")) {
        SG_SETENV(env, p, "SWIFT_BACKTRACE", sg_swift_backtrace(p, g->program));
    }
    SG_SETENV(env, p, "SWIFT_GATEWAY_ROLE", "supervisor");
    SG_SETENV(env, p, "SWIFT_GATEWAY_GROUP", g->name);
    SG_SETENV(env, p, "SWIFT_GATEWAY_TOKEN", g->token);
    SG_SETENV(env, p, "SWIFT_GATEWAY_PEER_UID",
              apr_psprintf(p, "%ld", (long)peer_uid));
    SG_SETENV(env, p, "SWIFT_GATEWAY_PROCESSES", apr_itoa(p, g->processes));
    SG_SETENV(env, p, "SWIFT_GATEWAY_THREADS", apr_itoa(p, g->threads));
    SG_SETENV(env, p, "SWIFT_GATEWAY_LISTEN_BACKLOG",
              apr_itoa(p, g->listen_backlog));
    SG_SETENV(env, p, "SWIFT_GATEWAY_SOCKET", g->socket_path);
    SG_SETENV(env, p, "SWIFT_GATEWAY_GRACEFUL_TIMEOUT",
              apr_itoa(p, g->graceful_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_SHUTDOWN_TIMEOUT",
              apr_itoa(p, g->shutdown_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_QUEUE_TIMEOUT",
              apr_itoa(p, g->queue_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_MAXIMUM_REQUESTS",
              apr_itoa(p, g->maximum_requests));
    SG_SETENV(env, p, "SWIFT_GATEWAY_RESTART_INTERVAL",
              apr_itoa(p, g->restart_interval));
    SG_SETENV(env, p, "SWIFT_GATEWAY_INACTIVITY_TIMEOUT",
              apr_itoa(p, g->inactivity_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_REQUEST_TIMEOUT",
              apr_itoa(p, g->request_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_STARTUP_TIMEOUT",
              apr_itoa(p, g->startup_timeout));
    SG_SETENV(env, p, "SWIFT_GATEWAY_MEMORY_LIMIT",
              apr_off_t_toa(p, g->memory_limit));
    SG_SETENV(env, p, "SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT",
              apr_off_t_toa(p, g->virtual_memory_limit));
    SG_SETENV(env, p, "SWIFT_GATEWAY_CPU_TIME_LIMIT",
              apr_itoa(p, g->cpu_time_limit));
    SG_SETENV(env, p, "SWIFT_GATEWAY_EXECUTOR", g->executor);
    if (g->affinity_cookie) { /* absent when off: fingerprints unchanged */
        SG_SETENV(env, p, "SWIFT_GATEWAY_AFFINITY_COOKIE", g->affinity_cookie);
    }
    SG_SETENV(env, p, "SWIFT_GATEWAY_DISPLAY_NAME", d->argv[0]);
    SG_SETENV(env, p, "SWIFT_GATEWAY_PROGRAM", g->program);
    SG_SETENV(env, p, "SWIFT_GATEWAY_RELOAD", g->reload ? "1" : "0");
    SG_SETENV(env, p, "SWIFT_GATEWAY_RESTART_FILE",
              g->restart_file ? g->restart_file : "");
    SG_SETENV(env, p, "SWIFT_GATEWAY_MAXIMUM_PROCESSES",
              apr_itoa(p, sg_maximum_processes(g)));
    SG_SETENV(env, p, "SWIFT_GATEWAY_LOG_LEVEL", sg_log_level_name(g->server));
    SG_SETENV(env, p, "SWIFT_GATEWAY_RETIRE_FD", apr_itoa(p, SG_RETIRE_FD));
    SG_SETENV(env, p, "LISTEN_FDS", "1");

    d->listen_pid_env = apr_pcalloc(p, sizeof("LISTEN_PID=") + 24);
    memcpy(d->listen_pid_env, "LISTEN_PID=", sizeof("LISTEN_PID=") - 1);
    d->envp = sg_envp(env, p, d->listen_pid_env);
    SG_SETENV(env, p, "SWIFT_GATEWAY_PREDECESSOR_FD",
              apr_itoa(p, SG_PREDECESSOR_FD));
    d->envp_handover = sg_envp(env, p, d->listen_pid_env);
    sg_fingerprint(d);
    return OK;
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
    int config = memcmp(d->config_digest, k->config_digest,
                        sizeof(d->config_digest))
                 != 0;
    int program = memcmp(&d->program_id, &k->program, sizeof(k->program)) != 0;

    if (config && program) {
        return "its configuration and its program file changed";
    }
    return config ? "its configuration changed" : "its program file changed";
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
    if ((rc = sg_prepare(d, d->pool)) != OK) {
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
        return sg_start(d) == APR_SUCCESS ? OK : HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!memcmp(d->config_digest, k->config_digest, sizeof(d->config_digest))
        && !memcmp(&d->program_id, &k->program, sizeof(k->program))) {
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
    if ((rc = sg_prepare(d, d->pool)) != OK) {
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
        }
        sg_generations_child_init();
    }
}
