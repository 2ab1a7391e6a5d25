/*
 * mod_swift_gateway: each Apache child's idle connections to the groups
 * (sg_pool.c).
 */

#ifndef SG_POOL_H
#define SG_POOL_H

#include "mod_swift_gateway.h"

/* child_init hook: an empty pool for every started group. */
void sg_pool_child_init(apr_pool_t *pchild, server_rec *s);

/* Whose an idle connection is: 0 for the group socket's, else this of the
 * worker whose own socket it goes to (affinity-cookie). */
static APR_INLINE apr_uint64_t sg_pool_owner(pid_t pid, apr_uint64_t start)
{
    return ((start * 2654435761u) ^ (apr_uint64_t)pid) | 1;
}

/* The most recently used idle connection of owner in the pool that is
 * still open and silent, or -1; *dropped counts the dead ones closed on the
 * way. */
int sg_pool_get(sg_conn_pool *cp, apr_uint64_t owner, int *dropped);

/* Keeps an idle connection of owner for a later request; 0 when there is
 * no room (or no pool): the caller closes it then. */
int sg_pool_put(sg_conn_pool *cp, int fd, apr_uint64_t owner);

#endif /* SG_POOL_H */
