/*
 * mod_swift_gateway: what Apache's parent remembers across its restarts.
 *
 * `apachectl graceful` and `apachectl restart` clear pconf and read the
 * configuration again: a new generation.  A group's socket, token and
 * supervisor are kept for the next generation (sg_kept_group), so that
 * Apache's children of the old generation, still finishing their requests,
 * find the same socket, and a supervisor whose configuration did not change
 * keeps running.  Supervisors on their way out (a group no longer
 * configured, one replaced by a successor) stay on a list until they exit.
 * Both live in ap_retained_data, which survives pconf; file descriptors
 * survive anyway (the parent never execs).
 *
 * This file only keeps the records and stops processes; sg_daemon.c
 * decides what to keep and what to start.
 */

#include "sg_generations.h"

#include "http_core.h"
#include "http_main.h"

#include "apr_strings.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

#define SG_RETAINED_KEY "mod_swift_gateway.generations"
#define SG_MAX_DRAINING 128
#define SG_MAX_KEPT     256
#define SG_KILL_GRACE   2 /* seconds to reap after SIGKILL */

typedef struct {
    pid_t pid; /* 0: free slot */
    int kill_sent;
    int shutdown_timeout;
    apr_time_t deadline; /* SIGKILL after it; none while retiring */
    int retiring;        /* replaced: exits by itself once told */
    int retire_fd;       /* retiring: write end of its retire pipe, or -1 */
    pid_t successor;     /* retiring: the supervisor that replaced it */
    char group[SG_SOCKET_PATH_MAX];
} sg_drain_entry;

typedef struct {
    sg_drain_entry drain[SG_MAX_DRAINING];
    sg_kept_group kept[SG_MAX_KEPT];
} sg_retained;

static sg_retained *sg_get_retained(void)
{
    sg_retained *rt = ap_retained_data_get(SG_RETAINED_KEY);

    if (!rt) {
        rt = ap_retained_data_create(SG_RETAINED_KEY, sizeof(*rt));
    }
    return rt;
}

/* ------------------------------------------------------------------------
 * Wait statuses
 */

const char *sg_describe_wait(apr_pool_t *p, int status)
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

/* The MPM passes the exit code or the number of the killing signal without
 * saying which; APR's own refresh passes a waitpid() status. */
const char *sg_describe_status(apr_pool_t *p, int reason, int status)
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

/* ------------------------------------------------------------------------
 * Supervisors on their way out
 */

static void sg_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The successor of these retiring supervisors exited while on its way out
 * itself (replaced in turn, which it only is once its own successor's
 * workers accept, or drained): close their retire pipes, whose end of file
 * retires them. */
static void sg_successor_gone(sg_retained *rt, pid_t successor)
{
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->drain[i];

        if (e->pid && e->retiring && e->successor == successor) {
            sg_close_fd(&e->retire_fd);
        }
    }
}

static void sg_drain_maintenance(int reason, void *data, int status)
{
    sg_drain_entry *e = data;
    apr_pool_t *p = ap_server_conf->process->pconf;

    if (reason != APR_OC_REASON_DEATH && reason != APR_OC_REASON_LOST) {
        return; /* Apache stops: sg_drain_stop_all() does it */
    }
    if (e->retiring) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ap_server_conf,
                     "SG0224: group %s: supervisor pid %" APR_PID_T_FMT
                     ", replaced by pid %" APR_PID_T_FMT
                     " at a restart of Apache, %s (retired)",
                     e->group, e->pid, e->successor,
                     sg_describe_status(p, reason, status));
        sg_close_fd(&e->retire_fd);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     "SG0214: group %s: supervisor pid %" APR_PID_T_FMT
                     " of an earlier generation %s after draining",
                     e->group, e->pid, sg_describe_status(p, reason, status));
    }
    sg_successor_gone(sg_get_retained(), e->pid);
    e->pid = 0;
    e->retiring = 0;
    apr_proc_other_child_unregister(e);
}

static void sg_drain_register(apr_pool_t *pconf, sg_drain_entry *e)
{
    apr_proc_t *proc = apr_pcalloc(pconf, sizeof(*proc));

    proc->pid = e->pid;
    apr_proc_other_child_register(proc, sg_drain_maintenance, e, NULL, pconf);
}

static sg_drain_entry *sg_drain_slot(const char *group, pid_t pid,
                                     int shutdown_timeout)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->drain[i];

        if (!e->pid) {
            memset(e, 0, sizeof(*e));
            e->pid = pid;
            e->shutdown_timeout = shutdown_timeout;
            e->retire_fd = -1;
            apr_cpystrn(e->group, group, sizeof(e->group));
            return e;
        }
    }
    return NULL;
}

void sg_drain_add(apr_pool_t *pconf, const char *group, pid_t pid,
                  int shutdown_timeout, apr_time_t deadline)
{
    sg_drain_entry *e = sg_drain_slot(group, pid, shutdown_timeout);

    if (!e) {
        /* Not watched: it still drains, and PR_SET_PDEATHSIG ends it
         * with Apache at the latest. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "SG0226: group %s: supervisor pid %" APR_PID_T_FMT
                     " drains unwatched: more than %d supervisors are on "
                     "their way out",
                     group, pid, SG_MAX_DRAINING);
        return;
    }
    e->deadline = deadline;
    if (pconf) {
        sg_drain_register(pconf, e);
    }
}

void sg_retire_add(apr_pool_t *pconf, const char *group, pid_t pid,
                   int shutdown_timeout, int retire_fd, pid_t successor)
{
    sg_drain_entry *e = sg_drain_slot(group, pid, shutdown_timeout);

    if (!e) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, ap_server_conf,
                     "SG0226: group %s: supervisor pid %" APR_PID_T_FMT
                     " retires unwatched: more than %d supervisors are on "
                     "their way out",
                     group, pid, SG_MAX_DRAINING);
        if (retire_fd >= 0) {
            close(retire_fd);
        }
        return;
    }
    e->retiring = 1;
    e->retire_fd = retire_fd;
    e->successor = successor;
    if (pconf) {
        sg_drain_register(pconf, e);
    }
}

static sg_drain_entry *sg_retiring(pid_t pid)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; pid && i < SG_MAX_DRAINING; ++i) {
        if (rt->drain[i].pid == pid && rt->drain[i].retiring) {
            return &rt->drain[i];
        }
    }
    return NULL;
}

int sg_retire_fd(pid_t pid)
{
    sg_drain_entry *e = sg_retiring(pid);

    return e ? e->retire_fd : -1;
}

void sg_retire_successor(pid_t pid, pid_t successor)
{
    sg_drain_entry *e = sg_retiring(pid);

    if (e) {
        e->successor = successor;
    }
}

/* Drain a retiring supervisor now (SIGTERM): its group is gone. */
static void sg_retire_now(sg_drain_entry *e, apr_time_t now)
{
    kill(e->pid, SIGTERM);
    sg_close_fd(&e->retire_fd);
    e->retiring = 0;
    e->deadline = now + apr_time_from_sec(e->shutdown_timeout + 1);
}

void sg_drain_adopt(apr_pool_t *pconf)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        if (rt->drain[i].pid) {
            sg_drain_register(pconf, &rt->drain[i]);
        }
    }
}

void sg_drain_monitor(server_rec *s, apr_time_t now)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->drain[i];

        if (e->pid && !e->retiring && !e->kill_sent && now >= e->deadline) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "SG0216: group %s: supervisor pid %" APR_PID_T_FMT
                         " of an earlier generation still runs after its "
                         "shutdown-timeout; sending SIGKILL",
                         e->group, e->pid);
            kill(e->pid, SIGKILL);
            e->kill_sent = 1;
        }
    }
}

void sg_drain_stop_all(apr_time_t now)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->drain[i];

        if (e->pid && e->retiring) {
            sg_retire_now(e, now);
        }
    }
}

int sg_drain_stop_step(apr_time_t now, apr_pool_t *p)
{
    sg_retained *rt = sg_get_retained();
    int i, left = 0;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        sg_drain_entry *e = &rt->drain[i];

        if (!e->pid) {
            continue;
        }
        if (sg_stop_step(ap_server_conf, e->group, e->pid, e->shutdown_timeout,
                         &e->deadline, &e->kill_sent, now, p)) {
            e->pid = 0;
        }
        else {
            left++;
        }
    }
    return left;
}

int sg_stop_step(server_rec *s, const char *group, pid_t pid,
                 int shutdown_timeout, apr_time_t *deadline, int *kill_sent,
                 apr_time_t now, apr_pool_t *p)
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

/* ------------------------------------------------------------------------
 * Groups kept across a restart
 */

int sg_kept_put(const sg_kept_group *k)
{
    sg_retained *rt = sg_get_retained();
    int i;

    if (strlen(k->name) >= sizeof(rt->kept[0].name)
        || strlen(k->socket_path) >= sizeof(rt->kept[0].socket_path)) {
        return 0;
    }
    for (i = 0; i < SG_MAX_KEPT; ++i) {
        if (!rt->kept[i].in_use) {
            rt->kept[i] = *k;
            rt->kept[i].in_use = 1;
            return 1;
        }
    }
    return 0;
}

int sg_kept_take(const char *name, const char *dir, sg_kept_group *out)
{
    sg_retained *rt = sg_get_retained();
    apr_size_t dlen = strlen(dir);
    int i;

    for (i = 0; i < SG_MAX_KEPT; ++i) {
        sg_kept_group *k = &rt->kept[i];

        if (k->in_use && !strcmp(k->name, name)
            && !strncmp(k->socket_path, dir, dlen)
            && k->socket_path[dlen] == '/'
            && !strchr(k->socket_path + dlen + 1, '/')) {
            *out = *k;
            k->in_use = 0;
            return 1;
        }
    }
    return 0;
}

void sg_kept_release_all(apr_pool_t *p, apr_pool_t *watch, server_rec *s,
                         const char *why)
{
    sg_retained *rt = sg_get_retained();
    apr_time_t now = apr_time_now();
    int i, status;

    for (i = 0; i < SG_MAX_KEPT; ++i) {
        sg_kept_group *k = &rt->kept[i];

        if (!k->in_use) {
            continue;
        }
        k->in_use = 0;
        if (sg_retiring(k->predecessor)) {
            sg_retire_now(sg_retiring(k->predecessor), now);
        }
        if (k->pid && waitpid(k->pid, &status, WNOHANG) == 0) {
            kill(k->pid, SIGTERM);
            sg_drain_add(watch, k->name, k->pid, k->shutdown_timeout,
                         now + apr_time_from_sec(k->shutdown_timeout + 1));
        }
        else {
            k->pid = 0;
        }
        sg_close_fd(&k->listen_fd);
        sg_close_fd(&k->retire_fd);
        sg_board_release(&k->board);
        if (unlink(k->socket_path) != 0 && errno != ENOENT) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                         "SG0219: group %s: cannot remove socket %s", k->name,
                         k->socket_path);
        }
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                     "SG0223: group %s is gone (%s): %s, socket %s removed",
                     k->name, why,
                     k->pid ? apr_psprintf(p,
                                           "its supervisor pid %" APR_PID_T_FMT
                                           " drains (SIGTERM)",
                                           k->pid)
                            : "no supervisor ran",
                     k->socket_path);
    }
}

void sg_generations_child_init(void)
{
    sg_retained *rt = sg_get_retained();
    int i;

    for (i = 0; i < SG_MAX_DRAINING; ++i) {
        if (rt->drain[i].pid && rt->drain[i].retiring) {
            sg_close_fd(&rt->drain[i].retire_fd);
        }
    }
}
