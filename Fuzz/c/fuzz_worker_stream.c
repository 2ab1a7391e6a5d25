/*
 * libFuzzer target: the module's reading of what a worker sends.
 *
 * The input is [mode][seed][limit] then the byte stream a worker would
 * write on its connection.  It goes through CModule/sg_records.c (the
 * record reader, the header block's checks and its line splitting for
 * httpd's CGI scanner, the stderr line splitter, level and escaping) the
 * way sg_response.c drives them, twice: as one read, and in the reads
 * `mode` chooses (byte by byte, or pieces of 1 to 64 bytes drawn from
 * `seed`).  Both must come to the same result.  The header block is held
 * to (limit + 1) * 64 bytes, as header-buffer-size holds it: up to 16K, so
 * that a line longer than httpd's scanner takes (8K) fits.
 *
 * Not covered here: httpd's own ap_scan_script_header_err_core_ex, which
 * the checked block is then handed to, and the I/O around the reader
 * (sg_exchange.c), which the integration tests drive.
 */

#include "sg_records.h"

#include "httpd.h"
#include "util_fcgi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STDERR_LINE_MAX 256 /* small, so that long lines are cut often */

typedef struct {
    int result; /* 0 going on, 1 END_REQUEST, 2 bad version, 3 bad id,
                   4 bad headers, 5 header block too large */
    int headers_done;
    apr_size_t header_lines;
    apr_size_t body_bytes;
    uint32_t body_hash;
    apr_size_t stderr_lines;
    uint32_t stderr_hash;
    int protocol_status;
    apr_uint32_t app_status;
    int waiting;
    long worker_pid;
    int answered;
    int leftover;
    apr_size_t end_padding_left;
} outcome;

typedef struct {
    sg_record_reader rec;
    sg_header_scan scan;
    char *hbuf;
    apr_size_t hlen, limit;
    char ebuf[STDERR_LINE_MAX];
    apr_size_t elen;
    char eline[4 * STDERR_LINE_MAX + 1];
    outcome out;
} stream;

static uint32_t hash_bytes(uint32_t h, const char *p, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    }
    return h;
}

static void emit_stderr_line(void *ctx, const char *line, apr_size_t len)
{
    stream *s = ctx;
    const char *text = line;
    apr_size_t n = len;
    int level;

    if (len > STDERR_LINE_MAX) {
        abort();
    }
    if (n && text[n - 1] == '\r') {
        --n;
    }
    level = sg_stderr_level(&text, &n);
    if (sg_stderr_escape(s->eline, text, n) != strlen(s->eline)
        || strlen(s->eline) > 4 * n) {
        abort();
    }
    s->out.stderr_lines++;
    s->out.stderr_hash = hash_bytes(s->out.stderr_hash, line, len) ^ level;
}

/* The checked block to httpd's scanner's getsfunc, as sg_finish_headers
 * hands it over. */
static void split_header_lines(stream *s)
{
    char buf[MAX_STRING_LEN];
    sg_header_lines lines = {s->hbuf, s->hbuf + s->hlen, 0};

    while (sg_header_lines_next(buf, sizeof(buf), &lines)) {
        if (strlen(buf) >= sizeof(buf) || strchr(buf, '\r')
            || strchr(buf, '\n')) {
            abort();
        }
        s->out.header_lines++;
    }
}

/* STDOUT content: the header block, then the body (sg_stdout). */
static int stdout_piece(stream *s, const char *data, apr_size_t len)
{
    if (!s->out.headers_done) {
        apr_size_t room = s->limit - s->hlen;
        apr_size_t scan = room < len ? room : len;
        apr_size_t used = 0;
        const char *why = NULL;
        sg_header_result res;

        res = sg_header_scan_bytes(&s->scan, data, scan, &used, &why);
        if (res == SG_HEADERS_BAD) {
            if (!why) {
                abort();
            }
            return 4;
        }
        if (res == SG_HEADERS_MORE && scan < len) {
            return 5;
        }
        if (used > scan) {
            abort();
        }
        memcpy(s->hbuf + s->hlen, data, used);
        s->hlen += used;
        if (res == SG_HEADERS_MORE) {
            return 0;
        }
        s->out.headers_done = 1;
        split_header_lines(s);
        data += used;
        len -= used;
    }
    s->out.body_bytes += len;
    s->out.body_hash = hash_bytes(s->out.body_hash, data, len);
    return 0;
}

/* One read through the reader, as sg_parse takes it. */
static void feed(stream *s, const char *data, apr_size_t len)
{
    sg_record_reader *rec = &s->rec;
    apr_size_t pos = 0;

    if (s->out.result) {
        if (s->out.result == 1 && len) {
            apr_size_t take = sg_record_take_padding(rec, len);

            s->out.leftover |= len > take;
            s->out.end_padding_left = rec->plen;
        }
        return;
    }
    for (;;) {
        apr_size_t at = 0, n = 0;

        switch (sg_record_next(rec, data, len, &pos, &at, &n)) {
        case SG_RECORD_MORE:
            if (pos != len) {
                abort();
            }
            return;
        case SG_RECORD_HEADER:
            if (rec->request_id && rec->type != AP_FCGI_END_REQUEST
                && rec->type != SG_FCGI_REQUEST_WAITING
                && rec->type != SG_FCGI_REQUEST_STARTED) {
                s->out.answered = 1;
            }
            break;
        case SG_RECORD_CONTENT:
            if (at + n > len || n == 0) {
                abort();
            }
            if (rec->type == AP_FCGI_STDERR) {
                sg_stderr_split(s->ebuf, STDERR_LINE_MAX, &s->elen, data + at,
                                n, emit_stderr_line, s);
            }
            else if ((s->out.result = stdout_piece(s, data + at, n)) != 0) {
                return;
            }
            break;
        case SG_RECORD_COMPLETE:
            if (rec->type == AP_FCGI_END_REQUEST) {
                s->out.result = 1;
                if (rec->body_have >= 5) {
                    s->out.app_status = sg_record_uint32_at(rec->body);
                    s->out.protocol_status = rec->body[4];
                }
                if (pos < len) {
                    apr_size_t take = sg_record_take_padding(rec, len - pos);

                    s->out.leftover = len - pos > take;
                }
                s->out.end_padding_left = rec->plen;
                return;
            }
            if (rec->type == SG_FCGI_REQUEST_WAITING) {
                s->out.waiting = 1;
                s->out.worker_pid = rec->body_have >= 4
                                        ? (long)sg_record_uint32_at(rec->body)
                                        : 0;
            }
            else if (rec->type == SG_FCGI_REQUEST_STARTED) {
                s->out.waiting = 0;
            }
            break;
        case SG_RECORD_BAD_VERSION:
            s->out.result = 2;
            return;
        case SG_RECORD_BAD_ID:
            s->out.result = 3;
            return;
        }
    }
}

static void run(stream *s, const char *data, apr_size_t len, int mode,
                uint32_t seed)
{
    apr_size_t at = 0;
    uint32_t state = seed | 1;

    sg_record_reader_init(&s->rec);
    sg_header_scan_init(&s->scan);
    s->hlen = 0;
    s->elen = 0;
    memset(&s->out, 0, sizeof(s->out));
    s->out.protocol_status = -1;
    while (at < len) {
        apr_size_t n = len - at;

        if (mode == 1) {
            n = 1;
        }
        else if (mode == 2) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            n = state % 64 + 1;
            if (n > len - at) {
                n = len - at;
            }
        }
        /* each read in a buffer of its own, so that a read past it shows */
        {
            char *piece = malloc(n);

            memcpy(piece, data + at, n);
            feed(s, piece, n);
            free(piece);
        }
        at += n;
    }
    if (s->elen) {
        emit_stderr_line(s, s->ebuf, s->elen);
        s->elen = 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static stream whole, split;
    int mode;
    uint32_t seed;
    apr_size_t limit;

    if (size < 3) {
        return 0;
    }
    mode = data[0] % 3;
    seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8);
    limit = ((apr_size_t)data[2] + 1) * 64;
    data += 3;
    size -= 3;

    whole.limit = split.limit = limit;
    whole.hbuf = malloc(limit);
    split.hbuf = malloc(limit);
    run(&whole, (const char *)data, size, 0, seed);
    run(&split, (const char *)data, size, mode ? mode : 2, seed);
    if (memcmp(&whole.out, &split.out, sizeof(whole.out)) != 0) {
        abort(); /* the split changed what the worker's bytes mean */
    }
    free(whole.hbuf);
    free(split.hbuf);
    return 0;
}
