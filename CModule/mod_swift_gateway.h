/*
 * mod_swift_gateway: mod_wsgi-style daemon mode for Swift programs.
 *
 * The configuration structures shared by the module's translation units:
 *   mod_swift_gateway.c  the module record and its hooks
 *   sg_config.c          configuration records, directives, look-ups
 *   sg_options.c         the options of SwiftDaemonProcess
 *   sg_config_check.c    the configuration check: implicit groups, programs
 *   sg_daemon.c          Apache parent: group sockets, supervisor fork/exec/restart
 *   sg_exec_plan.c       Apache parent: what a supervisor is exec'ed as (user, env)
 *   sg_generations.c     Apache parent: groups and supervisors across restarts
 *   sg_board.c           each group's scoreboard: made by the parent, read by children
 *   sg_status.c          the status page and mod_status's section
 *   sg_route.c           SwiftScriptAlias mounts, process group resolution
 *   sg_pool.c            each Apache child's idle connections to the groups
 *   sg_handler.c         the handler: one request forwarded to a worker
 *   sg_params.c          its first records: CGI variables as PARAMS
 *   sg_connect.c         its connection: an idle one, or a new one
 *   sg_affinity.c        session affinity: a cookie's route to one worker
 *   sg_exchange.c        its full-duplex exchange: STDIN out, records in
 *   sg_response.c        the records from the worker: headers, body, stderr
 *   sg_records.c         their parsing, apart from I/O and httpd (fuzzed)
 *   sg_body.c            a slow request body read ahead of the worker
 *   sg_sendfile.c        X-Sendfile: a file the worker names, sent by Apache
 * Each file's own header (sg_config.h, sg_route.h, ...; sg_exchange.h for
 * sg_params.c, sg_connect.c, sg_exchange.c and sg_response.c) declares what
 * it offers the others; no file calls into one that calls it back.
 *
 * Every log message carries a number "SGnnnn"; docs/operations.md lists them.
 */

#ifndef MOD_SWIFT_GATEWAY_H
#define MOD_SWIFT_GATEWAY_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"

#include "apr_hash.h"
#include "apr_tables.h"
#include "apr_thread_proc.h"

#include <sys/types.h>

#define SG_HANDLER        "swift-gateway"
#define SG_STATUS_HANDLER "swift-gateway-status"

/* Name prefix of implicit groups (one per program served by an alias that no
 * SwiftProcessGroup / process-group= covers).  Declared names cannot start
 * with it, so the two never collide. */
#define SG_IMPLICIT_PREFIX "@"

#define SG_TOKEN_BYTES 32

/* executor=: where the application's request tasks run in a worker */
#define SG_EXECUTOR_EVENT_LOOP  "event-loop"
#define SG_EXECUTOR_THREAD_POOL "thread-pool"

typedef struct sg_daemon sg_daemon;
typedef struct sg_conn_pool sg_conn_pool;

/* One SwiftDaemonProcess (or an implicit group).  Built at configuration
 * time, completed by check_config (program) and post_config (socket_path,
 * token); read-only afterwards, so Apache children share it safely (each
 * child only sets its own conn_pool, in child_init). */
typedef struct {
    const char *name;
    const char *defined_at; /* "file:line" of the directive */
    server_rec *server;     /* server (main or vhost) declaring it */
    int is_main;            /* declared at main-server level */
    int is_implicit;

    const char *program;      /* absolute path; NULL until derived */
    const char *program_real; /* realpath() of program, for comparisons */
    int program_explicit;     /* program= was given */

    apr_array_header_t *arguments; /* const char *, from arguments= */
    apr_array_header_t *env;       /* const char * "NAME=VALUE", from env= */

    int processes;         /* 0: a transient group, started on demand */
    int maximum_processes; /* 0 = same as processes (1 when that is 0) */
    int threads;
    int listen_backlog;

    const char *user; /* user= as written, NULL = Apache's User */
    uid_t uid;
    const char *group; /* group= as written, NULL = Apache's Group */
    gid_t gid;
    apr_array_header_t *supp_groups; /* gid_t, NULL = initgroups() of the user */
    const char *supp_groups_spec;

    const char *home;
    const char *display_name;
    int umask; /* -1 = inherit Apache's */

    int connect_timeout; /* seconds */
    int socket_timeout;
    int graceful_timeout;
    int shutdown_timeout;
    int maximum_requests;
    int restart_interval;
    int inactivity_timeout;
    int request_timeout;
    int queue_timeout;
    int startup_timeout;
    int cpu_time_limit;
    apr_off_t memory_limit;
    apr_off_t virtual_memory_limit;
    apr_off_t header_buffer_size;
    apr_off_t body_read_ahead; /* of a longer or chunked body, read before
                                * a worker's slot is taken; 0: none */
    int reload;                /* roll the workers when the program changes */
    const char *restart_file;  /* roll them when its mtime changes; or NULL */
    const char *executor; /* SG_EXECUTOR_EVENT_LOOP or SG_EXECUTOR_THREAD_POOL */
    const char *affinity_cookie; /* affinity-cookie=NAME; NULL: off */

    /* Filled in by post_config in the parent, inherited by children. */
    const char *socket_path;
    const char *token;
    sg_daemon *daemon; /* parent-side process state */

    /* Filled in by child_init in each Apache child; NULL elsewhere (-X). */
    sg_conn_pool *conn_pool; /* idle kept-alive connections */
} sg_group;

typedef struct {
    const char *path; /* URL-PATH without trailing '/'; "" for "/" */
    apr_size_t len;
    const char *program;
    const char *program_real;
    const char *group_name; /* process-group=, or NULL */
    sg_group *implicit;     /* implicit group, when one is needed */
    const char *defined_at;
} sg_alias;

typedef struct {
    apr_array_header_t *aliases;     /* sg_alias *, declared in this server */
    apr_array_header_t *all_aliases; /* sg_alias *, own then inherited (main) */
    apr_hash_t *groups;              /* name -> sg_group *, declared here */
    const char *socket_prefix;       /* SwiftSocketPrefix (main server only) */
} sg_server_conf;

#define SG_UNSET (-1)

typedef struct {
    const char *path;      /* section path (NULL at server level) */
    const char *group;     /* SwiftProcessGroup NAME, or NULL */
    const char *group_env; /* variable of SwiftProcessGroup %{ENV:var} */
    int group_set;
    int group_in_section; /* SwiftProcessGroup written inside a section */
    const char *group_at; /* "file:line" of SwiftProcessGroup */
    apr_array_header_t *restrict_to; /* SwiftRestrictProcess names, NULL = any */
    int pass_auth; /* SwiftPassAuthorization, SG_UNSET = core */
    int sendfile;  /* SwiftSendfile, SG_UNSET = Off */
    apr_array_header_t *sendfile_paths; /* SwiftSendfilePath directories
                                           (const char *), own and inherited */
} sg_dir_conf;

/* Per-request note set by translate_name when an alias matched. */
typedef struct {
    const sg_alias *alias;
    const char *script_name;
    const char *path_info;
} sg_request_conf;

/* Configuration-time state of the whole server (parent process only). */
typedef struct {
    apr_pool_t *pool;           /* pconf of the generation */
    apr_array_header_t *groups; /* sg_group *, declared + implicit */
    apr_hash_t *by_name;        /* name -> sg_group *, all servers */
    apr_hash_t *implicit;       /* program_real -> sg_group * */
} sg_globals_t;

extern module AP_MODULE_DECLARE_DATA swift_gateway_module;
extern sg_globals_t sg_globals; /* sg_config.c */

#endif /* MOD_SWIFT_GATEWAY_H */
