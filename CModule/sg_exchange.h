/*
 * mod_swift_gateway: one request's exchange with a worker of its group.
 *
 * The state shared by the files of the request path (Apache children):
 *   sg_params.c    the request records: CGI variables, BEGIN_REQUEST, PARAMS
 *   sg_connect.c   the connection: an idle kept-alive one or a new one
 *   sg_exchange.c  the full-duplex loop: STDIN out, records in, passed on
 *   sg_response.c  the records from the worker: headers, body, stderr
 *   sg_records.c   their parsing, apart from I/O and httpd (sg_records.h)
 *   sg_handler.c   the handler: runs an exchange and maps how it ended
 *   sg_sendfile.c  X-Sendfile: the file sent once the exchange is over
 */

#ifndef SG_EXCHANGE_H
#define SG_EXCHANGE_H

#include "mod_swift_gateway.h"
#include "sg_records.h"
#include "sg_timeouts.h"

#include "util_fcgi.h"
#include "apr_buckets.h"
#include "apr_network_io.h"
#include "apr_poll.h"

#include <sys/uio.h>

/* Request body chunks: one STDIN record each, as large as a record allows
 * (65535 bytes), rounded down to a multiple of 8. */
#define SG_STDIN_CHUNK (64 * 1024 - 8)
/* Up to this many STDIN records go out in one sendmsg(), read from the client
 * without waiting after the first: the worker then wakes once for about as
 * much as the socket buffers (some 200K) instead of once per record. */
#define SG_STDIN_BATCH 3
/* Pieces sent without copying: per record its header and the client body's
 * buckets (usually 8000 bytes each), and the empty STDIN after the last. */
#define SG_STDIN_IOV 64
/* Responses are read up to 256K per wake-up: fewer poll, recv and filter
 * passes per MiB (the worker socket buffers about 200K). */
#define SG_RECV_BUF_SIZE (256 * 1024)

/* protocolStatus of END_REQUEST */
#define SG_FCGI_REQUEST_COMPLETE 0
#define SG_FCGI_OVERLOADED       2
/* appStatus of END_REQUEST by which a worker says it keeps the connection
 * ("SGKA"); a program that does not say so closes it, so it is not reused. */
#define SG_APP_STATUS_KEPT 0x53474b41UL

/* Why the exchange with the worker ended. */
typedef enum {
    SG_DONE = 0,        /* END_REQUEST */
    SG_WORKER_EOF,      /* closed (or reset) before END_REQUEST */
    SG_WORKER_TIMEOUT,  /* socket-timeout without any I/O */
    SG_REQUEST_TIMEOUT, /* no complete response by the backstop deadline */
    SG_BAD_HEADERS,     /* response headers refused: status in bad_status */
    SG_PROTOCOL,        /* not FastCGI */
    SG_CLIENT_BODY,     /* reading the request body failed */
    SG_CLIENT_GONE,     /* passing the response failed */
    SG_IO_ERROR,        /* poll/recv failure */
    SG_NOT_SENT         /* idle connection dead: nothing reached it */
} sg_outcome;

/* The connection to the worker. */
typedef struct {
    apr_socket_t *sock; /* wraps fd, which this request owns */
    apr_pollfd_t pfd;
    int fd;       /* -1 once closed or back in the pool */
    int pooled;   /* fd came from the group's idle connections */
    int reusable; /* the exchange left fd fit for another request */
    apr_interval_time_t read_timeout; /* SO_RCVTIMEO as set on fd */
    /* affinity-cookie: the worker whose own socket fd goes to, NULL for
     * the group socket; set before sg_open */
    const struct sg_route *route;
} sg_worker_conn;

/* To the worker: the request's records, then its body as STDIN records. */
typedef struct {
    const char *params; /* BEGIN_REQUEST .. empty PARAMS [STDIN ..
                                   empty STDIN] */
    apr_size_t params_len;
    apr_size_t small_body_len;       /* a short body's length, or 0 */
    char *small_body;                /* where it goes in params */
    struct iovec outv[SG_STDIN_IOV]; /* what is left to send */
    int outv_i, outv_n;
    apr_size_t outlen; /* bytes in outv[outv_i..outv_n) */
    apr_off_t sent;    /* bytes sent on this connection */
    /* a STDIN header per record of a batch, then the empty STDIN */
    unsigned char stdin_hdr[(SG_STDIN_BATCH + 1) * AP_FCGI_HEADER_LEN];
    char *stdin_flat[SG_STDIN_BATCH]; /* SG_STDIN_CHUNK each, made when a
                                         * record's pieces do not fit outv */
    apr_bucket_brigade *ib;           /* the buckets outv points into */
    apr_bucket_brigade *ib_next;      /* one record's, before it joins ib */
    int stdin_last_queued;
    int stdin_done;   /* nothing more will be sent */
    int stdin_broken; /* the worker stopped reading */
    apr_off_t body_sent;
} sg_to_worker;

/* From the worker: the FastCGI records, as read so far. */
typedef struct {
    char *iobuf;
    sg_record_reader rec;
    apr_size_t rplen; /* END_REQUEST's padding left unread when the
                          * exchange ended: the connection is reused only
                          * when it is 0 */
    int end_seen;
    int protocol_status; /* -1 until END_REQUEST tells */
    apr_uint32_t app_status;
    int answered;        /* a record other than END_REQUEST came first */
    int waiting;         /* the worker said it waits for a slot and has
                                 * not said it started */
    long worker_pid;     /* from REQUEST_WAITING; 0: not known */
    int said_waiting;    /* SG0518 was logged for this request */
    int ignored_records; /* records of types a responder does not send */
    apr_size_t received; /* bytes read from the worker */
    int leftover;        /* bytes followed END_REQUEST */
} sg_from_worker;

/* The response: its header block as checked so far, then its body. */
typedef struct {
    char *hbuf;
    apr_size_t hlen, hcap;
    sg_header_scan scan; /* where the check of the block stands */
    int headers_done;
    int headers_passed; /* something went to the output filters */
    int ignore_body;
    int bad_status; /* HTTP status for SG_BAD_HEADERS */
    const char *bad_why;
    apr_off_t body_bytes;
    const char *sendfile; /* X-Sendfile's path, claimed: Apache sends the
                           * file once the exchange is over */
} sg_response;

/* The worker's stderr, line by line to the error log. */
typedef struct {
    char *ebuf;
    apr_size_t elen;
    char *eline;          /* escaped line for the log */
    apr_size_t logged;    /* what the request's lines cost the log so far */
    apr_off_t not_logged; /* bytes dropped past SG_STDERR_REQUEST_MAX */
} sg_stderr_lines;

/* One request's exchange with a worker. */
typedef struct {
    request_rec *r;
    conn_rec *c;
    const sg_group *group;
    int replayable; /* the whole request is in params: may be sent
                                   a second time */
    sg_worker_conn conn;
    sg_to_worker to;
    sg_from_worker from;
    sg_response resp;
    sg_stderr_lines errlog;

    apr_bucket_brigade *ob; /* to the output filters */
    const char *why;        /* detail for the log */
    apr_status_t why_rv;
    apr_time_t deadline; /* request-timeout's backstop; 0: none */
} sg_exchange;

/* Whether the request ran past request-timeout (and not while it waited for
 * a request slot): a worker that dies now was most likely killed by its
 * supervisor for it, which the client is told as 504. */
static APR_INLINE int sg_past_request_timeout(const sg_exchange *ex)
{
    return ex->deadline && !ex->from.waiting
           && apr_time_now() >= ex->deadline - SG_BACKSTOP_GRACE;
}

/* A record header of request SG_REQUEST_ID, without padding; inline, as it
 * was when one file built all the records: a call of its own per record
 * cost some 100 instructions per request. */
static APR_INLINE void sg_put_header(unsigned char *dest, unsigned char type,
                                     apr_size_t len)
{
    ap_fcgi_header h;

    ap_fcgi_fill_in_header(&h, type, SG_REQUEST_ID, (apr_uint16_t)len, 0);
    ap_fcgi_header_to_array(&h, dest);
}

/* sg_params.c */
void sg_build_env(request_rec *r, const sg_dir_conf *dconf, const sg_group *g,
                  const char *script_name, const char *path_info);
void sg_build_params(sg_exchange *ex);

/* sg_connect.c */
int sg_open(sg_exchange *ex);
int sg_connect(sg_exchange *ex);
int sg_reconnect(sg_exchange *ex);
void sg_detach(sg_exchange *ex);

/* sg_exchange.c */
apr_status_t sg_set_read_timeout(sg_exchange *ex, apr_interval_time_t t);
void sg_exchange_reset(sg_exchange *ex);
sg_outcome sg_exchange_run(sg_exchange *ex);

/* sg_response.c */
sg_outcome sg_parse(sg_exchange *ex, const char *data, apr_size_t len);
void sg_stderr_flush(sg_exchange *ex);

#endif /* SG_EXCHANGE_H */
