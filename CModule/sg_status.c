/*
 * mod_swift_gateway: the status page.
 *
 * SetHandler swift-gateway-status answers GET with every group and its
 * workers, read from the groups' scoreboards (sg_board.c): an HTML page
 * that needs no JavaScript (?refresh=N reloads it as mod_status's does),
 * the same as JSON (?json, or Accept: application/json), or Key: value
 * lines (?auto).  mod_status's /server-status gets a SwiftGateway section
 * through its status_hook, and its ?auto the same lines.
 *
 * Every string from a board is bounded and made printable by sg_board.c;
 * here everything is escaped for where it goes (HTML, JSON).
 */

#include "sg_status.h"
#include "sg_board.h"
#include "sg_daemon.h"
#include "sg_options.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_status.h"

#include "apr_lib.h"
#include "apr_strings.h"
#include "apr_time.h"

#include <string.h>

#define SG_REFRESH_MAX 3600

typedef enum { SG_STATUS_HTML, SG_STATUS_JSON, SG_STATUS_AUTO } sg_format;

/* One group as the page shows it. */
typedef struct {
    const sg_group *group;
    int has_board;
    long connections_waiting; /* -1: unknown */
    sg_board_view view;
} sg_status_group;

static apr_array_header_t *sg_status_collect(apr_pool_t *p)
{
    apr_array_header_t *groups = apr_array_make(p, 4, sizeof(sg_status_group));
    int i;

    for (i = 0; sg_globals.groups && i < sg_globals.groups->nelts; ++i) {
        const sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        const sg_board *b = sg_daemon_board(g);
        sg_status_group *sg;

        if (!b) {
            continue; /* no supervisor: no program (check_config said so) */
        }
        sg = apr_array_push(groups);
        sg->group = g;
        sg->has_board = sg_board_read(p, b, &sg->view);
        sg->connections_waiting = sg_board_connections_waiting(b);
    }
    return groups;
}

/* ------------------------------------------------------------------------
 * Escaping
 */

static void sg_json_string(request_rec *r, const char *s)
{
    const char *run = s;

    ap_rputc('"', r);
    for (; s && *s; ++s) {
        unsigned char c = (unsigned char)*s;

        if (c >= 0x20 && c != 0x7f && c != '"' && c != '\\' && c != '<'
            && c != '>' && c != '&') {
            continue;
        }
        ap_rwrite(run, (int)(s - run), r);
        if (c == '"' || c == '\\') {
            ap_rprintf(r, "\\%c", c);
        }
        else {
            ap_rprintf(r, "\\u%04x", c);
        }
        run = s + 1;
    }
    if (s) {
        ap_rwrite(run, (int)(s - run), r);
    }
    ap_rputc('"', r);
}

static const char *sg_html(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s ? s : "", 0);
}

/* A group name as part of a Key: value key: letters, digits and . _ - @. */
static const char *sg_auto_key(apr_pool_t *p, const char *name)
{
    char *key = apr_pstrdup(p, name);
    char *c;

    for (c = key; *c; ++c) {
        if (!apr_isalnum(*c) && !strchr("._-@", *c)) {
            *c = '_';
        }
    }
    return key;
}

/* ------------------------------------------------------------------------
 * JSON
 */

static void sg_json_counts(request_rec *r, const char *name,
                           const char *const *names, const apr_int64_t *counts,
                           int n)
{
    int i;

    ap_rprintf(r, ",\"%s\":{", name);
    for (i = 0; i < n; ++i) {
        ap_rprintf(r, "%s\"%s\":%" APR_INT64_T_FMT, i ? "," : "", names[i],
                   counts[i]);
    }
    ap_rputs("}", r);
}

static void sg_json_worker(request_rec *r, const sg_board_worker *w)
{
    ap_rprintf(r,
               "{\"entry\":%d,\"slot\":%d,\"pid\":%ld,\"state\":\"%s\","
               "\"accepting\":%s,\"uptime_seconds\":%.3f,"
               "\"requests_served\":%" APR_INT64_T_FMT ",\"in_flight\":%d,"
               "\"queued\":%d,\"routed_requests\":%" APR_INT64_T_FMT ","
               "\"oldest_request\":",
               w->entry, w->slot, w->pid, w->state,
               w->accepting ? "true" : "false", w->uptime, w->requests_served,
               w->in_flight, w->queued, w->routed_requests);
    if (w->has_oldest) {
        ap_rprintf(r, "{\"age_seconds\":%.3f,\"path\":", w->oldest_age);
        if (w->oldest_path) {
            sg_json_string(r, w->oldest_path);
        }
        else {
            ap_rputs("null", r);
        }
        ap_rputs("}", r);
    }
    else {
        ap_rputs("null", r);
    }
    ap_rprintf(r,
               ",\"rss_bytes\":%" APR_INT64_T_FMT ",\"cpu_seconds\":%.3f,"
               "\"last_exit\":",
               w->rss_bytes, w->cpu_seconds);
    sg_json_string(r, w->last_exit);
    ap_rputs("}", r);
}

static void sg_json_group(request_rec *r, const sg_status_group *sg)
{
    const sg_group *g = sg->group;
    const sg_board_view *v = &sg->view;
    int i;

    ap_rputs("{\"name\":", r);
    sg_json_string(r, g->name);
    ap_rputs(",\"program\":", r);
    sg_json_string(r, g->program);
    ap_rputs(",\"user\":", r);
    sg_json_string(r, sg_daemon_user(g));
    ap_rputs(",\"socket\":", r);
    sg_json_string(r, g->socket_path);
    ap_rprintf(r,
               ",\"scoreboard\":%s,\"supervisor_pid\":%ld,"
               "\"processes\":{\"running\":%d,\"draining\":%d,"
               "\"configured\":%d,\"maximum\":%d},\"queue\":{"
               "\"connections_waiting\":",
               sg->has_board ? "true" : "false", v->supervisor_pid, v->running,
               v->draining, g->processes, sg_group_maximum_processes(g));
    if (sg->connections_waiting >= 0) {
        ap_rprintf(r, "%ld", sg->connections_waiting);
    }
    else {
        ap_rputs("null", r);
    }
    ap_rprintf(r,
               ",\"requests_waiting\":%" APR_INT64_T_FMT "},"
               "\"in_flight\":%" APR_INT64_T_FMT ","
               "\"requests_served\":%" APR_INT64_T_FMT,
               v->queued, v->in_flight, v->requests_served);
    sg_json_counts(r, "recycles", sg_recycle_names, v->recycles,
                   SG_RECYCLE_REASONS);
    sg_json_counts(r, "restarts", sg_restart_names, v->restarts,
                   SG_RESTART_REASONS);
    ap_rputs(",\"workers\":[", r);
    for (i = 0; i < v->workers->nelts; ++i) {
        if (i) {
            ap_rputc(',', r);
        }
        sg_json_worker(r, &APR_ARRAY_IDX(v->workers, i, sg_board_worker));
    }
    ap_rputs("]}", r);
}

static void sg_json(request_rec *r, apr_array_header_t *groups)
{
    int i;

    ap_rprintf(r, "{\"time\":%" APR_TIME_T_FMT ",\"groups\":[",
               apr_time_sec(apr_time_now()));
    for (i = 0; i < groups->nelts; ++i) {
        if (i) {
            ap_rputc(',', r);
        }
        sg_json_group(r, &APR_ARRAY_IDX(groups, i, sg_status_group));
    }
    ap_rputs("]}\n", r);
}

/* ------------------------------------------------------------------------
 * Key: value lines (?auto)
 */

static void sg_auto(request_rec *r, apr_array_header_t *groups)
{
    int i, j;

    ap_rprintf(r, "SwiftGatewayGroups: %d\n", groups->nelts);
    for (i = 0; i < groups->nelts; ++i) {
        const sg_status_group *sg = &APR_ARRAY_IDX(groups, i, sg_status_group);
        const sg_board_view *v = &sg->view;
        const char *k = apr_pstrcat(r->pool, "SwiftGateway.",
                                    sg_auto_key(r->pool, sg->group->name),
                                    NULL);

        ap_rprintf(r,
                   "%s.ProcessesRunning: %d\n%s.ProcessesDraining: %d\n"
                   "%s.ProcessesConfigured: %d\n%s.ProcessesMaximum: %d\n",
                   k, v->running, k, v->draining, k, sg->group->processes, k,
                   sg_group_maximum_processes(sg->group));
        if (sg->connections_waiting >= 0) {
            ap_rprintf(r, "%s.ConnectionsWaiting: %ld\n", k,
                       sg->connections_waiting);
        }
        ap_rprintf(r,
                   "%s.RequestsWaiting: %" APR_INT64_T_FMT "\n"
                   "%s.RequestsInFlight: %" APR_INT64_T_FMT "\n"
                   "%s.RequestsServed: %" APR_INT64_T_FMT "\n",
                   k, v->queued, k, v->in_flight, k, v->requests_served);
        for (j = 0; j < SG_RECYCLE_REASONS; ++j) {
            ap_rprintf(r, "%s.Recycles.%s: %" APR_INT64_T_FMT "\n", k,
                       sg_recycle_names[j], v->recycles[j]);
        }
        for (j = 0; j < SG_RESTART_REASONS; ++j) {
            ap_rprintf(r, "%s.Restarts.%s: %" APR_INT64_T_FMT "\n", k,
                       sg_restart_names[j], v->restarts[j]);
        }
    }
}

/* ------------------------------------------------------------------------
 * HTML
 */

static const char *sg_counts_html(request_rec *r, const char *const *names,
                                  const apr_int64_t *counts, int n)
{
    const char *out = "";
    int i;

    for (i = 0; i < n; ++i) {
        if (counts[i]) {
            out = apr_psprintf(r->pool, "%s%s%s %" APR_INT64_T_FMT, out,
                               *out ? ", " : "", names[i], counts[i]);
        }
    }
    return *out ? out : "none";
}

static void sg_html_worker(request_rec *r, const sg_board_worker *w)
{
    ap_rprintf(r,
               "<tr><td>%d</td><td>%d</td><td>%ld</td><td>%s%s</td>"
               "<td>%.1f s</td><td>%" APR_INT64_T_FMT "</td><td>%d</td>"
               "<td>%d</td><td>%" APR_INT64_T_FMT "</td>",
               w->entry, w->slot, w->pid, w->state,
               w->accepting ? "" : " (not accepting)", w->uptime,
               w->requests_served, w->in_flight, w->queued, w->routed_requests);
    if (w->has_oldest) {
        ap_rprintf(r, "<td>%.1f s</td><td><code>%s</code></td>", w->oldest_age,
                   w->oldest_path ? sg_html(r, w->oldest_path) : "");
    }
    else {
        ap_rputs("<td></td><td></td>", r);
    }
    ap_rprintf(r, "<td>%.1f MiB</td><td>%.2f s</td><td>%s</td></tr>\n",
               (double)w->rss_bytes / (1024.0 * 1024.0), w->cpu_seconds,
               sg_html(r, w->last_exit));
}

static void sg_html_group(request_rec *r, const sg_status_group *sg,
                          const char *heading)
{
    const sg_group *g = sg->group;
    const sg_board_view *v = &sg->view;
    int i;

    ap_rprintf(r, "<%s>Group %s</%s>\n<table class=\"sg-group\">\n", heading,
               sg_html(r, g->name), heading);
    ap_rprintf(r, "<tr><th>program</th><td><code>%s</code></td></tr>\n",
               sg_html(r, g->program));
    ap_rprintf(r, "<tr><th>user</th><td>%s</td></tr>\n",
               sg_html(r, sg_daemon_user(g)));
    ap_rprintf(r, "<tr><th>socket</th><td><code>%s</code></td></tr>\n",
               sg_html(r, g->socket_path));
    if (!sg->has_board) {
        ap_rputs("<tr><th>scoreboard</th><td>none: Apache could not make "
                 "one (SG0601)</td></tr>\n",
                 r);
    }
    else if (!v->supervisor_pid) {
        ap_rputs("<tr><th>supervisor</th><td>none took the scoreboard yet "
                 "(starting, or a program built with an older "
                 "SwiftGateway)</td></tr>\n",
                 r);
    }
    else {
        ap_rprintf(r, "<tr><th>supervisor</th><td>pid %ld</td></tr>\n",
                   v->supervisor_pid);
    }
    ap_rprintf(r,
               "<tr><th>processes</th><td>%d running / %d configured / %d "
               "maximum; %d draining</td></tr>\n",
               v->running, g->processes, sg_group_maximum_processes(g),
               v->draining);
    ap_rprintf(r,
               "<tr><th>queue</th><td>%s connections waiting, %" APR_INT64_T_FMT
               " requests waiting; %" APR_INT64_T_FMT " in flight</td></tr>\n",
               sg->connections_waiting >= 0
                   ? apr_ltoa(r->pool, sg->connections_waiting)
                   : "?",
               v->queued, v->in_flight);
    ap_rprintf(r,
               "<tr><th>requests served</th><td>%" APR_INT64_T_FMT
               "</td></tr>\n",
               v->requests_served);
    ap_rprintf(r, "<tr><th>recycles</th><td>%s</td></tr>\n",
               sg_counts_html(r, sg_recycle_names, v->recycles,
                              SG_RECYCLE_REASONS));
    ap_rprintf(r, "<tr><th>restarts</th><td>%s</td></tr>\n</table>\n",
               sg_counts_html(r, sg_restart_names, v->restarts,
                              SG_RESTART_REASONS));
    if (!v->workers->nelts) {
        ap_rputs("<p>No worker runs.</p>\n", r);
        return;
    }
    ap_rputs("<table class=\"sg-workers\">\n<tr><th>entry</th><th>slot</th>"
             "<th>pid</th><th>state</th><th>uptime</th><th>served</th>"
             "<th>in flight</th><th>queued</th><th>routed</th>"
             "<th>oldest request</th><th>its path</th><th>RSS</th>"
             "<th>CPU</th><th>last exit of its slot</th></tr>\n",
             r);
    for (i = 0; i < v->workers->nelts; ++i) {
        sg_html_worker(r, &APR_ARRAY_IDX(v->workers, i, sg_board_worker));
    }
    ap_rputs("</table>\n", r);
}

static void sg_html_groups(request_rec *r, apr_array_header_t *groups,
                           const char *heading)
{
    int i;

    if (!groups->nelts) {
        ap_rputs("<p>No process group is configured.</p>\n", r);
    }
    for (i = 0; i < groups->nelts; ++i) {
        sg_html_group(r, &APR_ARRAY_IDX(groups, i, sg_status_group), heading);
    }
}

static void sg_html_page(request_rec *r, apr_array_header_t *groups)
{
    ap_rputs(DOCTYPE_HTML_4_01 "<html><head>\n<title>SwiftGateway "
                               "status</title>\n<style>\n"
                               "table { border-collapse: collapse; margin: "
                               "0.5em 0 1em; }\n"
                               "th, td { border: 1px solid #bbb; padding: "
                               "0.2em 0.5em; text-align: left; }\n"
                               "</style>\n</head><body>\n"
                               "<h1>SwiftGateway status</h1>\n",
             r);
    ap_rprintf(r,
               "<p>%s, %s. Also as <a href=\"?json\">JSON</a> and "
               "<a href=\"?auto\">Key: value lines</a>.</p>\n",
               sg_html(r, ap_get_server_name(r)),
               ap_ht_time(r->pool, apr_time_now(), "%Y-%m-%d %H:%M:%S %Z", 0));
    sg_html_groups(r, groups, "h2");
    ap_rputs("</body></html>\n", r);
}

/* ------------------------------------------------------------------------
 * Handler and hook
 */

/* Whether the query string has the word `name` (alone or as name=...),
 * and where its value starts. */
static const char *sg_query_word(const char *args, const char *name)
{
    apr_size_t len = strlen(name);
    const char *s = args;

    while (s && *s) {
        if (!strncmp(s, name, len) && (!s[len] || strchr("=&;", s[len]))) {
            return s + len;
        }
        s = strpbrk(s, "&;");
        s = s ? s + 1 : NULL;
    }
    return NULL;
}

static sg_format sg_format_of(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    if (sg_query_word(r->args, "auto")) {
        return SG_STATUS_AUTO;
    }
    if (sg_query_word(r->args, "json")
        || (accept && ap_strcasestr(accept, "application/json"))) {
        return SG_STATUS_JSON;
    }
    return SG_STATUS_HTML;
}

/* ?refresh or ?refresh=N, as mod_status: the page asks to be loaded again
 * every N seconds (1 when N is missing or not a number). */
static void sg_refresh(request_rec *r)
{
    const char *refresh = sg_query_word(r->args, "refresh");
    apr_int64_t seconds = 1;

    if (!refresh) {
        return;
    }
    if (*refresh == '=') {
        seconds = apr_atoi64(refresh + 1);
        if (seconds < 1) {
            seconds = 1;
        }
        if (seconds > SG_REFRESH_MAX) {
            seconds = SG_REFRESH_MAX;
        }
    }
    apr_table_setn(r->headers_out, "Refresh",
                   apr_psprintf(r->pool, "%" APR_INT64_T_FMT, seconds));
}

int sg_status_handler(request_rec *r)
{
    apr_array_header_t *groups;
    sg_format format;

    if (!r->handler || strcmp(r->handler, SG_STATUS_HANDLER)) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL); /* the 405's Allow */
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    format = sg_format_of(r);
    sg_refresh(r);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_mergen(r->headers_out, "Vary", "Accept");
    ap_set_content_type(r, format == SG_STATUS_JSON ? "application/json"
                           : format == SG_STATUS_AUTO
                               ? "text/plain; charset=utf-8"
                               : "text/html; charset=utf-8");
    if (r->header_only) {
        return OK;
    }
    groups = sg_status_collect(r->pool);
    switch (format) {
    case SG_STATUS_JSON:
        sg_json(r, groups);
        break;
    case SG_STATUS_AUTO:
        sg_auto(r, groups);
        break;
    default:
        sg_html_page(r, groups);
        break;
    }
    return OK;
}

int sg_status_hook(request_rec *r, int flags)
{
    apr_array_header_t *groups = sg_status_collect(r->pool);

    if (flags & AP_STATUS_SHORT) {
        sg_auto(r, groups);
        return OK;
    }
    ap_rputs("<hr />\n<h2>SwiftGateway</h2>\n", r);
    sg_html_groups(r, groups, "h3");
    return OK;
}
