/*
 * mod_swift_gateway: the configuration check (check_config hook).
 *
 * Gives each alias without a group an implicit one, gives each group
 * without program= the one program that can reach it, and refuses a
 * configuration that statically routes an alias's requests to a group
 * running another program, or whose socket paths would be too long.
 */

#include "sg_config.h"
#include "sg_config_check.h"
#include "sg_sockets.h"
#include "sg_options.h"

#include "http_core.h"

#include "apr_strings.h"

#include <string.h>
#include <sys/un.h>

/* Longest socket path component contributed by "<pid>.<generation>." and
 * ".sock": pid_max is at most 4194304 (7 digits), generation is an int. */
#define SG_SOCKNAME_OVERHEAD (7 + 1 + 10 + 1 + 5)

/* ------------------------------------------------------------------------
 * Configuration check: implicit groups, program resolution, static
 * detection of requests routed to a group running another program.
 */

typedef struct {
    apr_pool_t *p;
    int phase;              /* 1: collect programs, 2: report mismatches */
    apr_hash_t *candidates; /* sg_group * -> apr_hash_t (real -> alias) */
    apr_hash_t *reported;   /* messages already logged */
    int errors;
} sg_check_ctx;

typedef struct {
    const char *path;
    int regex; /* regex or wildcard: not statically decidable */
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
                apr_hash_set(ctx->candidates,
                             apr_pmemdup(ctx->p, &g, sizeof(g)), sizeof(g), h);
            }
            apr_hash_set(h, a->program_real, APR_HASH_KEY_STRING, a);
        }
        return;
    }
    if (certain && g->program_real
        && strcmp(g->program_real, a->program_real)) {
        sg_once(
            ctx, APLOG_ERR, s,
            apr_psprintf(
                ctx->p,
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
            return 1; /* cannot tell: assume it might */
        }
        if (below
            && (!sg_path_covers(below, sec->path)
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
        return NULL; /* %{ENV:...}: decided per request */
    }
    g = sg_find_group(s, d->group, &other);
    if (!g && ctx->phase == 1) {
        sg_once(
            ctx, APLOG_WARNING, s,
            apr_psprintf(
                ctx->p,
                "SG0102: SwiftProcessGroup %s (%s) names a group that is not "
                "declared %s; requests there will get 500 until you declare "
                "SwiftDaemonProcess %s in the main server or in this virtual "
                "host",
                d->group, d->group_at,
                other ? apr_psprintf(ctx->p,
                                     "for this virtual host (it is "
                                     "declared at %s)",
                                     other->defined_at)
                      : "anywhere",
                d->group));
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
            sg_usage(ctx, s, g, a,
                     apr_psprintf(ctx->p, "process-group=%s", a->group_name),
                     1);
        }
        else if (ctx->phase == 1) {
            sg_once(
                ctx, APLOG_WARNING, s,
                apr_psprintf(
                    ctx->p,
                    "SG0103: SwiftScriptAlias %s (%s) uses process-group=%s, "
                    "which is not declared %s; its requests will get 500 until "
                    "you declare SwiftDaemonProcess %s in the main server or in "
                    "this virtual host",
                    a->len ? a->path : "/", a->defined_at, a->group_name,
                    other ? "for this virtual host" : "anywhere",
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
        what = apr_psprintf(ctx->p,
                            "SwiftProcessGroup %s in <Location %s> (%s)",
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
        what = apr_psprintf(ctx->p,
                            "SwiftProcessGroup %s in <Directory %s> (%s)",
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
            sg_usage(ctx, s, g, a,
                     apr_psprintf(ctx->p,
                                  "SwiftProcessGroup %s "
                                  "(%s)",
                                  g->name, sd->group_at),
                     !covered);
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
                                               base ? base + 1
                                                    : a->program_real,
                                               NULL);
                int n = 1;

                while (apr_hash_get(sg_globals.by_name, name,
                                    APR_HASH_KEY_STRING)) {
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
                apr_hash_set(sg_globals.by_name, g->name, APR_HASH_KEY_STRING,
                             g);
                APR_ARRAY_PUSH(sg_globals.groups, sg_group *) = g;
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, main_s,
                             "SG0111: implicit process group %s runs %s for "
                             "SwiftScriptAlias %s (%s)",
                             g->name, g->program, a->len ? a->path : "/",
                             a->defined_at);
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
            sg_server_conf *sconf = ap_get_module_config(
                g->server->module_config, &swift_gateway_module);
            int j;

            h = apr_hash_make(ctx->p);
            for (j = 0; j < sconf->all_aliases->nelts; ++j) {
                const sg_alias *x = APR_ARRAY_IDX(sconf->all_aliases, j,
                                                  sg_alias *);

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
            sg_once(
                ctx, APLOG_ERR, main_s,
                apr_psprintf(
                    ctx->p,
                    "SG0105: SwiftDaemonProcess %s (%s) has no program= and no "
                    "SwiftScriptAlias in its scope to take the program from; "
                    "add program=/path/to/executable",
                    g->name, g->defined_at));
        }
        else {
            sg_once(ctx, APLOG_ERR, main_s,
                    apr_psprintf(
                        ctx->p,
                        "SG0104: SwiftDaemonProcess %s (%s) has no program= and "
                        "several programs could apply: %s; add program= to say "
                        "which one it runs",
                        g->name, g->defined_at, list));
        }
    }
}

int sg_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s)
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
            sg_once(
                &ctx, APLOG_ERR, s,
                apr_psprintf(
                    ptemp,
                    "SG0109: the socket path of group %s (%s/<pid>.<generation>."
                    "%s.sock) may exceed the %d bytes a Unix socket path can "
                    "have; use a shorter SwiftSocketPrefix or group name",
                    g->name, prefix, g->name,
                    (int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1));
        }
    }
    return ctx.errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}
