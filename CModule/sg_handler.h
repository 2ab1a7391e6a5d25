/*
 * mod_swift_gateway: the handler of the requests the gateway serves
 * (sg_handler.c).
 */

#ifndef SG_HANDLER_H
#define SG_HANDLER_H

#include "mod_swift_gateway.h"

/* handler: forwards the request to a worker of its group. */
int sg_handler(request_rec *r);

#endif /* SG_HANDLER_H */
