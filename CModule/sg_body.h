/*
 * mod_swift_gateway: a request body read ahead of the worker (sg_body.c).
 */

#ifndef SG_BODY_H
#define SG_BODY_H

#include "mod_swift_gateway.h"

/* How much of a longer or chunked request body is read before a worker
 * connection is taken (the rest streams): body-read-ahead's default. */
#define SG_BODY_AHEAD (1024 * 1024)

/* register_hooks: the input filter that hands out a body read ahead. */
void sg_body_register(apr_pool_t *p);

/* Reads the request body through the input filters until its end or until
 * `limit` bytes are in, whichever comes first, and puts a filter in front
 * of them that hands those bytes out again before reading on: so a slow
 * client holds no worker's request slot while they arrive.  *got tells
 * how many bytes were read. */
apr_status_t sg_body_read_ahead(request_rec *r, apr_off_t limit,
                                apr_off_t *got);

#endif /* SG_BODY_H */
