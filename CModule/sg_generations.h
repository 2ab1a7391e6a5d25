/*
 * mod_swift_gateway: what Apache's parent remembers from one generation to
 * the next (sg_generations.c): the groups it keeps across a restart and the
 * supervisors that are still on their way out.
 */

#ifndef SG_GENERATIONS_H
#define SG_GENERATIONS_H

#include "mod_swift_gateway.h"
#include "sg_board.h"

#include "apr_md5.h"

#include <sys/un.h>

#define SG_SOCKET_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

/* The identity of a program file: a deploy replaces or rewrites it. */
typedef struct {
    dev_t dev;
    ino_t ino;
    apr_off_t size;
    apr_time_t mtime; /* with the file system's sub-second part */
} sg_program_id;

/* A group as one generation hands it to the next (ap_retained_data). */
typedef struct {
    int in_use;
    char name[SG_SOCKET_PATH_MAX];
    char socket_path[SG_SOCKET_PATH_MAX];
    char token[2 * SG_TOKEN_BYTES + 1];
    int listen_fd;
    pid_t pid;          /* its supervisor; 0 when none runs */
    apr_time_t started; /* when that supervisor was due to exec */
    int retire_fd;      /* write end of that supervisor's retire pipe, or -1 */
    pid_t predecessor;  /* a supervisor it replaces that still retires, or 0 */
    int shutdown_timeout;
    unsigned char config_digest[APR_MD5_DIGESTSIZE];
    sg_program_id program;
    sg_board board; /* its scoreboard (the parent's mapping and descriptor) */
} sg_kept_group;

/* Wait statuses as words: from waitpid(), and as an other-child callback
 * gets them (the MPM passes an exit code or a signal number). */
const char *sg_describe_wait(apr_pool_t *p, int status);
const char *sg_describe_status(apr_pool_t *p, int reason, int status);

/* Keep a group for the next generation; 0 when there is no room. */
int sg_kept_put(const sg_kept_group *k);
/* Take the kept group NAME whose socket lies in DIR into *out; 0: none. */
int sg_kept_take(const char *name, const char *dir, sg_kept_group *out);
/* Kept groups nobody took: each one's supervisor is told to drain
 * (SIGTERM, SIGKILL after shutdown-timeout; watched as other child in
 * watch, unless NULL), its socket closed and removed; why says why the
 * group is gone. */
void sg_kept_release_all(apr_pool_t *p, apr_pool_t *watch, server_rec *s,
                         const char *why);

/* Supervisors on their way out.  A draining one got SIGTERM and is killed
 * shutdown-timeout + 1 s later; a retiring one was replaced by a successor
 * and exits by itself once that one's workers accept (the parent keeps the
 * write end of its retire pipe meanwhile, so that a successor that dies
 * early does not retire it).  pconf: where to register it as other child
 * (NULL: the next generation does). */
void sg_drain_add(apr_pool_t *pconf, const char *group, pid_t pid,
                  int shutdown_timeout, apr_time_t deadline);
void sg_retire_add(apr_pool_t *pconf, const char *group, pid_t pid,
                   int shutdown_timeout, int retire_fd, pid_t successor);
/* The write end of retiring pid's retire pipe, or -1. */
int sg_retire_fd(pid_t pid);
/* A retiring pid's successor changes (the successor was restarted). */
void sg_retire_successor(pid_t pid, pid_t successor);
/* post_config: watch the supervisors of earlier generations again. */
void sg_drain_adopt(apr_pool_t *pconf);
/* monitor: SIGKILL the draining ones past their deadline. */
void sg_drain_monitor(server_rec *s, apr_time_t now);
/* Apache exits: retiring ones get SIGTERM and a deadline too. */
void sg_drain_stop_all(apr_time_t now);
/* One round of waiting for them all as Apache exits: how many are left. */
int sg_drain_stop_step(apr_time_t now, apr_pool_t *p);

/* One step of stopping supervisor pid: 1 when it is gone (or given up). */
int sg_stop_step(server_rec *s, const char *group, pid_t pid,
                 int shutdown_timeout, apr_time_t *deadline, int *kill_sent,
                 apr_time_t now, apr_pool_t *p);

/* An Apache child: close the write ends of retire pipes it inherited. */
void sg_generations_child_init(void);

#endif /* SG_GENERATIONS_H */
