/*
 * mod_swift_gateway: the configuration check (sg_config_check.c).
 */

#ifndef SG_CONFIG_CHECK_H
#define SG_CONFIG_CHECK_H

#include "mod_swift_gateway.h"

/* check_config: implicit groups, each group's program, static routing of
 * an alias to a group running another program (SG01xx). */
int sg_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                    server_rec *s);

#endif /* SG_CONFIG_CHECK_H */
