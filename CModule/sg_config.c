/*
 * mod_swift_gateway: the configuration as written.
 *
 * The per-server and per-directory records and their merging, the
 * directives that fill them (SwiftDaemonProcess's options are
 * sg_options.c's), and the look-ups over them that the other files use:
 * which alias matches a URI, which group a name means in a server.
 */

#include "sg_config.h"
#include "sg_options.h"

#include "http_core.h"
#include "http_main.h"

#include "apr_strings.h"
#include "apr_lib.h"

#include <string.h>

#define SG_MAX_NAME_LEN 64

sg_globals_t sg_globals;

/* ------------------------------------------------------------------------
 * Small helpers and look-ups
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

        if ((!best || a->len > best->len) && strncmp(uri, a->path, a->len) == 0
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
        sg_server_conf *mconf = ap_get_module_config(
            ap_server_conf->module_config, &swift_gateway_module);
        if (mconf->groups) {
            g = apr_hash_get(mconf->groups, name, APR_HASH_KEY_STRING);
        }
    }
    if (!g && elsewhere && sg_globals.by_name) {
        *elsewhere = apr_hash_get(sg_globals.by_name, name,
                                  APR_HASH_KEY_STRING);
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

/* ------------------------------------------------------------------------
 * Configuration records
 */

/* pre_config: a new generation's configuration starts empty. */
int sg_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sg_globals.pool = pconf;
    sg_globals.groups = apr_array_make(pconf, 8, sizeof(sg_group *));
    sg_globals.by_name = apr_hash_make(pconf);
    sg_globals.implicit = apr_hash_make(pconf);
    return OK;
}

void *sg_create_server_config(apr_pool_t *p, server_rec *s)
{
    sg_server_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->aliases = apr_array_make(p, 4, sizeof(sg_alias *));
    conf->all_aliases = conf->aliases;
    conf->groups = apr_hash_make(p);
    return conf;
}

void *sg_merge_server_config(apr_pool_t *p, void *basev, void *addv)
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

void *sg_create_dir_config(apr_pool_t *p, char *dir)
{
    sg_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->path = dir;
    conf->pass_auth = SG_UNSET;
    conf->sendfile = SG_UNSET;
    return conf;
}

void *sg_merge_dir_config(apr_pool_t *p, void *basev, void *addv)
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
    conf->sendfile = add->sendfile != SG_UNSET ? add->sendfile : base->sendfile;
    /* allowed directories add up from the outer sections to the inner */
    if (base->sendfile_paths && add->sendfile_paths) {
        conf->sendfile_paths = apr_array_append(p, base->sendfile_paths,
                                                add->sendfile_paths);
    }
    else {
        conf->sendfile_paths = add->sendfile_paths ? add->sendfile_paths
                                                   : base->sendfile_paths;
    }
    return conf;
}

/* ------------------------------------------------------------------------
 * Directives
 */

static const char *sg_cmd_daemon_process(cmd_parms *cmd, void *dummy,
                                         const char *args)
{
    sg_server_conf *sconf = ap_get_module_config(cmd->server->module_config,
                                                 &swift_gateway_module);
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_LOC_FILE);
    char *name;
    sg_group *g, *other;

    (void)dummy;
    if (err) {
        return err;
    }
    if ((err = sg_next_word(cmd->pool, &args, &name)) != NULL || !name) {
        return "SwiftDaemonProcess: a group name is required";
    }
    if (!sg_valid_group_name(name)) {
        return apr_psprintf(cmd->pool,
                            "SwiftDaemonProcess %s: invalid group "
                            "name; use letters, digits, '.', '_' and '-' "
                            "(starting with a letter or digit, at most %d "
                            "characters)",
                            name, SG_MAX_NAME_LEN);
    }
    other = apr_hash_get(sg_globals.by_name, name, APR_HASH_KEY_STRING);
    if (other) {
        return apr_psprintf(cmd->pool,
                            "SwiftDaemonProcess %s: duplicate group "
                            "name; a group '%s' is already declared at %s "
                            "(group names are unique across the whole server, "
                            "virtual hosts included)",
                            name, name, other->defined_at);
    }

    g = sg_new_group(cmd->pool, name);
    g->defined_at = sg_where(cmd);
    g->server = cmd->server;
    g->is_main = !cmd->server->is_virtual;
    if ((err = sg_group_options(cmd, g, args)) != NULL) {
        return err;
    }

    apr_hash_set(sconf->groups, g->name, APR_HASH_KEY_STRING, g);
    apr_hash_set(sg_globals.by_name, g->name, APR_HASH_KEY_STRING, g);
    APR_ARRAY_PUSH(sg_globals.groups, sg_group *) = g;
    return NULL;
}

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
        return apr_psprintf(cmd->pool,
                            "SwiftScriptAlias %s: the URL path must "
                            "start with '/'",
                            url);
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
            return apr_psprintf(cmd->pool,
                                "SwiftScriptAlias %s: unknown option "
                                "'%s' (the only option is process-group=NAME)",
                                url, opt);
        }
        a->group_name = opt + 14;
        if (!sg_valid_group_name(a->group_name)) {
            return apr_psprintf(cmd->pool,
                                "SwiftScriptAlias %s: option '%s': "
                                "invalid group name",
                                url, opt);
        }
    }
    for (i = 0; i < sconf->aliases->nelts; ++i) {
        sg_alias *o = APR_ARRAY_IDX(sconf->aliases, i, sg_alias *);

        if (!strcmp(o->path, a->path)) {
            return apr_psprintf(cmd->pool,
                                "SwiftScriptAlias %s: this URL path "
                                "is already mounted at %s",
                                url, o->defined_at);
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
        return apr_psprintf(
            cmd->pool,
            "SwiftProcessGroup %s: not a group name "
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
        return apr_psprintf(cmd->pool,
                            "SwiftRestrictProcess %s: not a valid "
                            "group name",
                            arg);
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

static const char *sg_cmd_sendfile(cmd_parms *cmd, void *dconfv, int flag)
{
    sg_dir_conf *dconf = dconfv;

    (void)cmd;
    dconf->sendfile = flag;
    return NULL;
}

static const char *sg_cmd_sendfile_path(cmd_parms *cmd, void *dconfv,
                                        const char *arg)
{
    sg_dir_conf *dconf = dconfv;
    apr_size_t len = strlen(arg);

    if (arg[0] != '/') {
        return apr_psprintf(cmd->pool,
                            "SwiftSendfilePath %s: the directory must be an "
                            "absolute path",
                            arg);
    }
    while (len > 1 && arg[len - 1] == '/') {
        --len;
    }
    if (!dconf->sendfile_paths) {
        dconf->sendfile_paths = apr_array_make(cmd->pool, 2,
                                               sizeof(const char *));
    }
    APR_ARRAY_PUSH(dconf->sendfile_paths,
                   const char *) = apr_pstrmemdup(cmd->pool, arg, len);
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
        return apr_psprintf(cmd->pool, "SwiftSocketPrefix %s: invalid path",
                            arg);
    }
    return NULL;
}

const command_rec sg_cmds[] = {
    AP_INIT_RAW_ARGS("SwiftDaemonProcess", sg_cmd_daemon_process, NULL,
                     RSRC_CONF,
                     "NAME [option=value ...] - declare a process group "
                     "running a Swift program"),
    AP_INIT_TAKE1(
        "SwiftProcessGroup", sg_cmd_process_group, NULL,
        RSRC_CONF | ACCESS_CONF,
        "NAME or %{ENV:variable} - the process group serving requests"),
    AP_INIT_TAKE23(
        "SwiftScriptAlias", sg_cmd_script_alias, NULL, RSRC_CONF,
        "URL-PATH PROGRAM [process-group=NAME] - mount a Swift program"),
    AP_INIT_ITERATE("SwiftRestrictProcess", sg_cmd_restrict_process, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "NAME ... - groups that SwiftProcessGroup may select here"),
    AP_INIT_FLAG("SwiftPassAuthorization", sg_cmd_pass_auth, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On|Off - forward the Authorization header (default Off)"),
    AP_INIT_FLAG("SwiftSendfile", sg_cmd_sendfile, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On|Off - let the worker's X-Sendfile response header make "
                 "Apache send a file (default Off)"),
    AP_INIT_ITERATE("SwiftSendfilePath", sg_cmd_sendfile_path, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "DIR ... - directories whose files X-Sendfile may send"),
    AP_INIT_TAKE1("SwiftSocketPrefix", sg_cmd_socket_prefix, NULL, RSRC_CONF,
                  "PATH - directory of the process groups' sockets"),
    {NULL}};
