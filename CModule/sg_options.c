/*
 * mod_swift_gateway: the options of SwiftDaemonProcess.
 *
 * "NAME option=value ...": each option is an entry of sg_options, which
 * says what kind of value it takes and where in sg_group it goes; the few
 * that need more than a number, a size, on/off or a string have a parser
 * of their own.  Defaults are sg_new_group's.
 */

#include "sg_affinity.h"
#include "sg_body.h"
#include "sg_options.h"

#include "http_config.h"

#include "apr_strings.h"
#include "apr_lib.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A group with every option at its default. */
sg_group *sg_new_group(apr_pool_t *p, const char *name)
{
    sg_group *g = apr_pcalloc(p, sizeof(*g));

    g->name = name;
    g->arguments = apr_array_make(p, 4, sizeof(const char *));
    g->env = apr_array_make(p, 4, sizeof(const char *));
    g->processes = 1;
    g->threads = 15;
    g->listen_backlog = 128;
    g->umask = -1;
    g->connect_timeout = 15;
    g->socket_timeout = 60;
    g->graceful_timeout = 15;
    g->shutdown_timeout = 5;
    g->request_timeout = 60;
    g->queue_timeout = 45;
    g->startup_timeout = 15;
    g->header_buffer_size = 32768;
    g->body_read_ahead = SG_BODY_AHEAD;
    g->reload = 1;
    g->executor = SG_EXECUTOR_EVENT_LOOP;
    return g;
}

/* Resolve and check an executable; on success *path is absolute and
 * *real its realpath(). */
const char *sg_check_program(cmd_parms *cmd, const char *arg, const char **path,
                             const char **real)
{
    struct stat st;
    char *resolved;
    const char *p = ap_server_root_relative(cmd->pool, arg);

    if (!p) {
        return apr_psprintf(cmd->pool, "program '%s' is not a valid path", arg);
    }
    if (stat(p, &st) != 0) {
        return apr_psprintf(cmd->pool, "program '%s': %s", p, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return apr_psprintf(cmd->pool, "program '%s' is not a regular file", p);
    }
    if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))) {
        return apr_psprintf(cmd->pool,
                            "program '%s' is not executable "
                            "(chmod +x it)",
                            p);
    }
    resolved = realpath(p, NULL);
    if (!resolved) {
        return apr_psprintf(cmd->pool, "program '%s': %s", p, strerror(errno));
    }
    *real = apr_pstrdup(cmd->pool, resolved);
    free(resolved);
    *path = p;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Words and values: quoting, whole numbers, sizes, users and groups
 */

/* Split the next word off *line.  Words are separated by white space; a
 * single- or double-quoted part keeps its white space (the quotes are
 * removed; inside quotes a backslash escapes the quote or a backslash), so
 * both arguments="-a -b" and "arguments=-a -b" work. */
const char *sg_next_word(apr_pool_t *p, const char **line, char **word)
{
    const char *s = *line;
    char *o;

    while (apr_isspace(*s)) {
        ++s;
    }
    *word = NULL;
    if (!*s) {
        *line = s;
        return NULL;
    }
    *word = o = apr_palloc(p, strlen(s) + 1);
    while (*s && !apr_isspace(*s)) {
        if (*s == '"' || *s == '\'') {
            char q = *s++;

            while (*s && *s != q) {
                if (*s == '\\' && (s[1] == q || s[1] == '\\')) {
                    ++s;
                }
                *o++ = *s++;
            }
            if (*s != q) {
                return "unterminated quote";
            }
            ++s;
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    *line = s;
    return NULL;
}

static const char *sg_parse_int(apr_pool_t *p, const char *v, int min, int max,
                                int *out)
{
    apr_int64_t n;
    char *end;

    if (*v == '-') {
        return apr_psprintf(p,
                            "'%s' is negative; expected a whole number "
                            "from %d to %d",
                            v, min, max);
    }
    if (!apr_isdigit(*v)) {
        return apr_psprintf(p, "'%s' is not a whole number; expected %d to %d",
                            v, min, max);
    }
    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (*end) {
        return apr_psprintf(p,
                            "'%s' is not a whole number (unexpected '%s'); "
                            "expected %d to %d",
                            v, end, min, max);
    }
    if (errno || n < min || n > max) {
        return apr_psprintf(p, "%s is out of range; expected %d to %d", v, min,
                            max);
    }
    *out = (int)n;
    return NULL;
}

/* Sizes: a whole number of bytes with an optional K, M or G suffix (powers
 * of 1024, either case). */
static const char *sg_parse_size(apr_pool_t *p, const char *v, apr_off_t min,
                                 apr_off_t *out)
{
    apr_int64_t n, mult = 1;
    char *end;

    if (*v == '-') {
        return apr_psprintf(p,
                            "'%s' is negative; expected a size such as "
                            "32768, 32K, 512M or 2G",
                            v);
    }
    if (!apr_isdigit(*v)) {
        return apr_psprintf(p,
                            "'%s' is not a size; expected a number with an "
                            "optional K, M or G suffix",
                            v);
    }
    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (errno) {
        return apr_psprintf(p, "'%s' is too large", v);
    }
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = APR_INT64_C(1) << 10;
        ++end;
        break;
    case 'm':
    case 'M':
        mult = APR_INT64_C(1) << 20;
        ++end;
        break;
    case 'g':
    case 'G':
        mult = APR_INT64_C(1) << 30;
        ++end;
        break;
    default:
        return apr_psprintf(p, "'%s' has a bad size suffix '%s'; use K, M or G",
                            v, end);
    }
    if (*end) {
        return apr_psprintf(p, "'%s' has a bad size suffix; use K, M or G", v);
    }
    if (n > APR_INT64_MAX / mult) {
        return apr_psprintf(p, "'%s' is too large", v);
    }
    n *= mult;
    if (n < min) {
        return apr_psprintf(p,
                            "'%s' is too small; the minimum is %" APR_OFF_T_FMT,
                            v, min);
    }
    *out = (apr_off_t)n;
    return NULL;
}

static const char *sg_parse_user(apr_pool_t *p, const char *v, uid_t *uid)
{
    struct passwd *pw;

    if (*v == '#') {
        int n;
        const char *err = sg_parse_int(p, v + 1, 0, INT_MAX, &n);

        if (err) {
            return err;
        }
        *uid = (uid_t)n;
    }
    else if ((pw = getpwnam(v)) != NULL) {
        *uid = pw->pw_uid;
    }
    else {
        return apr_psprintf(p, "there is no user '%s'", v);
    }
    if (*uid == 0) {
        return apr_psprintf(p,
                            "'%s' is root (uid 0); process groups never run "
                            "as root, pick an unprivileged user",
                            v);
    }
    return NULL;
}

static const char *sg_parse_group(apr_pool_t *p, const char *v, gid_t *gid)
{
    struct group *gr;

    if (*v == '#') {
        int n;
        const char *err = sg_parse_int(p, v + 1, 0, INT_MAX, &n);

        if (err) {
            return err;
        }
        *gid = (gid_t)n;
    }
    else if ((gr = getgrnam(v)) != NULL) {
        *gid = gr->gr_gid;
    }
    else {
        return apr_psprintf(p, "there is no group '%s'", v);
    }
    if (*gid == 0) {
        return apr_psprintf(p,
                            "'%s' is the root group (gid 0), which is refused",
                            v);
    }
    return NULL;
}

/* Variables the module sets for the supervisor (docs/architecture.md). */
static const char *const sg_reserved_env_names[] =
    {"SWIFT_GATEWAY_ROLE",
     "SWIFT_GATEWAY_GROUP",
     "SWIFT_GATEWAY_TOKEN",
     "SWIFT_GATEWAY_PEER_UID",
     "SWIFT_GATEWAY_PROCESSES",
     "SWIFT_GATEWAY_THREADS",
     "SWIFT_GATEWAY_LISTEN_BACKLOG",
     "SWIFT_GATEWAY_SOCKET",
     "SWIFT_GATEWAY_GRACEFUL_TIMEOUT",
     "SWIFT_GATEWAY_SHUTDOWN_TIMEOUT",
     "SWIFT_GATEWAY_QUEUE_TIMEOUT",
     "SWIFT_GATEWAY_AFFINITY_COOKIE",
     "SWIFT_GATEWAY_MAXIMUM_REQUESTS",
     "SWIFT_GATEWAY_RESTART_INTERVAL",
     "SWIFT_GATEWAY_INACTIVITY_TIMEOUT",
     "SWIFT_GATEWAY_REQUEST_TIMEOUT",
     "SWIFT_GATEWAY_STARTUP_TIMEOUT",
     "SWIFT_GATEWAY_MEMORY_LIMIT",
     "SWIFT_GATEWAY_VIRTUAL_MEMORY_LIMIT",
     "SWIFT_GATEWAY_CPU_TIME_LIMIT",
     "SWIFT_GATEWAY_EXECUTOR",
     "SWIFT_GATEWAY_DISPLAY_NAME",
     "SWIFT_GATEWAY_PROGRAM",
     "SWIFT_GATEWAY_RELOAD",
     "SWIFT_GATEWAY_RESTART_FILE",
     "SWIFT_GATEWAY_MAXIMUM_PROCESSES",
     "SWIFT_GATEWAY_LOG_LEVEL",
     "SWIFT_GATEWAY_RETIRE_FD",
     "SWIFT_GATEWAY_PREDECESSOR_FD",
     "SWIFT_GATEWAY_SCOREBOARD_FD",
     "LISTEN_FDS",
     "LISTEN_PID",
     "LISTEN_FDNAMES",
     NULL};

static int sg_reserved_env(const char *name, apr_size_t len)
{
    int i;

    for (i = 0; sg_reserved_env_names[i]; ++i) {
        if (strlen(sg_reserved_env_names[i]) == len
            && !strncmp(sg_reserved_env_names[i], name, len)) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * The options that need a parser of their own
 */

static const char *sg_opt_program(cmd_parms *cmd, sg_group *g, const char *val)
{
    const char *err = sg_check_program(cmd, val, &g->program, &g->program_real);

    if (!err) {
        g->program_explicit = 1;
    }
    return err;
}

static const char *sg_opt_arguments(cmd_parms *cmd, sg_group *g,
                                    const char *val)
{
    char *copy = apr_pstrdup(cmd->pool, val), *state = NULL, *tok;

    for (tok = apr_strtok(copy, " \t\r\n", &state); tok;
         tok = apr_strtok(NULL, " \t\r\n", &state)) {
        APR_ARRAY_PUSH(g->arguments, const char *) = tok;
    }
    return NULL;
}

static const char *sg_opt_env(cmd_parms *cmd, sg_group *g, const char *val)
{
    apr_pool_t *p = cmd->pool;
    const char *eq = strchr(val, '=');
    apr_size_t len = eq ? (apr_size_t)(eq - val) : strlen(val);
    apr_size_t k;

    if (!eq || len == 0) {
        return apr_psprintf(p, "'%s' must be written env=NAME=VALUE", val);
    }
    for (k = 0; k < len; ++k) {
        if (!(apr_isalnum(val[k]) || val[k] == '_') || apr_isdigit(val[0])) {
            return apr_psprintf(p,
                                "'%.*s' is not a valid environment "
                                "variable name",
                                (int)len, val);
        }
    }
    if (sg_reserved_env(val, len)) {
        return apr_psprintf(p,
                            "'%.*s' is reserved for the gateway and "
                            "cannot be set",
                            (int)len, val);
    }
    APR_ARRAY_PUSH(g->env, const char *) = val;
    return NULL;
}

static const char *sg_opt_user(cmd_parms *cmd, sg_group *g, const char *val)
{
    g->user = val;
    return sg_parse_user(cmd->pool, val, &g->uid);
}

static const char *sg_opt_group(cmd_parms *cmd, sg_group *g, const char *val)
{
    g->group = val;
    return sg_parse_group(cmd->pool, val, &g->gid);
}

static const char *sg_opt_supplementary_groups(cmd_parms *cmd, sg_group *g,
                                               const char *val)
{
    apr_pool_t *p = cmd->pool;
    char *copy = apr_pstrdup(p, val), *state = NULL, *tok;
    const char *err;

    g->supp_groups = apr_array_make(p, 4, sizeof(gid_t));
    g->supp_groups_spec = val;
    for (tok = apr_strtok(copy, ",", &state); tok;
         tok = apr_strtok(NULL, ",", &state)) {
        gid_t gid;

        if ((err = sg_parse_group(p, tok, &gid)) != NULL) {
            return err;
        }
        APR_ARRAY_PUSH(g->supp_groups, gid_t) = gid;
    }
    return NULL;
}

static const char *sg_opt_home(cmd_parms *cmd, sg_group *g, const char *val)
{
    struct stat st;
    const char *dir = ap_server_root_relative(cmd->pool, val);

    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return apr_psprintf(cmd->pool, "'%s' is not an existing directory",
                            val);
    }
    g->home = dir;
    return NULL;
}

/* A file a deploy touches; it need not exist yet. */
static const char *sg_opt_restart_file(cmd_parms *cmd, sg_group *g,
                                       const char *val)
{
    const char *path = *val ? ap_server_root_relative(cmd->pool, val) : NULL;

    if (!path || *path != '/') {
        return apr_psprintf(cmd->pool, "'%s' is not a valid path", val);
    }
    g->restart_file = path;
    return NULL;
}

static const char *sg_opt_umask(cmd_parms *cmd, sg_group *g, const char *val)
{
    char *end;
    long m;
    const char *c;

    for (c = val; *c; ++c) {
        if (*c < '0' || *c > '7') {
            return apr_psprintf(cmd->pool,
                                "'%s' is not an octal umask such "
                                "as 0022",
                                val);
        }
    }
    m = strtol(val, &end, 8);
    if (!*val || *end || m < 0 || m > 0777) {
        return apr_psprintf(cmd->pool,
                            "'%s' is not an octal umask such as "
                            "0022",
                            val);
    }
    g->umask = (int)m;
    return NULL;
}

static const char *sg_opt_executor(cmd_parms *cmd, sg_group *g, const char *val)
{
    if (!strcmp(val, SG_EXECUTOR_EVENT_LOOP)) {
        g->executor = SG_EXECUTOR_EVENT_LOOP;
    }
    else if (!strcmp(val, SG_EXECUTOR_THREAD_POOL)) {
        g->executor = SG_EXECUTOR_THREAD_POOL;
    }
    else {
        return apr_psprintf(cmd->pool,
                            "'%s' is not an executor; expected "
                            "event-loop or thread-pool",
                            val);
    }
    return NULL;
}

/* A cookie name: an RFC 6265 token, short enough for any client's jar. */
static const char *sg_opt_affinity_cookie(cmd_parms *cmd, sg_group *g,
                                          const char *val)
{
    if (strlen(val) > SG_AFFINITY_COOKIE_MAX
        || !sg_affinity_cookie_name_ok(val)) {
        return apr_psprintf(cmd->pool,
                            "'%s' is not a cookie name: 1 to %d letters, "
                            "digits or !#$%%&'*+-.^_`|~",
                            val, SG_AFFINITY_COOKIE_MAX);
    }
    g->affinity_cookie = val;
    return NULL;
}

/* ------------------------------------------------------------------------
 * The table
 */

typedef enum {
    SG_OPT_INT,  /* int from min to max: counts, and times in seconds */
    SG_OPT_SIZE, /* apr_off_t: bytes with K, M or G, at least min */
    SG_OPT_FLAG, /* int: on (1) or off (0) */
    SG_OPT_NAME, /* const char *: any string but the empty one */
    SG_OPT_OWN   /* parse() does it all */
} sg_option_kind;

typedef struct {
    const char *name;
    sg_option_kind kind;
    apr_size_t offset; /* of the field in sg_group */
    int min, max;      /* SG_OPT_INT; SG_OPT_SIZE: min */
    const char *(*parse)(cmd_parms *cmd, sg_group *g, const char *val);
    int repeatable; /* may be given more than once */
} sg_option;

#define SG_INT(name, field, min, max)                                      \
    {                                                                      \
        name, SG_OPT_INT, APR_OFFSETOF(sg_group, field), min, max, NULL, 0 \
    }
#define SG_SIZE(name, field, min)                                         \
    {                                                                     \
        name, SG_OPT_SIZE, APR_OFFSETOF(sg_group, field), min, 0, NULL, 0 \
    }
#define SG_FLAG(name, field)                                            \
    {                                                                   \
        name, SG_OPT_FLAG, APR_OFFSETOF(sg_group, field), 0, 1, NULL, 0 \
    }
#define SG_NAME(name, field)                                            \
    {                                                                   \
        name, SG_OPT_NAME, APR_OFFSETOF(sg_group, field), 0, 0, NULL, 0 \
    }
#define SG_OWN(name, parse, repeatable)              \
    {                                                \
        name, SG_OPT_OWN, 0, 0, 0, parse, repeatable \
    }

/* In the order the message about an unknown option lists them. */
static const sg_option sg_options[] =
    {SG_OWN("program", sg_opt_program, 0),
     SG_OWN("arguments", sg_opt_arguments, 0),
     SG_OWN("env", sg_opt_env, 1),
     SG_INT("processes", processes, 0, 1000),
     SG_INT("maximum-processes", maximum_processes, 1, 1000),
     SG_INT("threads", threads, 1, 10000),
     SG_OWN("user", sg_opt_user, 0),
     SG_OWN("group", sg_opt_group, 0),
     SG_OWN("supplementary-groups", sg_opt_supplementary_groups, 0),
     SG_OWN("home", sg_opt_home, 0),
     SG_OWN("umask", sg_opt_umask, 0),
     SG_NAME("display-name", display_name),
     SG_INT("maximum-requests", maximum_requests, 0, INT_MAX),
     SG_INT("restart-interval", restart_interval, 0, INT_MAX),
     SG_INT("inactivity-timeout", inactivity_timeout, 0, INT_MAX),
     SG_INT("request-timeout", request_timeout, 0, INT_MAX),
     SG_SIZE("memory-limit", memory_limit, 0),
     SG_SIZE("virtual-memory-limit", virtual_memory_limit, 0),
     SG_INT("cpu-time-limit", cpu_time_limit, 0, INT_MAX),
     SG_INT("queue-timeout", queue_timeout, 0, INT_MAX),
     SG_INT("connect-timeout", connect_timeout, 1, 86400),
     SG_INT("socket-timeout", socket_timeout, 1, 86400),
     SG_INT("startup-timeout", startup_timeout, 1, 86400),
     SG_INT("graceful-timeout", graceful_timeout, 0, 86400),
     SG_INT("shutdown-timeout", shutdown_timeout, 0, 3600),
     SG_INT("listen-backlog", listen_backlog, 1, 65535),
     SG_FLAG("reload", reload),
     SG_OWN("restart-file", sg_opt_restart_file, 0),
     SG_SIZE("header-buffer-size", header_buffer_size, 1024),
     SG_SIZE("body-read-ahead", body_read_ahead, 0),
     SG_OWN("executor", sg_opt_executor, 0),
     SG_OWN("affinity-cookie", sg_opt_affinity_cookie, 0),
     {NULL, SG_OPT_OWN, 0, 0, 0, NULL, 0}};

static const sg_option *sg_find_option(const char *name)
{
    const sg_option *o;

    for (o = sg_options; o->name; ++o) {
        if (!strcmp(o->name, name)) {
            return o;
        }
    }
    return NULL;
}

static const char *sg_unknown_option(apr_pool_t *p)
{
    const char *list = NULL;
    const sg_option *o;

    for (o = sg_options; o->name; ++o) {
        list = list ? apr_pstrcat(p, list, ", ", o->name, NULL) : o->name;
    }
    return apr_psprintf(p, "unknown option (known options: %s)", list);
}

/* Apply one name=value option to group g; returns the problem or NULL. */
static const char *sg_set_option(cmd_parms *cmd, sg_group *g,
                                 const sg_option *o, const char *val)
{
    apr_pool_t *p = cmd->pool;
    char *field = (char *)g + o->offset;

    switch (o->kind) {
    case SG_OPT_INT:
        return sg_parse_int(p, val, o->min, o->max, (int *)field);
    case SG_OPT_SIZE:
        return sg_parse_size(p, val, o->min, (apr_off_t *)field);
    case SG_OPT_FLAG:
        if (!strcasecmp(val, "on")) {
            *(int *)field = 1;
        }
        else if (!strcasecmp(val, "off")) {
            *(int *)field = 0;
        }
        else {
            return apr_psprintf(p, "'%s' is neither on nor off", val);
        }
        return NULL;
    case SG_OPT_NAME:
        if (!*val) {
            return "must not be empty";
        }
        *(const char **)field = val;
        return NULL;
    default:
        return o->parse(cmd, g, val);
    }
}

const char *sg_group_options(cmd_parms *cmd, sg_group *g, const char *args)
{
    apr_hash_t *seen = apr_hash_make(cmd->temp_pool);
    const char *name = g->name;
    const char *err;
    char *word;

    for (;;) {
        const sg_option *o;
        char *eq;

        if ((err = sg_next_word(cmd->pool, &args, &word)) != NULL) {
            return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: %s", name,
                                err);
        }
        if (!word) {
            break;
        }
        eq = strchr(word, '=');
        if (!eq || eq == word) {
            return apr_psprintf(cmd->pool,
                                "SwiftDaemonProcess %s: option '%s' "
                                "must be written name=value",
                                name, word);
        }
        *eq++ = '\0';
        o = sg_find_option(word);
        if (!(o && o->repeatable)
            && apr_hash_get(seen, word, APR_HASH_KEY_STRING)) {
            return apr_psprintf(cmd->pool,
                                "SwiftDaemonProcess %s: option '%s' "
                                "is given more than once",
                                name, word);
        }
        apr_hash_set(seen, word, APR_HASH_KEY_STRING, word);
        err = o ? sg_set_option(cmd, g, o, eq) : sg_unknown_option(cmd->pool);
        if (err) {
            return apr_psprintf(cmd->pool,
                                "SwiftDaemonProcess %s: option "
                                "'%s=%s': %s",
                                name, word, eq, err);
        }
    }
    if (g->maximum_processes && g->maximum_processes < g->processes) {
        return apr_psprintf(cmd->pool,
                            "SwiftDaemonProcess %s: option "
                            "'maximum-processes=%d' is below processes=%d",
                            name, g->maximum_processes, g->processes);
    }
    return NULL;
}

/* maximum-processes, or processes, or 1 for a transient group. */
int sg_group_maximum_processes(const sg_group *g)
{
    if (g->maximum_processes) {
        return g->maximum_processes;
    }
    return g->processes ? g->processes : 1;
}
