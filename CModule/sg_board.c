/*
 * mod_swift_gateway: each group's scoreboard as Apache sees it.
 *
 * Apache's parent makes a group's board (a memfd) when it sets the group
 * up, seals its size, maps it read-only before its children fork (they
 * inherit the mapping) and hands the descriptor to the group's supervisor,
 * which writes it with its workers (sg_daemon.c).  The children read it for
 * the status page (sg_status.c).
 *
 * Everything in a board was written by processes that may run as another
 * user than Apache and may be compromised: the reader takes the board's
 * shape from its own configuration, never from the header; copies strings
 * within their fields and makes them printable; and treats every number as
 * a number only.  The sealed size means a supervisor cannot shrink the file
 * under the children's mapping (which would be SIGBUS), and the children's
 * mapping is made from a read-only descriptor, so it cannot be made
 * writable.
 */

#include "sg_board.h"

#include "apr_strings.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

const char *const sg_recycle_names[SG_RECYCLE_REASONS] =
    {"maximum-requests", "restart-interval", "inactivity-timeout",
     "memory-limit",     "cpu-time-limit",   "request-timeout",
     "rolling-restart",  "scaled-down"};

const char *const sg_restart_names[SG_RESTART_REASONS] = {"exited", "crashed",
                                                          "memory-kill",
                                                          "startup-timeout",
                                                          "blocked"};

void sg_board_init(sg_board *b)
{
    memset(b, 0, sizeof(*b));
    b->fd = -1;
}

/* A read-only mapping from a read-only descriptor of the same file (a
 * PROT_READ mapping of a writable one could be mprotect()ed writable). */
static const unsigned char *sg_board_map(int fd, apr_size_t bytes)
{
    char path[64];
    void *base;
    int ro;

    apr_snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    base = mmap(NULL, bytes, PROT_READ, MAP_SHARED, ro >= 0 ? ro : fd, 0);
    if (ro >= 0) {
        close(ro);
    }
    return base == MAP_FAILED ? NULL : base;
}

apr_status_t sg_board_create(sg_board *b, int processes, int maximum_processes,
                             int request_slots, int listen_fd)
{
    struct sg_scoreboard_header header;
    struct stat st;
    int entries = sg_scoreboard_entries(maximum_processes);
    apr_size_t bytes = sg_scoreboard_bytes(entries, request_slots);
    apr_status_t rv;
    int fd;

    sg_board_init(b);
    if (listen_fd >= 0 && fstat(listen_fd, &st) == 0) {
        b->socket_ino = (unsigned long)st.st_ino;
    }
    fd = memfd_create("swift-gateway-scoreboard",
                      MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    sg_scoreboard_header_init(&header, entries, request_slots, processes,
                              maximum_processes);
    if (ftruncate(fd, (off_t)bytes) != 0
        || pwrite(fd, &header, sizeof(header), 0) != (ssize_t)sizeof(header)
        || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
               != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        close(fd);
        return rv;
    }
    if (!(b->base = sg_board_map(fd, bytes))) {
        rv = APR_FROM_OS_ERROR(errno);
        close(fd);
        return rv;
    }
    b->fd = fd;
    b->bytes = bytes;
    b->entries = entries;
    b->request_slots = request_slots;
    return APR_SUCCESS;
}

void sg_board_release(sg_board *b)
{
    if (b->base) {
        munmap((void *)b->base, b->bytes);
    }
    if (b->fd >= 0) {
        close(b->fd);
    }
    sg_board_init(b);
}

void sg_board_child_init(sg_board *b)
{
    if (b->fd >= 0) {
        close(b->fd);
        b->fd = -1;
    }
}

/* ------------------------------------------------------------------------
 * Reading
 */

static apr_int32_t sg_load32(const unsigned char *p, apr_size_t offset)
{
    return __atomic_load_n((const apr_int32_t *)(p + offset), __ATOMIC_RELAXED);
}

static apr_int64_t sg_load64(const unsigned char *p, apr_size_t offset)
{
    return __atomic_load_n((const apr_int64_t *)(p + offset), __ATOMIC_RELAXED);
}

static apr_int64_t sg_monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Seconds from a board time to now; 0 for a time that is none or later. */
static double sg_age(apr_int64_t now, apr_int64_t then)
{
    return then > 0 && then < now ? (double)(now - then) / 1e9 : 0;
}

/* The length of a valid UTF-8 sequence at s (at most n bytes), or 0. */
static int sg_utf8_length(const unsigned char *s, apr_size_t n)
{
    int len, i;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
    }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
    }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
    }
    else {
        return 0;
    }
    if ((apr_size_t)len > n || (s[0] == 0xe0 && s[1] < 0xa0)
        || (s[0] == 0xed && s[1] > 0x9f) || (s[0] == 0xf0 && s[1] < 0x90)
        || (s[0] == 0xf4 && s[1] > 0x8f)) {
        return 0;
    }
    for (i = 1; i < len; ++i) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

/* A NUL-terminated copy of the text in at most size bytes of the board:
 * control bytes and invalid UTF-8 become '?'.  As a path, every byte that
 * is not printable ASCII (spaces too) is percent-encoded instead, as it
 * would be in a URL. */
static const char *sg_board_text(apr_pool_t *p, const unsigned char *field,
                                 apr_size_t size, int as_path)
{
    unsigned char copy[256];
    char *out, *o;
    apr_size_t n = 0, i;

    if (size > sizeof(copy)) {
        size = sizeof(copy);
    }
    /* The field may change while it is read: one copy, then only that. */
    memcpy(copy, field, size);
    while (n < size && copy[n]) {
        ++n;
    }
    o = out = apr_palloc(p, 3 * n + 1);
    for (i = 0; i < n;) {
        unsigned char c = copy[i];
        int len;

        if (c > 0x20 && c < 0x7f) {
            *o++ = (char)c;
            ++i;
        }
        else if (as_path) {
            o += apr_snprintf(o, 4, "%%%02X", c);
            ++i;
        }
        else if (c == ' ') {
            *o++ = ' ';
            ++i;
        }
        else if (c >= 0x80 && (len = sg_utf8_length(copy + i, n - i)) > 0) {
            memcpy(o, copy + i, len);
            o += len;
            i += len;
        }
        else {
            *o++ = '?';
            ++i;
        }
    }
    *o = '\0';
    return out;
}

static const char *sg_state_name(apr_int32_t state)
{
    switch (state) {
    case SG_WORKER_STARTING:
        return "starting";
    case SG_WORKER_READY:
        return "ready";
    case SG_WORKER_DRAINING:
        return "draining";
    default:
        return "unknown";
    }
}

/* The oldest request running in an entry: its age and, when the worker
 * published it for that very request, its URL path. */
static void sg_board_oldest(apr_pool_t *p, const unsigned char *entry,
                            int request_slots, apr_int64_t now,
                            sg_board_worker *w)
{
    const unsigned char *cells = entry + SG_SCOREBOARD_WORKER_BYTES;
    const unsigned char *oldest = NULL;
    apr_int64_t oldest_started = 0;
    unsigned char path[SG_SCOREBOARD_PATH_BYTES];
    int i;

    for (i = 0; i < request_slots; ++i) {
        const unsigned char *cell = cells
                                    + (apr_size_t)i
                                          * SG_SCOREBOARD_REQUEST_BYTES;
        apr_int64_t started = sg_load64(cell, SG_REQUEST_STARTED);

        if (started > 0 && (!oldest || started < oldest_started)) {
            oldest = cell;
            oldest_started = started;
        }
    }
    if (!oldest) {
        return;
    }
    w->has_oldest = 1;
    w->oldest_age = sg_age(now, oldest_started);
    /* As a seqlock: the tag, the path, the tag and the start unchanged. */
    if (__atomic_load_n((const apr_int64_t *)(oldest + SG_REQUEST_PATH_STARTED),
                        __ATOMIC_ACQUIRE)
        != oldest_started) {
        return;
    }
    memcpy(path, oldest + SG_REQUEST_PATH, sizeof(path));
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (sg_load64(oldest, SG_REQUEST_PATH_STARTED) == oldest_started
        && sg_load64(oldest, SG_REQUEST_STARTED) == oldest_started) {
        w->oldest_path = sg_board_text(p, path, sizeof(path), 1);
    }
}

int sg_board_read(apr_pool_t *p, const sg_board *b, sg_board_view *v)
{
    apr_size_t entry_bytes;
    apr_int64_t now = sg_monotonic_ns();
    int i;

    memset(v, 0, sizeof(*v));
    v->workers = apr_array_make(p, 8, sizeof(sg_board_worker));
    if (!b->base) {
        return 0;
    }
    entry_bytes = sg_scoreboard_entry_bytes(b->request_slots);
    v->supervisor_pid = sg_load32(b->base, SG_SCOREBOARD_SUPERVISOR_PID_OFFSET);
    v->requests_served = sg_load64(b->base,
                                   SG_SCOREBOARD_SERVED_BY_GONE_OFFSET);
    for (i = 0; i < SG_RECYCLE_REASONS; ++i) {
        v->recycles[i] = sg_load64(b->base, SG_SCOREBOARD_RECYCLES_OFFSET
                                                + (apr_size_t)i * 8);
    }
    for (i = 0; i < SG_RESTART_REASONS; ++i) {
        v->restarts[i] = sg_load64(b->base, SG_SCOREBOARD_RESTARTS_OFFSET
                                                + (apr_size_t)i * 8);
    }
    for (i = 0; i < b->entries; ++i) {
        const unsigned char *e = b->base + SG_SCOREBOARD_HEADER_BYTES
                                 + (apr_size_t)i * entry_bytes;
        apr_int32_t pid = sg_load32(e, SG_WORKER_PID);
        apr_int32_t state;
        sg_board_worker *w;

        if (pid <= 0) {
            continue;
        }
        state = sg_load32(e, SG_WORKER_STATE);
        w = apr_array_push(v->workers);
        memset(w, 0, sizeof(*w));
        w->entry = i;
        w->slot = sg_load32(e, SG_WORKER_SLOT);
        w->pid = pid;
        w->state = sg_state_name(state);
        w->accepting = sg_load64(e, SG_WORKER_ACCEPTING_SINCE) != 0;
        w->uptime = sg_age(now, sg_load64(e, SG_WORKER_STARTED));
        w->requests_served = sg_load64(e, SG_WORKER_REQUESTS_SERVED);
        w->in_flight = sg_load32(e, SG_WORKER_IN_FLIGHT);
        w->queued = sg_load32(e, SG_WORKER_QUEUED);
        w->routed_requests = sg_load64(e, SG_WORKER_ROUTED_REQUESTS);
        w->rss_bytes = sg_load64(e, SG_WORKER_RSS_BYTES);
        w->cpu_seconds = (double)sg_load64(e, SG_WORKER_CPU_USEC) / 1e6;
        w->last_exit = sg_board_text(p, e + SG_WORKER_LAST_EXIT,
                                     SG_SCOREBOARD_LAST_EXIT_BYTES, 0);
        sg_board_oldest(p, e, b->request_slots, now, w);

        if (state == SG_WORKER_DRAINING) {
            v->draining++;
        }
        else {
            v->running++;
        }
        /* Numbers from another process: a negative one adds nothing. */
        v->requests_served += w->requests_served > 0 ? w->requests_served : 0;
        v->in_flight += w->in_flight > 0 ? w->in_flight : 0;
        v->queued += w->queued > 0 ? w->queued : 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------
 * The group socket's backlog: the kernel's sock_diag for the listening
 * socket, found by its inode (the children closed their copy of it).
 */

long sg_board_connections_waiting(const sg_board *b)
{
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } msg;
    union {
        struct nlmsghdr nlh;
        char bytes[1024];
    } answer;
    struct timeval timeout = {1, 0};
    struct nlmsghdr *h = &answer.nlh;
    long waiting = -1;
    ssize_t n;
    int fd;

    if (!b->socket_ino) {
        return -1;
    }
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;
    msg.req.sdiag_family = AF_UNIX;
    msg.req.udiag_states = ~0U;
    msg.req.udiag_ino = (__u32)b->socket_ino;
    msg.req.udiag_show = UDIAG_SHOW_RQLEN;
    msg.req.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
    msg.req.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (send(fd, &msg, sizeof(msg), 0) == (ssize_t)sizeof(msg)
        && (n = recv(fd, &answer, sizeof(answer), 0)) > 0
        && NLMSG_OK(h, (unsigned int)n) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY
        && h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
        struct unix_diag_msg *m = NLMSG_DATA(h);
        int len = (int)(h->nlmsg_len
                        - NLMSG_LENGTH(sizeof(struct unix_diag_msg)));
        struct rtattr *a = (struct rtattr *)(m + 1);

        for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            struct unix_diag_rqlen rq;

            if (a->rta_type == UNIX_DIAG_RQLEN
                && RTA_PAYLOAD(a) >= sizeof(rq)) {
                memcpy(&rq, RTA_DATA(a), sizeof(rq));
                waiting = (long)rq.udiag_rqueue;
            }
        }
    }
    close(fd);
    return waiting;
}
