/*
 * mod_swift_gateway: each group's scoreboard as Apache sees it
 * (sg_board.c).  The parent makes it and hands it to the group's
 * supervisor; the children read it, read-only, for the status page.  Its
 * layout is Sources/CSwiftGatewayLinux/include/sg_scoreboard.h.
 */

#ifndef SG_BOARD_H
#define SG_BOARD_H

#include "mod_swift_gateway.h"

#include "sg_scoreboard.h"

/* A group's board in Apache's processes. */
typedef struct {
    int fd;                    /* the memfd (parent only); -1: none */
    const unsigned char *base; /* read-only mapping; NULL: no board */
    apr_size_t bytes;
    int entries;
    int request_slots;
    unsigned long socket_ino; /* the group socket's inode, for its queue */
} sg_board;

/* One worker entry, as read (every string bounded and made printable). */
typedef struct {
    int entry;
    int slot; /* the group's worker index it runs as */
    long pid;
    const char *state;
    int accepting;
    double uptime; /* seconds */
    apr_int64_t requests_served;
    int in_flight;
    int queued;
    apr_int64_t routed_requests;
    int has_oldest;          /* a request runs */
    double oldest_age;       /* seconds */
    const char *oldest_path; /* NULL: not published */
    apr_int64_t rss_bytes;
    double cpu_seconds;
    const char *last_exit;
} sg_board_worker;

/* A group's board, as read. */
typedef struct {
    long supervisor_pid; /* 0: no supervisor took it */
    int running;         /* workers starting or ready */
    int draining;
    apr_int64_t requests_served; /* by the group's workers, gone ones too */
    apr_int64_t in_flight;
    apr_int64_t queued; /* requests waiting for a slot in a worker */
    apr_int64_t recycles[SG_RECYCLE_REASONS];
    apr_int64_t restarts[SG_RESTART_REASONS];
    apr_array_header_t *workers; /* sg_board_worker */
} sg_board_view;

/* The names the status page gives the counters' reasons. */
extern const char *const sg_recycle_names[SG_RECYCLE_REASONS];
extern const char *const sg_restart_names[SG_RESTART_REASONS];

void sg_board_init(sg_board *b);
/* Parent: a new board for a group of maximum_processes workers of
 * request_slots each, its size sealed, mapped read-only; listen_fd names
 * the group socket whose queue the status page shows. */
apr_status_t sg_board_create(sg_board *b, int processes, int maximum_processes,
                             int request_slots, int listen_fd);
/* Parent: the board is no longer this generation's (unmapped, closed). */
void sg_board_release(sg_board *b);
/* A child keeps the mapping only: it never writes the board. */
void sg_board_child_init(sg_board *b);

/* What the board says now; 0 when the group has no board. */
int sg_board_read(apr_pool_t *p, const sg_board *b, sg_board_view *view);
/* Connections waiting in the group socket's backlog, or -1 when the
 * kernel does not say (sock_diag). */
long sg_board_connections_waiting(const sg_board *b);

#endif /* SG_BOARD_H */
