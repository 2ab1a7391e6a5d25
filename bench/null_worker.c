/* The cheapest group program there can be, for `make bench`'s `gateway-floor`
 * configuration: what a request through mod_swift_gateway costs when the
 * worker costs next to nothing.
 *
 * Run by SwiftDaemonProcess like any group program: fd 3 is the group's
 * listening socket.  The first process (SWIFT_GATEWAY_ROLE=supervisor) starts
 * N copies of itself as workers (N = SG_NULL_WORKERS, default 2, like the
 * bench's processes=2), or N of the program SG_NULL_WORKER_PROGRAM names
 * (gateway-nio-floor's NIOFloorWorker), and passes SIGTERM on to them.  Each worker is one
 * epoll loop: it reads FastCGI records without keeping their contents, and
 * answers every request when its empty STDIN record arrives with the bench's
 * hello (13 bytes), in one write, keeping the connection (appStatus "SGKA").
 * Anything it cannot follow (another version, a write that does not go out
 * whole) closes that connection with a line on stderr.  Bench only: it
 * checks no token and serves no other page. */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LISTEN_FD       3
#define FCGI_VERSION    1
#define FCGI_STDIN      5
#define FCGI_STDOUT     6
#define FCGI_END        3
#define APP_STATUS_KEPT 0x53474b41u     /* "SGKA": the connection stays open */
#define MAX_CONNECTIONS 4096
#define MAX_WORKERS     16

typedef struct {
    unsigned char header[8];
    int have;                   /* header bytes so far */
    size_t skip;                /* content + padding bytes still to pass over */
} record_reader;

static record_reader readers[MAX_CONNECTIONS];
static char answer_head[256];
static size_t answer_head_len;

static void build_answer(void)
{
    static const char body[] = "Hello world!\n";
    answer_head_len = (size_t)snprintf(answer_head, sizeof(answer_head),
        "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Gateway-Pid: %d\r\n\r\n%s",
        (int)getpid(), body);
}

static void put_header(unsigned char *h, int type, int id, size_t len)
{
    h[0] = FCGI_VERSION;
    h[1] = (unsigned char)type;
    h[2] = (unsigned char)(id >> 8);
    h[3] = (unsigned char)id;
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    h[6] = 0;
    h[7] = 0;
}

/* STDOUT with the whole answer, the empty STDOUT, END_REQUEST: one write. */
static int answer(int fd, int id)
{
    unsigned char out[512];
    size_t n = 0;
    ssize_t w;

    put_header(out, FCGI_STDOUT, id, answer_head_len);
    memcpy(out + 8, answer_head, answer_head_len);
    n = 8 + answer_head_len;
    put_header(out + n, FCGI_STDOUT, id, 0);
    n += 8;
    put_header(out + n, FCGI_END, id, 8);
    n += 8;
    out[n++] = (unsigned char)(APP_STATUS_KEPT >> 24);
    out[n++] = (unsigned char)(APP_STATUS_KEPT >> 16);
    out[n++] = (unsigned char)(APP_STATUS_KEPT >> 8);
    out[n++] = (unsigned char)APP_STATUS_KEPT;
    memset(out + n, 0, 4);      /* protocolStatus REQUEST_COMPLETE, reserved */
    n += 4;
    w = write(fd, out, n);
    return w == (ssize_t)n ? 0 : -1;
}

/* Feed what a read brought; -1 when the connection must close. */
static int consume(int fd, record_reader *rr, const unsigned char *p, size_t len)
{
    while (len > 0) {
        if (rr->skip > 0) {
            size_t take = rr->skip < len ? rr->skip : len;

            rr->skip -= take;
            p += take;
            len -= take;
            continue;
        }
        rr->header[rr->have++] = *p++;
        --len;
        if (rr->have < 8) {
            continue;
        }
        rr->have = 0;
        if (rr->header[0] != FCGI_VERSION) {
            fprintf(stderr, "null_worker: FastCGI version %d on fd %d; closing it\n",
                    rr->header[0], fd);
            return -1;
        }
        rr->skip = ((size_t)rr->header[4] << 8 | rr->header[5]) + rr->header[6];
        if (rr->header[1] == FCGI_STDIN && rr->header[4] == 0 && rr->header[5] == 0
            && answer(fd, rr->header[2] << 8 | rr->header[3]) != 0) {
            fprintf(stderr, "null_worker: the answer on fd %d did not go out whole; "
                    "closing it\n", fd);
            return -1;
        }
    }
    return 0;
}

static void close_connection(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

static int serve(void)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = LISTEN_FD };
    struct epoll_event events[64];
    unsigned char buf[65536];
    int ep = epoll_create1(EPOLL_CLOEXEC);

    build_answer();
    if (ep < 0 || fcntl(LISTEN_FD, F_SETFL, O_NONBLOCK) != 0
        || epoll_ctl(ep, EPOLL_CTL_ADD, LISTEN_FD, &ev) != 0) {
        perror("null_worker: setting up the event loop on fd 3");
        return 1;
    }
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        int i;

        if (n < 0 && errno != EINTR) {
            perror("null_worker: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; ++i) {
            int fd = events[i].data.fd;

            if (fd == LISTEN_FD) {
                int c = accept4(LISTEN_FD, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (c < 0) {
                    continue;   /* a sibling took it, or EMFILE: the backlog keeps it */
                }
                if (c >= MAX_CONNECTIONS) {
                    fprintf(stderr, "null_worker: fd %d over %d; closing it\n", c,
                            MAX_CONNECTIONS);
                    close(c);
                    continue;
                }
                memset(&readers[c], 0, sizeof(readers[c]));
                ev.events = EPOLLIN;
                ev.data.fd = c;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) != 0) {
                    close(c);
                }
                continue;
            }
            for (;;) {
                ssize_t got = read(fd, buf, sizeof(buf));

                if (got > 0) {
                    if (consume(fd, &readers[fd], buf, (size_t)got) != 0) {
                        close_connection(ep, fd);
                        break;
                    }
                    if ((size_t)got < sizeof(buf)) {
                        break;
                    }
                    continue;
                }
                if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                    break;
                }
                close_connection(ep, fd);     /* EOF or an error */
                break;
            }
        }
    }
}

static pid_t workers[MAX_WORKERS];
static int worker_count;

static void pass_on_sigterm(int sig)
{
    int i;

    (void)sig;
    for (i = 0; i < worker_count; ++i) {
        kill(workers[i], SIGTERM);
    }
    _exit(0);
}

/* The supervisor: workers are this program again (or SG_NULL_WORKER_PROGRAM),
 * exec'd with ROLE=worker (so they show as workers in /proc, as a Swift
 * group's do) and a parent-death signal, which exec keeps. */
static int supervise(char **argv)
{
    const char *count = getenv("SG_NULL_WORKERS");
    const char *program = getenv("SG_NULL_WORKER_PROGRAM");
    int wanted = count ? atoi(count) : 2;
    int i;

    if (wanted < 1 || wanted > MAX_WORKERS) {
        fprintf(stderr, "null_worker: SG_NULL_WORKERS=%s is not 1..%d\n", count, MAX_WORKERS);
        return 1;
    }
    signal(SIGTERM, pass_on_sigterm);
    for (i = 0; i < wanted; ++i) {
        pid_t pid = fork();

        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            setenv("SWIFT_GATEWAY_ROLE", "worker", 1);
            execv(program ? program : "/proc/self/exe", argv);
            perror("null_worker: exec of a worker");
            _exit(1);
        }
        if (pid < 0) {
            perror("null_worker: fork");
            pass_on_sigterm(SIGTERM);
        }
        workers[worker_count++] = pid;
    }
    close(LISTEN_FD);
    for (;;) {
        if (wait(NULL) < 0 && errno == ECHILD) {
            return 0;
        }
    }
}

int main(int argc, char **argv)
{
    const char *role = getenv("SWIFT_GATEWAY_ROLE");

    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    if (role && strcmp(role, "supervisor") == 0) {
        return supervise(argv);
    }
    return serve();
}
