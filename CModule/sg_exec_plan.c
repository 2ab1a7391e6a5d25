/*
 * mod_swift_gateway: what the Apache parent execs as a group's supervisor.
 *
 * The plan is prepared in the parent, before the fork, so that the child
 * between fork and exec only makes system calls (sg_daemon.c): the user
 * and groups it becomes, its home, its argv, and its environment: a clean
 * one, the group's env= values, then the variables of the contract with the
 * supervisor (docs/architecture.md).  The plan's fingerprint tells whether
 * a supervisor kept across a restart of Apache still fits its group.
 */

#include "sg_exec_plan.h"
#include "sg_options.h"

#include "http_core.h"
#include "http_log.h"
#include "unixd.h"

#include "apr_md5.h"
#include "apr_strings.h"

#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

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
static void sg_fingerprint(sg_exec_plan *plan, const sg_group *g)
{
    apr_md5_ctx_t md5;
    struct stat st;
    long ids[5];
    int i;

    apr_md5_init(&md5);
    sg_md5_string(&md5, plan->program);
    for (i = 0; plan->argv[i]; ++i) {
        sg_md5_string(&md5, plan->argv[i]);
    }
    sg_md5_string(&md5, "\n");
    for (i = 0; plan->envp[i] != plan->listen_pid_env; ++i) {
        sg_md5_string(&md5, plan->envp[i]);
    }
    sg_md5_string(&md5, "\n");
    ids[0] = (long)plan->uid;
    ids[1] = (long)plan->gid;
    ids[2] = g->umask;
    ids[3] = plan->ngroups;
    ids[4] = plan->drop_privileges;
    apr_md5_update(&md5, ids, sizeof(ids));
    apr_md5_update(&md5, plan->groups, sizeof(gid_t) * plan->ngroups);
    sg_md5_string(&md5, plan->home);
    apr_md5_final(plan->config_digest, &md5);

    memset(&plan->program_id, 0, sizeof(plan->program_id));
    if (stat(plan->program, &st) == 0) {
        plan->program_id.dev = st.st_dev;
        plan->program_id.ino = st.st_ino;
        plan->program_id.size = st.st_size;
        plan->program_id.mtime = apr_time_from_sec(st.st_mtim.tv_sec)
                                 + st.st_mtim.tv_nsec / 1000;
    }
}

int sg_exec_plan_prepare(sg_exec_plan *plan, const sg_group *g, server_rec *s,
                         apr_pool_t *p)
{
    struct passwd *pw;
    apr_array_header_t *env = apr_array_make(p, 32, sizeof(const char *));
    uid_t peer_uid;
    int i;

    plan->program = g->program;
    if (geteuid() == 0) {
        plan->drop_privileges = 1;
        plan->uid = g->user ? g->uid : ap_unixd_config.user_id;
        plan->gid = g->group ? g->gid : ap_unixd_config.group_id;
        peer_uid = ap_unixd_config.user_id;
        if (plan->uid == (uid_t)-1 || plan->gid == (gid_t)-1) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "SG0123: group %s: Apache's User or Group is not set "
                         "(uid %ld gid %ld); set User and Group, or user= and "
                         "group=",
                         g->name, (long)plan->uid, (long)plan->gid);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (plan->uid == 0 || plan->gid == 0) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                         "SG0121: group %s would run as root (uid %ld gid %ld); "
                         "set user= and group= or Apache's User/Group to an "
                         "unprivileged account",
                         g->name, (long)plan->uid, (long)plan->gid);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    else {
        plan->drop_privileges = 0;
        plan->uid = geteuid();
        plan->gid = getegid();
        peer_uid = geteuid();
        if (g->user || g->group || g->supp_groups) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                         "SG0101: group %s (%s): user=, group= and "
                         "supplementary-groups= are ignored because Apache was "
                         "not started as root; it runs as uid %ld",
                         g->name, g->defined_at, (long)plan->uid);
        }
    }

    pw = getpwuid(plan->uid);
    plan->user_name = pw ? apr_pstrdup(p, pw->pw_name)
                         : apr_psprintf(p, "#%ld", (long)plan->uid);
    plan->home_explicit = g->home != NULL;
    plan->home = g->home ? g->home
                 : (pw && pw->pw_dir && *pw->pw_dir)
                     ? apr_pstrdup(p, pw->pw_dir)
                     : "/";

    if (g->supp_groups) {
        plan->ngroups = g->supp_groups->nelts + 1;
        plan->groups = apr_palloc(p, sizeof(gid_t) * plan->ngroups);
        plan->groups[0] = plan->gid;
        for (i = 0; i < g->supp_groups->nelts; ++i) {
            plan->groups[i + 1] = APR_ARRAY_IDX(g->supp_groups, i, gid_t);
        }
    }
    else if (pw && plan->drop_privileges) {
        int n = 32;

        for (;;) {
            int want = n;

            plan->groups = apr_palloc(p, sizeof(gid_t) * n);
            if (getgrouplist(pw->pw_name, plan->gid, plan->groups, &want)
                >= 0) {
                plan->ngroups = want;
                break;
            }
            if (want <= n || n > 65536) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                             "SG0122: group %s: cannot list the groups of "
                             "user %s",
                             g->name, pw->pw_name);
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            n = want;
        }
    }
    else {
        plan->ngroups = 1;
        plan->groups = apr_palloc(p, sizeof(gid_t));
        plan->groups[0] = plan->gid;
    }

    /* argv: display name, then arguments= */
    plan->argv = apr_palloc(p, sizeof(char *) * (g->arguments->nelts + 2));
    plan->argv[0] = (char *)sg_display_name(p, g);
    for (i = 0; i < g->arguments->nelts; ++i) {
        plan->argv[i + 1] = (char *)APR_ARRAY_IDX(g->arguments, i,
                                                  const char *);
    }
    plan->argv[i + 1] = NULL;

    /* a clean environment, env= values, then the contract's variables */
    SG_SETENV(env, p, "PATH", "/usr/local/bin:/usr/bin:/bin");
    SG_SETENV(env, p, "HOME", plan->home);
    SG_SETENV(env, p, "USER", plan->user_name);
    SG_SETENV(env, p, "LOGNAME", plan->user_name);
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
    SG_SETENV(env, p, "SWIFT_GATEWAY_DISPLAY_NAME", plan->argv[0]);
    SG_SETENV(env, p, "SWIFT_GATEWAY_PROGRAM", g->program);
    SG_SETENV(env, p, "SWIFT_GATEWAY_RELOAD", g->reload ? "1" : "0");
    SG_SETENV(env, p, "SWIFT_GATEWAY_RESTART_FILE",
              g->restart_file ? g->restart_file : "");
    SG_SETENV(env, p, "SWIFT_GATEWAY_MAXIMUM_PROCESSES",
              apr_itoa(p, sg_group_maximum_processes(g)));
    SG_SETENV(env, p, "SWIFT_GATEWAY_LOG_LEVEL", sg_log_level_name(g->server));
    SG_SETENV(env, p, "SWIFT_GATEWAY_RETIRE_FD", apr_itoa(p, SG_RETIRE_FD));
    /* Set even when the board could not be made (SG0601): the supervisor
     * then says so too, and makes one of its own. */
    SG_SETENV(env, p, "SWIFT_GATEWAY_SCOREBOARD_FD", apr_itoa(p, SG_BOARD_FD));
    SG_SETENV(env, p, "LISTEN_FDS", "1");

    plan->listen_pid_env = apr_pcalloc(p, sizeof("LISTEN_PID=") + 24);
    memcpy(plan->listen_pid_env, "LISTEN_PID=", sizeof("LISTEN_PID=") - 1);
    plan->envp = sg_envp(env, p, plan->listen_pid_env);
    SG_SETENV(env, p, "SWIFT_GATEWAY_PREDECESSOR_FD",
              apr_itoa(p, SG_PREDECESSOR_FD));
    plan->envp_handover = sg_envp(env, p, plan->listen_pid_env);
    sg_fingerprint(plan, g);
    return OK;
}
