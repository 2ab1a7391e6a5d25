/*
 * mod_swift_gateway: which requests the gateway serves, and with which
 * process group (sg_route.c).
 */

#ifndef SG_ROUTE_H
#define SG_ROUTE_H

#include "mod_swift_gateway.h"

/* translate_name: SwiftScriptAlias mounts. */
int sg_translate_name(request_rec *r);
/* type_checker: an aliased request keeps the gateway's handler and gets no
 * content type from the program's file name. */
int sg_type_checker(request_rec *r);
/* handler, before every other: 403 for an aliased request that a handler
 * other than the gateway's, and not one known to ignore the request's file
 * (server-status, ...), took (SG0407). */
int sg_refuse_file_handler(request_rec *r);
/* handler, just before httpd's default handler: 403 for an aliased request
 * that no handler served, which the default handler would send as a file
 * (SG0407). */
int sg_refuse_unserved(request_rec *r);

/* Which setting chose the group: described only when a message names it,
 * so a request that resolves normally formats nothing. */
typedef enum {
    SG_SOURCE_SETTING, /* SwiftProcessGroup */
    SG_SOURCE_ALIAS,   /* process-group= of the SwiftScriptAlias */
    SG_SOURCE_IMPLICIT /* the alias's own implicit group */
} sg_source_kind;

typedef struct {
    sg_source_kind kind;
    const sg_dir_conf *dconf;
    const sg_alias *alias;
} sg_source;

/* "SwiftProcessGroup (FILE:LINE)" and the like, for a log message. */
const char *sg_describe_source(request_rec *r, const sg_source *source);

/* The request's process group in *out and what chose it in *source; else
 * 500, logged (SG0401 to SG0405).  alias is NULL for SetHandler
 * swift-gateway without a SwiftScriptAlias. */
int sg_resolve_group(request_rec *r, const sg_dir_conf *dconf,
                     const sg_alias *alias, const sg_group **out,
                     sg_source *source);

/* SCRIPT_NAME for SetHandler swift-gateway without a SwiftScriptAlias. */
const char *sg_location_mount(request_rec *r);

#endif /* SG_ROUTE_H */
