/*
 * mod_swift_gateway: the records that open a request to the worker
 * (Apache children).
 *
 * The CGI/1.1 variables of the request, the mount's SCRIPT_NAME and
 * PATH_INFO and the control parameters SWIFT_GATEWAY_*, encoded with
 * BEGIN_REQUEST as PARAMS records in one buffer, so that one send() carries
 * a request without a body (or with a short one) whole.
 */

#include "sg_exchange.h"

#include "http_core.h"
#include "http_protocol.h"
#include "util_script.h"

#include "apr_strings.h"

#include <string.h>
#include <strings.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

#define SG_PARAMS_RECORD (16 * 1024)

/* Variables only this module sets: the control parameters SWIFT_GATEWAY_*,
 * HTTP_PROXY (httpoxy: never a client-controlled proxy setting), REMOTE_USER
 * and AUTH_TYPE (from authentication only).  Any case, as apr_table_unset. */
static int sg_reserved_variable(const char *key)
{
    switch (key[0]) { /* the first letter turns nearly every variable away */
    case 'S':
    case 's':
        return !strncasecmp(key, "SWIFT_GATEWAY_", 14);
    case 'H':
    case 'h':
        return !strcasecmp(key, "HTTP_PROXY");
    case 'R':
    case 'r':
        return !strcasecmp(key, "REMOTE_USER");
    case 'A':
    case 'a':
        return !strcasecmp(key, "AUTH_TYPE");
    default:
        return 0;
    }
}

/* Removes the reserved variables, whoever set them (a header, SetEnv, ...):
 * one pass over the table, and a removal only for one that is there. */
static void sg_remove_reserved(apr_table_t *e, apr_pool_t *p)
{
    const apr_array_header_t *arr = apr_table_elts(e);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *drop = NULL;
    int i;

    for (i = 0; i < arr->nelts; ++i) {
        if (elts[i].key && sg_reserved_variable(elts[i].key)) {
            if (!drop) {
                drop = apr_array_make(p, 2, sizeof(const char *));
            }
            APR_ARRAY_PUSH(drop, const char *) = elts[i].key;
        }
    }
    for (i = 0; drop && i < drop->nelts; ++i) {
        apr_table_unset(e, APR_ARRAY_IDX(drop, i, const char *));
    }
}

void sg_build_env(request_rec *r, const sg_dir_conf *dconf, const sg_group *g,
                  const char *script_name, const char *path_info)
{
    apr_table_t *e = r->subprocess_env;
    const char *auth;

    ap_add_common_vars(r);
    {
        /* PATH_INFO is the mount's; hiding r->path_info also spares
         * ap_add_cgi_vars() the sub-request that computes PATH_TRANSLATED,
         * which means nothing to a program that owns its URL space. */
        char *saved = r->path_info;

        r->path_info = NULL;
        ap_add_cgi_vars(r);
        r->path_info = saved;
    }

    apr_table_setn(e, "SCRIPT_NAME", script_name);
    apr_table_setn(e, "PATH_INFO", path_info);
    apr_table_setn(e, "SCRIPT_FILENAME", g->program);

    sg_remove_reserved(e, r->pool);
    /* none of the reserved ones is in the table now: add, without a search */
    if (r->user) {
        apr_table_addn(e, "REMOTE_USER", r->user);
        if (r->ap_auth_type) {
            apr_table_addn(e, "AUTH_TYPE", r->ap_auth_type);
        }
    }

    if (dconf->pass_auth == 1) {
        if ((auth = apr_table_get(r->headers_in, "Authorization")) != NULL) {
            apr_table_setn(e, "HTTP_AUTHORIZATION", auth);
        }
    }
    else if (dconf->pass_auth == 0) {
        apr_table_unset(e, "HTTP_AUTHORIZATION");
        apr_table_unset(e, "HTTP_PROXY_AUTHORIZATION");
    }

    if (!r->log_id) {
        const char *id = NULL;

        if (ap_run_generate_log_id(r->connection, r, &id) == OK && id) {
            r->log_id = id;
        }
    }
    apr_table_addn(e, "SWIFT_GATEWAY_GROUP", g->name);
    apr_table_addn(e, "SWIFT_GATEWAY_REQUEST_START",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT, r->request_time));
    apr_table_addn(e, "SWIFT_GATEWAY_REQUEST_ID",
                   r->log_id
                       ? r->log_id
                       : apr_psprintf(r->pool,
                                      "%" APR_PID_T_FMT "-%" APR_TIME_T_FMT
                                      "-%pp",
                                      getpid(), apr_time_now(), (void *)r));
    apr_table_addn(e, "SWIFT_GATEWAY_TOKEN", g->token ? g->token : "");
}

/* One PARAMS record: the variables from `start` on that fill `len` bytes. */
typedef struct {
    int start;
    apr_size_t len;
} sg_params_record;

/* BEGIN_REQUEST, the PARAMS records and the empty PARAMS, in one buffer;
 * without a request body, or with a short one read whole, also STDIN to its
 * end, so that one send() carries the whole request and a failed one means
 * the worker got none of it. */
void sg_build_params(sg_exchange *ex)
{
    request_rec *r = ex->r;
    const apr_array_header_t *arr = apr_table_elts(r->subprocess_env);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *records = apr_array_make(r->pool, 4,
                                                 sizeof(sg_params_record));
    ap_fcgi_begin_request_body brb;
    unsigned char *buf, *p;
    apr_size_t total = 2 * AP_FCGI_HEADER_LEN + 2 * AP_FCGI_HEADER_LEN
                       + (ex->to.small_body_len
                              ? AP_FCGI_HEADER_LEN + ex->to.small_body_len
                              : 0);
    int next = 0;
    int i;

    while (next < arr->nelts) {
        int start = next;
        apr_size_t len = ap_fcgi_encoded_env_len(r->subprocess_env,
                                                 SG_PARAMS_RECORD, &next);
        sg_params_record *rec;

        if (!len) {
            if (next < arr->nelts) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              "SG0514: group %s: variable %s is too large for "
                              "a PARAMS record and is not passed",
                              ex->group->name, elts[next].key);
                ++next;
                continue;
            }
            break;
        }
        rec = apr_array_push(records);
        rec->start = start;
        rec->len = len;
        total += AP_FCGI_HEADER_LEN + len;
    }

    buf = p = apr_palloc(r->pool, total);
    sg_put_header(p, AP_FCGI_BEGIN_REQUEST, AP_FCGI_HEADER_LEN);
    p += AP_FCGI_HEADER_LEN;
    ap_fcgi_fill_in_request_body(&brb, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
    ap_fcgi_begin_request_body_to_array(&brb, p);
    p += AP_FCGI_HEADER_LEN;
    for (i = 0; i < records->nelts; ++i) {
        sg_params_record *rec = &APR_ARRAY_IDX(records, i, sg_params_record);
        int start = rec->start;

        /* encoded in place: no buffer per record to copy from */
        sg_put_header(p, AP_FCGI_PARAMS, rec->len);
        p += AP_FCGI_HEADER_LEN;
        ap_fcgi_encode_env(r, r->subprocess_env, (char *)p, rec->len, &start);
        p += rec->len;
    }
    sg_put_header(p, AP_FCGI_PARAMS, 0);
    p += AP_FCGI_HEADER_LEN;
    if (ex->to.small_body_len) {
        /* room for the body, which sg_read_small_body() reads in place */
        sg_put_header(p, AP_FCGI_STDIN, ex->to.small_body_len);
        p += AP_FCGI_HEADER_LEN;
        ex->to.small_body = (char *)p;
        p += ex->to.small_body_len;
    }
    if (ex->replayable) {
        sg_put_header(p, AP_FCGI_STDIN, 0);
        p += AP_FCGI_HEADER_LEN;
    }

    ex->to.params = (const char *)buf;
    ex->to.params_len = p - buf;
}
