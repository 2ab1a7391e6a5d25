/*
 * mod_swift_gateway: each Apache child's idle connections to the groups
 * (sg_pool.c).
 */

#ifndef SG_POOL_H
#define SG_POOL_H

#include "mod_swift_gateway.h"

/* child_init hook: an empty pool for every started group. */
void sg_pool_child_init(apr_pool_t *pchild, server_rec *s);

/* The most recently used idle connection of the pool that is still open
 * and silent, or -1; *dropped counts the dead ones closed on the way. */
int sg_pool_get(sg_conn_pool *cp, int *dropped);

/* Keeps an idle connection for a later request; 0 when there is no room
 * (or no pool): the caller closes it then. */
int sg_pool_put(sg_conn_pool *cp, int fd);

#endif /* SG_POOL_H */
