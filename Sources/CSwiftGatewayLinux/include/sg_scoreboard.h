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

#define SG_SCOREBOARD_MAGIC 0x31425753u // "SWB1" read as little-endian bytes

struct sg_scoreboard_header {
    uint32_t magic;
    // Bytes of each worker entry: sg_scoreboard_entry_bytes(request_slots).
    uint32_t entry_bytes;
    // Worker entries: 2 * maximum-processes + 1 (as many draining while their replacements
    // run, and one for a new build's worker starting beside the one it replaces).
    int32_t entries;
    int32_t
        processes; // processes= (workers kept running; more run while scaled up)
    // Request slots of each worker (threads=), each with a sg_scoreboard_request cell.
    int32_t request_slots;
    int32_t reserved;
    int64_t padding[5];
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
    int64_t worker_padding[3];

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
};

enum {
    SG_SCOREBOARD_HEADER_BYTES = sizeof(struct sg_scoreboard_header),
    SG_SCOREBOARD_WORKER_BYTES = sizeof(struct sg_scoreboard_worker),
    SG_SCOREBOARD_REQUEST_BYTES = sizeof(struct sg_scoreboard_request),
    SG_SCOREBOARD_LAST_EXIT_BYTES = sizeof(
        ((struct sg_scoreboard_worker *)0)->last_exit),

    SG_SCOREBOARD_MAGIC_OFFSET = offsetof(struct sg_scoreboard_header, magic),
    SG_SCOREBOARD_ENTRY_BYTES_OFFSET = offsetof(struct sg_scoreboard_header,
                                                entry_bytes),
    SG_SCOREBOARD_ENTRIES_OFFSET = offsetof(struct sg_scoreboard_header,
                                            entries),
    SG_SCOREBOARD_PROCESSES_OFFSET = offsetof(struct sg_scoreboard_header,
                                              processes),
    SG_SCOREBOARD_REQUEST_SLOTS_OFFSET = offsetof(struct sg_scoreboard_header,
                                                  request_slots),

    SG_WORKER_ROOM = offsetof(struct sg_scoreboard_worker, room),
    SG_WORKER_IN_FLIGHT = offsetof(struct sg_scoreboard_worker, in_flight),
    SG_WORKER_ROOM_SINCE = offsetof(struct sg_scoreboard_worker, room_since),
    SG_WORKER_REQUESTS_SERVED = offsetof(struct sg_scoreboard_worker,
                                         requests_served),
    SG_WORKER_LAST_REQUEST_START = offsetof(struct sg_scoreboard_worker,
                                            last_request_start),
    SG_WORKER_ACCEPTING_SINCE = offsetof(struct sg_scoreboard_worker,
                                         accepting_since),
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
};

_Static_assert(sizeof(struct sg_scoreboard_header) == 64, "one cache line");
_Static_assert(offsetof(struct sg_scoreboard_worker, pid) == 64,
               "the worker's line first");
_Static_assert(sizeof(struct sg_scoreboard_worker) == 256, "four cache lines");

// Bytes of one worker entry with `request_slots` cells, a whole number of cache lines.
static inline size_t sg_scoreboard_entry_bytes(int request_slots)
{
    size_t bytes = SG_SCOREBOARD_WORKER_BYTES
                   + (size_t)(request_slots > 0 ? request_slots : 0)
                         * SG_SCOREBOARD_REQUEST_BYTES;
    return (bytes + 63) & ~(size_t)63;
}

// Bytes of a whole board.
static inline size_t sg_scoreboard_bytes(int entries, int request_slots)
{
    return SG_SCOREBOARD_HEADER_BYTES
           + (size_t)(entries > 0 ? entries : 0)
                 * sg_scoreboard_entry_bytes(request_slots);
}

#endif
