/*
 * mod_swift_gateway: which requests the gateway serves, and with which
 * process group (Apache children).
 *
 * translate_name maps SwiftScriptAlias mounts (longest match) to the
 * "swift-gateway" handler and notes the mount on the request; two handler
 * hooks, one before every other handler and one just before httpd's default
 * handler, refuse such a request to a handler that would serve the program
 * file.  The gateway's
 * handler (sg_handler.c) then resolves the request's process group here.
 */

#include "sg_config.h"
#include "sg_route.h"

#include "http_core.h"
#include "http_request.h"

#include "apr_strings.h"

#include <string.h>
#include <strings.h>

APLOG_USE_MODULE(swift_gateway);

/* ------------------------------------------------------------------------
 * translate_name: SwiftScriptAlias
 */

int sg_translate_name(request_rec *r)
{
    sg_server_conf *sconf = ap_get_module_config(r->server->module_config,
                                                 &swift_gateway_module);
    const sg_alias *a;
    sg_request_conf *rconf;

    if (r->uri[0] != '/' || r->proxyreq) {
        return DECLINED;
    }
    if (!(a = sg_match_alias(sconf, r->uri))) {
        return DECLINED;
    }
    rconf = apr_pcalloc(r->pool, sizeof(*rconf));
    rconf->alias = a;
    rconf->script_name = a->path;
    rconf->path_info = r->uri + a->len;
    ap_set_module_config(r->request_config, &swift_gateway_module, rconf);

    r->filename = apr_pstrdup(r->pool, a->program);
    r->path_info = apr_pstrdup(r->pool, rconf->path_info);
    r->handler = SG_HANDLER;
    return OK;
}

/* type_checker: for an aliased request the program's file name must not
 * give the response a content type, nor mod_mime's AddHandler another
 * handler (a SetHandler in a section still wins: core applies it later). */
int sg_type_checker(request_rec *r)
{
    if (!ap_get_module_config(r->request_config, &swift_gateway_module)) {
        return DECLINED;
    }
    r->handler = SG_HANDLER;
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;
    return OK;
}

/* A request a SwiftScriptAlias mapped has the program as its file name
 * (so that <Directory> sections of the program apply), which a handler that
 * serves files would send: httpd's default handler (SetHandler
 * default-handler, or a handler name no module provides), mod_include,
 * mod_asis, a script interpreter.  Such a request is the gateway's, one of
 * the handlers below that never read the request's file, or nobody's.
 * (SetHandler None leaves the gateway's handler in place.)  A sub-request
 * or an internal redirect to an aliased URI goes through translate_name
 * itself, so it carries its own note. */
static const char *const sg_handlers_without_file[] = {"server-status",
                                                       "server-info",
                                                       SG_STATUS_HANDLER, NULL};

static int sg_refuse(request_rec *r, const sg_request_conf *rconf)
{
    const sg_alias *a = rconf->alias;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "SG0407: handler %s took %s, which SwiftScriptAlias %s (%s) "
                  "maps to program %s; refused so that the program file is "
                  "never served: remove the SetHandler that applies here, "
                  "or move its section out of the mount",
                  r->handler && *r->handler ? r->handler : "(default)", r->uri,
                  a->len ? a->path : "/", a->defined_at, a->program);
    return HTTP_FORBIDDEN;
}

static const sg_request_conf *sg_aliased(request_rec *r)
{
    if (r->handler && !strcmp(r->handler, SG_HANDLER)) {
        return NULL;
    }
    return ap_get_module_config(r->request_config, &swift_gateway_module);
}

int sg_refuse_file_handler(request_rec *r)
{
    const sg_request_conf *rconf = sg_aliased(r);
    int i;

    if (!rconf) {
        return DECLINED;
    }
    for (i = 0; r->handler && sg_handlers_without_file[i]; ++i) {
        if (!strcmp(r->handler, sg_handlers_without_file[i])) {
            return DECLINED;
        }
    }
    return sg_refuse(r, rconf);
}

int sg_refuse_unserved(request_rec *r)
{
    const sg_request_conf *rconf = sg_aliased(r);

    return rconf ? sg_refuse(r, rconf) : DECLINED;
}

/* ------------------------------------------------------------------------
 * Group resolution: a SwiftProcessGroup in the matching section, then the
 * alias's process-group=, then a server-wide SwiftProcessGroup, then the
 * alias's implicit group; SwiftRestrictProcess limits what may be chosen.
 */

static int sg_allowed(const sg_dir_conf *dconf, const char *name)
{
    int i;

    if (!dconf->restrict_to) {
        return 1;
    }
    for (i = 0; i < dconf->restrict_to->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(dconf->restrict_to, i, const char *), name)) {
            return 1;
        }
    }
    return 0;
}

/* The name a SwiftProcessGroup setting selects, NULL when a %{ENV:var} is
 * unset (resolution then goes on with the next rule). */
static const char *sg_setting_name(request_rec *r, const sg_dir_conf *dconf)
{
    const char *v;

    if (!dconf->group_env) {
        return dconf->group;
    }
    v = apr_table_get(r->subprocess_env, dconf->group_env);
    return v && *v ? v : NULL;
}

const char *sg_describe_source(request_rec *r, const sg_source *source)
{
    switch (source->kind) {
    case SG_SOURCE_ALIAS:
        return apr_psprintf(r->pool, "process-group= of SwiftScriptAlias (%s)",
                            source->alias->defined_at);
    case SG_SOURCE_IMPLICIT:
        return "the implicit group of the alias";
    default:
        return apr_psprintf(r->pool, "SwiftProcessGroup (%s)",
                            source->dconf->group_at);
    }
}

static int sg_lookup(request_rec *r, const char *name, const sg_source *source,
                     const sg_group **out)
{
    sg_group *elsewhere;
    sg_group *g = sg_find_group(r->server, name, &elsewhere);

    if (!g) {
        if (elsewhere) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0402: %s selects process group %s, which is "
                          "declared in another virtual host (%s); declare it "
                          "in the main server to share it, or declare a group "
                          "in this virtual host",
                          sg_describe_source(r, source), name,
                          elsewhere->defined_at);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0401: %s selects process group %s, which is not "
                          "declared; add SwiftDaemonProcess %s or fix the "
                          "group name",
                          sg_describe_source(r, source), name, name);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    *out = g;
    return OK;
}

int sg_resolve_group(request_rec *r, const sg_dir_conf *dconf,
                     const sg_alias *alias, const sg_group **out,
                     sg_source *source)
{
    const char *name = NULL;
    int rc;

    source->dconf = dconf;
    source->alias = alias;
    source->kind = SG_SOURCE_SETTING;
    /* a SwiftProcessGroup in the matching section, then the alias's
     * process-group=, then a server-wide SwiftProcessGroup */
    if (dconf->group_set && dconf->group_in_section) {
        name = sg_setting_name(r, dconf);
    }
    if (!name && alias && alias->group_name) {
        name = alias->group_name;
        source->kind = SG_SOURCE_ALIAS;
    }
    if (!name && dconf->group_set && !dconf->group_in_section) {
        name = sg_setting_name(r, dconf);
    }

    if (!name) {
        if (alias && alias->implicit) {
            *out = alias->implicit;
            source->kind = SG_SOURCE_IMPLICIT;
            return OK;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0405: no process group applies to %s%s; add "
                      "SwiftProcessGroup NAME here",
                      r->uri,
                      alias ? ""
                            : " (SetHandler swift-gateway without "
                              "SwiftScriptAlias needs SwiftProcessGroup)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((rc = sg_lookup(r, name, source, out)) != OK) {
        return rc;
    }
    if (!sg_allowed(dconf, name)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0403: %s selects process group %s, which "
                      "SwiftRestrictProcess does not allow here; add it to "
                      "SwiftRestrictProcess or select another group",
                      sg_describe_source(r, source), name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* SCRIPT_NAME for SetHandler swift-gateway: the path of the most specific
 * non-regex <Location> that sets this handler and matches the URI. */
const char *sg_location_mount(request_rec *r)
{
    core_server_config *sconf = ap_get_core_module_config(
        r->server->module_config);
    const char *best = NULL;
    apr_size_t best_len = 0;
    int i;

    if (!sconf->sec_url) {
        return "";
    }
    for (i = 0; i < sconf->sec_url->nelts; ++i) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(sconf->sec_url, i,
                                            ap_conf_vector_t *);
        core_dir_config *core = ap_get_core_module_config(v);
        const char *val, *err = NULL;
        apr_size_t len;

        if (!core || !core->d || core->r || core->d_is_fnmatch
            || !core->expr_handler || !sg_path_covers(core->d, r->uri)) {
            continue;
        }
        val = ap_expr_str_exec(r, core->expr_handler, &err);
        if (err || !val || strcasecmp(val, SG_HANDLER)) {
            continue;
        }
        len = strlen(core->d);
        while (len > 0 && core->d[len - 1] == '/') {
            --len;
        }
        if (!best || len >= best_len) {
            best = core->d;
            best_len = len;
        }
    }
    return best ? apr_pstrmemdup(r->pool, best, best_len) : "";
}
