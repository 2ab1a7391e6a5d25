/*
 * mod_swift_gateway: mod_wsgi-style daemon mode for Swift programs.
 *
 * This file: the module record, the command table, configuration
 * structures and their merging, and the configuration check that resolves
 * which program each process group runs (SPEC section 3).
 *
 * Process management lives in sg_daemon.c, the request path in sg_request.c.
 */

#include "mod_swift_gateway.h"
#include "sg_daemon.h"
#include "sg_handler.h"
#include "sg_pool.h"
#include "sg_route.h"

#include "http_core.h"
#include "http_main.h"
#include "http_request.h"
#include "ap_mpm.h"
#include "mpm_common.h"

#include "apr_strings.h"
#include "apr_lib.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

sg_globals_t sg_globals;

#define SG_MAX_NAME_LEN 64

/* Longest socket path component contributed by "<pid>.<generation>." and
 * ".sock": pid_max is at most 4194304 (7 digits), generation is an int. */
#define SG_SOCKNAME_OVERHEAD (7 + 1 + 10 + 1 + 5)

/* ------------------------------------------------------------------------
 * Small helpers
 */

static const char *sg_where(cmd_parms *cmd)
{
    if (cmd->directive && cmd->directive->filename) {
        return apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                            cmd->directive->line_num);
    }
    return "(unknown)";
}

/* Is prefix (a URL path or directory, with or without a trailing '/') a
 * path-segment prefix of path?  "" and "/" cover everything; "/app" covers
 * "/app" and "/app/x" but not "/apple". */
int sg_path_covers(const char *prefix, const char *path)
{
    apr_size_t len = strlen(prefix);

    while (len > 0 && prefix[len - 1] == '/') {
        --len;
    }
    if (len == 0) {
        return path[0] == '/' || path[0] == '\0';
    }
    return strncmp(prefix, path, len) == 0
           && (path[len] == '/' || path[len] == '\0');
}

/* The longest SwiftScriptAlias of the server matching uri; for equal
 * lengths the first one wins (own aliases come before inherited ones). */
const sg_alias *sg_match_alias(const sg_server_conf *sconf, const char *uri)
{
    const sg_alias *best = NULL;
    int i;

    if (!sconf->all_aliases) {
        return NULL;
    }
    for (i = 0; i < sconf->all_aliases->nelts; ++i) {
        const sg_alias *a = APR_ARRAY_IDX(sconf->all_aliases, i, sg_alias *);

        if ((!best || a->len > best->len)
            && strncmp(uri, a->path, a->len) == 0
            && (uri[a->len] == '/' || uri[a->len] == '\0')) {
            best = a;
        }
    }
    return best;
}

/* Group named name as seen from server s: declared in s itself or in the
 * main server.  When it exists elsewhere (another virtual host),
 * *elsewhere points to it. */
sg_group *sg_find_group(server_rec *s, const char *name, sg_group **elsewhere)
{
    sg_server_conf *sconf = ap_get_module_config(s->module_config,
                                                 &swift_gateway_module);
    sg_group *g = NULL;

    if (elsewhere) {
        *elsewhere = NULL;
    }
    if (sconf->groups) {
        g = apr_hash_get(sconf->groups, name, APR_HASH_KEY_STRING);
    }
    if (!g && s != ap_server_conf && ap_server_conf) {
        sg_server_conf *mconf = ap_get_module_config(ap_server_conf->module_config,
                                                     &swift_gateway_module);
        if (mconf->groups) {
            g = apr_hash_get(mconf->groups, name, APR_HASH_KEY_STRING);
        }
    }
    if (!g && elsewhere && sg_globals.by_name) {
        *elsewhere = apr_hash_get(sg_globals.by_name, name, APR_HASH_KEY_STRING);
    }
    return g;
}

static int sg_valid_group_name(const char *name)
{
    const char *c;

    if (!apr_isalnum(*name) || strlen(name) > SG_MAX_NAME_LEN) {
        return 0;
    }
    for (c = name; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '_' && *c != '.' && *c != '-') {
            return 0;
        }
    }
    return 1;
}

/* Resolve and check an executable; on success *path is absolute and
 * *real its realpath(). */
static const char *sg_check_program(cmd_parms *cmd, const char *arg,
                                    const char **path, const char **real)
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
        return apr_psprintf(cmd->pool, "program '%s' is not executable "
                            "(chmod +x it)", p);
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
 * Configuration records
 */

static void *sg_create_server_config(apr_pool_t *p, server_rec *s)
{
    sg_server_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->aliases = apr_array_make(p, 4, sizeof(sg_alias *));
    conf->all_aliases = conf->aliases;
    conf->groups = apr_hash_make(p);
    return conf;
}

static void *sg_merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    sg_server_conf *base = basev, *add = addv;
    sg_server_conf *conf = apr_pcalloc(p, sizeof(*conf));
    int i;

    conf->aliases = add->aliases;
    /* own aliases, then the main server's that no own alias shadows */
    conf->all_aliases = apr_array_copy(p, add->aliases);
    for (i = 0; i < base->aliases->nelts; ++i) {
        sg_alias *a = APR_ARRAY_IDX(base->aliases, i, sg_alias *);
        int j, shadowed = 0;

        for (j = 0; j < add->aliases->nelts && !shadowed; ++j) {
            shadowed = !strcmp(APR_ARRAY_IDX(add->aliases, j, sg_alias *)->path,
                               a->path);
        }
        if (!shadowed) {
            APR_ARRAY_PUSH(conf->all_aliases, sg_alias *) = a;
        }
    }
    conf->groups = add->groups;
    conf->socket_prefix = base->socket_prefix;
    return conf;
}

static void *sg_create_dir_config(apr_pool_t *p, char *dir)
{
    sg_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->path = dir;
    conf->pass_auth = SG_UNSET;
    return conf;
}

static void *sg_merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    sg_dir_conf *base = basev, *add = addv;
    sg_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->path = add->path;
    if (add->group_set) {
        conf->group = add->group;
        conf->group_env = add->group_env;
        conf->group_set = 1;
        conf->group_in_section = add->group_in_section;
        conf->group_at = add->group_at;
    }
    else {
        conf->group = base->group;
        conf->group_env = base->group_env;
        conf->group_set = base->group_set;
        conf->group_in_section = base->group_in_section;
        conf->group_at = base->group_at;
    }
    conf->restrict_to = add->restrict_to ? add->restrict_to : base->restrict_to;
    conf->pass_auth = add->pass_auth != SG_UNSET ? add->pass_auth
                                                 : base->pass_auth;
    return conf;
}

/* ------------------------------------------------------------------------
 * SwiftDaemonProcess option parsing
 */

/* Split the next word off *line.  Words are separated by white space; a
 * single- or double-quoted part keeps its white space (the quotes are
 * removed; inside quotes a backslash escapes the quote or a backslash), so
 * both arguments="-a -b" and "arguments=-a -b" work. */
static const char *sg_next_word(apr_pool_t *p, const char **line, char **word)
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
        return apr_psprintf(p, "'%s' is negative; expected a whole number "
                            "from %d to %d", v, min, max);
    }
    if (!apr_isdigit(*v)) {
        return apr_psprintf(p, "'%s' is not a whole number; expected %d to %d",
                            v, min, max);
    }
    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (*end) {
        return apr_psprintf(p, "'%s' is not a whole number (unexpected '%s'); "
                            "expected %d to %d", v, end, min, max);
    }
    if (errno || n < min || n > max) {
        return apr_psprintf(p, "%s is out of range; expected %d to %d",
                            v, min, max);
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
        return apr_psprintf(p, "'%s' is negative; expected a size such as "
                            "32768, 32K, 512M or 2G", v);
    }
    if (!apr_isdigit(*v)) {
        return apr_psprintf(p, "'%s' is not a size; expected a number with an "
                            "optional K, M or G suffix", v);
    }
    errno = 0;
    n = apr_strtoi64(v, &end, 10);
    if (errno) {
        return apr_psprintf(p, "'%s' is too large", v);
    }
    switch (*end) {
    case '\0':
        break;
    case 'k': case 'K':
        mult = APR_INT64_C(1) << 10;
        ++end;
        break;
    case 'm': case 'M':
        mult = APR_INT64_C(1) << 20;
        ++end;
        break;
    case 'g': case 'G':
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
        return apr_psprintf(p, "'%s' is too small; the minimum is %" APR_OFF_T_FMT,
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
        return apr_psprintf(p, "'%s' is root (uid 0); process groups never run "
                            "as root, pick an unprivileged user", v);
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
        return apr_psprintf(p, "'%s' is the root group (gid 0), which is refused",
                            v);
    }
    return NULL;
}

/* Variables the module sets for the supervisor (docs/architecture.md). */
static const char * const sg_reserved_env_names[] = {
    "SWIFT_GATEWAY_ROLE", "SWIFT_GATEWAY_GROUP", "SWIFT_GATEWAY_TOKEN",
    "SWIFT_GATEWAY_PEER_UID", "SWIFT_GATEWAY_PROCESSES", "SWIFT_GATEWAY_THREADS",
    "SWIFT_GATEWAY_LISTEN_BACKLOG", "SWIFT_GATEWAY_SOCKET",
    "SWIFT_GATEWAY_GRACEFUL_TIMEOUT", "SWIFT_GATEWAY_SHUTDOWN_TIMEOUT",
    "SWIFT_GATEWAY_DISPLAY_NAME", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
    NULL
};

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

typedef struct {
    const char *name;
    apr_size_t offset;
    int min;
    int max;
} sg_int_option;

/* Options holding a whole number (counts, and times in seconds). */
static const sg_int_option sg_int_options[] = {
    { "processes",          APR_OFFSETOF(sg_group, processes),          1, 1000 },
    { "maximum-processes",  APR_OFFSETOF(sg_group, maximum_processes),  1, 1000 },
    { "threads",            APR_OFFSETOF(sg_group, threads),            1, 10000 },
    { "listen-backlog",     APR_OFFSETOF(sg_group, listen_backlog),     1, 65535 },
    { "connect-timeout",    APR_OFFSETOF(sg_group, connect_timeout),    1, 86400 },
    { "socket-timeout",     APR_OFFSETOF(sg_group, socket_timeout),     1, 86400 },
    { "graceful-timeout",   APR_OFFSETOF(sg_group, graceful_timeout),   0, 86400 },
    { "shutdown-timeout",   APR_OFFSETOF(sg_group, shutdown_timeout),   0, 3600 },
    { "maximum-requests",   APR_OFFSETOF(sg_group, maximum_requests),   0, INT_MAX },
    { "restart-interval",   APR_OFFSETOF(sg_group, restart_interval),   0, INT_MAX },
    { "inactivity-timeout", APR_OFFSETOF(sg_group, inactivity_timeout), 0, INT_MAX },
    { "request-timeout",    APR_OFFSETOF(sg_group, request_timeout),    0, INT_MAX },
    { "queue-timeout",      APR_OFFSETOF(sg_group, queue_timeout),      0, INT_MAX },
    { "startup-timeout",    APR_OFFSETOF(sg_group, startup_timeout),    1, 86400 },
    { "cpu-time-limit",     APR_OFFSETOF(sg_group, cpu_time_limit),     0, INT_MAX },
    { NULL, 0, 0, 0 }
};

typedef struct {
    const char *name;
    apr_size_t offset;
    apr_off_t min;
} sg_size_option;

static const sg_size_option sg_size_options[] = {
    { "header-buffer-size",   APR_OFFSETOF(sg_group, header_buffer_size),   1024 },
    { "memory-limit",         APR_OFFSETOF(sg_group, memory_limit),         0 },
    { "virtual-memory-limit", APR_OFFSETOF(sg_group, virtual_memory_limit), 0 },
    { NULL, 0, 0 }
};

static const char *sg_known_options =
    "program, arguments, env, processes, maximum-processes, threads, user, "
    "group, supplementary-groups, home, umask, display-name, maximum-requests, "
    "restart-interval, inactivity-timeout, request-timeout, memory-limit, "
    "virtual-memory-limit, cpu-time-limit, queue-timeout, connect-timeout, "
    "socket-timeout, startup-timeout, graceful-timeout, shutdown-timeout, "
    "listen-backlog, reload, header-buffer-size";

/* Apply one name=value option to group g; returns the problem or NULL. */
static const char *sg_set_option(cmd_parms *cmd, sg_group *g,
                                 const char *key, const char *val)
{
    apr_pool_t *p = cmd->pool;
    const char *err;
    int i;

    for (i = 0; sg_int_options[i].name; ++i) {
        if (!strcmp(key, sg_int_options[i].name)) {
            return sg_parse_int(p, val, sg_int_options[i].min,
                                sg_int_options[i].max,
                                (int *)((char *)g + sg_int_options[i].offset));
        }
    }
    for (i = 0; sg_size_options[i].name; ++i) {
        if (!strcmp(key, sg_size_options[i].name)) {
            return sg_parse_size(p, val, sg_size_options[i].min,
                                 (apr_off_t *)((char *)g + sg_size_options[i].offset));
        }
    }
    if (!strcmp(key, "program")) {
        err = sg_check_program(cmd, val, &g->program, &g->program_real);
        if (!err) {
            g->program_explicit = 1;
        }
        return err;
    }
    if (!strcmp(key, "arguments")) {
        char *copy = apr_pstrdup(p, val), *state = NULL, *tok;

        for (tok = apr_strtok(copy, " \t\r\n", &state); tok;
             tok = apr_strtok(NULL, " \t\r\n", &state)) {
            APR_ARRAY_PUSH(g->arguments, const char *) = tok;
        }
        return NULL;
    }
    if (!strcmp(key, "env")) {
        const char *eq = strchr(val, '=');
        apr_size_t len = eq ? (apr_size_t)(eq - val) : strlen(val);
        apr_size_t k;

        if (!eq || len == 0) {
            return apr_psprintf(p, "'%s' must be written env=NAME=VALUE", val);
        }
        for (k = 0; k < len; ++k) {
            if (!(apr_isalnum(val[k]) || val[k] == '_') || apr_isdigit(val[0])) {
                return apr_psprintf(p, "'%.*s' is not a valid environment "
                                    "variable name", (int)len, val);
            }
        }
        if (sg_reserved_env(val, len)) {
            return apr_psprintf(p, "'%.*s' is reserved for the gateway and "
                                "cannot be set", (int)len, val);
        }
        APR_ARRAY_PUSH(g->env, const char *) = val;
        return NULL;
    }
    if (!strcmp(key, "user")) {
        g->user = val;
        return sg_parse_user(p, val, &g->uid);
    }
    if (!strcmp(key, "group")) {
        g->group = val;
        return sg_parse_group(p, val, &g->gid);
    }
    if (!strcmp(key, "supplementary-groups")) {
        char *copy = apr_pstrdup(p, val), *state = NULL, *tok;

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
    if (!strcmp(key, "home")) {
        struct stat st;
        const char *dir = ap_server_root_relative(p, val);

        if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
            return apr_psprintf(p, "'%s' is not an existing directory", val);
        }
        g->home = dir;
        return NULL;
    }
    if (!strcmp(key, "display-name")) {
        if (!*val) {
            return "must not be empty";
        }
        g->display_name = val;
        return NULL;
    }
    if (!strcmp(key, "umask")) {
        char *end;
        long m;
        const char *c;

        for (c = val; *c; ++c) {
            if (*c < '0' || *c > '7') {
                return apr_psprintf(p, "'%s' is not an octal umask such as 0022",
                                    val);
            }
        }
        m = strtol(val, &end, 8);
        if (!*val || *end || m < 0 || m > 0777) {
            return apr_psprintf(p, "'%s' is not an octal umask such as 0022", val);
        }
        g->umask = (int)m;
        return NULL;
    }
    if (!strcmp(key, "reload")) {
        if (!strcasecmp(val, "on")) {
            g->reload = 1;
        }
        else if (!strcasecmp(val, "off")) {
            g->reload = 0;
        }
        else {
            return apr_psprintf(p, "'%s' is neither on nor off", val);
        }
        return NULL;
    }
    return apr_psprintf(p, "unknown option (known options: %s)",
                        sg_known_options);
}

static sg_group *sg_new_group(apr_pool_t *p, const char *name)
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
    g->reload = 1;
    return g;
}

static const char *sg_cmd_daemon_process(cmd_parms *cmd, void *dummy,
                                         const char *args)
{
    sg_server_conf *sconf = ap_get_module_config(cmd->server->module_config,
                                                 &swift_gateway_module);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    apr_hash_t *seen = apr_hash_make(cmd->temp_pool);
    char *name, *word;
    sg_group *g, *other;

    (void)dummy;
    if (err) {
        return err;
    }
    if ((err = sg_next_word(cmd->pool, &args, &name)) != NULL || !name) {
        return "SwiftDaemonProcess: a group name is required";
    }
    if (!sg_valid_group_name(name)) {
        return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: invalid group "
                            "name; use letters, digits, '.', '_' and '-' "
                            "(starting with a letter or digit, at most %d "
                            "characters)", name, SG_MAX_NAME_LEN);
    }
    other = apr_hash_get(sg_globals.by_name, name, APR_HASH_KEY_STRING);
    if (other) {
        return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: duplicate group "
                            "name; a group '%s' is already declared at %s "
                            "(group names are unique across the whole server, "
                            "virtual hosts included)", name, name,
                            other->defined_at);
    }

    g = sg_new_group(cmd->pool, name);
    g->defined_at = sg_where(cmd);
    g->server = cmd->server;
    g->is_main = !cmd->server->is_virtual;

    for (;;) {
        char *eq;

        if ((err = sg_next_word(cmd->pool, &args, &word)) != NULL) {
            return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: %s", name, err);
        }
        if (!word) {
            break;
        }
        eq = strchr(word, '=');
        if (!eq || eq == word) {
            return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: option '%s' "
                                "must be written name=value", name, word);
        }
        *eq++ = '\0';
        if (strcmp(word, "env") && apr_hash_get(seen, word, APR_HASH_KEY_STRING)) {
            return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: option '%s' "
                                "is given more than once", name, word);
        }
        apr_hash_set(seen, word, APR_HASH_KEY_STRING, word);
        if ((err = sg_set_option(cmd, g, word, eq)) != NULL) {
            return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: option "
                                "'%s=%s': %s", name, word, eq, err);
        }
    }
    if (g->maximum_processes && g->maximum_processes < g->processes) {
        return apr_psprintf(cmd->pool, "SwiftDaemonProcess %s: option "
                            "'maximum-processes=%d' is below processes=%d",
                            name, g->maximum_processes, g->processes);
    }

    apr_hash_set(sconf->groups, g->name, APR_HASH_KEY_STRING, g);
    apr_hash_set(sg_globals.by_name, g->name, APR_HASH_KEY_STRING, g);
    APR_ARRAY_PUSH(sg_globals.groups, sg_group *) = g;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Other directives
 */

static const char *sg_cmd_script_alias(cmd_parms *cmd, void *dummy,
                                       const char *url, const char *program,
                                       const char *opt)
{
    sg_server_conf *sconf = ap_get_module_config(cmd->server->module_config,
                                                 &swift_gateway_module);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    sg_alias *a;
    apr_size_t len;
    int i;

    (void)dummy;
    if (err) {
        return err;
    }
    if (url[0] != '/') {
        return apr_psprintf(cmd->pool, "SwiftScriptAlias %s: the URL path must "
                            "start with '/'", url);
    }
    a = apr_pcalloc(cmd->pool, sizeof(*a));
    len = strlen(url);
    while (len > 0 && url[len - 1] == '/') {
        --len;
    }
    a->path = apr_pstrmemdup(cmd->pool, url, len);
    a->len = len;
    a->defined_at = sg_where(cmd);
    if ((err = sg_check_program(cmd, program, &a->program, &a->program_real))) {
        return apr_psprintf(cmd->pool, "SwiftScriptAlias %s: %s", url, err);
    }
    if (opt) {
        if (strncmp(opt, "process-group=", 14) != 0) {
            return apr_psprintf(cmd->pool, "SwiftScriptAlias %s: unknown option "
                                "'%s' (the only option is process-group=NAME)",
                                url, opt);
        }
        a->group_name = opt + 14;
        if (!sg_valid_group_name(a->group_name)) {
            return apr_psprintf(cmd->pool, "SwiftScriptAlias %s: option '%s': "
                                "invalid group name", url, opt);
        }
    }
    for (i = 0; i < sconf->aliases->nelts; ++i) {
        sg_alias *o = APR_ARRAY_IDX(sconf->aliases, i, sg_alias *);

        if (!strcmp(o->path, a->path)) {
            return apr_psprintf(cmd->pool, "SwiftScriptAlias %s: this URL path "
                                "is already mounted at %s", url, o->defined_at);
        }
    }
    APR_ARRAY_PUSH(sconf->aliases, sg_alias *) = a;
    return NULL;
}

static const char *sg_cmd_process_group(cmd_parms *cmd, void *dconfv,
                                        const char *arg)
{
    sg_dir_conf *dconf = dconfv;
    apr_size_t len = strlen(arg);

    if (len > 7 && !strncmp(arg, "%{ENV:", 6) && arg[len - 1] == '}') {
        dconf->group_env = apr_pstrmemdup(cmd->pool, arg + 6, len - 7);
        dconf->group = NULL;
    }
    else if (sg_valid_group_name(arg)) {
        dconf->group = arg;
        dconf->group_env = NULL;
    }
    else {
        return apr_psprintf(cmd->pool, "SwiftProcessGroup %s: not a group name "
                            "(letters, digits, '.', '_', '-') nor %%{ENV:variable}",
                            arg);
    }
    dconf->group_set = 1;
    dconf->group_in_section = cmd->path != NULL;
    dconf->group_at = sg_where(cmd);
    return NULL;
}

static const char *sg_cmd_restrict_process(cmd_parms *cmd, void *dconfv,
                                           const char *arg)
{
    sg_dir_conf *dconf = dconfv;

    if (!sg_valid_group_name(arg)) {
        return apr_psprintf(cmd->pool, "SwiftRestrictProcess %s: not a valid "
                            "group name", arg);
    }
    if (!dconf->restrict_to) {
        dconf->restrict_to = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(dconf->restrict_to, const char *) = arg;
    return NULL;
}

static const char *sg_cmd_pass_auth(cmd_parms *cmd, void *dconfv, int flag)
{
    sg_dir_conf *dconf = dconfv;

    (void)cmd;
    dconf->pass_auth = flag;
    return NULL;
}

static const char *sg_cmd_socket_prefix(cmd_parms *cmd, void *dummy,
                                        const char *arg)
{
    sg_server_conf *sconf = ap_get_module_config(cmd->server->module_config,
                                                 &swift_gateway_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dummy;
    if (err) {
        return err;
    }
    sconf->socket_prefix = ap_runtime_dir_relative(cmd->pool, arg);
    if (!sconf->socket_prefix) {
        return apr_psprintf(cmd->pool, "SwiftSocketPrefix %s: invalid path", arg);
    }
    return NULL;
}

static const command_rec sg_cmds[] = {
    AP_INIT_RAW_ARGS("SwiftDaemonProcess", sg_cmd_daemon_process, NULL, RSRC_CONF,
                     "NAME [option=value ...] - declare a process group "
                     "running a Swift program"),
    AP_INIT_TAKE1("SwiftProcessGroup", sg_cmd_process_group, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "NAME or %{ENV:variable} - the process group serving requests"),
    AP_INIT_TAKE23("SwiftScriptAlias", sg_cmd_script_alias, NULL, RSRC_CONF,
                   "URL-PATH PROGRAM [process-group=NAME] - mount a Swift program"),
    AP_INIT_ITERATE("SwiftRestrictProcess", sg_cmd_restrict_process, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "NAME ... - groups that SwiftProcessGroup may select here"),
    AP_INIT_FLAG("SwiftPassAuthorization", sg_cmd_pass_auth, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On|Off - forward the Authorization header (default Off)"),
    AP_INIT_TAKE1("SwiftSocketPrefix", sg_cmd_socket_prefix, NULL, RSRC_CONF,
                  "PATH - directory of the process groups' sockets"),
    { NULL }
};

/* ------------------------------------------------------------------------
 * Configuration check: implicit groups, program resolution, static
 * detection of requests routed to a group running another program.
 */

typedef struct {
    apr_pool_t *p;
    int phase;                  /* 1: collect programs, 2: report mismatches */
    apr_hash_t *candidates;     /* sg_group * -> apr_hash_t (real -> alias) */
    apr_hash_t *reported;       /* messages already logged */
    int errors;
} sg_check_ctx;

typedef struct {
    const char *path;
    int regex;                  /* regex or wildcard: not statically decidable */
    const sg_dir_conf *dconf;
} sg_section;

static void sg_once(sg_check_ctx *ctx, int level, server_rec *s,
                    const char *msg)
{
    if (apr_hash_get(ctx->reported, msg, APR_HASH_KEY_STRING)) {
        return;
    }
    apr_hash_set(ctx->reported, msg, APR_HASH_KEY_STRING, msg);
    ap_log_error(APLOG_MARK, level, 0, s, "%s", msg);
    if (level <= APLOG_ERR) {
        ctx->errors++;
    }
}

/* Requests for alias a are (certain = 1) or may be (certain = 0) served by
 * group g, because of the directive at where. */
static void sg_usage(sg_check_ctx *ctx, server_rec *s, sg_group *g,
                     const sg_alias *a, const char *what, int certain)
{
    if (ctx->phase == 1) {
        if (!g->program_explicit) {
            apr_hash_t *h = apr_hash_get(ctx->candidates, &g, sizeof(g));

            if (!h) {
                h = apr_hash_make(ctx->p);
                apr_hash_set(ctx->candidates, apr_pmemdup(ctx->p, &g, sizeof(g)),
                             sizeof(g), h);
            }
            apr_hash_set(h, a->program_real, APR_HASH_KEY_STRING, a);
        }
        return;
    }
    if (certain && g->program_real && strcmp(g->program_real, a->program_real)) {
        sg_once(ctx, APLOG_ERR, s, apr_psprintf(ctx->p,
                "SG0106: %s routes requests for SwiftScriptAlias %s (%s, %s) "
                "to SwiftDaemonProcess %s, which runs %s (%s): a group serves "
                "one program; give that alias its own group "
                "(process-group=NAME) or fix program=",
                what, a->len ? a->path : "/", a->program, a->defined_at,
                g->name, g->program, g->defined_at));
    }
}

static void sg_collect_sections(apr_array_header_t *vecs,
                                apr_array_header_t *out)
{
    int i;

    if (!vecs) {
        return;
    }
    for (i = 0; i < vecs->nelts; ++i) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(vecs, i, ap_conf_vector_t *);
        core_dir_config *core = ap_get_core_module_config(v);
        const sg_dir_conf *d = ap_get_module_config(v, &swift_gateway_module);
        sg_section *sec;

        if (!d || !d->group_set || !core || !core->d) {
            continue;
        }
        sec = apr_array_push(out);
        sec->path = core->d;
        sec->regex = core->r != NULL || core->d_is_fnmatch;
        sec->dconf = d;
    }
}

/* Does a section in secs that sets a group (possibly) cover path? */
static int sg_sections_cover(apr_array_header_t *secs, const char *path,
                             const char *below)
{
    int i;

    for (i = 0; i < secs->nelts; ++i) {
        const sg_section *sec = &APR_ARRAY_IDX(secs, i, sg_section);

        if (sec->regex) {
            return 1;   /* cannot tell: assume it might */
        }
        if (below && (!sg_path_covers(below, sec->path)
                      || strlen(sec->path) <= strlen(below))) {
            continue;
        }
        if (sg_path_covers(sec->path, path)) {
            return 1;
        }
    }
    return 0;
}

static sg_group *sg_static_group(sg_check_ctx *ctx, server_rec *s,
                                 const sg_dir_conf *d)
{
    sg_group *g, *other;

    if (!d->group) {
        return NULL;    /* %{ENV:...}: decided per request */
    }
    g = sg_find_group(s, d->group, &other);
    if (!g && ctx->phase == 1) {
        sg_once(ctx, APLOG_WARNING, s, apr_psprintf(ctx->p,
                "SG0102: SwiftProcessGroup %s (%s) names a group that is not "
                "declared %s; requests there will get 500 until you declare "
                "SwiftDaemonProcess %s in the main server or in this virtual "
                "host", d->group, d->group_at,
                other ? apr_psprintf(ctx->p, "for this virtual host (it is "
                                     "declared at %s)", other->defined_at)
                      : "anywhere", d->group));
    }
    return g;
}

static void sg_walk_server(sg_check_ctx *ctx, server_rec *s)
{
    sg_server_conf *sconf = ap_get_module_config(s->module_config,
                                                 &swift_gateway_module);
    core_server_config *core = ap_get_core_module_config(s->module_config);
    sg_dir_conf *sd = ap_get_module_config(s->lookup_defaults,
                                           &swift_gateway_module);
    apr_array_header_t *locs = apr_array_make(ctx->p, 4, sizeof(sg_section));
    apr_array_header_t *dirs = apr_array_make(ctx->p, 4, sizeof(sg_section));
    apr_array_header_t *aliases = sconf->all_aliases;
    int i, j;

    sg_collect_sections(core->sec_url, locs);
    sg_collect_sections(core->sec_dir, dirs);

    /* process-group= of the aliases */
    for (i = 0; i < aliases->nelts; ++i) {
        const sg_alias *a = APR_ARRAY_IDX(aliases, i, sg_alias *);
        sg_group *g, *other;

        if (!a->group_name) {
            continue;
        }
        g = sg_find_group(s, a->group_name, &other);
        if (g) {
            sg_usage(ctx, s, g, a, apr_psprintf(ctx->p, "process-group=%s",
                     a->group_name), 1);
        }
        else if (ctx->phase == 1) {
            sg_once(ctx, APLOG_WARNING, s, apr_psprintf(ctx->p,
                    "SG0103: SwiftScriptAlias %s (%s) uses process-group=%s, "
                    "which is not declared %s; its requests will get 500 until "
                    "you declare SwiftDaemonProcess %s in the main server or in "
                    "this virtual host", a->len ? a->path : "/", a->defined_at,
                    a->group_name, other ? "for this virtual host" : "anywhere",
                    a->group_name));
        }
    }

    /* <Location> sections */
    for (i = 0; i < locs->nelts; ++i) {
        const sg_section *l = &APR_ARRAY_IDX(locs, i, sg_section);
        const sg_alias *a0;
        sg_group *g;
        const char *what;

        if (l->regex || !(g = sg_static_group(ctx, s, l->dconf))) {
            continue;
        }
        what = apr_psprintf(ctx->p, "SwiftProcessGroup %s in <Location %s> (%s)",
                            g->name, l->path, l->dconf->group_at);
        if ((a0 = sg_match_alias(sconf, l->path)) != NULL) {
            sg_usage(ctx, s, g, a0, what, 1);
        }
        for (j = 0; j < aliases->nelts; ++j) {
            const sg_alias *a = APR_ARRAY_IDX(aliases, j, sg_alias *);

            if (a == a0 || !sg_path_covers(l->path, a->path)) {
                continue;
            }
            sg_usage(ctx, s, g, a, what,
                     !sg_sections_cover(locs, a->path, l->path));
        }
    }

    /* <Directory> sections: they apply to the aliases whose program lies in
     * them (r->filename is the program) */
    for (i = 0; i < dirs->nelts; ++i) {
        const sg_section *d = &APR_ARRAY_IDX(dirs, i, sg_section);
        sg_group *g;
        const char *what;

        if (d->regex || !(g = sg_static_group(ctx, s, d->dconf))) {
            continue;
        }
        what = apr_psprintf(ctx->p, "SwiftProcessGroup %s in <Directory %s> (%s)",
                            g->name, d->path, d->dconf->group_at);
        for (j = 0; j < aliases->nelts; ++j) {
            const sg_alias *a = APR_ARRAY_IDX(aliases, j, sg_alias *);

            if (sg_path_covers(d->path, a->program)) {
                sg_usage(ctx, s, g, a, what,
                         !sg_sections_cover(locs, a->path, NULL));
            }
        }
    }

    /* server / virtual host level SwiftProcessGroup */
    if (sd && sd->group_set && !sd->group_in_section) {
        sg_group *g = sg_static_group(ctx, s, sd);

        for (j = 0; g && j < aliases->nelts; ++j) {
            const sg_alias *a = APR_ARRAY_IDX(aliases, j, sg_alias *);
            int covered;

            if (a->group_name) {
                continue;
            }
            covered = sg_sections_cover(locs, a->path, NULL);
            for (i = 0; !covered && i < dirs->nelts; ++i) {
                const sg_section *d = &APR_ARRAY_IDX(dirs, i, sg_section);

                covered = d->regex || sg_path_covers(d->path, a->program);
            }
            sg_usage(ctx, s, g, a, apr_psprintf(ctx->p, "SwiftProcessGroup %s "
                     "(%s)", g->name, sd->group_at), !covered);
        }
    }
}

/* Implicit groups: an alias without process-group= in a server without a
 * static server-level SwiftProcessGroup may fall back to a default group
 * of its program (processes=1). */
static void sg_make_implicit_groups(apr_pool_t *pconf, server_rec *main_s)
{
    server_rec *s;
    int i;

    for (s = main_s; s; s = s->next) {
        sg_server_conf *sconf = ap_get_module_config(s->module_config,
                                                     &swift_gateway_module);
        sg_dir_conf *sd = ap_get_module_config(s->lookup_defaults,
                                               &swift_gateway_module);
        int server_group = sd && sd->group_set && !sd->group_in_section
                           && sd->group;

        for (i = 0; i < sconf->all_aliases->nelts; ++i) {
            sg_alias *a = APR_ARRAY_IDX(sconf->all_aliases, i, sg_alias *);
            sg_group *g;

            if (a->group_name || server_group || a->implicit) {
                continue;
            }
            g = apr_hash_get(sg_globals.implicit, a->program_real,
                             APR_HASH_KEY_STRING);
            if (!g) {
                const char *base = ap_strrchr_c(a->program_real, '/');
                const char *name = apr_pstrcat(pconf, SG_IMPLICIT_PREFIX,
                                               base ? base + 1 : a->program_real,
                                               NULL);
                int n = 1;

                while (apr_hash_get(sg_globals.by_name, name, APR_HASH_KEY_STRING)) {
                    name = apr_psprintf(pconf, "%s%s-%d", SG_IMPLICIT_PREFIX,
                                        base ? base + 1 : a->program_real, ++n);
                }
                g = sg_new_group(pconf, name);
                g->defined_at = a->defined_at;
                g->server = main_s;
                g->is_main = 1;
                g->is_implicit = 1;
                g->program = a->program;
                g->program_real = a->program_real;
                g->program_explicit = 1;
                apr_hash_set(sg_globals.implicit, g->program_real,
                             APR_HASH_KEY_STRING, g);
                apr_hash_set(sg_globals.by_name, g->name, APR_HASH_KEY_STRING, g);
                APR_ARRAY_PUSH(sg_globals.groups, sg_group *) = g;
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_s,
                             "SG0111: implicit process group %s runs %s for "
                             "SwiftScriptAlias %s (%s)", g->name, g->program,
                             a->len ? a->path : "/", a->defined_at);
            }
            a->implicit = g;
        }
    }
}

/* Give each group without program= the one program that could reach it. */
static void sg_resolve_programs(sg_check_ctx *ctx, server_rec *main_s)
{
    int i;

    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        apr_hash_t *h;
        apr_hash_index_t *hi;
        const sg_alias *a = NULL;
        const char *list = NULL;

        if (g->program_explicit) {
            continue;
        }
        h = apr_hash_get(ctx->candidates, &g, sizeof(g));
        if (!h || apr_hash_count(h) == 0) {
            /* nothing routes to it statically: the aliases of its own scope */
            sg_server_conf *sconf = ap_get_module_config(g->server->module_config,
                                                         &swift_gateway_module);
            int j;

            h = apr_hash_make(ctx->p);
            for (j = 0; j < sconf->all_aliases->nelts; ++j) {
                const sg_alias *x = APR_ARRAY_IDX(sconf->all_aliases, j, sg_alias *);

                apr_hash_set(h, x->program_real, APR_HASH_KEY_STRING, x);
            }
        }
        for (hi = apr_hash_first(ctx->p, h); hi; hi = apr_hash_next(hi)) {
            const sg_alias *x = apr_hash_this_val(hi);

            a = x;
            list = list ? apr_pstrcat(ctx->p, list, ", ", x->program, " (",
                                      x->defined_at, ")", NULL)
                        : apr_pstrcat(ctx->p, x->program, " (", x->defined_at,
                                      ")", NULL);
        }
        if (apr_hash_count(h) == 1) {
            g->program = a->program;
            g->program_real = a->program_real;
        }
        else if (apr_hash_count(h) == 0) {
            sg_once(ctx, APLOG_ERR, main_s, apr_psprintf(ctx->p,
                    "SG0105: SwiftDaemonProcess %s (%s) has no program= and no "
                    "SwiftScriptAlias in its scope to take the program from; "
                    "add program=/path/to/executable", g->name, g->defined_at));
        }
        else {
            sg_once(ctx, APLOG_ERR, main_s, apr_psprintf(ctx->p,
                    "SG0104: SwiftDaemonProcess %s (%s) has no program= and "
                    "several programs could apply: %s; add program= to say "
                    "which one it runs", g->name, g->defined_at, list));
        }
    }
}

static int sg_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    sg_check_ctx ctx;
    server_rec *vs;
    const char *prefix;
    int i;

    (void)plog;
    ctx.p = ptemp;
    ctx.candidates = apr_hash_make(ptemp);
    ctx.reported = apr_hash_make(ptemp);
    ctx.errors = 0;

    sg_make_implicit_groups(pconf, s);

    ctx.phase = 1;
    for (vs = s; vs; vs = vs->next) {
        sg_walk_server(&ctx, vs);
    }
    sg_resolve_programs(&ctx, s);

    ctx.phase = 2;
    for (vs = s; vs; vs = vs->next) {
        sg_walk_server(&ctx, vs);
    }

    prefix = sg_socket_prefix(ptemp, s);
    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);

        if (strlen(prefix) + 1 + strlen(g->name) + SG_SOCKNAME_OVERHEAD
            >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            sg_once(&ctx, APLOG_ERR, s, apr_psprintf(ptemp,
                    "SG0109: the socket path of group %s (%s/<pid>.<generation>."
                    "%s.sock) may exceed the %d bytes a Unix socket path can "
                    "have; use a shorter SwiftSocketPrefix or group name",
                    g->name, prefix, g->name,
                    (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1));
        }
    }
    return ctx.errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

static int sg_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sg_globals.pool = pconf;
    sg_globals.groups = apr_array_make(pconf, 8, sizeof(sg_group *));
    sg_globals.by_name = apr_hash_make(pconf);
    sg_globals.implicit = apr_hash_make(pconf);
    return OK;
}

static void sg_register_hooks(apr_pool_t *p)
{
    static const char * const before_alias[] = { "mod_alias.c", NULL };
    static const char * const after_rewrite[] = { "mod_rewrite.c", NULL };
    static const char * const before_mime[] = { "mod_mime.c", NULL };

    (void)p;
    ap_hook_pre_config(sg_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sg_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(sg_daemon_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sg_daemon_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sg_pool_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_monitor(sg_daemon_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(sg_translate_name, after_rewrite, before_alias,
                           APR_HOOK_MIDDLE);
    ap_hook_type_checker(sg_type_checker, NULL, before_mime, APR_HOOK_FIRST);
    /* before any handler that could serve an aliased request's program */
    ap_hook_handler(sg_refuse_other_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(sg_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(swift_gateway) = {
    STANDARD20_MODULE_STUFF,
    sg_create_dir_config,       /* create per-directory config structure */
    sg_merge_dir_config,        /* merge per-directory config structures */
    sg_create_server_config,    /* create per-server config structure */
    sg_merge_server_config,     /* merge per-server config structures */
    sg_cmds,                    /* command table */
    sg_register_hooks,          /* register hooks */
    AP_MODULE_FLAG_NONE         /* flags */
};
