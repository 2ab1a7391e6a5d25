// scoreboard_dump: prints a group's scoreboard as JSON, for the integration tests
// (Tests/Integration/test_limits.py). A test tool, not part of the product.
//
//   scoreboard_dump BOARD
//
// BOARD is the board's file, e.g. /proc/<supervisor pid>/fd/N whose link reads
// "/memfd:swift-gateway-scoreboard (deleted)", or /proc/<worker pid>/fd/4. The layout comes
// from sg_scoreboard.h (compile with -I Sources/CSwiftGatewayLinux/include). Every field is
// read with a relaxed atomic load of its own width, as the runtime writes it; "now" is
// CLOCK_MONOTONIC nanoseconds when the board was read (the clock of every time in it).
//
// Exit status: 0 printed, 1 the board cannot be read, 2 usage.
#define _GNU_SOURCE // clock_gettime, O_CLOEXEC with -std=c11
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sg_scoreboard.h"

static int32_t load32(const unsigned char *base, size_t offset)
{
    return __atomic_load_n((const int32_t *)(base + offset), __ATOMIC_RELAXED);
}

static uint32_t loadu32(const unsigned char *base, size_t offset)
{
    return __atomic_load_n((const uint32_t *)(base + offset), __ATOMIC_RELAXED);
}

static int64_t load64(const unsigned char *base, size_t offset)
{
    return __atomic_load_n((const int64_t *)(base + offset), __ATOMIC_RELAXED);
}

static const char *state_name(int32_t state)
{
    switch (state) {
    case SG_WORKER_EMPTY:
        return "empty";
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

// A JSON string of the NUL-terminated text in at most `size` bytes (no NUL needed at the end).
static void print_json_string(const unsigned char *text, size_t size)
{
    putchar('"');
    for (size_t i = 0; i < size && text[i] != '\0'; i++) {
        unsigned char c = text[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        }
        else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        }
        else {
            putchar(c);
        }
    }
    putchar('"');
}

static void print_worker(const unsigned char *entry, int index,
                         int request_slots)
{
    unsigned char last_exit[SG_SCOREBOARD_LAST_EXIT_BYTES];
    int32_t state = load32(entry, SG_WORKER_STATE);
    int first = 1;

    // The supervisor writes last_exit before the worker is spawned: bytes, not atomics.
    memcpy(last_exit, entry + SG_WORKER_LAST_EXIT, sizeof(last_exit));
    printf("    {\"index\": %d, \"pid\": %d, \"state\": \"%s\", "
           "\"state_code\": %d, \"slot\": %d,\n",
           index, load32(entry, SG_WORKER_PID), state_name(state), state,
           load32(entry, SG_WORKER_SLOT));
    printf("     \"started\": %lld, \"started_unix_usec\": %lld, "
           "\"rss_bytes\": %lld, \"cpu_usec\": %lld,\n",
           (long long)load64(entry, SG_WORKER_STARTED),
           (long long)load64(entry, SG_WORKER_STARTED_UNIX_USEC),
           (long long)load64(entry, SG_WORKER_RSS_BYTES),
           (long long)load64(entry, SG_WORKER_CPU_USEC));
    printf("     \"last_exit\": ");
    print_json_string(last_exit, sizeof(last_exit));
    printf(",\n     \"room\": %d, \"in_flight\": %d, \"room_since\": %lld, "
           "\"requests_served\": %lld,\n",
           load32(entry, SG_WORKER_ROOM), load32(entry, SG_WORKER_IN_FLIGHT),
           (long long)load64(entry, SG_WORKER_ROOM_SINCE),
           (long long)load64(entry, SG_WORKER_REQUESTS_SERVED));
    printf("     \"last_request_start\": %lld, \"accepting_since\": %lld,\n",
           (long long)load64(entry, SG_WORKER_LAST_REQUEST_START),
           (long long)load64(entry, SG_WORKER_ACCEPTING_SINCE));
    printf("     \"requests\": [");
    for (int slot = 0; slot < request_slots; slot++) {
        const unsigned char *cell = entry + SG_SCOREBOARD_WORKER_BYTES
                                    + (size_t)slot
                                          * SG_SCOREBOARD_REQUEST_BYTES;
        int64_t started = load64(cell, SG_REQUEST_STARTED);
        if (started == 0) {
            continue;
        }
        printf("%s{\"slot\": %d, \"started\": %lld, \"cancel\": %lld}",
               first ? "" : ", ", slot, (long long)started,
               (long long)load64(cell, SG_REQUEST_CANCEL));
        first = 0;
    }
    printf("]}");
}

// Checks the header against the file's size; prints why not and returns -1 if it does not fit.
static int check_header(const char *path, const unsigned char *board,
                        size_t size)
{
    uint32_t magic = loadu32(board, SG_SCOREBOARD_MAGIC_OFFSET);
    uint32_t entry_bytes = loadu32(board, SG_SCOREBOARD_ENTRY_BYTES_OFFSET);
    int32_t entries = load32(board, SG_SCOREBOARD_ENTRIES_OFFSET);
    int32_t request_slots = load32(board, SG_SCOREBOARD_REQUEST_SLOTS_OFFSET);

    if (magic != SG_SCOREBOARD_MAGIC) {
        fprintf(stderr, "scoreboard_dump: %s: bad magic 0x%08x (want 0x%08x)\n",
                path, magic, SG_SCOREBOARD_MAGIC);
        return -1;
    }
    if (entries < 0 || request_slots < 0
        || entry_bytes < sg_scoreboard_entry_bytes(request_slots)
        || SG_SCOREBOARD_HEADER_BYTES + (size_t)entries * entry_bytes > size) {
        fprintf(stderr,
                "scoreboard_dump: %s: header does not fit the file: "
                "entries %d of %u bytes, %d request slots, file %zu bytes\n",
                path, entries, entry_bytes, request_slots, size);
        return -1;
    }
    return 0;
}

static void print_board(const unsigned char *board, size_t size)
{
    uint32_t entry_bytes = loadu32(board, SG_SCOREBOARD_ENTRY_BYTES_OFFSET);
    int32_t entries = load32(board, SG_SCOREBOARD_ENTRIES_OFFSET);
    int32_t request_slots = load32(board, SG_SCOREBOARD_REQUEST_SLOTS_OFFSET);
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    printf("{\"now\": %lld, \"bytes\": %zu,\n",
           (long long)now.tv_sec * 1000000000LL + now.tv_nsec, size);
    printf(" \"magic\": %u, \"entry_bytes\": %u, \"entries\": %d, "
           "\"processes\": %d, \"request_slots\": %d, "
           "\"maximum_processes\": %d,\n \"supervisor_pid\": %d, "
           "\"requests_served_by_gone\": %lld,\n",
           loadu32(board, SG_SCOREBOARD_MAGIC_OFFSET), entry_bytes, entries,
           load32(board, SG_SCOREBOARD_PROCESSES_OFFSET), request_slots,
           load32(board, SG_SCOREBOARD_MAXIMUM_PROCESSES_OFFSET),
           load32(board, SG_SCOREBOARD_SUPERVISOR_PID_OFFSET),
           (long long)load64(board, SG_SCOREBOARD_SERVED_BY_GONE_OFFSET));
    printf(" \"workers\": [\n");
    for (int i = 0; i < entries; i++) {
        print_worker(board + SG_SCOREBOARD_HEADER_BYTES
                         + (size_t)i * entry_bytes,
                     i, request_slots);
        printf("%s\n", i + 1 < entries ? "," : "");
    }
    printf(" ]}\n");
}

int main(int argc, char **argv)
{
    struct stat st;
    unsigned char *board;
    int fd, status;

    if (argc != 2) {
        fprintf(stderr, "usage: scoreboard_dump BOARD\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "scoreboard_dump: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    if ((size_t)st.st_size < SG_SCOREBOARD_HEADER_BYTES) {
        fprintf(stderr,
                "scoreboard_dump: %s: %lld bytes, smaller than a header\n",
                argv[1], (long long)st.st_size);
        return 1;
    }
    board = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (board == MAP_FAILED) {
        fprintf(stderr, "scoreboard_dump: mmap %s: %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    status = check_header(argv[1], board, (size_t)st.st_size);
    if (status == 0) {
        print_board(board, (size_t)st.st_size);
    }
    munmap(board, (size_t)st.st_size);
    return status == 0 ? 0 : 1;
}
