/*
 * mod_swift_gateway: the records from the worker (Apache children).
 *
 * What each read brought, through the record reader (sg_records.c), and
 * what it means for the request: STDOUT is the response, its header block
 * checked byte by byte as it arrives (sg_records.c), kept, and then handed
 * to httpd's CGI header scanner, its body collected for the output filters;
 * STDERR lines go to the error log; END_REQUEST ends the exchange; the
 * module's REQUEST_WAITING and REQUEST_STARTED say a request waits for a
 * slot of the worker.
 */

#include "sg_exchange.h"
#include "sg_sendfile.h"

#include "http_protocol.h"
#include "util_script.h"

#include "apr_strings.h"

#include <string.h>

APLOG_USE_MODULE(swift_gateway);

#define SG_STDERR_LINE_MAX 8192
/* What one request's STDERR lines may add to the error log: each line's
 * escaped text plus SG_STDERR_LINE_COST for what Apache puts before it.  A
 * worker that floods STDERR gets one SG0550 line, the rest is counted. */
#define SG_STDERR_REQUEST_MAX (1024 * 1024)
#define SG_STDERR_LINE_COST   256
#define SG_HEADER_CHUNK       4096

/* ------------------------------------------------------------------------
 * STDERR: the worker's log lines for the request
 */

/* One line of the worker's stderr to the error log at the level it names,
 * control characters escaped (into a buffer allocated once per request: a
 * chatty worker must not grow the request pool). */
static void sg_log_stderr_line(void *ctx, const char *line, apr_size_t len)
{
    sg_exchange *ex = ctx;
    apr_size_t escaped;
    int level;

    if (len && line[len - 1] == '\r') {
        --len;
    }
    level = sg_stderr_level(&line, &len);
    if (!len || !APLOG_R_IS_LEVEL(ex->r, level)) {
        return;
    }
    if (ex->errlog.logged >= SG_STDERR_REQUEST_MAX) {
        ex->errlog.not_logged += len;
        return;
    }
    if (!ex->errlog.eline) {
        ex->errlog.eline = apr_palloc(ex->r->pool, 4 * SG_STDERR_LINE_MAX + 1);
    }
    escaped = sg_stderr_escape(ex->errlog.eline, line, len);
    ap_log_rerror(APLOG_MARK, level, 0, ex->r, "SG0501: [%s] %s",
                  ex->group->name, ex->errlog.eline);
    ex->errlog.logged += escaped + SG_STDERR_LINE_COST;
    if (ex->errlog.logged >= SG_STDERR_REQUEST_MAX) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, ex->r,
                      "SG0550: group %s: the worker's STDERR lines for this "
                      "request reached %d KiB of error log; the rest of them "
                      "is not logged",
                      ex->group->name, SG_STDERR_REQUEST_MAX / 1024);
    }
}

static void sg_stderr(sg_exchange *ex, const char *data, apr_size_t len)
{
    if (!ex->errlog.ebuf) {
        ex->errlog.ebuf = apr_palloc(ex->r->pool, SG_STDERR_LINE_MAX);
    }
    sg_stderr_split(ex->errlog.ebuf, SG_STDERR_LINE_MAX, &ex->errlog.elen, data,
                    len, sg_log_stderr_line, ex);
}

void sg_stderr_flush(sg_exchange *ex)
{
    if (ex->errlog.elen) {
        sg_log_stderr_line(ex, ex->errlog.ebuf, ex->errlog.elen);
        ex->errlog.elen = 0;
    }
    if (ex->errlog.not_logged) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, ex->r,
                      "SG0551: group %s: %" APR_OFF_T_FMT " bytes of the "
                      "worker's STDERR lines for this request were not logged",
                      ex->group->name, ex->errlog.not_logged);
        ex->errlog.not_logged = 0;
    }
}

/* ------------------------------------------------------------------------
 * STDOUT: the response header block, checked as it arrives, then the body
 */

static sg_outcome sg_bad_headers(sg_exchange *ex, const char *why)
{
    ex->resp.bad_status = HTTP_BAD_GATEWAY;
    ex->resp.bad_why = why;
    return SG_BAD_HEADERS;
}

/* X-Sendfile claimed the response: Apache sends the file once the exchange
 * is over (sg_conclude), with the file's length and validators, against
 * which the request's conditions are then checked; the worker's body is
 * discarded and nothing passes until then. */
static sg_outcome sg_claimed_for_sendfile(sg_exchange *ex)
{
    ex->resp.ignore_body = 1;
    apr_table_unset(ex->r->headers_out, "Content-Length");
    apr_table_unset(ex->r->headers_out, "Transfer-Encoding");
    return SG_DONE;
}

/* Parse the collected header block with httpd's CGI header scanner. */
static sg_outcome sg_finish_headers(sg_exchange *ex)
{
    request_rec *r = ex->r;
    sg_header_lines lines = {ex->resp.hbuf, ex->resp.hbuf + ex->resp.hlen, 0};
    char buf[MAX_STRING_LEN];
    int status;

    status = ap_scan_script_header_err_core_ex(r, buf, sg_header_lines_next,
                                               &lines, APLOG_MODULE_INDEX);
    ex->resp.headers_done = 1;
    if (lines.too_long) {
        /* the scanner took the long line for the block's end: what it read
         * is not the whole head */
        sg_sendfile_claim(r);
        return sg_bad_headers(ex, apr_psprintf(r->pool,
                                               "a header line longer than "
                                               "httpd's CGI header parser "
                                               "takes (%d bytes)",
                                               MAX_STRING_LEN - 1));
    }

    /* taken out of the response whatever follows; an answer the conditions
     * decided is decided again against the file's validators */
    ex->resp.sendfile = sg_sendfile_claim(r);
    if (ex->resp.sendfile
        && (status == OK || status == HTTP_NOT_MODIFIED
            || status == HTTP_PRECONDITION_FAILED)) {
        return sg_claimed_for_sendfile(ex);
    }
    ex->resp.sendfile = NULL;
    if (status == HTTP_NOT_MODIFIED || status == HTTP_PRECONDITION_FAILED) {
        /* the request's conditions decided: send that, drop the body */
        r->status = status;
        ex->resp.ignore_body = 1;
    }
    else if (status != OK) {
        return sg_bad_headers(ex, apr_psprintf(r->pool,
                                               "httpd's CGI header "
                                               "parser refused them (%s)",
                                               buf));
    }
    else if (!ap_is_HTTP_VALID_RESPONSE(r->status)) {
        return sg_bad_headers(ex, apr_psprintf(r->pool, "invalid Status %d",
                                               r->status));
    }
    else if (ap_is_HTTP_INFO(r->status)) {
        /* httpd would send it as the final response: the client would take
         * it as interim and read the body as the next response (101: as
         * another protocol) */
        return sg_bad_headers(ex, apr_psprintf(r->pool,
                                               "an interim Status %d as the "
                                               "final one",
                                               r->status));
    }

    /* FastCGI frames the body; let httpd pick Content-Length or chunked
     * from what is actually sent, unless told to trust the application
     * (or no body is sent: a HEAD response keeps the application's). */
    if (!r->header_only
        && !apr_table_get(r->subprocess_env, AP_TRUST_CGILIKE_CL_ENVVAR)) {
        apr_table_unset(r->headers_out, "Content-Length");
    }
    apr_table_unset(r->headers_out, "Transfer-Encoding");

    if (ex->resp.ignore_body) {
        APR_BRIGADE_INSERT_TAIL(ex->ob,
                                apr_bucket_eos_create(ex->c->bucket_alloc));
    }
    return SG_DONE;
}

/* Appends checked bytes to the header block; the caller made sure the block
 * stays within header-buffer-size. */
static void sg_keep_header_bytes(sg_exchange *ex, const char *data,
                                 apr_size_t n)
{
    if (ex->resp.hlen + n > ex->resp.hcap) {
        apr_size_t limit = (apr_size_t)ex->group->header_buffer_size;
        apr_size_t cap = ex->resp.hcap ? ex->resp.hcap : SG_HEADER_CHUNK;
        char *nb;

        while (cap < ex->resp.hlen + n) {
            cap *= 2;
        }
        if (cap > limit) {
            cap = limit;
        }
        nb = apr_palloc(ex->r->pool, cap + 1);
        if (ex->resp.hlen) {
            memcpy(nb, ex->resp.hbuf, ex->resp.hlen);
        }
        ex->resp.hbuf = nb;
        ex->resp.hcap = cap;
    }
    memcpy(ex->resp.hbuf + ex->resp.hlen, data, n);
    ex->resp.hlen += n;
}

/* STDOUT content while headers are still expected: checks every byte of
 * the header block (sg_header_scan_bytes) within header-buffer-size, keeps
 * it for httpd's scanner, and tells in *used how much of data belonged to
 * it; the rest is body. */
static sg_outcome sg_header_bytes(sg_exchange *ex, const char *data,
                                  apr_size_t len, apr_size_t *used)
{
    apr_size_t limit = (apr_size_t)ex->group->header_buffer_size;
    apr_size_t scan = limit - ex->resp.hlen < len ? limit - ex->resp.hlen : len;
    const char *why = NULL;
    apr_size_t n = 0;
    sg_header_result res;

    res = sg_header_scan_bytes(&ex->resp.scan, data, scan, &n, &why);
    if (res == SG_HEADERS_BAD) {
        return sg_bad_headers(ex, why);
    }
    if (res == SG_HEADERS_MORE && scan < len) {
        return sg_bad_headers(ex,
                              apr_psprintf(ex->r->pool,
                                           "the header block exceeds "
                                           "header-buffer-size=%" APR_OFF_T_FMT
                                           " bytes",
                                           ex->group->header_buffer_size));
    }
    sg_keep_header_bytes(ex, data, n);
    if (res == SG_HEADERS_COMPLETE) {
        *used = n;
        return sg_finish_headers(ex);
    }
    *used = len;
    return SG_DONE;
}

static sg_outcome sg_stdout(sg_exchange *ex, const char *data, apr_size_t len)
{
    if (!ex->resp.headers_done) {
        apr_size_t used = 0;
        sg_outcome o = sg_header_bytes(ex, data, len, &used);

        if (o != SG_DONE || !ex->resp.headers_done) {
            return o;
        }
        data += used;
        len -= used;
    }
    if (len && !ex->resp.ignore_body) {
        APR_BRIGADE_INSERT_TAIL(ex->ob, apr_bucket_transient_create(
                                            data, len, ex->c->bucket_alloc));
        ex->resp.body_bytes += len;
    }
    return SG_DONE;
}

/* ------------------------------------------------------------------------
 * The records
 */

/* A record's content is complete: what it means for the exchange. */
static void sg_record_complete(sg_exchange *ex)
{
    const sg_record_reader *rec = &ex->from.rec;

    if (rec->type == AP_FCGI_END_REQUEST) {
        ex->from.end_seen = 1;
        if (rec->body_have >= 5) {
            ex->from.app_status = sg_record_uint32_at(rec->body);
            ex->from.protocol_status = rec->body[4];
        }
    }
    else if (rec->type == SG_FCGI_REQUEST_WAITING) {
        /* its content is the worker's pid: tells a worker with a hung
         * request from a saturated group */
        long pid = rec->body_have >= 4 ? (long)sg_record_uint32_at(rec->body)
                                       : 0;

        ex->from.waiting = 1;
        ex->from.worker_pid = pid;
        if (!ex->from.said_waiting) {
            ex->from.said_waiting = 1;
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ex->r,
                          "SG0518: group %s: the worker's request slots "
                          "are all running; the request waits for one "
                          "(worker pid %ld)",
                          ex->group->name, pid);
        }
    }
    else if (rec->type == SG_FCGI_REQUEST_STARTED) {
        /* request-timeout counts from here for a queued request */
        if (ex->from.waiting && ex->deadline) {
            ex->deadline = apr_time_now() + sg_backstop_after(ex->group);
        }
        ex->from.waiting = 0;
    }
    else if (rec->type != AP_FCGI_STDOUT && rec->type != AP_FCGI_STDERR
             && rec->type != 0 && ex->from.ignored_records++ == 0) {
        /* the first only: a worker may send millions */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ex->r,
                      "SG0507: group %s: ignored FastCGI record type %d",
                      ex->group->name, rec->type);
    }
}

/* Feed received bytes through the record reader (sg_records.c). */
sg_outcome sg_parse(sg_exchange *ex, const char *data, apr_size_t len)
{
    sg_record_reader *rec = &ex->from.rec;
    apr_size_t pos = 0;

    while (!ex->from.end_seen) {
        apr_size_t at = 0, n = 0;
        sg_outcome o;

        switch (sg_record_next(rec, data, len, &pos, &at, &n)) {
        case SG_RECORD_MORE:
            return SG_DONE;
        case SG_RECORD_HEADER:
            if (rec->request_id && rec->type != AP_FCGI_END_REQUEST
                && rec->type != SG_FCGI_REQUEST_WAITING
                && rec->type != SG_FCGI_REQUEST_STARTED) {
                ex->from.answered = 1;
            }
            break;
        case SG_RECORD_CONTENT:
            if (rec->type == AP_FCGI_STDERR) {
                sg_stderr(ex, data + at, n);
            }
            else if ((o = sg_stdout(ex, data + at, n)) != SG_DONE) {
                return o;
            }
            break;
        case SG_RECORD_COMPLETE:
            sg_record_complete(ex);
            break;
        case SG_RECORD_BAD_VERSION:
            ex->why = apr_psprintf(ex->r->pool,
                                   "FastCGI version %d (expected 1)",
                                   rec->version);
            return SG_PROTOCOL;
        case SG_RECORD_BAD_ID:
            ex->why = apr_psprintf(ex->r->pool,
                                   "FastCGI request id %u (expected %d)",
                                   rec->request_id, SG_REQUEST_ID);
            return SG_PROTOCOL;
        }
    }
    if (pos < len) {
        /* END_REQUEST's padding; more would be the worker's notice that it
         * closes the connection (FCGI_OVERLOADED) */
        apr_size_t take = sg_record_take_padding(rec, len - pos);

        ex->from.leftover = len - pos > take;
    }
    ex->from.rplen = rec->plen;
    return SG_DONE;
}
