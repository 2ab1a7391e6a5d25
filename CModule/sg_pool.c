/*
 * mod_swift_gateway: each Apache child's idle connections to the groups.
 *
 * A kept-alive connection holds one of a worker's request slots for its
 * whole life, so a request sent on it runs at once.  The worker closes an
 * idle one only after writing an unsolicited END_REQUEST/FCGI_OVERLOADED:
 * a request that meets that, or finds the connection dead before any byte
 * went out, was not run and may be sent again on a new connection.
 *
 * Each child keeps, per group, a stack of idle connections (the most
 * recently used on top) behind a mutex, made by this file's child_init hook
 * and closed when the child exits.  Each connection is marked with the
 * worker whose own socket it goes to (affinity-cookie), or 0 for the group
 * socket: a request takes only a connection of its kind, so a routed one
 * reaches its worker and an unrouted one the group's balancing.
 */

#include "sg_pool.h"

#include "ap_mpm.h"
#include "apr_thread_mutex.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

struct sg_conn_pool {
#if APR_HAS_THREADS
    apr_thread_mutex_t *mutex; /* event and worker MPMs are threaded */
#endif
    int *fds;             /* a stack: the most recently used on top */
    apr_uint64_t *owners; /* per fd: sg_pool_owner() of its worker, or 0 */
    int nfds;
    int capacity;
    int closed; /* the child is exiting */
};

static apr_status_t sg_pool_mutex(sg_conn_pool *cp, apr_pool_t *p)
{
#if APR_HAS_THREADS
    return apr_thread_mutex_create(&cp->mutex, APR_THREAD_MUTEX_DEFAULT, p);
#else
    (void)cp;
    (void)p;
    return APR_SUCCESS;
#endif
}

static int sg_pool_lock(sg_conn_pool *cp)
{
#if APR_HAS_THREADS
    return apr_thread_mutex_lock(cp->mutex) == APR_SUCCESS;
#else
    (void)cp;
    return 1;
#endif
}

static void sg_pool_unlock(sg_conn_pool *cp)
{
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(cp->mutex);
#else
    (void)cp;
#endif
}

/* Runs when the child exits, after its request threads are done. */
static apr_status_t sg_pool_cleanup(void *data)
{
    sg_conn_pool *cp = data;

    cp->closed = 1;
    while (cp->nfds > 0) {
        close(cp->fds[--cp->nfds]);
    }
    return APR_SUCCESS;
}

/* child_init: an empty pool per started group, with room for a connection
 * per thread of this child: a worker keeps requests beyond its slots waiting
 * on their connections, so each thread may use one at once.  (Unknown
 * threads: as many as the group has request slots.) */
void sg_pool_child_init(apr_pool_t *pchild, server_rec *s)
{
    int child_threads = 0;
    int i;

    if (!sg_globals.groups) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &child_threads) != APR_SUCCESS) {
        child_threads = 0;
    }
    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        int processes = g->maximum_processes > g->processes
                            ? g->maximum_processes
                            : g->processes;
        apr_int64_t capacity = child_threads > 0
                                   ? child_threads
                                   : (apr_int64_t)processes * g->threads;
        sg_conn_pool *cp;
        apr_status_t rv;

        if (!g->socket_path) {
            continue; /* never started (SG0406) */
        }
        cp = apr_pcalloc(pchild, sizeof(*cp));
        cp->capacity = capacity > 0 ? (int)capacity : 1;
        cp->fds = apr_palloc(pchild, cp->capacity * sizeof(int));
        cp->owners = apr_palloc(pchild, cp->capacity * sizeof(apr_uint64_t));
        if ((rv = sg_pool_mutex(cp, pchild)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                         "SG0517: group %s: cannot create the lock of the "
                         "idle connection pool; this Apache child opens a "
                         "new connection for every request",
                         g->name);
            continue;
        }
        apr_pool_cleanup_register(pchild, cp, sg_pool_cleanup,
                                  apr_pool_cleanup_null);
        g->conn_pool = cp;
    }
}

/* Under the lock: takes the most recently used idle connection of owner
 * (0: the group socket), or -1.  Without affinity every one is the group
 * socket's: the top one matches at once. */
static int sg_pool_take(sg_conn_pool *cp, apr_uint64_t owner)
{
    int i;

    if (cp->nfds > 0 && cp->owners[cp->nfds - 1] == owner) {
        return cp->fds[--cp->nfds];
    }
    for (i = cp->nfds - 2; i >= 0; --i) {
        if (cp->owners[i] == owner) {
            int fd = cp->fds[i];

            --cp->nfds;
            memmove(cp->fds + i, cp->fds + i + 1,
                    (cp->nfds - i) * sizeof(*cp->fds));
            memmove(cp->owners + i, cp->owners + i + 1,
                    (cp->nfds - i) * sizeof(*cp->owners));
            return fd;
        }
    }
    return -1;
}

/* The most recently used idle connection of owner that is still open and
 * silent, or -1.  Anything to read on an idle connection is the worker's
 * FCGI_OVERLOADED notice or EOF: it is closing it, or gone. */
int sg_pool_get(sg_conn_pool *cp, apr_uint64_t owner, int *dropped)
{
    for (;;) {
        struct pollfd pfd;
        int fd;

        if (!sg_pool_lock(cp)) {
            return -1;
        }
        fd = sg_pool_take(cp, owner);
        sg_pool_unlock(cp);
        if (fd < 0) {
            return -1;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) == 0) {
            return fd;
        }
        close(fd);
        ++*dropped;
    }
}

/* Keep an idle connection for a later request; 0 when there is no room. */
int sg_pool_put(sg_conn_pool *cp, int fd, apr_uint64_t owner)
{
    int kept = 0;

    if (!cp || !sg_pool_lock(cp)) {
        return 0;
    }
    if (!cp->closed && cp->nfds < cp->capacity) {
        cp->owners[cp->nfds] = owner;
        cp->fds[cp->nfds++] = fd;
        kept = 1;
    }
    sg_pool_unlock(cp);
    return kept;
}
