/*
 * mod_swift_gateway: the groups' listening sockets (sg_sockets.c).
 */

#ifndef SG_SOCKETS_H
#define SG_SOCKETS_H

#include "mod_swift_gateway.h"

/* The directory of the groups' sockets (SwiftSocketPrefix or its default). */
const char *sg_socket_prefix(apr_pool_t *p, server_rec *s);
/* Creates dir (mode 0700, owned by Apache's User) or checks it is safe. */
int sg_socket_dir_make(apr_pool_t *p, server_rec *s, const char *dir);
/* Removes "<pid>.<generation>.<group>.sock" files of Apache parents that are
 * gone. */
void sg_socket_remove_stale(apr_pool_t *p, server_rec *s, const char *dir);
/* Binds and listens on the group's socket_path (mode 0600, Apache's User);
 * OK with the descriptor in *listen_fd, or an HTTP status after logging. */
int sg_socket_create(server_rec *s, const sg_group *g, int *listen_fd);

#endif /* SG_SOCKETS_H */
