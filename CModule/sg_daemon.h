/*
 * mod_swift_gateway: the Apache parent's side, group sockets and
 * supervisors (sg_daemon.c).
 */

#ifndef SG_DAEMON_H
#define SG_DAEMON_H

#include "mod_swift_gateway.h"
#include "sg_board.h"

/* post_config: creates every group's socket and starts its supervisor. */
int sg_daemon_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s);
/* child_init: an Apache child closes the groups' listening sockets. */
void sg_daemon_child_init(apr_pool_t *p, server_rec *s);
/* monitor: restarts supervisors whose fork failed, escalates their stop. */
int sg_daemon_monitor(apr_pool_t *p, server_rec *s);

/* The status page, from a child's copy of the parent's records: the
 * group's board (NULL without a supervisor) and the user its supervisor
 * runs as. */
const sg_board *sg_daemon_board(const sg_group *g);
const char *sg_daemon_user(const sg_group *g);

#endif /* SG_DAEMON_H */
