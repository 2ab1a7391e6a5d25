/*
 * mod_swift_gateway: the exchange of one request with a worker (Apache
 * children).
 *
 * FastCGI 1.0 responder, request id 1, one request at a time per
 * connection, in full duplex: the request body is forwarded while the
 * response streams back, neither side buffered whole.  While there is
 * something to send the loop polls the worker socket for both directions;
 * once everything is sent it waits for the answer in recv() itself.  Each
 * wait lasts at most socket-timeout, and at most until request-timeout's
 * backstop deadline.
 */

#include "sg_exchange.h"

#include "http_request.h"

#include <errno.h>
#include <string.h>

APLOG_USE_MODULE(swift_gateway);

/* The read timeout of the request's connection, for its next wait. */
apr_status_t sg_set_read_timeout(sg_exchange *ex, apr_interval_time_t t)
{
    if (sg_set_rcvtimeo(ex->conn.fd, t) != 0) {
        return errno;
    }
    ex->conn.read_timeout = t;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------------
 * To the worker: PARAMS then STDIN, written only when the socket is
 * writable, so a worker that is busy sending is never blocked on.
 */

/* Appends the data in bb as STDIN record k of the batch to the pending
 * iovecs, the pieces as they lie in the client body's buckets (no copy;
 * each set aside first, so its data stays put while more is read), and the
 * empty STDIN when bb ends the body.  A record with more pieces than outv
 * has room for is copied into stdin_flat[k] instead. */
static apr_status_t sg_queue_stdin(sg_exchange *ex, apr_bucket_brigade *bb,
                                   int k, int *last)
{
    apr_bucket *b;
    apr_size_t len = 0;
    int hdr = ex->to.outv_n; /* the record header's slot */
    int n = hdr + 1;
    int flat = 0;

    *last = 0;
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t blen;
        apr_status_t rv;

        if (APR_BUCKET_IS_EOS(b)) {
            *last = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        /* a transient bucket (mod_ssl's) becomes a heap copy; a socket or
         * pipe bucket cannot be set aside, but reading it yields a heap one */
        rv = apr_bucket_setaside(b, ex->r->pool);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOTIMPL(rv)) {
            return rv;
        }
        if ((rv = apr_bucket_read(b, &data, &blen, APR_BLOCK_READ))
            != APR_SUCCESS) {
            return rv;
        }
        if (blen == 0) {
            continue;
        }
        if (n == SG_STDIN_IOV - 1) {
            flat = 1; /* keep the last slot for the empty STDIN */
        }
        else {
            ex->to.outv[n].iov_base = (void *)data;
            ex->to.outv[n].iov_len = blen;
            ++n;
        }
        len += blen;
    }
    if (flat) {
        apr_size_t got = SG_STDIN_CHUNK;
        apr_status_t rv;

        if (!ex->to.stdin_flat[k]) {
            ex->to.stdin_flat[k] = apr_palloc(ex->r->pool, SG_STDIN_CHUNK);
        }
        if ((rv = apr_brigade_flatten(bb, ex->to.stdin_flat[k], &got))
            != APR_SUCCESS) {
            return rv;
        }
        ex->to.outv[hdr + 1].iov_base = ex->to.stdin_flat[k];
        ex->to.outv[hdr + 1].iov_len = got;
        len = got;
        n = hdr + 2;
    }
    if (len) {
        unsigned char *h = ex->to.stdin_hdr + k * AP_FCGI_HEADER_LEN;

        sg_put_header(h, AP_FCGI_STDIN, len);
        ex->to.outv[hdr].iov_base = h;
        ex->to.outv[hdr].iov_len = AP_FCGI_HEADER_LEN;
        ex->to.outv_n = n;
        ex->to.outlen += AP_FCGI_HEADER_LEN + len;
        ex->to.body_sent += len;
    }
    if (*last) {
        unsigned char *h = ex->to.stdin_hdr
                           + SG_STDIN_BATCH * AP_FCGI_HEADER_LEN;

        sg_put_header(h, AP_FCGI_STDIN, 0);
        ex->to.outv[ex->to.outv_n].iov_base = h;
        ex->to.outv[ex->to.outv_n].iov_len = AP_FCGI_HEADER_LEN;
        ex->to.outv_n++;
        ex->to.outlen += AP_FCGI_HEADER_LEN;
    }
    return APR_SUCCESS;
}

/* Reads the next batch of the client body into STDIN records: the first
 * record waits for the client, the others take only what has arrived. */
static apr_status_t sg_read_stdin_batch(sg_exchange *ex, int *last)
{
    request_rec *r = ex->r;
    int k;

    *last = 0;
    apr_brigade_cleanup(ex->to.ib); /* the pieces sent last time */
    ex->to.outv_i = ex->to.outv_n = 0;
    ex->to.outlen = 0;
    for (k = 0; k < SG_STDIN_BATCH && !*last; ++k) {
        apr_status_t rv;
        int got;

        /* room for a record's header, one piece and the empty STDIN */
        if (ex->to.outv_n > SG_STDIN_IOV - 3) {
            break;
        }
        rv = ap_get_brigade(r->input_filters, ex->to.ib_next, AP_MODE_READBYTES,
                            k == 0 ? APR_BLOCK_READ : APR_NONBLOCK_READ,
                            SG_STDIN_CHUNK);
        if (k > 0 && APR_STATUS_IS_EAGAIN(rv)) {
            break; /* send what is here; the client is slower */
        }
        if (rv == APR_SUCCESS) {
            rv = sg_queue_stdin(ex, ex->to.ib_next, k, last);
        }
        got = !APR_BRIGADE_EMPTY(ex->to.ib_next);
        APR_BRIGADE_CONCAT(ex->to.ib, ex->to.ib_next);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!got) {
            break; /* nothing more has arrived */
        }
    }
    return APR_SUCCESS;
}

/* Drop n sent bytes from the front of the pending iovecs. */
static void sg_advance(sg_exchange *ex, apr_size_t n)
{
    ex->to.outlen -= n;
    ex->to.sent += n;
    while (n > 0 && ex->to.outv_i < ex->to.outv_n) {
        struct iovec *v = &ex->to.outv[ex->to.outv_i];

        if (n < v->iov_len) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        ex->to.outv_i++;
    }
}

static sg_outcome sg_send_some(sg_exchange *ex)
{
    request_rec *r = ex->r;
    apr_status_t rv;

    if (ex->to.outlen == 0) {
        int last = 0;

        if (ex->to.stdin_done) {
            return SG_DONE;
        }
        if ((rv = sg_read_stdin_batch(ex, &last)) != APR_SUCCESS) {
            ex->why = "reading the request body from the client";
            ex->why_rv = rv;
            return SG_CLIENT_BODY;
        }
        if (last) {
            ex->to.stdin_last_queued = 1;
        }
        if (ex->to.outlen == 0) {
            return SG_DONE;
        }
    }

    /* a worker gone away is an error, never SIGPIPE; a full socket is EAGAIN
     * (MSG_DONTWAIT: the connection blocks only for the answer) */
    {
        struct msghdr msg;
        ssize_t w;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = ex->to.outv + ex->to.outv_i;
        msg.msg_iovlen = ex->to.outv_n - ex->to.outv_i;
        do {
            w = sendmsg(ex->conn.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (w < 0 && errno == EINTR);
        rv = w < 0 ? errno : APR_SUCCESS;
        if (w > 0) {
            sg_advance(ex, (apr_size_t)w);
        }
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) {
        if (ex->conn.pooled && ex->to.sent == 0
            && (rv == EPIPE || rv == ECONNRESET || rv == ENOTCONN)) {
            /* the idle connection died before carrying a byte */
            ex->why_rv = rv;
            return SG_NOT_SENT;
        }
        /* The worker stopped reading (it may have answered already): stop
         * sending and keep reading what it has to say. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      "SG0513: group %s: the worker stopped reading the "
                      "request after %" APR_OFF_T_FMT " body bytes",
                      ex->group->name, ex->to.body_sent);
        ex->to.stdin_broken = 1;
        ex->to.stdin_done = 1;
        ex->to.outlen = 0;
        return SG_DONE;
    }
    if (ex->to.outlen == 0 && ex->to.stdin_last_queued) {
        ex->to.stdin_done = 1;
    }
    return SG_DONE;
}

/* ------------------------------------------------------------------------
 * From the worker: read and passed on
 */

/* Pass what was collected, with a flush when the worker had nothing more
 * ready.  Once END_REQUEST is in, the rest waits for sg_conclude: all of a
 * short response then reaches httpd together with EOS, which lets it send
 * one write with a Content-Length instead of a chunked body in two. */
static sg_outcome sg_pass(sg_exchange *ex, int headers_now, int flush)
{
    apr_status_t rv;

    if (ex->from.end_seen || ex->resp.sendfile
        || (APR_BRIGADE_EMPTY(ex->ob) && !headers_now)) {
        return SG_DONE;
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(ex->ob,
                                apr_bucket_flush_create(ex->c->bucket_alloc));
    }
    if (ex->resp.headers_done) {
        ex->resp.headers_passed = 1; /* from now on the response has begun */
    }
    rv = ap_pass_brigade(ex->r->output_filters, ex->ob);
    apr_brigade_cleanup(ex->ob);
    if (rv != APR_SUCCESS || ex->c->aborted) {
        ex->why_rv = rv;
        return SG_CLIENT_GONE;
    }
    return SG_DONE;
}

/* Read what the worker has ready, up to a buffer full, and pass it on in
 * one go: the bytes stay in iobuf (transient buckets) until passed.  With
 * `wait`, the first read sleeps until the worker writes, for at most
 * socket-timeout (SO_RCVTIMEO): one system call where poll() and recv()
 * were two. */
static sg_outcome sg_receive(sg_exchange *ex, int wait)
{
    apr_size_t used = 0;
    int had_headers = ex->resp.headers_done;
    int drained = 0;
    sg_outcome o;

    while (!ex->from.end_seen && used < SG_RECV_BUF_SIZE) {
        ssize_t n = recv(ex->conn.fd, ex->from.iobuf + used,
                         SG_RECV_BUF_SIZE - used, wait ? 0 : MSG_DONTWAIT);
        apr_status_t rv = n < 0 ? errno : APR_SUCCESS;

        if (n < 0 && rv == EINTR) {
            continue;
        }
        if (n < 0 && (rv == EAGAIN || rv == EWOULDBLOCK)) {
            if (wait) {
                return SG_WORKER_TIMEOUT;
            }
            drained = 1;
            break;
        }
        wait = 0;
        if (n > 0) {
            ex->from.received += n;
            if ((o = sg_parse(ex, ex->from.iobuf + used, (apr_size_t)n))
                != SG_DONE) {
                return o;
            }
            used += (apr_size_t)n;
            continue;
        }
        /* EOF (or an error): what came before it is passed first */
        o = sg_pass(ex, !had_headers && ex->resp.headers_done, 1);
        if (o != SG_DONE || ex->from.end_seen) {
            return o;
        }
        ex->why_rv = rv;
        return SG_WORKER_EOF;
    }
    return sg_pass(ex, !had_headers && ex->resp.headers_done, drained);
}

/* ------------------------------------------------------------------------
 * How long a wait may last: socket-timeout, and request-timeout's backstop
 */

/* When the wait for the worker that began at `began` ends: socket-timeout
 * later, or at the backstop deadline when that comes first
 * (*by_deadline).  No deadline runs while the request waits in the
 * worker's queue: a worker that can tell it queued the request is alive,
 * and queue-timeout is the worker's to apply once a slot frees. */
static apr_time_t sg_wait_end(const sg_exchange *ex, apr_time_t began,
                              int *by_deadline)
{
    apr_time_t silent_until = began
                              + apr_time_from_sec(ex->group->socket_timeout);

    *by_deadline = ex->deadline && !ex->from.waiting
                   && ex->deadline < silent_until;
    return *by_deadline ? ex->deadline : silent_until;
}

/* Before a read that waits: SO_RCVTIMEO for `left` to go (see
 * sg_read_timeout_for), changed only when it is off by more than
 * SG_BACKSTOP_SLACK, so that a request's first wait (its connection has
 * sg_base_read_timeout) and the next waits of a long response cost no
 * system call most of the time. */
static sg_outcome sg_arm_read(sg_exchange *ex, apr_interval_time_t left)
{
    apr_interval_time_t want = sg_read_timeout_for(left);
    apr_interval_time_t off = ex->conn.read_timeout - want;
    apr_status_t rv;

    if (off > SG_BACKSTOP_SLACK || off < -SG_BACKSTOP_SLACK) {
        if ((rv = sg_set_read_timeout(ex, want)) != APR_SUCCESS) {
            ex->why = "setting the read timeout of the worker socket";
            ex->why_rv = rv;
            return SG_IO_ERROR;
        }
    }
    return SG_DONE;
}

/* All sent: the answer is waited for in the read itself (sg_receive), until
 * the worker writes, socket-timeout passes or the backstop deadline comes.
 * A read woken before that end (its SO_RCVTIMEO is shorter, as the kernel
 * may wake it late) waits again for the rest. */
static sg_outcome sg_wait_for_answer(sg_exchange *ex)
{
    apr_time_t began = apr_time_now();
    apr_time_t now = began;

    for (;;) {
        int by_deadline;
        apr_interval_time_t left = sg_wait_end(ex, began, &by_deadline) - now;
        sg_outcome o;

        if (left < apr_time_from_msec(1)) {
            return by_deadline ? SG_REQUEST_TIMEOUT : SG_WORKER_TIMEOUT;
        }
        if ((o = sg_arm_read(ex, left)) != SG_DONE) {
            return o;
        }
        if ((o = sg_receive(ex, 1)) != SG_WORKER_TIMEOUT) {
            return o;
        }
        now = apr_time_now();
    }
}

/* ------------------------------------------------------------------------
 * The exchange: sends while there is something to send, reads what the
 * worker writes meanwhile, until END_REQUEST
 */

/* Per-exchange state, for the first attempt and for a retry: the request
 * goes out again from its first record, the response is parsed afresh. */
void sg_exchange_reset(sg_exchange *ex)
{
    ex->to.outv[0].iov_base = (void *)ex->to.params;
    ex->to.outv[0].iov_len = ex->to.params_len;
    ex->to.outv_i = 0;
    ex->to.outv_n = 1;
    ex->to.outlen = ex->to.params_len;
    ex->to.sent = 0;
    ex->to.stdin_last_queued = ex->replayable; /* empty STDIN is in params */
    ex->to.stdin_done = 0;
    ex->to.stdin_broken = 0;
    ex->to.body_sent = 0;

    sg_record_reader_init(&ex->from.rec);
    ex->from.rplen = 0;
    ex->from.end_seen = 0;
    ex->from.protocol_status = -1;
    ex->from.app_status = 0;
    ex->from.answered = 0;
    ex->from.waiting = 0;
    ex->from.worker_pid = 0;
    ex->from.received = 0;
    ex->from.leftover = 0;

    ex->resp.hlen = 0;
    sg_header_scan_init(&ex->resp.scan);
    ex->resp.headers_done = 0;
    ex->resp.headers_passed = 0;
    ex->resp.ignore_body = 0;
    ex->resp.sendfile = NULL;
    ex->resp.bad_status = 0;
    ex->resp.bad_why = NULL;
    ex->resp.body_bytes = 0;

    ex->errlog.elen = 0;
    ex->why = NULL;
    ex->why_rv = APR_SUCCESS;
    apr_brigade_cleanup(ex->ob);
}

/* Sends the request and reads the response until END_REQUEST, or until
 * something ends the exchange early: how it ended. */
sg_outcome sg_exchange_run(sg_exchange *ex)
{
    sg_outcome o;
    apr_interval_time_t backstop = sg_backstop_after(ex->group);

    /* the request starts now, as far as request-timeout is concerned (and
     * again should the worker say it queued it, then started it) */
    ex->deadline = backstop ? apr_time_now() + backstop : 0;

    /* the socket has room for the first records: no poll before them */
    if ((o = sg_send_some(ex)) != SG_DONE) {
        return o;
    }
    while (!ex->from.end_seen) {
        apr_int32_t n = 0;
        apr_time_t now;
        apr_status_t rv;
        int by_deadline;
        int want_write = ex->to.outlen > 0 || !ex->to.stdin_done;
        apr_interval_time_t left;

        if (!want_write) {
            if ((o = sg_wait_for_answer(ex)) != SG_DONE) {
                return o;
            }
            continue;
        }
        /* poll() sleeps as long as it is told (hrtimer), to the end */
        now = apr_time_now();
        left = sg_wait_end(ex, now, &by_deadline) - now;
        if (left < apr_time_from_msec(1)) {
            return by_deadline ? SG_REQUEST_TIMEOUT : SG_WORKER_TIMEOUT;
        }
        ex->conn.pfd.reqevents = APR_POLLIN | APR_POLLOUT;
        rv = apr_poll(&ex->conn.pfd, 1, &n, left);
        if (APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (APR_STATUS_IS_TIMEUP(rv)) {
            return by_deadline ? SG_REQUEST_TIMEOUT : SG_WORKER_TIMEOUT;
        }
        if (rv != APR_SUCCESS) {
            ex->why = "polling the worker socket";
            ex->why_rv = rv;
            return SG_IO_ERROR;
        }
        if (ex->conn.pfd.rtnevents & APR_POLLOUT) {
            if ((o = sg_send_some(ex)) != SG_DONE) {
                return o;
            }
        }
        if (ex->conn.pfd.rtnevents & (APR_POLLIN | APR_POLLHUP | APR_POLLERR)) {
            if ((o = sg_receive(ex, 0)) != SG_DONE) {
                return o;
            }
        }
    }
    return SG_DONE;
}
