/*
 * mod_swift_gateway: the status page (sg_status.c): SetHandler
 * swift-gateway-status, and a SwiftGateway section on mod_status's page.
 */

#ifndef SG_STATUS_H
#define SG_STATUS_H

#include "mod_swift_gateway.h"

/* handler: the groups and their workers, as HTML, JSON or Key: value lines. */
int sg_status_handler(request_rec *r);
/* mod_status's status_hook: the same, shorter, on /server-status. */
int sg_status_hook(request_rec *r, int flags);

#endif /* SG_STATUS_H */
