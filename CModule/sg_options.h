/*
 * mod_swift_gateway: the options of SwiftDaemonProcess (sg_options.c).
 */

#ifndef SG_OPTIONS_H
#define SG_OPTIONS_H

#include "mod_swift_gateway.h"

/* A group with every option at its default. */
sg_group *sg_new_group(apr_pool_t *p, const char *name);

/* Sets the options in args ("name=value ...") on group g; the message for
 * the directive ("SwiftDaemonProcess NAME: ...") or NULL. */
const char *sg_group_options(cmd_parms *cmd, sg_group *g, const char *args);

/* Splits the next word off *line into *word (NULL at the end): white space
 * separates words, quotes keep it; a message or NULL. */
const char *sg_next_word(apr_pool_t *p, const char **line, char **word);

/* Resolves and checks an executable (program=, SwiftScriptAlias): on
 * success *path is absolute and *real its realpath(); else a message. */
const char *sg_check_program(cmd_parms *cmd, const char *arg, const char **path,
                             const char **real);

/* The most workers the group may run: maximum-processes, or processes, or 1
 * for a transient group (processes=0). */
int sg_group_maximum_processes(const sg_group *g);

#endif /* SG_OPTIONS_H */
