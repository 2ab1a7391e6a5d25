/*
 * mod_swift_gateway: what the Apache parent execs as a group's supervisor
 * (sg_exec_plan.c).
 */

#ifndef SG_EXEC_PLAN_H
#define SG_EXEC_PLAN_H

#include "mod_swift_gateway.h"
#include "sg_generations.h"

#include "apr_md5.h"

#include <sys/types.h>

/* The descriptors a supervisor starts with. */
#define SG_LISTEN_FD      3
#define SG_RETIRE_FD      4 /* read end of the supervisor's retire pipe */
#define SG_PREDECESSOR_FD 5 /* write end of its predecessor's, on a handover */
#define SG_BOARD_FD       6 /* the group's scoreboard */

typedef struct {
    int drop_privileges; /* Apache runs as root: become uid, gid, groups */
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    int ngroups;
    const char *user_name;
    const char *home;
    int home_explicit; /* home= given: a failed chdir is fatal */
    const char *program;
    char **argv;
    char **envp;
    char **envp_handover; /* envp and SWIFT_GATEWAY_PREDECESSOR_FD */
    char *listen_pid_env; /* "LISTEN_PID=" + room for the pid */

    /* what shapes the supervisor: a kept one is adopted only if equal */
    unsigned char config_digest[APR_MD5_DIGESTSIZE];
    sg_program_id program_id;
} sg_exec_plan;

/* Prepares group g's plan in p: OK, or an HTTP status after an SG012x log
 * line (the group would run as root, or its user cannot be resolved). */
int sg_exec_plan_prepare(sg_exec_plan *plan, const sg_group *g, server_rec *s,
                         apr_pool_t *p);

#endif /* SG_EXEC_PLAN_H */
