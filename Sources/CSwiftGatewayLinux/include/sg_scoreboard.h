// The layout of a group's scoreboard, defined here and nowhere else: the memory a group's
// supervisor shares with its workers (a memfd, fd 4 in each worker). The runtime reads and
// writes it through these offsets (GroupScoreboard.swift); anything else that reads a board
// (a test, a status page) includes this header.
//
// A board is one header, then `entries` worker entries of `entry_bytes` each. Every field is
// read and written with relaxed atomic loads and stores of its own width; times are
// CLOCK_MONOTONIC nanoseconds (the same clock in every process) unless the name says otherwise.
#ifndef SG_SCOREBOARD_H
#define SG_SCOREBOARD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SG_SCOREBOARD_MAGIC 0x32425753u // "SWB2" read as little-endian bytes

// Why the supervisor replaced a worker on purpose (recycles[] in the header).
enum sg_recycle_reason {
    SG_RECYCLE_MAXIMUM_REQUESTS = 0,
    SG_RECYCLE_RESTART_INTERVAL = 1,
    SG_RECYCLE_INACTIVITY = 2,
    SG_RECYCLE_MEMORY_LIMIT = 3,
    SG_RECYCLE_CPU_TIME_LIMIT = 4,
    SG_RECYCLE_REQUEST_TIMEOUT = 5, // a request it could not end
    SG_RECYCLE_ROLLING_RESTART = 6, // a new build of the program
    SG_RECYCLE_SCALED_DOWN = 7,     // an extra worker idle: not replaced
    SG_RECYCLE_REASONS = 8,
};

// Why a worker ended other than by a recycle, and was restarted (restarts[] in the header).
enum sg_restart_reason {
    SG_RESTART_EXITED = 0,  // it exited by itself
    SG_RESTART_CRASHED = 1, // killed by a signal the supervisor did not send
    SG_RESTART_MEMORY_KILL = 2, // killed above 1.5 x memory-limit
    SG_RESTART_STARTUP_TIMEOUT =
        3,                  // killed: not accepting within startup-timeout
    SG_RESTART_BLOCKED = 4, // killed: its event loop blocked past request-timeout
    SG_RESTART_REASONS = 5,
    SG_RESTART_SLOTS = 8, // room in the header
};

// The board is made by Apache's parent (its size and these first fields), which hands it to
// the group's supervisor; a supervisor started without one makes its own. Apache's children
// only read it.
struct sg_scoreboard_header {
    uint32_t magic;
    // Bytes of each worker entry: sg_scoreboard_entry_bytes(request_slots).
    uint32_t entry_bytes;
    // Worker entries: 4 * maximum-processes + 1 (three times as many draining while their
    // replacements run, and one for a new build's worker starting beside the one it replaces).
    int32_t entries;
    int32_t
        processes; // processes= (workers kept running; more run while scaled up)
    // Request slots of each worker (threads=), each with a sg_scoreboard_request cell.
    int32_t request_slots;
    int32_t maximum_processes;

    // Written by the supervisor, which keeps them when it restarts on the same board.
    int32_t supervisor_pid; // the supervisor that took the board; 0: none yet
    int32_t supervisor_reserved;
    int64_t supervisor_started_unix_usec;
    // Requests served by the group's workers that are gone (each live worker counts its own).
    int64_t requests_served_by_gone;
    int64_t recycles[SG_RECYCLE_REASONS];
    int64_t restarts[SG_RESTART_SLOTS];
    int64_t padding[2];
};

// What the supervisor says of the worker holding an entry.
enum sg_worker_state {
    SG_WORKER_EMPTY = 0,    // no worker holds the entry
    SG_WORKER_STARTING = 1, // spawned, not accepting yet
    SG_WORKER_READY = 2,    // accepting requests
    SG_WORKER_DRAINING =
        3, // recycled: finishing its requests, its replacement started
};

struct sg_scoreboard_worker {
    // First cache line: written by the worker only.
    int32_t room;       // request slots free now (0 while starting or draining)
    int32_t in_flight;  // requests holding a slot now
    int64_t room_since; // since when it has had free slots
    int64_t requests_served;    // requests finished since it started
    int64_t last_request_start; // 0: none yet
    int64_t accepting_since;    // 0: not accepting yet
    int32_t queued;             // requests waiting for a slot inside the worker
    int32_t worker_reserved;
    int64_t routed_requests; // requests that arrived with an affinity route
    int64_t worker_padding[1];

    // Second cache line: written by the supervisor only.
    int32_t pid;   // 0: no worker
    int32_t state; // enum sg_worker_state
    int32_t slot;  // the group's worker index it runs as
    int32_t supervisor_reserved;
    int64_t started;           // when it was spawned
    int64_t started_unix_usec; // the same moment, CLOCK_REALTIME microseconds
    int64_t rss_bytes;         // resident memory at the last sample
    int64_t cpu_usec;          // user + system CPU time at the last sample
    int64_t supervisor_padding[2];

    // Third and fourth cache lines: why the slot's previous worker exited or was recycled
    // (NUL-terminated, empty for a slot's first worker). Written by the supervisor before the
    // worker is spawned, read-only afterwards.
    char last_exit[128];

    // Then request_slots cells (struct sg_scoreboard_request).
};

// One request slot of a worker.
struct sg_scoreboard_request {
    // Worker: when the request holding the slot started; 0 while the slot is free.
    int64_t started;
    // Supervisor: the `started` of a request it gave up on (request-timeout); the worker
    // cancels that request when it sees the two equal, and then writes -started here (the
    // supervisor then knows the worker's event loop is not blocked).
    int64_t cancel;
    // Worker: the `started` of the request whose URL path `path` holds (written after it); a
    // reader takes the path only while the two are equal.
    int64_t path_started;
    // Worker: the URL path of the request holding the slot, without the query string,
    // truncated, NUL-terminated. Written by another process: a reader bounds and escapes it.
    char path[104];
};

enum {
    SG_SCOREBOARD_HEADER_BYTES = sizeof(struct sg_scoreboard_header),
    SG_SCOREBOARD_WORKER_BYTES = sizeof(struct sg_scoreboard_worker),
    SG_SCOREBOARD_REQUEST_BYTES = sizeof(struct sg_scoreboard_request),
    SG_SCOREBOARD_LAST_EXIT_BYTES = sizeof(
        ((struct sg_scoreboard_worker *)0)->last_exit),
    SG_SCOREBOARD_PATH_BYTES = sizeof(
        ((struct sg_scoreboard_request *)0)->path),

    SG_SCOREBOARD_MAGIC_OFFSET = offsetof(struct sg_scoreboard_header, magic),
    SG_SCOREBOARD_ENTRY_BYTES_OFFSET = offsetof(struct sg_scoreboard_header,
                                                entry_bytes),
    SG_SCOREBOARD_ENTRIES_OFFSET = offsetof(struct sg_scoreboard_header,
                                            entries),
    SG_SCOREBOARD_PROCESSES_OFFSET = offsetof(struct sg_scoreboard_header,
                                              processes),
    SG_SCOREBOARD_REQUEST_SLOTS_OFFSET = offsetof(struct sg_scoreboard_header,
                                                  request_slots),
    SG_SCOREBOARD_MAXIMUM_PROCESSES_OFFSET =
        offsetof(struct sg_scoreboard_header, maximum_processes),
    SG_SCOREBOARD_SUPERVISOR_PID_OFFSET = offsetof(struct sg_scoreboard_header,
                                                   supervisor_pid),
    SG_SCOREBOARD_SUPERVISOR_STARTED_OFFSET =
        offsetof(struct sg_scoreboard_header, supervisor_started_unix_usec),
    SG_SCOREBOARD_SERVED_BY_GONE_OFFSET = offsetof(struct sg_scoreboard_header,
                                                   requests_served_by_gone),
    SG_SCOREBOARD_RECYCLES_OFFSET = offsetof(struct sg_scoreboard_header,
                                             recycles),
    SG_SCOREBOARD_RESTARTS_OFFSET = offsetof(struct sg_scoreboard_header,
                                             restarts),

    SG_WORKER_ROOM = offsetof(struct sg_scoreboard_worker, room),
    SG_WORKER_IN_FLIGHT = offsetof(struct sg_scoreboard_worker, in_flight),
    SG_WORKER_ROOM_SINCE = offsetof(struct sg_scoreboard_worker, room_since),
    SG_WORKER_REQUESTS_SERVED = offsetof(struct sg_scoreboard_worker,
                                         requests_served),
    SG_WORKER_LAST_REQUEST_START = offsetof(struct sg_scoreboard_worker,
                                            last_request_start),
    SG_WORKER_ACCEPTING_SINCE = offsetof(struct sg_scoreboard_worker,
                                         accepting_since),
    SG_WORKER_QUEUED = offsetof(struct sg_scoreboard_worker, queued),
    SG_WORKER_ROUTED_REQUESTS = offsetof(struct sg_scoreboard_worker,
                                         routed_requests),
    SG_WORKER_PID = offsetof(struct sg_scoreboard_worker, pid),
    SG_WORKER_STATE = offsetof(struct sg_scoreboard_worker, state),
    SG_WORKER_SLOT = offsetof(struct sg_scoreboard_worker, slot),
    SG_WORKER_STARTED = offsetof(struct sg_scoreboard_worker, started),
    SG_WORKER_STARTED_UNIX_USEC = offsetof(struct sg_scoreboard_worker,
                                           started_unix_usec),
    SG_WORKER_RSS_BYTES = offsetof(struct sg_scoreboard_worker, rss_bytes),
    SG_WORKER_CPU_USEC = offsetof(struct sg_scoreboard_worker, cpu_usec),
    SG_WORKER_LAST_EXIT = offsetof(struct sg_scoreboard_worker, last_exit),

    SG_REQUEST_STARTED = offsetof(struct sg_scoreboard_request, started),
    SG_REQUEST_CANCEL = offsetof(struct sg_scoreboard_request, cancel),
    SG_REQUEST_PATH_STARTED = offsetof(struct sg_scoreboard_request,
                                       path_started),
    SG_REQUEST_PATH = offsetof(struct sg_scoreboard_request, path),
};

_Static_assert(sizeof(struct sg_scoreboard_header) == 192, "three cache lines");
_Static_assert(offsetof(struct sg_scoreboard_worker, queued) == 40,
               "the worker's fields in its first line");
_Static_assert(offsetof(struct sg_scoreboard_worker, pid) == 64,
               "the worker's line first");
_Static_assert(sizeof(struct sg_scoreboard_worker) == 256, "four cache lines");
_Static_assert(sizeof(struct sg_scoreboard_request) == 128, "two cache lines");

// Bytes of one worker entry with `request_slots` cells, a whole number of cache lines.
static inline size_t sg_scoreboard_entry_bytes(int request_slots)
{
    size_t bytes = SG_SCOREBOARD_WORKER_BYTES
                   + (size_t)(request_slots > 0 ? request_slots : 0)
                         * SG_SCOREBOARD_REQUEST_BYTES;
    return (bytes + 63) & ~(size_t)63;
}

// Worker entries of a group of at most `maximum_processes` workers: three times as many again
// draining (rolling restarts that follow each other while long requests finish), and one
// starting beside the worker it replaces.
static inline int sg_scoreboard_entries(int maximum_processes)
{
    return 4 * (maximum_processes > 1 ? maximum_processes : 1) + 1;
}

// Bytes of a whole board.
static inline size_t sg_scoreboard_bytes(int entries, int request_slots)
{
    return SG_SCOREBOARD_HEADER_BYTES
           + (size_t)(entries > 0 ? entries : 0)
                 * sg_scoreboard_entry_bytes(request_slots);
}

// The header Apache's parent (or a supervisor making its own board) writes first.
static inline void sg_scoreboard_header_init(struct sg_scoreboard_header *h,
                                             int entries, int request_slots,
                                             int processes,
                                             int maximum_processes)
{
    memset(h, 0, sizeof(*h));
    h->magic = SG_SCOREBOARD_MAGIC;
    h->entry_bytes = (uint32_t)sg_scoreboard_entry_bytes(request_slots);
    h->entries = entries;
    h->processes = processes;
    h->request_slots = request_slots;
    h->maximum_processes = maximum_processes;
}

// Worker, at a request's start: the URL path of `uri` (a request-target, `length` bytes)
// into its slot's cell, up to the query string, truncated and NUL-terminated; then tags it
// with the cell's `started` (the request's own: the slot is this request's). One bounded
// copy, no allocation.
static inline void
sg_scoreboard_publish_path(struct sg_scoreboard_request *cell, const void *uri,
                           size_t length)
{
    const char *query = memchr(uri, '?', length);
    size_t n = query ? (size_t)(query - (const char *)uri) : length;

    if (n > sizeof(cell->path) - 1) {
        n = sizeof(cell->path) - 1;
    }
    memcpy(cell->path, uri, n);
    cell->path[n] = '\0';
    __atomic_store_n(&cell->path_started,
                     __atomic_load_n(&cell->started, __ATOMIC_RELAXED),
                     __ATOMIC_RELEASE);
}

#endif
