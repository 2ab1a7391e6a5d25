/*
 * mod_swift_gateway: the connection of a request to its group's socket
 * (Apache children).
 *
 * A request that may be sent a second time takes the group's most recently
 * used idle connection (sg_pool.c); any other, or one that finds none,
 * connects anew, waiting in the kernel's queue of the listening socket
 * while every worker is busy.  A request whose affinity cookie names a
 * worker (sg_affinity.c) goes the same way to that worker's own socket, and
 * to the group socket once the worker is gone.  The request owns the
 * connection until sg_detach gives it back to the pool or closes it.
 */

#include "sg_affinity.h"
#include "sg_exchange.h"
#include "sg_pool.h"

#include "http_request.h"

#include "apr_strings.h"
#include "apr_portable.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

/* A connection goes back to the pool with the group's usual read timeout
 * (request-timeout's backstop may have lowered it). */
static int sg_fit_for_pool(sg_exchange *ex)
{
    apr_interval_time_t base = sg_base_read_timeout(ex->group);

    return ex->conn.reusable
           && (ex->conn.read_timeout == base
               || sg_set_read_timeout(ex, base) == APR_SUCCESS);
}

/* Whose the connection is in the pool: its worker's, or the group's. */
static apr_uint64_t sg_conn_owner(const sg_exchange *ex)
{
    const sg_route *route = ex->conn.route;

    return route ? sg_pool_owner(route->pid, route->start) : 0;
}

/* Request pool cleanup of the connection: back to the group's pool when
 * the exchange left it clean, else closed.  Run early by sg_detach; the
 * request pool runs it on every other path, so no fd leaks. */
static apr_status_t sg_release(void *data)
{
    sg_exchange *ex = data;

    if (ex->conn.fd >= 0) {
        if (!sg_fit_for_pool(ex)
            || !sg_pool_put(ex->group->conn_pool, ex->conn.fd,
                            sg_conn_owner(ex))) {
            close(ex->conn.fd);
        }
        ex->conn.fd = -1;
        ex->conn.reusable = 0;
    }
    return APR_SUCCESS;
}

/* The request owns fd from now on.  apr_os_sock_put only wraps it (no
 * cleanup of its own) for apr_poll.  A connected fd blocks, with
 * SO_RCVTIMEO at sg_base_read_timeout (sg_make_waitable; a pooled one was
 * given it back): every send and read passes MSG_DONTWAIT except the one
 * read that waits for the answer. */
static void sg_attach(sg_exchange *ex, int fd, int pooled)
{
    apr_os_sock_t osd = fd;

    ex->conn.fd = fd;
    ex->conn.pooled = pooled;
    ex->conn.reusable = 0;
    ex->conn.read_timeout = sg_base_read_timeout(ex->group);
    apr_os_sock_put(&ex->conn.sock, &osd, ex->r->pool);
    ex->conn.pfd.desc_type = APR_POLL_SOCKET;
    ex->conn.pfd.desc.s = ex->conn.sock;
    ex->conn.pfd.p = ex->r->pool;
    apr_pool_cleanup_register(ex->r->pool, ex, sg_release,
                              apr_pool_cleanup_null);
}

void sg_detach(sg_exchange *ex)
{
    apr_pool_cleanup_run(ex->r->pool, ex, sg_release);
}

/* The group's backlog is full (every worker busy): connect again, blocking
 * for at most `left`, so the thread waits in the kernel's queue of the
 * listening socket, which wakes one waiter as a worker accepts, first come
 * first served.  connect()'s errno (0: connected; EAGAIN: still full when
 * `left` ran out), or -1 when the socket could not be made to block. */
static int sg_connect_queued(int fd, const struct sockaddr *sa, socklen_t salen,
                             apr_interval_time_t left)
{
    struct timeval tv;
    int flags = fcntl(fd, F_GETFL);
    int err = 0;

    if (left < apr_time_from_msec(1)) {
        left = apr_time_from_msec(
            1); /* a zero SO_SNDTIMEO would never time out */
    }
    tv.tv_sec = apr_time_sec(left);
    tv.tv_usec = apr_time_usec(left);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        err = -1;
    }
    else if (connect(fd, sa, salen) != 0) {
        err = errno == EWOULDBLOCK ? EAGAIN : errno;
    }
    /* non-blocking again: the loop's next connect() must not wait */
    if (fcntl(fd, F_SETFL, flags) != 0 && err == 0) {
        err = errno;
    }
    return err;
}

/* connect() until it succeeds or fails for good, waiting while the
 * listening socket's backlog is full until deadline: 0 (connected), EAGAIN
 * (still full at the deadline), -1 (the socket could not be made to block),
 * or connect()'s errno.  *attempts counts the tries. */
static int sg_connect_until(int fd, const struct sockaddr *sa, socklen_t salen,
                            apr_time_t deadline, int *attempts)
{
    apr_interval_time_t wait = apr_time_from_msec(5);

    for (;;) {
        int err = 0;

        ++*attempts;
        if (connect(fd, sa, salen) != 0) {
            err = errno;
        }
        if (err == EAGAIN && apr_time_now() < deadline) {
            /* the backlog is full: every worker, or the one, is busy */
            ++*attempts;
            err = sg_connect_queued(fd, sa, salen, deadline - apr_time_now());
        }
        if (err == 0 || err == EISCONN) {
            return 0;
        }
        if (err == EINTR) {
            continue;
        }
        if (err == EAGAIN || err == EINPROGRESS || err == EALREADY || err < 0) {
            if (apr_time_now() >= deadline) {
                return err < 0 ? err : EAGAIN;
            }
            apr_sleep(wait);
            if (wait < apr_time_from_msec(200)) {
                wait *= 2;
            }
            continue;
        }
        return err;
    }
}

/* A connected socket blocks, for at most `timeout` per read: waiting for
 * the answer is then one recv() rather than poll() and recv().  0 or
 * errno. */
static int sg_make_waitable(int fd, apr_interval_time_t timeout)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0
        || sg_set_rcvtimeo(fd, timeout) != 0) {
        return errno;
    }
    return 0;
}

/* The new connection made waitable, or 503 (logged). */
static int sg_connected(sg_exchange *ex, int fd)
{
    int err = sg_make_waitable(fd, ex->conn.read_timeout);

    if (err != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, err, ex->r,
                      "SG0416: group %s: cannot set the read timeout of a "
                      "connection to socket %s",
                      ex->group->name, ex->group->socket_path);
        sg_detach(ex);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return OK;
}

/* A new connection to the group's socket, waiting while its backlog is
 * full (every worker busy) until connect-timeout. */
int sg_connect(sg_exchange *ex)
{
    request_rec *r = ex->r;
    const sg_group *g = ex->group;
    struct sockaddr_un sa;
    apr_time_t deadline;
    int attempts = 0;
    int err;
    int fd;

    if (!g->socket_path) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0406: process group %s has no socket (it was not "
                      "started); see the startup messages",
                      g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, g->socket_path, sizeof(sa.sun_path));

    /* CLOEXEC: a kept connection must not leak into a CGI or piped logger */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, r,
                      "SG0415: group %s: cannot create a socket", g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    sg_attach(ex, fd, 0);

    deadline = apr_time_now() + apr_time_from_sec(g->connect_timeout);
    err = sg_connect_until(fd, (const struct sockaddr *)&sa, sizeof(sa),
                           deadline, &attempts);
    if (err != 0) {
        if (err == EAGAIN || err < 0) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0413: group %s: the backlog of socket %s "
                          "stayed full for connect-timeout=%d s (%d "
                          "attempts); every worker is busy: raise "
                          "processes/threads or listen-backlog",
                          g->name, g->socket_path, g->connect_timeout,
                          attempts);
        }
        else if (err == ENOENT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0410: group %s: socket %s does not exist; Apache "
                          "is restarting or the socket was removed",
                          g->name, g->socket_path);
        }
        else if (err == EACCES || err == EPERM) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0411: group %s: permission denied on socket %s; "
                          "it must belong to Apache's User (check "
                          "SwiftSocketPrefix and its directory)",
                          g->name, g->socket_path);
        }
        else if (err == ECONNREFUSED) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0412: group %s: connection refused on socket %s; "
                          "nothing listens on it (stale socket of an older "
                          "Apache generation?)",
                          g->name, g->socket_path);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0414: group %s: cannot connect to socket %s",
                          g->name, g->socket_path);
        }
        sg_detach(ex);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return sg_connected(ex, fd);
}

/* The worker a route names is gone: the request goes to the group socket,
 * where any worker serves it and sets a new route. */
static void sg_route_gone(sg_exchange *ex, int err, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, err, ex->r,
                  "SG0641: group %s: the worker of the request's route (pid "
                  "%ld) is gone (%s); sending the request to the group "
                  "socket",
                  ex->group->name, (long)ex->conn.route->pid, why);
    ex->conn.route = NULL;
}

/* Whether the peer of fd is the route's worker: it listens on its own
 * socket itself, so SO_PEERCRED names it (a process with another pid that
 * took the name after the worker died is not it). */
static int sg_peer_is(int fd, const sg_route *route)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0
           && cred.pid == route->pid;
}

/* A new connection to the own socket of the worker the request's route
 * names, waiting while its backlog is full until connect-timeout.  OK, an
 * HTTP status (logged), or DECLINED when the worker is gone (the route is
 * dropped, logged at debug). */
static int sg_connect_worker(sg_exchange *ex)
{
    const sg_group *g = ex->group;
    const sg_route *route = ex->conn.route;
    struct sockaddr_un sa;
    socklen_t salen = sg_affinity_address(route, &sa);
    int attempts = 0;
    int err;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, ex->r,
                      "SG0415: group %s: cannot create a socket", g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    sg_attach(ex, fd, 0);
    err = sg_connect_until(fd, (const struct sockaddr *)&sa, salen,
                           apr_time_now()
                               + apr_time_from_sec(g->connect_timeout),
                           &attempts);
    if (err == EAGAIN || err < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, ex->r,
                      "SG0642: group %s: the socket of worker pid %ld, which "
                      "the request's route names, stayed full for "
                      "connect-timeout=%d s",
                      g->name, (long)route->pid, g->connect_timeout);
        sg_detach(ex);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (err == 0 && !sg_peer_is(fd, route)) {
        sg_detach(ex);
        sg_route_gone(ex, 0, "another process listens on its socket");
        return DECLINED;
    }
    if (err != 0) {
        sg_detach(ex);
        sg_route_gone(ex, err, "its socket is closed");
        return DECLINED;
    }
    return sg_connected(ex, fd);
}

/* The most recently used idle connection of the request's kind (its
 * worker's, or the group socket's), or -1. */
static int sg_pooled(sg_exchange *ex)
{
    sg_conn_pool *cp = ex->group->conn_pool;
    int dropped = 0;
    int fd;

    if (!ex->replayable || !cp) {
        return -1;
    }
    fd = sg_pool_get(cp, sg_conn_owner(ex), &dropped);
    if (dropped) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, ex->r,
                      "SG0516: group %s: dropped %d idle connection(s) "
                      "that the worker side had closed",
                      ex->group->name, dropped);
    }
    if (fd >= 0) {
        sg_attach(ex, fd, 1);
    }
    return fd;
}

/* The connection for a request: the group's (or, for a routed request, its
 * worker's) most recently used idle one when the request may be sent again
 * should the worker turn it away, else a new one. */
int sg_open(sg_exchange *ex)
{
    if (ex->conn.route) {
        int rc;

        if (sg_pooled(ex) >= 0) {
            return OK;
        }
        if ((rc = sg_connect_worker(ex)) != DECLINED) {
            return rc;
        }
        /* the worker is gone: the group's connections, as without a route */
    }
    if (sg_pooled(ex) >= 0) {
        return OK;
    }
    return sg_connect(ex);
}

/* A new connection, for a request sent again: to the route's worker while
 * it lives, else to the group socket. */
int sg_reconnect(sg_exchange *ex)
{
    if (ex->conn.route) {
        int rc = sg_connect_worker(ex);

        if (rc != DECLINED) {
            return rc;
        }
    }
    return sg_connect(ex);
}
