/*
 * mod_swift_gateway: the handler (Apache children).
 *
 * For a request the gateway serves: resolves its process group and mount,
 * builds its records, reads a short body whole, takes a connection, runs
 * the exchange (once more on a new connection when the worker turned it
 * away unrun), gives the connection back, and maps how the exchange ended
 * to the client's response.
 */

#include "sg_affinity.h"
#include "sg_body.h"
#include "sg_config.h"
#include "sg_exchange.h"
#include "sg_handler.h"
#include "sg_route.h"
#include "sg_sendfile.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_strings.h"

#include <string.h>

APLOG_USE_MODULE(swift_gateway);

/* A request body of known length up to this is read whole before the
 * worker is contacted (one STDIN record): see sg_read_small_body(). */
#define SG_SMALL_BODY (16 * 1024)
/* A response body up to this long ends with a flush (sg_flush_to_client):
 * httpd's core output filter holds less than 4K (THRESHOLD_MIN_WRITE) and
 * writes more at once by itself, leaving what the client cannot take yet to
 * the MPM's write completion, which holds no thread for a slow client. */
#define SG_FLUSH_AT_END_MAX 4096

/* ------------------------------------------------------------------------
 * How the exchange ended, to the client
 */

/* The worker failed after the response started: make the client see a
 * broken response (no final chunk) and close the connection. */
static void sg_abort_response(sg_exchange *ex)
{
    request_rec *r = ex->r;

    apr_brigade_cleanup(ex->ob);
    r->no_cache = 1;
    if (r->main) {
        r->main->no_cache = 1;
    }
    APR_BRIGADE_INSERT_TAIL(ex->ob,
                            ap_bucket_error_create(HTTP_BAD_GATEWAY, NULL,
                                                   ex->c->pool,
                                                   ex->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(ex->ob, apr_bucket_eos_create(ex->c->bucket_alloc));
    ap_pass_brigade(r->output_filters, ex->ob);
    apr_brigade_cleanup(ex->ob);
    ex->c->keepalive = AP_CONN_CLOSE;
}

static void sg_log_client_body_failure(request_rec *r, const sg_group *g,
                                       const char *what, apr_status_t rv,
                                       apr_off_t got)
{
    /* AP_FILTER_ERROR is no errno: httpd's input filter refused the body
     * (bad chunk, LimitRequestBody) and logged why itself */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, rv == AP_FILTER_ERROR ? 0 : rv, r,
                  "SG0509: group %s: %s failed after %" APR_OFF_T_FMT
                  " bytes%s",
                  g->name, what, got,
                  rv == AP_FILTER_ERROR
                      ? " (httpd refused the body and answers the client)"
                      : "");
}

/* A finished short response leaves now, not after httpd has looked for the
 * client's next request (ap_check_pipeline): the core output filter holds a
 * short response without a file bucket until the event MPM's write
 * completion, so the next request could never be there yet and every request
 * went back through the MPM's listener.  Connection filters only: the
 * request's have seen EOS. */
static void sg_flush_to_client(sg_exchange *ex)
{
    if (ex->resp.body_bytes > SG_FLUSH_AT_END_MAX) {
        return;
    }
    ap_fflush(ex->c->output_filters, ex->ob);
    apr_brigade_cleanup(ex->ob);
}

/* request-timeout's backstop: the worker neither completed the response
 * nor gave up on it itself (its supervisor makes it answer 504 within
 * request-timeout + 1 s), so its event loop is most likely blocked.  The
 * connection is closed, never pooled (the exchange did not end). */
static int sg_give_up(sg_exchange *ex)
{
    request_rec *r = ex->r;
    const sg_group *g = ex->group;

    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "SG0519: group %s: no complete response within "
                  "request-timeout=%d s + 1.5 s from the worker (pid %s, "
                  "socket %s), which did not give up on the request itself "
                  "(application code that never suspends?); %s",
                  g->name, g->request_timeout,
                  ex->from.worker_pid ? apr_ltoa(r->pool, ex->from.worker_pid)
                                      : "unknown",
                  g->socket_path,
                  ex->resp.headers_passed ? "aborting the client connection"
                                          : "answering 504");
    if (ex->resp.headers_passed) {
        sg_abort_response(ex);
        return OK;
    }
    apr_brigade_cleanup(ex->ob);
    return HTTP_GATEWAY_TIME_OUT;
}

/* The worker answered with X-Sendfile: the exchange is over and its
 * connection released, so the worker's slot is free while Apache sends the
 * file. */
static int sg_conclude_sendfile(sg_exchange *ex)
{
    if (!ex->to.stdin_done || ex->to.stdin_broken) {
        ap_discard_request_body(ex->r);
    }
    return sg_sendfile_send(ex->r, ex->resp.sendfile);
}

/* Map how the exchange ended to the client's response. */
static int sg_conclude(sg_exchange *ex, sg_outcome o)
{
    request_rec *r = ex->r;
    const sg_group *g = ex->group;

    sg_stderr_flush(ex);

    if (o == SG_CLIENT_GONE) {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, ex->why_rv, r,
            "SG0508: group %s: the client went away after %" APR_OFF_T_FMT
            " response body bytes",
            g->name, ex->resp.body_bytes);
        ex->c->keepalive = AP_CONN_CLOSE;
        return OK;
    }
    if (o == SG_CLIENT_BODY) {
        sg_log_client_body_failure(r, g, ex->why, ex->why_rv, ex->to.body_sent);
        if (ex->resp.headers_passed) {
            sg_abort_response(ex);
            return OK;
        }
        return ap_map_http_request_error(ex->why_rv, HTTP_BAD_REQUEST);
    }
    if (o == SG_REQUEST_TIMEOUT) {
        return sg_give_up(ex);
    }

    if (o == SG_DONE) {
        if (!ex->resp.headers_done) {
            if (ex->from.protocol_status == SG_FCGI_OVERLOADED) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "SG0506: group %s: the worker refused the "
                              "request as overloaded (socket %s)",
                              g->name, g->socket_path);
                return HTTP_SERVICE_UNAVAILABLE;
            }
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0505: group %s: the worker ended the request "
                          "without complete response headers (%" APR_SIZE_T_FMT
                          " header bytes; socket %s)",
                          g->name, ex->resp.hlen, g->socket_path);
            return HTTP_BAD_GATEWAY;
        }
        if (ex->resp.sendfile) {
            return sg_conclude_sendfile(ex);
        }
        if (!ex->resp.ignore_body) {
            APR_BRIGADE_INSERT_TAIL(ex->ob,
                                    apr_bucket_eos_create(ex->c->bucket_alloc));
        }
        if (!APR_BRIGADE_EMPTY(ex->ob)) {
            apr_status_t rv = ap_pass_brigade(r->output_filters, ex->ob);

            apr_brigade_cleanup(ex->ob);
            if (rv != APR_SUCCESS) {
                ex->c->keepalive = AP_CONN_CLOSE;
                return OK;
            }
            sg_flush_to_client(ex);
        }
        if (!ex->to.stdin_done || ex->to.stdin_broken) {
            /* answered before reading the whole request body */
            ap_discard_request_body(r);
        }
        return OK;
    }

    if (ex->resp.headers_passed) {
        const char *what = o == SG_WORKER_EOF
                               ? "the worker closed the connection"
                           : o == SG_WORKER_TIMEOUT
                               ? apr_psprintf(r->pool,
                                              "the worker sent "
                                              "nothing for socket-timeout=%d s",
                                              g->socket_timeout)
                           : o == SG_PROTOCOL
                               ? ex->why
                               : "I/O error on the worker socket";

        ap_log_rerror(APLOG_MARK, APLOG_ERR, ex->why_rv, r,
                      "SG0510: group %s: response truncated after %" APR_OFF_T_FMT
                      " body bytes: %s before END_REQUEST "
                      "(socket %s); aborting the client connection",
                      g->name, ex->resp.body_bytes, what, g->socket_path);
        sg_abort_response(ex);
        return OK;
    }

    switch (o) {
    case SG_WORKER_EOF:
        if (sg_past_request_timeout(ex)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, ex->why_rv, r,
                          "SG0520: group %s: the worker closed the connection "
                          "before sending response headers, after the request "
                          "ran past request-timeout=%d s (the supervisor killed "
                          "a stuck worker; socket %s); answering 504",
                          g->name, g->request_timeout, g->socket_path);
            return HTTP_GATEWAY_TIME_OUT;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, ex->why_rv, r,
                      "SG0502: group %s: the worker closed the connection "
                      "before sending response headers (socket %s); it "
                      "probably crashed or was killed, see its log lines",
                      g->name, g->socket_path);
        return HTTP_BAD_GATEWAY;
    case SG_WORKER_TIMEOUT:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0503: group %s: no response headers within "
                      "socket-timeout=%d s (socket %s)",
                      g->name, g->socket_timeout, g->socket_path);
        return HTTP_GATEWAY_TIME_OUT;
    case SG_BAD_HEADERS:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0504: group %s: bad response headers from the "
                      "worker: %s (socket %s)",
                      g->name, ex->resp.bad_why, g->socket_path);
        return ex->resp.bad_status;
    case SG_PROTOCOL:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0511: group %s: the worker does not speak FastCGI "
                      "as expected: %s (socket %s)",
                      g->name, ex->why, g->socket_path);
        return HTTP_BAD_GATEWAY;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, ex->why_rv, r,
                      "SG0512: group %s: %s failed (socket %s)", g->name,
                      ex->why ? ex->why : "talking to the worker",
                      g->socket_path);
        return HTTP_BAD_GATEWAY;
    }
}

/* ------------------------------------------------------------------------
 * A short request body, read whole before the worker is contacted
 */

/* Content-Length when the request declares one of at most SG_SMALL_BODY
 * bytes and no Transfer-Encoding, else -1. */
static apr_off_t sg_small_body_length(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t len;
    char *end;

    if (!cl || apr_table_get(r->headers_in, "Transfer-Encoding")
        || apr_strtoff(&len, cl, &end, 10) != APR_SUCCESS || *end || len <= 0
        || len > SG_SMALL_BODY) {
        return -1;
    }
    return len;
}

/* Reads a short body whole through the input filters (so LimitRequestBody,
 * mod_reqtimeout and 100-continue apply as before) straight into its STDIN
 * record in params.  Such a request then goes in one send, may use a kept
 * connection and may be sent again if the worker turns it away; and a slow
 * client holds no worker slot meanwhile.  *got tells how much arrived. */
static apr_status_t sg_read_small_body(sg_exchange *ex, apr_off_t *got)
{
    request_rec *r = ex->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, ex->c->bucket_alloc);
    char *buf = ex->to.small_body;
    apr_size_t len = ex->to.small_body_len;
    apr_size_t have = 0;
    apr_status_t rv = APR_SUCCESS;
    int eos = 0;

    while (!eos && rv == APR_SUCCESS) {
        apr_bucket *e;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, SG_SMALL_BODY);
        for (e = APR_BRIGADE_FIRST(bb);
             rv == APR_SUCCESS && e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(e)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                continue;
            }
            rv = apr_bucket_read(e, &data, &n, APR_BLOCK_READ);
            if (rv == APR_SUCCESS && n > len - have) {
                rv = APR_EGENERAL; /* HTTP_IN passes no more than Content-Length */
            }
            if (rv == APR_SUCCESS) {
                memcpy(buf + have, data, n);
                have += n;
            }
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    *got = have;
    /* HTTP_IN reports a body cut short itself; the record's length is fixed */
    return rv == APR_SUCCESS && have != len ? APR_INCOMPLETE : rv;
}

/* ------------------------------------------------------------------------
 * The handler
 */

/* Why the worker turned away, unrun, a request sent on an idle connection
 * (so it may go again on a new one), or NULL. */
static const char *sg_turned_away(const sg_exchange *ex, sg_outcome o)
{
    /* A socket closed with bytes unread makes the kernel report ECONNRESET
     * to its peer, not EOF: the worker (gone, or closing) never read this
     * request, so never ran it.  Only a replayable request (no body, or a
     * short one read whole) can go again. */
    if (o == SG_WORKER_EOF && ex->replayable && ex->from.received == 0
        && APR_STATUS_IS_ECONNRESET(ex->why_rv)) {
        return "the worker closed the connection without reading the request";
    }
    /* It waited for a slot: the worker went away (exited, or crashed through
     * another request) before starting it. */
    if (o == SG_WORKER_EOF && ex->replayable && ex->from.waiting
        && !ex->from.answered) {
        return "the worker closed the connection while the request waited "
               "for a request slot";
    }
    if (!ex->conn.pooled) {
        return NULL;
    }
    if (o == SG_NOT_SENT) {
        return "closed before the request was sent";
    }
    if (o == SG_DONE && ex->from.protocol_status == SG_FCGI_OVERLOADED
        && !ex->from.answered) {
        return "END_REQUEST with FCGI_OVERLOADED";
    }
    return NULL;
}

/* The connection can carry another request: the worker completed this
 * one, got all of it, said it keeps the connection, and sent nothing after
 * END_REQUEST. */
static int sg_reusable(const sg_exchange *ex, sg_outcome o)
{
    return o == SG_DONE && ex->from.end_seen
           && ex->from.protocol_status == SG_FCGI_REQUEST_COMPLETE
           && ex->from.app_status == SG_APP_STATUS_KEPT && ex->to.stdin_done
           && !ex->to.stdin_broken && ex->from.rplen == 0 && !ex->from.leftover;
}

int sg_handler(request_rec *r)
{
    sg_dir_conf *dconf;
    sg_request_conf *rconf;
    const sg_alias *alias;
    const sg_group *g;
    sg_source source;
    const char *script_name, *path_info;
    const char *why;
    sg_exchange *ex;
    sg_outcome o;
    int rc;

    if (!r->handler || strcmp(r->handler, SG_HANDLER)) {
        return DECLINED;
    }
    dconf = ap_get_module_config(r->per_dir_config, &swift_gateway_module);
    rconf = ap_get_module_config(r->request_config, &swift_gateway_module);
    alias = rconf ? rconf->alias : NULL;

    if ((rc = sg_resolve_group(r, dconf, alias, &g, &source)) != OK) {
        return rc;
    }
    if (alias) {
        if (g->program_real && strcmp(g->program_real, alias->program_real)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0404: %s routes %s to process group %s, which "
                          "runs %s, but SwiftScriptAlias %s (%s) mounts %s "
                          "here; give the alias its own group or fix "
                          "program=",
                          sg_describe_source(r, &source), r->uri, g->name,
                          g->program, alias->len ? alias->path : "/",
                          alias->defined_at, alias->program);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        script_name = rconf->script_name;
        path_info = rconf->path_info;
    }
    else {
        script_name = sg_location_mount(r);
        path_info = r->uri
                    + (sg_path_covers(script_name, r->uri) ? strlen(script_name)
                                                           : 0);
    }

    /* the response's type is the application's, not the file name's */
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;

    ex = apr_pcalloc(r->pool, sizeof(*ex));
    ex->r = r;
    ex->c = r->connection;
    ex->group = g;
    ex->conn.fd = -1;
    ex->replayable = !ap_request_has_body(r);
    if (!ex->replayable) {
        apr_off_t len = sg_small_body_length(r);

        if (len > 0) {
            ex->to.small_body_len = (apr_size_t)len;
            ex->replayable = 1;
        }
    }

    sg_build_env(r, dconf, g, script_name, path_info);
    sg_build_params(ex);
    if (ex->to.small_body_len || (!ex->replayable && g->body_read_ahead > 0)) {
        apr_off_t got = 0;
        /* a small body whole; a longer or chunked one, its read-ahead */
        apr_status_t rv = ex->to.small_body_len
                              ? sg_read_small_body(ex, &got)
                              : sg_body_read_ahead(r, g->body_read_ahead, &got);

        if (rv != APR_SUCCESS) {
            sg_log_client_body_failure(r, g,
                                       "reading the request body from "
                                       "the client",
                                       rv, got);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
    }

    if (g->affinity_cookie) {
        ex->conn.route = sg_affinity_route(r, g);
    }
    /* the connection last: it holds a worker's request slot */
    if ((rc = sg_open(ex)) != OK) {
        return rc;
    }

    if (!ex->replayable) {
        ex->to.ib = apr_brigade_create(r->pool, ex->c->bucket_alloc);
        ex->to.ib_next = apr_brigade_create(r->pool, ex->c->bucket_alloc);
    }
    ex->from.iobuf = apr_palloc(r->pool, SG_RECV_BUF_SIZE);
    ex->ob = apr_brigade_create(r->pool, ex->c->bucket_alloc);

    sg_exchange_reset(ex);
    o = sg_exchange_run(ex);
    if ((why = sg_turned_away(ex, o)) != NULL) {
        /* once, and on a new connection: no worker has run it */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, ex->why_rv, r,
                      "SG0515: group %s: the worker turned away the request "
                      "(%s); sending it again on a new connection",
                      g->name, why);
        sg_detach(ex);
        if ((rc = sg_reconnect(ex)) != OK) {
            return rc;
        }
        sg_exchange_reset(ex);
        o = sg_exchange_run(ex);
    }

    /* back to the pool before the client has had the last bytes */
    ex->conn.reusable = sg_reusable(ex, o);
    sg_detach(ex);
    return sg_conclude(ex, o);
}
