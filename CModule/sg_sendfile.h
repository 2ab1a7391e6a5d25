/*
 * mod_swift_gateway: X-Sendfile, a file the worker names and Apache sends
 * (sg_sendfile.c).
 */

#ifndef SG_SENDFILE_H
#define SG_SENDFILE_H

#include "mod_swift_gateway.h"

#define SG_SENDFILE_HEADER "X-Sendfile"

/* Right after the worker's response headers were parsed: takes the
 * X-Sendfile header out of r->headers_out (it never reaches the client) and
 * returns its path when the request's location has SwiftSendfile On and the
 * application answered 200; NULL otherwise (a debug line says why a header
 * was dropped). */
const char *sg_sendfile_claim(request_rec *r);

/* Once the exchange with the worker is over and its connection released:
 * sends the file at path (claimed above) through the output filters, as
 * httpd's default handler sends a file, after checking it lies within a
 * SwiftSendfilePath directory.  A handler's return value. */
int sg_sendfile_send(request_rec *r, const char *path);

#endif /* SG_SENDFILE_H */
