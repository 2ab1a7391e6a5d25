/*
 * mod_swift_gateway: the records from the worker (Apache children).
 *
 * A FastCGI record parser fed with what each read brought: STDOUT is the
 * response, its header block checked byte by byte as it arrives and then
 * handed to httpd's CGI header scanner, its body collected for the output
 * filters; STDERR lines go to the error log; END_REQUEST ends the exchange;
 * the module's REQUEST_WAITING and REQUEST_STARTED say a request waits for
 * a slot of the worker.
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

/* The level a line of the worker's stderr names in its prefix ("warn: "),
 * which is stripped; a line without one is logged at error, as before the
 * workers named their levels. */
static int sg_stderr_line_level(const char **line, apr_size_t *len)
{
    static const struct {
        const char *prefix;
        apr_size_t size;
        int level;
    } levels[] = {{"debug: ", 7, APLOG_DEBUG},   {"info: ", 6, APLOG_INFO},
                  {"notice: ", 8, APLOG_NOTICE}, {"warn: ", 6, APLOG_WARNING},
                  {"error: ", 7, APLOG_ERR},     {"crit: ", 6, APLOG_CRIT},
                  {"alert: ", 7, APLOG_ALERT},   {"emerg: ", 7, APLOG_EMERG}};
    apr_size_t i;

    for (i = 0; i < sizeof(levels) / sizeof(levels[0]); ++i) {
        if (*len >= levels[i].size
            && memcmp(*line, levels[i].prefix, levels[i].size) == 0) {
            *line += levels[i].size;
            *len -= levels[i].size;
            return levels[i].level;
        }
    }
    return APLOG_ERR;
}

/* One line of the worker's stderr to the error log at the level it names,
 * control characters escaped (into a buffer allocated once per request: a
 * chatty worker must not grow the request pool). */
static void sg_log_stderr_line(sg_exchange *ex, const char *line,
                               apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o;
    apr_size_t i;
    int level;

    if (len && line[len - 1] == '\r') {
        --len;
    }
    level = sg_stderr_line_level(&line, &len);
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
    for (o = ex->errlog.eline, i = 0; i < len; ++i) {
        unsigned char ch = (unsigned char)line[i];

        if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
            *o++ = (char)ch;
        }
        else if (ch == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        }
        else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 0xf];
        }
    }
    *o = '\0';
    ap_log_rerror(APLOG_MARK, level, 0, ex->r, "SG0501: [%s] %s",
                  ex->group->name, ex->errlog.eline);
    ex->errlog.logged += (apr_size_t)(o - ex->errlog.eline)
                         + SG_STDERR_LINE_COST;
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
    while (len) {
        const char *nl = memchr(data, '\n', len);
        apr_size_t take = nl ? (apr_size_t)(nl - data) : len;

        if (!ex->errlog.ebuf) {
            ex->errlog.ebuf = apr_palloc(ex->r->pool, SG_STDERR_LINE_MAX);
        }
        while (ex->errlog.elen + take > SG_STDERR_LINE_MAX) {
            apr_size_t room = SG_STDERR_LINE_MAX - ex->errlog.elen;

            memcpy(ex->errlog.ebuf + ex->errlog.elen, data, room);
            sg_log_stderr_line(ex, ex->errlog.ebuf, SG_STDERR_LINE_MAX);
            ex->errlog.elen = 0;
            data += room;
            len -= room;
            take -= room;
        }
        memcpy(ex->errlog.ebuf + ex->errlog.elen, data, take);
        ex->errlog.elen += take;
        data += take;
        len -= take;
        if (nl) {
            sg_log_stderr_line(ex, ex->errlog.ebuf, ex->errlog.elen);
            ex->errlog.elen = 0;
            data++;
            len--;
        }
    }
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

/* RFC 9110 token characters (letters, digits and !#$%&'*+-.^_`|~), one bit
 * per byte value: the test runs for every byte of every header name. */
static const apr_uint32_t sg_tchar_bits[8] = {0x00000000, 0x03ff6cfa,
                                              0xc7fffffe, 0x57ffffff,
                                              0,          0,
                                              0,          0};

static int sg_is_tchar(unsigned char c)
{
    return (sg_tchar_bits[c >> 5] >> (c & 31)) & 1;
}

static sg_outcome sg_bad_headers(sg_exchange *ex, const char *why)
{
    ex->resp.bad_status = HTTP_BAD_GATEWAY;
    ex->resp.bad_why = why;
    return SG_BAD_HEADERS;
}

/* The checked header block, handed line by line to httpd's CGI header
 * scanner: each line without its CR LF, as ap_scan_script_header_err_core_ex
 * expects from a getsfunc; 0 once no complete line is left. */
typedef struct {
    const char *pos;
    const char *end;
} sg_header_lines;

static int sg_next_header_line(char *buf, int len, void *data)
{
    sg_header_lines *lines = data;
    const char *nl = memchr(lines->pos, '\n', lines->end - lines->pos);
    apr_size_t n;

    /* the block was checked: a CR only ever comes right before its LF */
    if (!nl || nl - lines->pos > len - 1) {
        *buf = '\0';
        return 0;
    }
    n = (apr_size_t)(nl - lines->pos);
    if (n && nl[-1] == '\r') {
        --n;
    }
    memcpy(buf, lines->pos, n);
    buf[n] = '\0';
    lines->pos = nl + 1;
    return 1;
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
    sg_header_lines lines = {ex->resp.hbuf, ex->resp.hbuf + ex->resp.hlen};
    char buf[MAX_STRING_LEN];
    int status;

    status = ap_scan_script_header_err_core_ex(r, buf, sg_next_header_line,
                                               &lines, APLOG_MODULE_INDEX);
    ex->resp.headers_done = 1;

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
 * the header block (no CR without LF, no NUL or other control character,
 * names of token characters, at most header-buffer-size bytes), keeps it for
 * httpd's scanner, and tells in *used how much of data belonged to it; the
 * rest is body.  The scan state lives in locals: stores into the block could
 * alias the exchange's fields and would make the compiler reload them per byte. */
static sg_outcome sg_header_bytes(sg_exchange *ex, const char *data,
                                  apr_size_t len, apr_size_t *used)
{
    apr_size_t limit = (apr_size_t)ex->group->header_buffer_size;
    apr_size_t scan = limit - ex->resp.hlen < len ? limit - ex->resp.hlen : len;
    apr_size_t line_len = ex->resp.line_len;
    int in_name = ex->resp.in_name;
    int prev_cr = ex->resp.prev_cr;
    int complete = 0;
    const char *why = NULL;
    apr_size_t i;

    for (i = 0; i < scan; ++i) {
        unsigned char ch = (unsigned char)data[i];

        if (!prev_cr
            && (in_name ? sg_is_tchar(ch) : ch >= 0x20 && ch != 0x7f)) {
            line_len += in_name;
            continue; /* a name or value byte: the common cases */
        }
        if (prev_cr && ch != '\n') {
            why = "a bare CR in the header block (header injection)";
            break;
        }
        if (ch == '\r') {
            prev_cr = 1;
        }
        else if (ch == '\n') {
            prev_cr = 0;
            if (line_len == 0) {
                complete = 1;
                ++i;
                break;
            }
            if (in_name) {
                why = "a header line without ':'";
                break;
            }
            line_len = 0;
            in_name = 1;
        }
        else if (ch == '\0') {
            why = "a NUL byte in the header block (header injection)";
            break;
        }
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            why = "a control character in the header block";
            break;
        }
        else if (in_name && ch == ':') {
            if (line_len == 0) {
                why = "a header with an empty name";
                break;
            }
            in_name = 0;
        }
        else if (in_name) {
            why = "an invalid character in a header name";
            break;
        }
    }
    if (why) {
        return sg_bad_headers(ex, why);
    }
    if (!complete && scan < len) {
        return sg_bad_headers(ex,
                              apr_psprintf(ex->r->pool,
                                           "the header block exceeds "
                                           "header-buffer-size=%" APR_OFF_T_FMT
                                           " bytes",
                                           ex->group->header_buffer_size));
    }
    sg_keep_header_bytes(ex, data, i);
    ex->resp.line_len = line_len;
    ex->resp.in_name = in_name;
    ex->resp.prev_cr = prev_cr;
    if (complete) {
        *used = i;
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

/* FastCGI's four-byte big-endian integer at p */
static apr_uint32_t sg_uint32_at(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

/* Feed received bytes through the record parser. */
sg_outcome sg_parse(sg_exchange *ex, const char *data, apr_size_t len)
{
    sg_outcome o;

    while (len > 0 && !ex->from.end_seen) {
        if (!ex->from.in_content && ex->from.rplen == 0) {
            apr_size_t take = AP_FCGI_HEADER_LEN - ex->from.rhdr_have;
            unsigned char version, type, plen;
            apr_uint16_t rid, clen;

            if (take > len) {
                take = len;
            }
            memcpy(ex->from.rhdr + ex->from.rhdr_have, data, take);
            ex->from.rhdr_have += take;
            data += take;
            len -= take;
            if (ex->from.rhdr_have < AP_FCGI_HEADER_LEN) {
                break;
            }
            ex->from.rhdr_have = 0;
            ap_fcgi_header_fields_from_array(&version, &type, &rid, &clen,
                                             &plen, ex->from.rhdr);
            if (version != AP_FCGI_VERSION_1) {
                ex->why = apr_psprintf(ex->r->pool,
                                       "FastCGI version %d "
                                       "(expected 1)",
                                       version);
                return SG_PROTOCOL;
            }
            if (rid != SG_REQUEST_ID && rid != 0) {
                ex->why = apr_psprintf(ex->r->pool,
                                       "FastCGI request id %d "
                                       "(expected %d)",
                                       rid, SG_REQUEST_ID);
                return SG_PROTOCOL;
            }
            ex->from.rtype = rid ? type : 0; /* management records: skip */
            if (rid && type != AP_FCGI_END_REQUEST
                && type != SG_FCGI_REQUEST_WAITING
                && type != SG_FCGI_REQUEST_STARTED) {
                ex->from.answered = 1;
            }
            ex->from.rclen = clen;
            ex->from.rplen = plen;
            ex->from.in_content = 1;
            ex->from.rbody_have = 0;
        }
        else if (ex->from.in_content && ex->from.rclen > 0) {
            apr_size_t take = ex->from.rclen < len ? ex->from.rclen : len;

            switch (ex->from.rtype) {
            case AP_FCGI_STDOUT:
                if ((o = sg_stdout(ex, data, take)) != SG_DONE) {
                    return o;
                }
                break;
            case AP_FCGI_STDERR:
                sg_stderr(ex, data, take);
                break;
            case AP_FCGI_END_REQUEST:
            case SG_FCGI_REQUEST_WAITING:
                if (ex->from.rbody_have < sizeof(ex->from.rbody)) {
                    apr_size_t n = sizeof(ex->from.rbody) - ex->from.rbody_have;

                    if (n > take) {
                        n = take;
                    }
                    memcpy(ex->from.rbody + ex->from.rbody_have, data, n);
                    ex->from.rbody_have += n;
                }
                break;
            default:
                break;
            }
            ex->from.rclen -= take;
            data += take;
            len -= take;
        }
        else if (ex->from.rplen > 0 && !ex->from.in_content) {
            apr_size_t take = ex->from.rplen < len ? ex->from.rplen : len;

            ex->from.rplen -= take;
            data += take;
            len -= take;
        }

        if (ex->from.in_content && ex->from.rclen == 0) {
            /* a record's content is complete */
            ex->from.in_content = 0;
            if (ex->from.rtype == AP_FCGI_END_REQUEST) {
                ex->from.end_seen = 1;
                if (ex->from.rbody_have >= 5) {
                    ex->from.app_status = sg_uint32_at(ex->from.rbody);
                    ex->from.protocol_status = ex->from.rbody[4];
                }
            }
            else if (ex->from.rtype == SG_FCGI_REQUEST_WAITING) {
                /* its content is the worker's pid: tells a worker with a
                 * hung request from a saturated group */
                long pid = ex->from.rbody_have >= 4
                               ? (long)sg_uint32_at(ex->from.rbody)
                               : 0;

                ex->from.waiting = 1;
                ex->from.worker_pid = pid;
                if (!ex->from.said_waiting) {
                    ex->from.said_waiting = 1;
                    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ex->r,
                                  "SG0518: group %s: the worker's request "
                                  "slots are all running; the request waits "
                                  "for one (worker pid %ld)",
                                  ex->group->name, pid);
                }
            }
            else if (ex->from.rtype == SG_FCGI_REQUEST_STARTED) {
                /* request-timeout counts from here for a queued request */
                if (ex->from.waiting && ex->deadline) {
                    ex->deadline = apr_time_now()
                                   + sg_backstop_after(ex->group);
                }
                ex->from.waiting = 0;
            }
            else if (ex->from.rtype != AP_FCGI_STDOUT
                     && ex->from.rtype != AP_FCGI_STDERR && ex->from.rtype != 0
                     && ex->from.ignored_records++ == 0) {
                /* the first only: a worker may send millions */
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ex->r,
                              "SG0507: group %s: ignored FastCGI record type %d",
                              ex->group->name, ex->from.rtype);
            }
        }
    }
    if (ex->from.end_seen && len > 0) {
        /* END_REQUEST's padding; more would be the worker's notice that it
         * closes the connection (FCGI_OVERLOADED) */
        apr_size_t take = ex->from.rplen < len ? ex->from.rplen : len;

        ex->from.rplen -= take;
        ex->from.leftover = len > take;
    }
    return SG_DONE;
}
