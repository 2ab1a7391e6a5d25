/*
 * mod_swift_gateway: session affinity (affinity-cookie=NAME): the route a
 * cookie carries to one worker of a group, checked, and the address of that
 * worker's own socket (sg_affinity.c).
 */

#ifndef SG_AFFINITY_H
#define SG_AFFINITY_H

#include "mod_swift_gateway.h"

#include <sys/socket.h>
#include <sys/un.h>

/* A route is 24 bytes, 32 characters of base64url without padding: the
 * worker's pid (4 bytes, big-endian), its start (8 bytes, microseconds since
 * the epoch, big-endian) and the first 12 bytes of HMAC-SHA1 over them, keyed
 * with the group's token and bound to its socket path. */
#define SG_ROUTE_BYTES    24
#define SG_ROUTE_ID_BYTES 12
#define SG_ROUTE_CHARS    32

/* A worker a request's route names, its MAC checked. */
typedef struct sg_route {
    pid_t pid;
    apr_uint64_t start;
    char text[SG_ROUTE_CHARS + 1];
} sg_route;

/* The route the request's cookie (g->affinity_cookie) carries for group g,
 * or NULL: no such cookie, or none that is a route of this group (a forged,
 * truncated, foreign or stale one; logged at debug, SG0640). */
const sg_route *sg_affinity_route(request_rec *r, const sg_group *g);

/* Whether text (len bytes) is a route of group g; *route gets it.  For the
 * cookie parser and the unit checks. */
int sg_affinity_verify(const sg_group *g, const char *text, apr_size_t len,
                       sg_route *route);

/* The address of the worker's own socket: in Linux's abstract namespace,
 * "\0swift-gateway/<route>"; returns its length for connect(). */
socklen_t sg_affinity_address(const sg_route *route, struct sockaddr_un *sa);

/* The longest cookie name affinity-cookie= takes. */
#define SG_AFFINITY_COOKIE_MAX 64

/* A valid cookie name (an RFC 6265 token), for the option's check. */
int sg_affinity_cookie_name_ok(const char *name);

#endif /* SG_AFFINITY_H */
