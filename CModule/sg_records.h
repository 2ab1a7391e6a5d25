/*
 * mod_swift_gateway: what a worker sends, parsed (Apache children).
 *
 * The FastCGI record reader and the response header block's checks, apart
 * from the I/O that feeds them and from httpd: no call into the server, no
 * allocation, no copy of content (pieces point into the caller's bytes).
 * sg_response.c runs them on every read from a worker; the fuzz target
 * (Fuzz/c/fuzz_worker_stream.c) links this file as it is.
 */

#ifndef SG_RECORDS_H
#define SG_RECORDS_H

#include "apr.h"

/* The module's request id: one request at a time per connection. */
#define SG_REQUEST_ID 1

/* Empty records of types FastCGI leaves unassigned, by which a worker whose
 * request slots are all running says a request waits for one, and later
 * that it starts: a worker that closes the connection in between never ran
 * it.  Other FastCGI applications send neither. */
#define SG_FCGI_REQUEST_WAITING 0x57 /* 'W' */
#define SG_FCGI_REQUEST_STARTED 0x53 /* 'S' */

/* What the record reader found next in the bytes it was given. */
typedef enum {
    SG_RECORD_MORE = 0, /* every byte taken; the rest comes later */
    SG_RECORD_HEADER,   /* a record header, valid: type, clen, plen set */
    SG_RECORD_CONTENT,  /* a piece of STDOUT or STDERR content */
    SG_RECORD_COMPLETE, /* the current record's content is complete */
    SG_RECORD_BAD_VERSION /* a version other than 1: not FastCGI */,
    SG_RECORD_BAD_ID /* a request id other than SG_REQUEST_ID and 0 */
} sg_record_event;

/* The record reader's state across reads. */
typedef struct {
    unsigned char hdr[8]; /* a header that straddles reads */
    apr_size_t hdr_have;
    unsigned char version;   /* of the last header (for the log) */
    unsigned int request_id; /* of the last header */
    unsigned char type;      /* of the current record; 0: management */
    apr_size_t clen;         /* content left in the current record */
    apr_size_t plen;         /* padding left */
    int in_content;          /* between its header and its content's end */
    unsigned char body[8];   /* content of END_REQUEST or REQUEST_WAITING */
    apr_size_t body_have;
} sg_record_reader;

void sg_record_reader_init(sg_record_reader *rd);

/* The next event in data[*pos .. len), *pos moved past the bytes it took;
 * for SG_RECORD_CONTENT, the piece is data[*piece_at .. *piece_at +
 * *piece_len).  Call again until SG_RECORD_MORE. */
sg_record_event sg_record_next(sg_record_reader *rd, const char *data,
                               apr_size_t len, apr_size_t *pos,
                               apr_size_t *piece_at, apr_size_t *piece_len);

/* After END_REQUEST: takes the rest of its padding from len bytes, and says
 * how many it took (more bytes would be something after END_REQUEST). */
apr_size_t sg_record_take_padding(sg_record_reader *rd, apr_size_t len);

/* FastCGI's four-byte big-endian integer at p */
apr_uint32_t sg_record_uint32_at(const unsigned char *p);

/* The response header block, checked byte by byte as it arrives. */
typedef struct {
    apr_size_t line_len; /* of the current line's name; 0: at a line start */
    int in_name;
    int prev_cr;
} sg_header_scan;

typedef enum {
    SG_HEADERS_MORE = 0, /* every byte taken, the block goes on */
    SG_HEADERS_COMPLETE, /* the empty line that ends it was taken */
    SG_HEADERS_BAD       /* refused: why says so */
} sg_header_result;

void sg_header_scan_init(sg_header_scan *hs);

/* Checks data[0 .. len) as the next bytes of the header block: no CR
 * without LF, no NUL or other control character, names of token
 * characters and not empty, every line with a ':'.  *used: how many bytes
 * belong to the block (all of them unless it completed; not set when bad). */
sg_header_result sg_header_scan_bytes(sg_header_scan *hs, const char *data,
                                      apr_size_t len, apr_size_t *used,
                                      const char **why);

/* A checked header block, handed line by line to httpd's CGI header
 * scanner: each line without its CR LF, as ap_scan_script_header_err_core_ex
 * expects from a getsfunc (data: the sg_header_lines); 0 once no complete
 * line is left, or at a line longer than the scanner's buffer (too_long is
 * then set: the scanner would take that as the block's end and drop the
 * rest, so the caller refuses the block). */
typedef struct {
    const char *pos;
    const char *end;
    int too_long;
} sg_header_lines;

int sg_header_lines_next(char *buf, int len, void *data);

/* The worker's stderr: split into lines of at most max bytes (a longer one
 * is cut), each handed to emit.  buf holds max bytes; *have, the part of a
 * line kept across calls. */
typedef void (*sg_stderr_emit)(void *ctx, const char *line, apr_size_t len);

void sg_stderr_split(char *buf, apr_size_t max, apr_size_t *have,
                     const char *data, apr_size_t len, sg_stderr_emit emit,
                     void *ctx);

/* A stderr line's level prefix ("warn: "), stripped: one of APLOG_*;
 * APLOG_ERR without one. */
int sg_stderr_level(const char **line, apr_size_t *len);

/* A stderr line for the log: control characters and backslashes escaped
 * into out, which holds 4 * len + 1 bytes, NUL-terminated; returns the
 * escaped text's length. */
apr_size_t sg_stderr_escape(char *out, const char *line, apr_size_t len);

#endif /* SG_RECORDS_H */
