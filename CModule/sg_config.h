/*
 * mod_swift_gateway: the configuration as written (sg_config.c).
 */

#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include "mod_swift_gateway.h"

/* The module record's configuration callbacks and command table. */
void *sg_create_server_config(apr_pool_t *p, server_rec *s);
void *sg_merge_server_config(apr_pool_t *p, void *basev, void *addv);
void *sg_create_dir_config(apr_pool_t *p, char *dir);
void *sg_merge_dir_config(apr_pool_t *p, void *basev, void *addv);
extern const command_rec sg_cmds[];

/* pre_config: empties sg_globals for a new generation. */
int sg_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);

/* Is prefix (a URL path or directory, with or without a trailing '/') a
 * path-segment prefix of path? */
int sg_path_covers(const char *prefix, const char *path);

/* The longest SwiftScriptAlias of the server matching uri, or NULL. */
const sg_alias *sg_match_alias(const sg_server_conf *sconf, const char *uri);

/* Group named name as seen from server s (declared in s or in the main
 * server), or NULL; then *elsewhere, if asked, is a group of that name in
 * another virtual host. */
sg_group *sg_find_group(server_rec *s, const char *name, sg_group **elsewhere);

#endif /* SG_CONFIG_H */
