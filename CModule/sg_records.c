/*
 * mod_swift_gateway: what a worker sends, parsed (Apache children).
 *
 * The record reader, the header block's checks and the stderr line
 * splitter (sg_records.h), free of I/O and of calls into httpd, so that
 * the fuzz target links this very file.
 */

#include "sg_records.h"

/* httpd's headers for their constants only (APLOG_*, AP_FCGI_*) */
#include "httpd.h"
#include "http_log.h"
#include "util_fcgi.h"

#include <string.h>

/* ------------------------------------------------------------------------
 * The records
 */

void sg_record_reader_init(sg_record_reader *rd)
{
    rd->hdr_have = 0;
    rd->version = AP_FCGI_VERSION_1;
    rd->request_id = 0;
    rd->type = 0;
    rd->clen = 0;
    rd->plen = 0;
    rd->in_content = 0;
    rd->body_have = 0;
}

apr_uint32_t sg_record_uint32_at(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

/* A header's eight bytes are all in: checked, and the record begins. */
static sg_record_event sg_record_begin(sg_record_reader *rd,
                                       const unsigned char *h)
{
    rd->version = h[0];
    rd->request_id = ((unsigned int)h[2] << 8) | h[3];
    if (rd->version != AP_FCGI_VERSION_1) {
        return SG_RECORD_BAD_VERSION;
    }
    if (rd->request_id != SG_REQUEST_ID && rd->request_id != 0) {
        return SG_RECORD_BAD_ID;
    }
    rd->type = rd->request_id ? h[1] : 0; /* management records: skipped */
    rd->clen = ((apr_size_t)h[4] << 8) | h[5];
    rd->plen = h[6];
    rd->in_content = 1;
    rd->body_have = 0;
    return SG_RECORD_HEADER;
}

sg_record_event sg_record_next(sg_record_reader *rd, const char *data,
                               apr_size_t len, apr_size_t *pos,
                               apr_size_t *piece_at, apr_size_t *piece_len)
{
    if (rd->in_content && rd->clen == 0) {
        rd->in_content = 0;
        return SG_RECORD_COMPLETE;
    }
    while (*pos < len) {
        apr_size_t left = len - *pos;

        if (!rd->in_content && rd->plen == 0) {
            apr_size_t take = AP_FCGI_HEADER_LEN - rd->hdr_have;

            if (rd->hdr_have == 0 && left >= AP_FCGI_HEADER_LEN) {
                /* the common case: the header is there whole, read in place */
                *pos += AP_FCGI_HEADER_LEN;
                return sg_record_begin(rd, (const unsigned char *)data + *pos
                                               - AP_FCGI_HEADER_LEN);
            }
            if (take > left) {
                take = left;
            }
            memcpy(rd->hdr + rd->hdr_have, data + *pos, take);
            rd->hdr_have += take;
            *pos += take;
            if (rd->hdr_have == AP_FCGI_HEADER_LEN) {
                rd->hdr_have = 0;
                return sg_record_begin(rd, rd->hdr);
            }
        }
        else if (rd->in_content) {
            apr_size_t take = rd->clen < left ? rd->clen : left;

            if (rd->type == AP_FCGI_STDOUT || rd->type == AP_FCGI_STDERR) {
                *piece_at = *pos;
                *piece_len = take;
                rd->clen -= take;
                *pos += take;
                return SG_RECORD_CONTENT;
            }
            if ((rd->type == AP_FCGI_END_REQUEST
                 || rd->type == SG_FCGI_REQUEST_WAITING)
                && rd->body_have < sizeof(rd->body)) {
                apr_size_t n = sizeof(rd->body) - rd->body_have;

                if (n > take) {
                    n = take;
                }
                memcpy(rd->body + rd->body_have, data + *pos, n);
                rd->body_have += n;
            }
            rd->clen -= take;
            *pos += take;
            if (rd->clen == 0) {
                rd->in_content = 0;
                return SG_RECORD_COMPLETE;
            }
        }
        else {
            apr_size_t take = rd->plen < left ? rd->plen : left;

            rd->plen -= take;
            *pos += take;
        }
    }
    return SG_RECORD_MORE;
}

apr_size_t sg_record_take_padding(sg_record_reader *rd, apr_size_t len)
{
    apr_size_t take = rd->plen < len ? rd->plen : len;

    rd->plen -= take;
    return take;
}

/* ------------------------------------------------------------------------
 * The response header block
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

void sg_header_scan_init(sg_header_scan *hs)
{
    hs->line_len = 0;
    hs->in_name = 1;
    hs->prev_cr = 0;
}

/* The scan state lives in locals: stores into the caller's buffers could
 * alias it and would make the compiler reload it per byte. */
sg_header_result sg_header_scan_bytes(sg_header_scan *hs, const char *data,
                                      apr_size_t len, apr_size_t *used,
                                      const char **why)
{
    apr_size_t line_len = hs->line_len;
    int in_name = hs->in_name;
    int prev_cr = hs->prev_cr;
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        unsigned char ch = (unsigned char)data[i];

        if (!prev_cr
            && (in_name ? sg_is_tchar(ch) : ch >= 0x20 && ch != 0x7f)) {
            line_len += in_name;
            continue; /* a name or value byte: the common cases */
        }
        if (prev_cr && ch != '\n') {
            *why = "a bare CR in the header block (header injection)";
            return SG_HEADERS_BAD;
        }
        if (ch == '\r') {
            prev_cr = 1;
        }
        else if (ch == '\n') {
            prev_cr = 0;
            if (line_len == 0) {
                hs->line_len = 0;
                hs->in_name = 1;
                hs->prev_cr = 0;
                *used = i + 1;
                return SG_HEADERS_COMPLETE;
            }
            if (in_name) {
                *why = "a header line without ':'";
                return SG_HEADERS_BAD;
            }
            line_len = 0;
            in_name = 1;
        }
        else if (ch == '\0') {
            *why = "a NUL byte in the header block (header injection)";
            return SG_HEADERS_BAD;
        }
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            *why = "a control character in the header block";
            return SG_HEADERS_BAD;
        }
        else if (in_name && ch == ':') {
            if (line_len == 0) {
                *why = "a header with an empty name";
                return SG_HEADERS_BAD;
            }
            in_name = 0;
        }
        else if (in_name) {
            *why = "an invalid character in a header name";
            return SG_HEADERS_BAD;
        }
    }
    hs->line_len = line_len;
    hs->in_name = in_name;
    hs->prev_cr = prev_cr;
    *used = len;
    return SG_HEADERS_MORE;
}

int sg_header_lines_next(char *buf, int len, void *data)
{
    sg_header_lines *lines = data;
    const char *nl = memchr(lines->pos, '\n', lines->end - lines->pos);
    apr_size_t n;

    /* the block was checked: a CR only ever comes right before its LF */
    if (!nl) {
        *buf = '\0';
        return 0;
    }
    if (nl - lines->pos > len - 1
        && (nl - lines->pos > len || nl[-1] != '\r')) {
        lines->too_long = 1;
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

/* ------------------------------------------------------------------------
 * STDERR
 */

void sg_stderr_split(char *buf, apr_size_t max, apr_size_t *have,
                     const char *data, apr_size_t len, sg_stderr_emit emit,
                     void *ctx)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        apr_size_t take = nl ? (apr_size_t)(nl - data) : len;

        while (*have + take > max) {
            apr_size_t room = max - *have;

            memcpy(buf + *have, data, room);
            emit(ctx, buf, max);
            *have = 0;
            data += room;
            len -= room;
            take -= room;
        }
        memcpy(buf + *have, data, take);
        *have += take;
        data += take;
        len -= take;
        if (nl) {
            emit(ctx, buf, *have);
            *have = 0;
            data++;
            len--;
        }
    }
}

int sg_stderr_level(const char **line, apr_size_t *len)
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

apr_size_t sg_stderr_escape(char *out, const char *line, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    apr_size_t i;

    for (i = 0; i < len; ++i) {
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
    return (apr_size_t)(o - out);
}
