/* sg_timeouts.h: how long the module waits for a worker: request-timeout's
 * backstop and the read timeouts of worker connections. */
#ifndef SG_TIMEOUTS_H
#define SG_TIMEOUTS_H

#include "mod_swift_gateway.h"

#include <sys/socket.h>

/* request-timeout's backstop: Apache gives up on a response that is not
 * complete this long after request-timeout S ran out (counted from when the
 * request went to the worker, or from when it left the worker's queue).
 * The supervisor has the worker answer 504 by S + 1 s; this catches a
 * worker that cannot (its event loop is blocked), still within the S + 2 s
 * the client is promised. */
#define SG_BACKSTOP_GRACE apr_time_from_msec(1500)
/* A wait's SO_RCVTIMEO is changed only when it is off by more than this:
 * at most one setsockopt() per this much of a long response, for an end
 * overshot by at most as much (and an eighth of it). */
#define SG_BACKSTOP_SLACK apr_time_from_msec(100)

/* How long after it started a request is given up on by Apache; 0: never
 * (request-timeout=0). */
static APR_INLINE apr_interval_time_t sg_backstop_after(const sg_group *g)
{
    return g->request_timeout
               ? apr_time_from_sec(g->request_timeout) + SG_BACKSTOP_GRACE
               : 0;
}

/* SO_RCVTIMEO of a worker socket: 0 or -1 with errno. */
static APR_INLINE int sg_set_rcvtimeo(int fd, apr_interval_time_t t)
{
    struct timeval tv;

    tv.tv_sec = apr_time_sec(t);
    tv.tv_usec = apr_time_usec(t);
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* SO_RCVTIMEO for a wait that must end `left` from now.  The kernel wakes
 * a read that timed out on its timer wheel, whose ticks grow with the
 * timeout: up to an eighth of it late (2 s of 60 at HZ=250).  Eight ninths
 * of `left` wake it before the end at the latest; woken early, the read
 * waits again for what is left (sg_wait_for_answer). */
static APR_INLINE apr_interval_time_t
sg_read_timeout_for(apr_interval_time_t left)
{
    apr_interval_time_t t = left - left / 9;

    return t > apr_time_from_msec(1) ? t : apr_time_from_msec(1);
}

/* SO_RCVTIMEO of a worker connection between requests: that of a request's
 * first wait (socket-timeout, or the backstop's time when that is shorter),
 * so that it needs no setsockopt(). */
static APR_INLINE apr_interval_time_t sg_base_read_timeout(const sg_group *g)
{
    apr_interval_time_t socket_timeout = apr_time_from_sec(g->socket_timeout);
    apr_interval_time_t backstop = sg_backstop_after(g);

    return sg_read_timeout_for(
        backstop && backstop < socket_timeout ? backstop : socket_timeout);
}

#endif
