/*
 * mod_swift_gateway: the Apache parent's side.
 *
 * For every process group, post_config creates the listening Unix socket,
 * forks, drops privileges in the child and execs the group's program as
 * the group *supervisor* with the socket on fd 3 (LISTEN_FDS=1).  The
 * parent watches the supervisor with apr_proc_other_child_register() and
 * restarts it (with backoff) when it dies, unless Apache is stopping.
 * The parent keeps the listening socket open for the whole generation, so
 * connections queue in the kernel while a supervisor restarts.
 *
 * The contract with the supervisor is docs/architecture.md.
 */

#include "sg_daemon.h"

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

#include <dirent.h>
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

#define SG_LISTEN_FD   3
#define SG_BACKOFF_MAX 30 /* seconds */
#define SG_QUICK_DEATH 10 /* a supervisor dying sooner backs off */
#define SG_KILL_GRACE  2  /* seconds to reap after SIGKILL */

struct sg_daemon {
    sg_group *group;
    server_rec *server;
    apr_pool_t *pool;    /* pconf */
    apr_pool_t *oc_pool; /* holds the other-child registration */
    int listen_fd;

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
    char *listen_pid_env; /* "LISTEN_PID=" + room for the pid */
};

/* Configuration-time state of the parent: the daemons of this generation. */
static apr_array_header_t *sg_daemons;
static apr_pool_t *sg_gen_pool; /* pconf of the running generation */
static pid_t sg_parent_pid;

const char *sg_socket_prefix(apr_pool_t *p, server_rec *s)
{
    sg_server_conf *sconf = ap_get_module_config(s->module_config,
                                                 &swift_gateway_module);

    if (sconf->socket_prefix) {
        return sconf->socket_prefix;
    }
    return ap_runtime_dir_relative(p, "swift-gateway");
}

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

static void sg_child_close_fds(void)
{
    struct rlimit rl;
    int fd, max = 65536;

#if defined(SYS_close_range)
    if (syscall(SYS_close_range, SG_LISTEN_FD + 1, ~0U, 0) == 0) {
        return;
    }
#endif
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < 1048576) {
        max = (int)rl.rlim_cur;
    }
    for (fd = SG_LISTEN_FD + 1; fd < max; ++fd) {
        (void)close(fd);
    }
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

    if (d->listen_fd != SG_LISTEN_FD) {
        if (dup2(d->listen_fd, SG_LISTEN_FD) < 0) {
            sg_child_fail(d, "SG0301", "dup2() of the listening socket to fd 3",
                          errno);
        }
    }
    if (fcntl(SG_LISTEN_FD, F_SETFD, 0) != 0) {
        sg_child_fail(d, "SG0301", "clearing close-on-exec of fd 3", errno);
    }
    sg_child_close_fds();

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

    execve(d->program, d->argv, d->envp);
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

static void sg_close_listener(sg_daemon *d)
{
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        d->listen_fd = -1;
    }
}

static apr_status_t sg_start(sg_daemon *d)
{
    apr_status_t rv;

    d->term_sent = 0;
    d->kill_sent = 0;
    rv = apr_proc_fork(&d->proc, d->pool);
    if (rv == APR_INCHILD) {
        sg_child_exec(d);
    }
    if (rv != APR_INPARENT) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, d->server,
                     "SG0211: group %s: cannot fork the supervisor; retrying "
                     "in %d s",
                     d->group->name, d->backoff ? d->backoff : 1);
        d->restart_pending = 1;
        d->retry_at = apr_time_now()
                      + apr_time_from_sec(d->backoff ? d->backoff : 1);
        return rv;
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

/* A wait status from waitpid(). */
static const char *sg_describe_wait(apr_pool_t *p, int status)
{
    if (WIFEXITED(status)) {
        return apr_psprintf(p, "exited with status %d", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return apr_psprintf(p, "was killed by signal %d (%s)%s",
                            WTERMSIG(status), strsignal(WTERMSIG(status)),
                            WCOREDUMP(status) ? ", core dumped" : "");
    }
    return apr_psprintf(p, "ended with wait status %d", status);
}

/* The status handed to an other-child callback: the MPM passes the exit
 * code or the number of the killing signal without saying which; APR's
 * own refresh passes a waitpid() status. */
static const char *sg_describe_status(apr_pool_t *p, int reason, int status)
{
    if (reason == APR_OC_REASON_LOST) {
        return "was lost (it is no longer a child of Apache)";
    }
    if (status == 0) {
        return "exited with status 0";
    }
    if (status > 0 && status < NSIG) {
        return apr_psprintf(p,
                            "exited with status %d or was killed by signal "
                            "%d (%s)",
                            status, status, strsignal(status));
    }
    if (status > 0 && status < 256) {
        return apr_psprintf(p, "exited with status %d", status);
    }
    return sg_describe_wait(p, status);
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
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->server,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT " %s "
                     "while Apache stops",
                     d->group->name, d->proc.pid, how);
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
        /* Apache stops or restarts outright: ask the supervisor to drain,
         * and drop the parent's copy of the socket so that connections
         * nobody will accept any more are reset instead of hanging. */
        sg_term(d);
        sg_close_listener(d);
        break;
    case APR_OC_REASON_UNREGISTER:
        d->registered = 0;
        sg_term(d);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------
 * Supervisors of an ended generation that still drain.  On a restart the
 * parent does not wait for them (Apache resumes at once with the new
 * generation's supervisors); they are remembered in memory that outlives
 * pconf, reaped by the next generation and SIGKILLed when they overstay.
 */

#define SG_RETAINED_KEY "mod_swift_gateway.draining"
#define SG_MAX_DRAINING 128

typedef struct {
    pid_t pid; /* 0: free slot */
    int kill_sent;
    int shutdown_timeout;
    apr_time_t deadline; /* SIGKILL after it */
    char group[80];
} sg_drain_entry;

typedef struct {
    sg_drain_entry e[SG_MAX_DRAINING];
} sg_retained;

static sg_retained *sg_get_retained(void)
{
    sg_retained *rt = ap_retained_data_get(SG_RETAINED_KEY);

    if (!rt) {
        rt = ap_retained_data_create(SG_RETAINED_KEY, sizeof(*rt));
    }
    return rt;
}

static void sg_drain_maintenance(int reason, void *data, int status)
{
    sg_drain_entry *e = data;

    if (reason == APR_OC_REASON_DEATH || reason == APR_OC_REASON_LOST) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                     " of an earlier generation %s after draining",
                     e->group, e->pid,
                     sg_describe_status(sg_gen_pool, reason, status));
        e->pid = 0;
        apr_proc_other_child_unregister(e);
    }
}

/* post_config: watch the draining supervisors of earlier generations. */
static void sg_adopt_draining(apr_pool_t *pconf)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->e[i];
        apr_proc_t *proc;

        if (!e->pid) {
            continue;
        }
        proc = apr_pcalloc(pconf, sizeof(*proc));
        proc->pid = e->pid;
        apr_proc_other_child_register(proc, sg_drain_maintenance, e, NULL,
                                      pconf);
    }
}

/* One step of stopping a supervisor: 1 when it is gone (or given up). */
static int sg_stop_step(server_rec *s, const char *group, pid_t pid,
                        int shutdown_timeout, apr_time_t *deadline,
                        int *kill_sent, apr_time_t now, apr_pool_t *p)
{
    int status = 0;
    pid_t w = waitpid(pid, &status, WNOHANG);

    if (w == pid || (w < 0 && errno == ECHILD)) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                     " %s while Apache stops",
                     group, pid,
                     w < 0 ? "was already reaped"
                           : sg_describe_wait(p, status));
        return 1;
    }
    if (now < *deadline) {
        return 0;
    }
    if (!*kill_sent) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "SG0216: group %s: supervisor pid %" APR_PID_T_FMT
                     " still "
                     "runs %d s after SIGTERM (shutdown-timeout=%d); sending "
                     "SIGKILL",
                     group, pid, shutdown_timeout + 1, shutdown_timeout);
        kill(pid, SIGKILL);
        *kill_sent = 1;
        *deadline = now + apr_time_from_sec(SG_KILL_GRACE);
        return 0;
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s,
                 "SG0217: group %s: supervisor pid %" APR_PID_T_FMT " did not "
                 "exit even after SIGKILL; giving up on it",
                 group, pid);
    return 1;
}

/* Retry forks that failed and SIGKILL draining supervisors that overstay;
 * runs in the parent's main loop (about every ten seconds). */
int sg_daemon_monitor(apr_pool_t *p, server_rec *s)
{
    apr_time_t now = apr_time_now();
    sg_retained *rt;
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
    rt = sg_get_retained();
    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->e[i];

        if (e->pid && !e->kill_sent && now >= e->deadline) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "SG0216: group %s: supervisor pid %" APR_PID_T_FMT
                         " of an earlier generation still runs after its "
                         "shutdown-timeout; sending SIGKILL",
                         e->group, e->pid);
            kill(e->pid, SIGKILL);
            e->kill_sent = 1;
        }
    }
    return DECLINED;
}

/* pconf cleanup, when a generation ends.  Every supervisor gets SIGTERM
 * and its socket is removed.  On a restart the still draining ones are
 * handed to the next generation; when Apache exits they (and those of
 * earlier generations) get shutdown-timeout + 1 s, then SIGKILL. */
static apr_status_t sg_daemons_cleanup(void *data)
{
    apr_array_header_t *daemons = data;
    apr_time_t now = apr_time_now();
    int exiting = ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_EXITING;
    sg_retained *rt = sg_get_retained();
    int i, left;

    if (getpid() != sg_parent_pid) {
        return APR_SUCCESS;
    }
    for (i = 0; i < daemons->nelts; ++i) {
        sg_daemon *d = APR_ARRAY_IDX(daemons, i, sg_daemon *);

        d->stopping = 1;
        d->restart_pending = 0;
        if (d->registered) {
            apr_proc_other_child_unregister(d); /* sends SIGTERM */
        }
        sg_term(d);
        d->deadline = now + apr_time_from_sec(d->group->shutdown_timeout + 1);
        sg_close_listener(d);
        if (unlink(d->group->socket_path) != 0 && errno != ENOENT) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, d->server,
                         "SG0219: group %s: cannot remove socket %s",
                         d->group->name, d->group->socket_path);
        }
    }

    if (!exiting) {
        int slot = 0;

        for (i = 0; i < daemons->nelts; ++i) {
            sg_daemon *d = APR_ARRAY_IDX(daemons, i, sg_daemon *);
            int status;

            if (!d->running) {
                continue;
            }
            if (waitpid(d->proc.pid, &status, WNOHANG) == d->proc.pid) {
                d->running = 0;
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, d->server,
                             "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                             " %s while Apache restarts",
                             d->group->name, d->proc.pid,
                             sg_describe_wait(d->pool, status));
                continue;
            }
            while (slot < SG_MAX_DRAINING && rt->e[slot].pid) {
                slot++;
            }
            if (slot == SG_MAX_DRAINING) {
                break; /* no room: wait for the rest below */
            }
            rt->e[slot].pid = d->proc.pid;
            rt->e[slot].kill_sent = d->kill_sent;
            rt->e[slot].shutdown_timeout = d->group->shutdown_timeout;
            rt->e[slot].deadline = d->deadline;
            apr_cpystrn(rt->e[slot].group, d->group->name,
                        sizeof(rt->e[slot].group));
            d->running = 0;
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, d->server,
                         "SG0215: group %s: supervisor pid %" APR_PID_T_FMT
                         " drains while Apache restarts",
                         d->group->name, rt->e[slot].pid);
        }
    }

    do {
        left = 0;
        now = apr_time_now();
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
        for (i = 0; exiting && i < SG_MAX_DRAINING; ++i) {
            sg_drain_entry *e = &rt->e[i];

            if (e->pid) {
                if (sg_stop_step(ap_server_conf, e->group, e->pid,
                                 e->shutdown_timeout, &e->deadline,
                                 &e->kill_sent, now, sg_gen_pool)) {
                    e->pid = 0;
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
 * Sockets
 */

static int sg_make_socket_dir(apr_pool_t *p, server_rec *s, const char *dir)
{
    struct stat st;
    int fd;
    uid_t owner = sg_am_root() ? ap_unixd_config.user_id : geteuid();
    gid_t group = sg_am_root() ? ap_unixd_config.group_id : getegid();

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        char *parent = apr_pstrdup(p, dir), *slash = strrchr(parent, '/');
        apr_status_t rv = APR_EGENERAL;

        if (errno == ENOENT && slash && slash != parent) {
            *slash = '\0';
            rv = apr_dir_make_recursive(parent,
                                        APR_FPROT_UREAD | APR_FPROT_UWRITE
                                            | APR_FPROT_UEXECUTE
                                            | APR_FPROT_GREAD
                                            | APR_FPROT_GEXECUTE
                                            | APR_FPROT_WREAD
                                            | APR_FPROT_WEXECUTE,
                                        p);
        }
        if (rv != APR_SUCCESS || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                         "SG0201: cannot create the socket directory %s; "
                         "create it or fix SwiftSocketPrefix",
                         dir);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0202: socket directory %s is not a directory (or is a "
                     "symbolic link); remove it or fix SwiftSocketPrefix",
                     dir);
        if (fd >= 0) {
            close(fd);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (st.st_uid != 0 && st.st_uid != owner && st.st_uid != geteuid()) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "SG0202: socket directory %s belongs to uid %ld, neither "
                     "root nor Apache's User; refusing to use it (remove it or "
                     "fix SwiftSocketPrefix)",
                     dir, (long)st.st_uid);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((sg_am_root() && fchown(fd, owner, group) != 0)
        || fchmod(fd, 0700) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0203: cannot give socket directory %s mode 0700 and "
                     "owner uid %ld",
                     dir, (long)owner);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    close(fd);
    return OK;
}

/* Remove "<pid>.<generation>.<group>.sock" files of Apache parents that no
 * longer exist (killed without cleanup). */
static void sg_remove_stale_sockets(apr_pool_t *p, server_rec *s,
                                    const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;

    if (!dh) {
        return;
    }
    while ((de = readdir(dh)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        apr_size_t n = strlen(de->d_name);

        if (end == de->d_name || *end != '.' || pid <= 0
            || pid == (long)getpid() || n < 5
            || strcmp(de->d_name + n - 5, ".sock")) {
            continue;
        }
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            const char *path = apr_pstrcat(p, dir, "/", de->d_name, NULL);

            if (unlink(path) == 0) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                             "SG0218: removed stale socket %s of a former "
                             "Apache (pid %ld)",
                             path, pid);
            }
        }
    }
    closedir(dh);
}

static int sg_make_socket(sg_daemon *d)
{
    struct sockaddr_un sa;
    const char *path = d->group->socket_path;
    mode_t omask;
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, d->server,
                     "SG0204: group %s: socket path %s is too long for a Unix "
                     "socket; use a shorter SwiftSocketPrefix",
                     d->group->name, path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, path, sizeof(sa.sun_path));

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, d->server,
                     "SG0205: group %s: cannot create a Unix socket",
                     d->group->name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, d->server,
                     "SG0219: group %s: cannot remove socket %s",
                     d->group->name, path);
    }
    omask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(omask);
    if (rc != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, d->server,
                     "SG0206: group %s: cannot bind socket %s", d->group->name,
                     path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (chmod(path, 0600) != 0
        || (sg_am_root()
            && chown(path, ap_unixd_config.user_id, ap_unixd_config.group_id)
                   != 0)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, d->server,
                     "SG0207: group %s: cannot give socket %s mode 0600 and "
                     "Apache's User as owner",
                     d->group->name, path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (listen(fd, d->group->listen_backlog) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, d->server,
                     "SG0208: group %s: cannot listen on socket %s",
                     d->group->name, path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    d->listen_fd = fd;
    return OK;
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
    SG_SETENV(env, p, "SWIFT_GATEWAY_DISPLAY_NAME", d->argv[0]);
    SG_SETENV(env, p, "LISTEN_FDS", "1");

    d->envp = apr_palloc(p, sizeof(char *) * (env->nelts + 2));
    for (i = 0; i < env->nelts; ++i) {
        d->envp[i] = (char *)APR_ARRAY_IDX(env, i, const char *);
    }
    d->listen_pid_env = apr_pcalloc(p, sizeof("LISTEN_PID=") + 24);
    memcpy(d->listen_pid_env, "LISTEN_PID=", sizeof("LISTEN_PID=") - 1);
    d->envp[i++] = d->listen_pid_env;
    d->envp[i] = NULL;
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
 * Hooks
 */

int sg_daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    const char *prefix;
    int generation = 0, i, rc;

    (void)plog;
    (void)ptemp;
    sg_daemons = NULL;

    /* The first pass only preflights the configuration; a configuration
     * test never gets here but check anyway. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG
        || ap_state_query(AP_SQ_RUN_MODE) != AP_SQ_RM_NORMAL) {
        return OK;
    }
    sg_parent_pid = getpid();
    sg_gen_pool = pconf;
    sg_daemons = apr_array_make(pconf, 4, sizeof(sg_daemon *));
    sg_adopt_draining(pconf);

    /* Registered before any fork: every supervisor started from here on
     * is stopped when this generation ends. */
    apr_pool_cleanup_register(pconf, sg_daemons, sg_daemons_cleanup,
                              apr_pool_cleanup_null);

    if (!sg_globals.groups || sg_globals.groups->nelts == 0) {
        return OK;
    }
    ap_mpm_query(AP_MPMQ_GENERATION, &generation);
    prefix = sg_socket_prefix(pconf, s);
    if ((rc = sg_make_socket_dir(pconf, s, prefix)) != OK) {
        return rc;
    }
    sg_remove_stale_sockets(ptemp, s, prefix);

    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        sg_daemon *d;

        if (!g->program) {
            continue; /* reported by check_config */
        }
        d = apr_pcalloc(pconf, sizeof(*d));
        d->group = g;
        d->server = g->server;
        d->pool = pconf;
        d->listen_fd = -1;
        g->daemon = d;
        g->socket_path = apr_psprintf(pconf, "%s/%ld.%d.%s.sock", prefix,
                                      (long)sg_parent_pid, generation, g->name);
        APR_ARRAY_PUSH(sg_daemons, sg_daemon *) = d;

        if ((rc = sg_make_socket(d)) != OK) {
            return rc;
        }
        if (!(g->token = sg_make_token(pconf, s))) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if ((rc = sg_prepare(d, pconf)) != OK) {
            return rc;
        }
        apr_pool_create(&d->oc_pool, pconf);
        apr_pool_tag(d->oc_pool, "swift_gateway_supervisor");
        if (sg_start(d) != APR_SUCCESS) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return OK;
}

/* Apache children never touch the listening sockets (their idle
 * connections to the groups are sg_pool.c's).  With -X the parent serves
 * requests itself: it keeps the sockets, since its supervisors may restart. */
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
            sg_close_listener(APR_ARRAY_IDX(sg_daemons, i, sg_daemon *));
        }
    }
}
