/*
 * mod_swift_gateway: the request path in Apache children.
 *
 * translate_name maps SwiftScriptAlias mounts (longest match) to the
 * "swift-gateway" handler; the handler resolves the process group,
 * connects to its Unix socket and speaks FastCGI 1.0 (responder, request
 * id 1, one request at a time per connection) in full duplex: the request
 * body is forwarded while the response streams back, neither side buffered
 * whole.  Connections are kept alive (FCGI_KEEP_CONN) and each Apache child
 * keeps the idle ones of every group for its next requests.
 */

#include "mod_swift_gateway.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_script.h"
#include "util_fcgi.h"

#include "apr_strings.h"
#include "apr_lib.h"
#include "apr_poll.h"
#include "apr_buckets.h"
#include "apr_network_io.h"
#include "apr_thread_mutex.h"
#include "ap_mpm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

#define SG_REQUEST_ID       1
/* Request body chunks: one STDIN record each, as large as a record allows
 * (65535 bytes), rounded down to a multiple of 8. */
#define SG_STDIN_CHUNK      (64 * 1024 - 8)
/* Up to this many STDIN records go out in one sendmsg(), read from the client
 * without waiting after the first: the worker then wakes once for about as
 * much as the socket buffers (some 200K) instead of once per record. */
#define SG_STDIN_BATCH      3
/* Pieces sent without copying: per record its header and the client body's
 * buckets (usually 8000 bytes each), and the empty STDIN after the last. */
#define SG_STDIN_IOV        64
/* Responses are read up to 256K per wake-up: fewer poll, recv and filter
 * passes per MiB (the worker socket buffers about 200K). */
#define SG_RECV_BUF_SIZE    (256 * 1024)
#define SG_PARAMS_RECORD    (16 * 1024)
/* A request body of known length up to this is read whole before the
 * worker is contacted (one STDIN record): see sg_read_small_body(). */
#define SG_SMALL_BODY       (16 * 1024)
#define SG_STDERR_LINE_MAX  8192
/* A response body up to this long ends with a flush (sg_flush_to_client):
 * httpd's core output filter holds less than 4K (THRESHOLD_MIN_WRITE) and
 * writes more at once by itself, leaving what the client cannot take yet to
 * the MPM's write completion, which holds no thread for a slow client. */
#define SG_FLUSH_AT_END_MAX 4096
#define SG_HEADER_CHUNK     4096

/* protocolStatus of END_REQUEST */
#define SG_FCGI_REQUEST_COMPLETE    0
#define SG_FCGI_OVERLOADED          2
/* Empty records of types FastCGI leaves unassigned, by which a worker whose
 * request slots are all running says a request waits for one, and later
 * that it starts: a worker that closes the connection in between never ran
 * it.  Other FastCGI applications send neither. */
#define SG_FCGI_REQUEST_WAITING     0x57    /* 'W' */
#define SG_FCGI_REQUEST_STARTED     0x53    /* 'S' */
/* appStatus of END_REQUEST by which a worker says it keeps the connection
 * ("SGKA"); a program that does not say so closes it, so it is not reused. */
#define SG_APP_STATUS_KEPT          0x53474b41UL

/* Why the exchange with the worker ended. */
typedef enum {
    SG_DONE = 0,            /* END_REQUEST */
    SG_WORKER_EOF,          /* closed (or reset) before END_REQUEST */
    SG_WORKER_TIMEOUT,      /* socket-timeout without any I/O */
    SG_BAD_HEADERS,         /* response headers refused: status in bad_status */
    SG_PROTOCOL,            /* not FastCGI */
    SG_CLIENT_BODY,         /* reading the request body failed */
    SG_CLIENT_GONE,         /* passing the response failed */
    SG_IO_ERROR,            /* poll/recv failure */
    SG_NOT_SENT             /* idle connection dead: nothing reached it */
} sg_outcome;

typedef struct {
    request_rec *r;
    conn_rec *c;
    const sg_group *group;
    apr_socket_t *sock;         /* wraps fd, which this request owns */
    apr_pollfd_t pfd;
    int fd;                     /* -1 once closed or back in the pool */
    int pooled;                 /* fd came from the group's idle connections */
    int replayable;             /* the whole request is in params: may be sent
                                   a second time */
    int reusable;               /* the exchange left fd fit for another request */

    /* to the worker */
    const char *params;         /* BEGIN_REQUEST .. empty PARAMS [STDIN ..
                                   empty STDIN] */
    apr_size_t params_len;
    apr_size_t small_body_len;  /* a short body's length, or 0 */
    char *small_body;           /* where it goes in params */
    struct iovec outv[SG_STDIN_IOV];    /* what is left to send */
    int outv_i, outv_n;
    apr_size_t outlen;          /* bytes in outv[outv_i..outv_n) */
    apr_off_t sent;             /* bytes sent on this connection */
    /* a STDIN header per record of a batch, then the empty STDIN */
    unsigned char stdin_hdr[(SG_STDIN_BATCH + 1) * AP_FCGI_HEADER_LEN];
    char *stdin_flat[SG_STDIN_BATCH];   /* SG_STDIN_CHUNK each, made when a
                                         * record's pieces do not fit outv */
    apr_bucket_brigade *ib;     /* the buckets outv points into */
    apr_bucket_brigade *ib_next;        /* one record's, before it joins ib */
    int stdin_last_queued;
    int stdin_done;             /* nothing more will be sent */
    int stdin_broken;           /* the worker stopped reading */
    apr_off_t body_sent;

    /* from the worker */
    char *iobuf;
    unsigned char rhdr[AP_FCGI_HEADER_LEN];
    apr_size_t rhdr_have;
    unsigned char rtype;
    apr_size_t rclen;           /* content left in the current record */
    apr_size_t rplen;           /* padding left */
    int in_content;
    unsigned char rbody[8];     /* content of END_REQUEST or REQUEST_WAITING */
    apr_size_t rbody_have;
    int end_seen;
    int protocol_status;        /* -1 until END_REQUEST tells */
    apr_uint32_t app_status;
    int answered;               /* a record other than END_REQUEST came first */
    int waiting;                /* the worker said it waits for a slot and has
                                 * not said it started */
    apr_size_t received;        /* bytes read from the worker */
    int leftover;               /* bytes followed END_REQUEST */

    /* response headers */
    char *hbuf;
    apr_size_t hlen, hcap;
    apr_size_t line_len;        /* 0: at the start of a header line */
    int in_name;
    int prev_cr;
    int headers_done;
    int headers_passed;         /* something went to the output filters */
    int ignore_body;
    int bad_status;             /* HTTP status for SG_BAD_HEADERS */
    const char *bad_why;
    apr_off_t body_bytes;

    /* stderr */
    char *ebuf;
    apr_size_t elen;
    char *eline;                /* escaped line for the log */

    apr_bucket_brigade *ob;
    const char *why;            /* detail for the log */
    apr_status_t why_rv;
} sg_conn;

/* ------------------------------------------------------------------------
 * translate_name: SwiftScriptAlias
 */

int sg_translate_name(request_rec *r)
{
    sg_server_conf *sconf = ap_get_module_config(r->server->module_config,
                                                 &swift_gateway_module);
    const sg_alias *a;
    sg_request_conf *rconf;

    if (r->uri[0] != '/' || r->proxyreq) {
        return DECLINED;
    }
    if (!(a = sg_match_alias(sconf, r->uri))) {
        return DECLINED;
    }
    rconf = apr_pcalloc(r->pool, sizeof(*rconf));
    rconf->alias = a;
    rconf->script_name = a->path;
    rconf->path_info = r->uri + a->len;
    ap_set_module_config(r->request_config, &swift_gateway_module, rconf);

    r->filename = apr_pstrdup(r->pool, a->program);
    r->path_info = apr_pstrdup(r->pool, rconf->path_info);
    r->handler = SG_HANDLER;
    return OK;
}

/* type_checker: for an aliased request the program's file name must not
 * give the response a content type, nor mod_mime's AddHandler another
 * handler (a SetHandler in a section still wins: core applies it later). */
int sg_type_checker(request_rec *r)
{
    if (!ap_get_module_config(r->request_config, &swift_gateway_module)) {
        return DECLINED;
    }
    r->handler = SG_HANDLER;
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;
    return OK;
}

/* ------------------------------------------------------------------------
 * Group resolution (SPEC section 3)
 */

static int sg_allowed(const sg_dir_conf *dconf, const char *name)
{
    int i;

    if (!dconf->restrict_to) {
        return 1;
    }
    for (i = 0; i < dconf->restrict_to->nelts; ++i) {
        if (!strcmp(APR_ARRAY_IDX(dconf->restrict_to, i, const char *), name)) {
            return 1;
        }
    }
    return 0;
}

/* The name a SwiftProcessGroup setting selects, NULL when a %{ENV:var} is
 * unset (resolution then goes on with the next rule). */
static const char *sg_setting_name(request_rec *r, const sg_dir_conf *dconf)
{
    const char *v;

    if (!dconf->group_env) {
        return dconf->group;
    }
    v = apr_table_get(r->subprocess_env, dconf->group_env);
    return v && *v ? v : NULL;
}

/* Which setting chose the group: described only when a message names it,
 * so a request that resolves normally formats nothing. */
typedef enum {
    SG_SOURCE_SETTING,      /* SwiftProcessGroup */
    SG_SOURCE_ALIAS,        /* process-group= of the SwiftScriptAlias */
    SG_SOURCE_IMPLICIT      /* the alias's own implicit group */
} sg_source_kind;

typedef struct {
    sg_source_kind kind;
    const sg_dir_conf *dconf;
    const sg_alias *alias;
} sg_source;

static const char *sg_describe_source(request_rec *r, const sg_source *source)
{
    switch (source->kind) {
    case SG_SOURCE_ALIAS:
        return apr_psprintf(r->pool, "process-group= of SwiftScriptAlias (%s)",
                            source->alias->defined_at);
    case SG_SOURCE_IMPLICIT:
        return "the implicit group of the alias";
    default:
        return apr_psprintf(r->pool, "SwiftProcessGroup (%s)",
                            source->dconf->group_at);
    }
}

static int sg_lookup(request_rec *r, const char *name, const sg_source *source,
                     const sg_group **out)
{
    sg_group *elsewhere;
    sg_group *g = sg_find_group(r->server, name, &elsewhere);

    if (!g) {
        if (elsewhere) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0402: %s selects process group %s, which is "
                          "declared in another virtual host (%s); declare it "
                          "in the main server to share it, or declare a group "
                          "in this virtual host", sg_describe_source(r, source),
                          name, elsewhere->defined_at);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0401: %s selects process group %s, which is not "
                          "declared; add SwiftDaemonProcess %s or fix the "
                          "group name", sg_describe_source(r, source), name,
                          name);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    *out = g;
    return OK;
}

static int sg_resolve_group(request_rec *r, const sg_dir_conf *dconf,
                            const sg_alias *alias, const sg_group **out,
                            sg_source *source)
{
    const char *name = NULL;
    int rc;

    source->dconf = dconf;
    source->alias = alias;
    source->kind = SG_SOURCE_SETTING;
    /* a SwiftProcessGroup in the matching section, then the alias's
     * process-group=, then a server-wide SwiftProcessGroup */
    if (dconf->group_set && dconf->group_in_section) {
        name = sg_setting_name(r, dconf);
    }
    if (!name && alias && alias->group_name) {
        name = alias->group_name;
        source->kind = SG_SOURCE_ALIAS;
    }
    if (!name && dconf->group_set && !dconf->group_in_section) {
        name = sg_setting_name(r, dconf);
    }

    if (!name) {
        if (alias && alias->implicit) {
            *out = alias->implicit;
            source->kind = SG_SOURCE_IMPLICIT;
            return OK;
        }
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0405: no process group applies to %s%s; add "
                      "SwiftProcessGroup NAME here", r->uri,
                      alias ? "" : " (SetHandler swift-gateway without "
                                   "SwiftScriptAlias needs SwiftProcessGroup)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((rc = sg_lookup(r, name, source, out)) != OK) {
        return rc;
    }
    if (!sg_allowed(dconf, name)) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0403: %s selects process group %s, which "
                      "SwiftRestrictProcess does not allow here; add it to "
                      "SwiftRestrictProcess or select another group",
                      sg_describe_source(r, source), name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

/* SCRIPT_NAME for SetHandler swift-gateway: the path of the most specific
 * non-regex <Location> that sets this handler and matches the URI. */
static const char *sg_location_mount(request_rec *r)
{
    core_server_config *sconf = ap_get_core_module_config(r->server->module_config);
    const char *best = NULL;
    apr_size_t best_len = 0;
    int i;

    if (!sconf->sec_url) {
        return "";
    }
    for (i = 0; i < sconf->sec_url->nelts; ++i) {
        ap_conf_vector_t *v = APR_ARRAY_IDX(sconf->sec_url, i, ap_conf_vector_t *);
        core_dir_config *core = ap_get_core_module_config(v);
        const char *val, *err = NULL;
        apr_size_t len;

        if (!core || !core->d || core->r || core->d_is_fnmatch
            || !core->expr_handler || !sg_path_covers(core->d, r->uri)) {
            continue;
        }
        val = ap_expr_str_exec(r, core->expr_handler, &err);
        if (err || !val || strcasecmp(val, SG_HANDLER)) {
            continue;
        }
        len = strlen(core->d);
        while (len > 0 && core->d[len - 1] == '/') {
            --len;
        }
        if (!best || len >= best_len) {
            best = core->d;
            best_len = len;
        }
    }
    return best ? apr_pstrmemdup(r->pool, best, best_len) : "";
}

/* ------------------------------------------------------------------------
 * Idle connections, per Apache child and group
 *
 * A kept-alive connection holds one of a worker's request slots for its
 * whole life, so a request sent on it runs at once.  The worker closes an
 * idle one only after writing an unsolicited END_REQUEST/FCGI_OVERLOADED:
 * a request that meets that, or finds the connection dead before any byte
 * went out, was not run and may be sent again on a new connection.
 */

struct sg_conn_pool {
#if APR_HAS_THREADS
    apr_thread_mutex_t *mutex;      /* event and worker MPMs are threaded */
#endif
    int *fds;                       /* a stack: the most recently used on top */
    int nfds;
    int capacity;
    int closed;                     /* the child is exiting */
};

static apr_status_t sg_pool_mutex(sg_conn_pool *cp, apr_pool_t *p)
{
#if APR_HAS_THREADS
    return apr_thread_mutex_create(&cp->mutex, APR_THREAD_MUTEX_DEFAULT, p);
#else
    (void)cp;
    (void)p;
    return APR_SUCCESS;
#endif
}

static int sg_pool_lock(sg_conn_pool *cp)
{
#if APR_HAS_THREADS
    return apr_thread_mutex_lock(cp->mutex) == APR_SUCCESS;
#else
    (void)cp;
    return 1;
#endif
}

static void sg_pool_unlock(sg_conn_pool *cp)
{
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(cp->mutex);
#else
    (void)cp;
#endif
}

/* Runs when the child exits, after its request threads are done. */
static apr_status_t sg_pool_cleanup(void *data)
{
    sg_conn_pool *cp = data;

    cp->closed = 1;
    while (cp->nfds > 0) {
        close(cp->fds[--cp->nfds]);
    }
    return APR_SUCCESS;
}

/* child_init: an empty pool per started group, with room for a connection
 * per thread of this child: a worker keeps requests beyond its slots waiting
 * on their connections, so each thread may use one at once.  (Unknown
 * threads: as many as the group has request slots.) */
void sg_conn_pools_create(apr_pool_t *pchild, server_rec *s)
{
    int child_threads = 0;
    int i;

    if (!sg_globals.groups) {
        return;
    }
    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &child_threads) != APR_SUCCESS) {
        child_threads = 0;
    }
    for (i = 0; i < sg_globals.groups->nelts; ++i) {
        sg_group *g = APR_ARRAY_IDX(sg_globals.groups, i, sg_group *);
        int processes = g->maximum_processes > g->processes
                        ? g->maximum_processes : g->processes;
        apr_int64_t capacity = child_threads > 0
                               ? child_threads
                               : (apr_int64_t)processes * g->threads;
        sg_conn_pool *cp;
        apr_status_t rv;

        if (!g->socket_path) {
            continue;       /* never started (SG0406) */
        }
        cp = apr_pcalloc(pchild, sizeof(*cp));
        cp->capacity = capacity > 0 ? (int)capacity : 1;
        cp->fds = apr_palloc(pchild, cp->capacity * sizeof(int));
        if ((rv = sg_pool_mutex(cp, pchild)) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s,
                         "SG0517: group %s: cannot create the lock of the "
                         "idle connection pool; this Apache child opens a "
                         "new connection for every request", g->name);
            continue;
        }
        apr_pool_cleanup_register(pchild, cp, sg_pool_cleanup,
                                  apr_pool_cleanup_null);
        g->conn_pool = cp;
    }
}

/* The most recently used idle connection that is still open and silent,
 * or -1.  Anything to read on an idle connection is the worker's
 * FCGI_OVERLOADED notice or EOF: it is closing it, or gone. */
static int sg_pool_get(sg_conn_pool *cp, int *dropped)
{
    for (;;) {
        struct pollfd pfd;
        int fd = -1;

        if (!sg_pool_lock(cp)) {
            return -1;
        }
        if (cp->nfds > 0) {
            fd = cp->fds[--cp->nfds];
        }
        sg_pool_unlock(cp);
        if (fd < 0) {
            return -1;
        }
        pfd.fd = fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) == 0) {
            return fd;
        }
        close(fd);
        ++*dropped;
    }
}

/* Keep an idle connection for a later request; 0 when there is no room. */
static int sg_pool_put(sg_conn_pool *cp, int fd)
{
    int kept = 0;

    if (!cp || !sg_pool_lock(cp)) {
        return 0;
    }
    if (!cp->closed && cp->nfds < cp->capacity) {
        cp->fds[cp->nfds++] = fd;
        kept = 1;
    }
    sg_pool_unlock(cp);
    return kept;
}

/* Request pool cleanup of the connection: back to the group's pool when
 * the exchange left it clean, else closed.  Run early by sg_detach; the
 * request pool runs it on every other path, so no fd leaks. */
static apr_status_t sg_release(void *data)
{
    sg_conn *sc = data;

    if (sc->fd >= 0) {
        if (!sc->reusable || !sg_pool_put(sc->group->conn_pool, sc->fd)) {
            close(sc->fd);
        }
        sc->fd = -1;
        sc->reusable = 0;
    }
    return APR_SUCCESS;
}

/* The request owns fd from now on.  apr_os_sock_put only wraps it (no
 * cleanup of its own) for apr_poll.  A connected fd blocks, with
 * SO_RCVTIMEO at socket-timeout (sg_make_waitable): every send and read
 * passes MSG_DONTWAIT except the one read that waits for the answer. */
static void sg_attach(sg_conn *sc, int fd, int pooled)
{
    apr_os_sock_t osd = fd;

    sc->fd = fd;
    sc->pooled = pooled;
    sc->reusable = 0;
    apr_os_sock_put(&sc->sock, &osd, sc->r->pool);
    sc->pfd.desc_type = APR_POLL_SOCKET;
    sc->pfd.desc.s = sc->sock;
    sc->pfd.p = sc->r->pool;
    apr_pool_cleanup_register(sc->r->pool, sc, sg_release,
                              apr_pool_cleanup_null);
}

static void sg_detach(sg_conn *sc)
{
    apr_pool_cleanup_run(sc->r->pool, sc, sg_release);
}

/* The group's backlog is full (every worker busy): connect again, blocking
 * for at most `left`, so the thread waits in the kernel's queue of the
 * listening socket, which wakes one waiter as a worker accepts, first come
 * first served.  connect()'s errno (0: connected; EAGAIN: still full when
 * `left` ran out), or -1 when the socket could not be made to block. */
static int sg_connect_queued(int fd, const struct sockaddr_un *sa,
                             apr_interval_time_t left)
{
    struct timeval tv;
    int flags = fcntl(fd, F_GETFL);
    int err = 0;

    if (left < apr_time_from_msec(1)) {
        left = apr_time_from_msec(1);   /* a zero SO_SNDTIMEO would never time out */
    }
    tv.tv_sec = apr_time_sec(left);
    tv.tv_usec = apr_time_usec(left);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        err = -1;
    }
    else if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
        err = errno == EWOULDBLOCK ? EAGAIN : errno;
    }
    /* non-blocking again: the loop's next connect() must not wait */
    if (fcntl(fd, F_SETFL, flags) != 0 && err == 0) {
        err = errno;
    }
    return err;
}

/* A connected socket blocks, for at most socket-timeout per read: waiting
 * for the answer is then one recv() rather than poll() and recv().  0 or
 * errno. */
static int sg_make_waitable(int fd, int timeout_seconds)
{
    struct timeval tv;
    int flags = fcntl(fd, F_GETFL);

    tv.tv_sec = timeout_seconds;
    tv.tv_usec = 0;
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0
        || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        return errno;
    }
    return 0;
}

/* The new connection made waitable, or 503 (logged). */
static int sg_connected(sg_conn *sc, int fd)
{
    int err = sg_make_waitable(fd, sc->group->socket_timeout);

    if (err != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, err, sc->r,
                      "SG0416: group %s: cannot set the read timeout of a "
                      "connection to socket %s", sc->group->name,
                      sc->group->socket_path);
        sg_detach(sc);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return OK;
}

/* A new connection to the group's socket, waiting while its backlog is
 * full (every worker busy) until connect-timeout. */
static int sg_connect(sg_conn *sc)
{
    request_rec *r = sc->r;
    const sg_group *g = sc->group;
    struct sockaddr_un sa;
    apr_time_t deadline;
    apr_interval_time_t wait = apr_time_from_msec(5);
    int attempts = 0;
    int fd;

    if (!g->socket_path) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0406: process group %s has no socket (it was not "
                      "started); see the startup messages", g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, g->socket_path, sizeof(sa.sun_path));

    /* CLOEXEC: a kept connection must not leak into a CGI or piped logger */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, errno, r,
                      "SG0415: group %s: cannot create a socket", g->name);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    sg_attach(sc, fd, 0);

    deadline = apr_time_now() + apr_time_from_sec(g->connect_timeout);
    for (;;) {
        int err = 0;

        attempts++;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            err = errno;
        }
        if (err == EAGAIN && apr_time_now() < deadline) {
            /* the group's backlog is full: every worker is busy */
            attempts++;
            err = sg_connect_queued(fd, &sa, deadline - apr_time_now());
        }
        if (err == 0 || err == EISCONN) {
            break;
        }
        if (err == EINTR) {
            continue;
        }
        if (err == EAGAIN || err == EINPROGRESS || err == EALREADY || err < 0) {
            if (apr_time_now() >= deadline) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "SG0413: group %s: the backlog of socket %s "
                              "stayed full for connect-timeout=%d s (%d "
                              "attempts); every worker is busy: raise "
                              "processes/threads or listen-backlog",
                              g->name, g->socket_path, g->connect_timeout,
                              attempts);
                sg_detach(sc);
                return HTTP_SERVICE_UNAVAILABLE;
            }
            apr_sleep(wait);
            if (wait < apr_time_from_msec(200)) {
                wait *= 2;
            }
            continue;
        }
        if (err == ENOENT) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0410: group %s: socket %s does not exist; Apache "
                          "is restarting or the socket was removed",
                          g->name, g->socket_path);
        }
        else if (err == EACCES || err == EPERM) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0411: group %s: permission denied on socket %s; "
                          "it must belong to Apache's User (check "
                          "SwiftSocketPrefix and its directory)",
                          g->name, g->socket_path);
        }
        else if (err == ECONNREFUSED) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0412: group %s: connection refused on socket %s; "
                          "nothing listens on it (stale socket of an older "
                          "Apache generation?)", g->name, g->socket_path);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, err, r,
                          "SG0414: group %s: cannot connect to socket %s",
                          g->name, g->socket_path);
        }
        sg_detach(sc);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    return sg_connected(sc, fd);
}

/* The connection for a request: the group's most recently used idle one
 * when the request may be sent again should the worker turn it away, else
 * a new one. */
static int sg_open(sg_conn *sc)
{
    sg_conn_pool *cp = sc->group->conn_pool;

    if (sc->replayable && cp) {
        int dropped = 0;
        int fd = sg_pool_get(cp, &dropped);

        if (dropped) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, sc->r,
                          "SG0516: group %s: dropped %d idle connection(s) "
                          "that the worker side had closed", sc->group->name,
                          dropped);
        }
        if (fd >= 0) {
            sg_attach(sc, fd, 1);
            return OK;
        }
    }
    return sg_connect(sc);
}

/* ------------------------------------------------------------------------
 * The request records: BEGIN_REQUEST, PARAMS, empty PARAMS (empty STDIN)
 */

static void sg_put_header(unsigned char *dest, unsigned char type,
                          apr_size_t len)
{
    ap_fcgi_header h;

    ap_fcgi_fill_in_header(&h, type, SG_REQUEST_ID, (apr_uint16_t)len, 0);
    ap_fcgi_header_to_array(&h, dest);
}

/* Variables only this module sets: the control parameters SWIFT_GATEWAY_*,
 * HTTP_PROXY (httpoxy: never a client-controlled proxy setting), REMOTE_USER
 * and AUTH_TYPE (from authentication only).  Any case, as apr_table_unset. */
static int sg_reserved_variable(const char *key)
{
    switch (key[0]) {   /* the first letter turns nearly every variable away */
    case 'S': case 's':
        return !strncasecmp(key, "SWIFT_GATEWAY_", 14);
    case 'H': case 'h':
        return !strcasecmp(key, "HTTP_PROXY");
    case 'R': case 'r':
        return !strcasecmp(key, "REMOTE_USER");
    case 'A': case 'a':
        return !strcasecmp(key, "AUTH_TYPE");
    default:
        return 0;
    }
}

/* Removes the reserved variables, whoever set them (a header, SetEnv, ...):
 * one pass over the table, and a removal only for one that is there. */
static void sg_remove_reserved(apr_table_t *e, apr_pool_t *p)
{
    const apr_array_header_t *arr = apr_table_elts(e);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *drop = NULL;
    int i;

    for (i = 0; i < arr->nelts; ++i) {
        if (elts[i].key && sg_reserved_variable(elts[i].key)) {
            if (!drop) {
                drop = apr_array_make(p, 2, sizeof(const char *));
            }
            APR_ARRAY_PUSH(drop, const char *) = elts[i].key;
        }
    }
    for (i = 0; drop && i < drop->nelts; ++i) {
        apr_table_unset(e, APR_ARRAY_IDX(drop, i, const char *));
    }
}

static void sg_build_env(request_rec *r, const sg_dir_conf *dconf,
                         const sg_group *g, const char *script_name,
                         const char *path_info)
{
    apr_table_t *e = r->subprocess_env;
    const char *auth;

    ap_add_common_vars(r);
    {
        /* PATH_INFO is the mount's; hiding r->path_info also spares
         * ap_add_cgi_vars() the sub-request that computes PATH_TRANSLATED,
         * which means nothing to a program that owns its URL space. */
        char *saved = r->path_info;

        r->path_info = NULL;
        ap_add_cgi_vars(r);
        r->path_info = saved;
    }

    apr_table_setn(e, "SCRIPT_NAME", script_name);
    apr_table_setn(e, "PATH_INFO", path_info);
    apr_table_setn(e, "SCRIPT_FILENAME", g->program);

    sg_remove_reserved(e, r->pool);
    /* none of the reserved ones is in the table now: add, without a search */
    if (r->user) {
        apr_table_addn(e, "REMOTE_USER", r->user);
        if (r->ap_auth_type) {
            apr_table_addn(e, "AUTH_TYPE", r->ap_auth_type);
        }
    }

    if (dconf->pass_auth == 1) {
        if ((auth = apr_table_get(r->headers_in, "Authorization")) != NULL) {
            apr_table_setn(e, "HTTP_AUTHORIZATION", auth);
        }
    }
    else if (dconf->pass_auth == 0) {
        apr_table_unset(e, "HTTP_AUTHORIZATION");
        apr_table_unset(e, "HTTP_PROXY_AUTHORIZATION");
    }

    if (!r->log_id) {
        const char *id = NULL;

        if (ap_run_generate_log_id(r->connection, r, &id) == OK && id) {
            r->log_id = id;
        }
    }
    apr_table_addn(e, "SWIFT_GATEWAY_GROUP", g->name);
    apr_table_addn(e, "SWIFT_GATEWAY_REQUEST_START",
                   apr_psprintf(r->pool, "%" APR_TIME_T_FMT, r->request_time));
    apr_table_addn(e, "SWIFT_GATEWAY_REQUEST_ID",
                   r->log_id ? r->log_id
                             : apr_psprintf(r->pool, "%" APR_PID_T_FMT "-%"
                                            APR_TIME_T_FMT "-%pp", getpid(),
                                            apr_time_now(), (void *)r));
    apr_table_addn(e, "SWIFT_GATEWAY_TOKEN", g->token ? g->token : "");
}

/* One PARAMS record: the variables from `start` on that fill `len` bytes. */
typedef struct {
    int start;
    apr_size_t len;
} sg_params_record;

/* BEGIN_REQUEST, the PARAMS records and the empty PARAMS, in one buffer;
 * without a request body, or with a short one read whole, also STDIN to its
 * end, so that one send() carries the whole request and a failed one means
 * the worker got none of it. */
static void sg_build_params(sg_conn *sc)
{
    request_rec *r = sc->r;
    const apr_array_header_t *arr = apr_table_elts(r->subprocess_env);
    const apr_table_entry_t *elts = (const apr_table_entry_t *)arr->elts;
    apr_array_header_t *records = apr_array_make(r->pool, 4,
                                                 sizeof(sg_params_record));
    ap_fcgi_begin_request_body brb;
    unsigned char *buf, *p;
    apr_size_t total = 2 * AP_FCGI_HEADER_LEN + 2 * AP_FCGI_HEADER_LEN
                       + (sc->small_body_len
                          ? AP_FCGI_HEADER_LEN + sc->small_body_len : 0);
    int next = 0;
    int i;

    while (next < arr->nelts) {
        int start = next;
        apr_size_t len = ap_fcgi_encoded_env_len(r->subprocess_env,
                                                 SG_PARAMS_RECORD, &next);
        sg_params_record *rec;

        if (!len) {
            if (next < arr->nelts) {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              "SG0514: group %s: variable %s is too large for "
                              "a PARAMS record and is not passed",
                              sc->group->name, elts[next].key);
                ++next;
                continue;
            }
            break;
        }
        rec = apr_array_push(records);
        rec->start = start;
        rec->len = len;
        total += AP_FCGI_HEADER_LEN + len;
    }

    buf = p = apr_palloc(r->pool, total);
    sg_put_header(p, AP_FCGI_BEGIN_REQUEST, AP_FCGI_HEADER_LEN);
    p += AP_FCGI_HEADER_LEN;
    ap_fcgi_fill_in_request_body(&brb, AP_FCGI_RESPONDER, AP_FCGI_KEEP_CONN);
    ap_fcgi_begin_request_body_to_array(&brb, p);
    p += AP_FCGI_HEADER_LEN;
    for (i = 0; i < records->nelts; ++i) {
        sg_params_record *rec = &APR_ARRAY_IDX(records, i, sg_params_record);
        int start = rec->start;

        /* encoded in place: no buffer per record to copy from */
        sg_put_header(p, AP_FCGI_PARAMS, rec->len);
        p += AP_FCGI_HEADER_LEN;
        ap_fcgi_encode_env(r, r->subprocess_env, (char *)p, rec->len, &start);
        p += rec->len;
    }
    sg_put_header(p, AP_FCGI_PARAMS, 0);
    p += AP_FCGI_HEADER_LEN;
    if (sc->small_body_len) {
        /* room for the body, which sg_read_small_body() reads in place */
        sg_put_header(p, AP_FCGI_STDIN, sc->small_body_len);
        p += AP_FCGI_HEADER_LEN;
        sc->small_body = (char *)p;
        p += sc->small_body_len;
    }
    if (sc->replayable) {
        sg_put_header(p, AP_FCGI_STDIN, 0);
        p += AP_FCGI_HEADER_LEN;
    }

    sc->params = (const char *)buf;
    sc->params_len = p - buf;
}

/* ------------------------------------------------------------------------
 * To the worker: PARAMS then STDIN, written only when the socket is
 * writable, so a worker that is busy sending is never blocked on.
 */

/* Appends the data in bb as STDIN record k of the batch to the pending
 * iovecs, the pieces as they lie in the client body's buckets (no copy;
 * each set aside first, so its data stays put while more is read), and the
 * empty STDIN when bb ends the body.  A record with more pieces than outv
 * has room for is copied into stdin_flat[k] instead. */
static apr_status_t sg_queue_stdin(sg_conn *sc, apr_bucket_brigade *bb,
                                   int k, int *last)
{
    apr_bucket *b;
    apr_size_t len = 0;
    int hdr = sc->outv_n;       /* the record header's slot */
    int n = hdr + 1;
    int flat = 0;

    *last = 0;
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t blen;
        apr_status_t rv;

        if (APR_BUCKET_IS_EOS(b)) {
            *last = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        /* a transient bucket (mod_ssl's) becomes a heap copy; a socket or
         * pipe bucket cannot be set aside, but reading it yields a heap one */
        rv = apr_bucket_setaside(b, sc->r->pool);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOTIMPL(rv)) {
            return rv;
        }
        if ((rv = apr_bucket_read(b, &data, &blen, APR_BLOCK_READ))
            != APR_SUCCESS) {
            return rv;
        }
        if (blen == 0) {
            continue;
        }
        if (n == SG_STDIN_IOV - 1) {
            flat = 1;           /* keep the last slot for the empty STDIN */
        }
        else {
            sc->outv[n].iov_base = (void *)data;
            sc->outv[n].iov_len = blen;
            ++n;
        }
        len += blen;
    }
    if (flat) {
        apr_size_t got = SG_STDIN_CHUNK;
        apr_status_t rv;

        if (!sc->stdin_flat[k]) {
            sc->stdin_flat[k] = apr_palloc(sc->r->pool, SG_STDIN_CHUNK);
        }
        if ((rv = apr_brigade_flatten(bb, sc->stdin_flat[k], &got))
            != APR_SUCCESS) {
            return rv;
        }
        sc->outv[hdr + 1].iov_base = sc->stdin_flat[k];
        sc->outv[hdr + 1].iov_len = got;
        len = got;
        n = hdr + 2;
    }
    if (len) {
        unsigned char *h = sc->stdin_hdr + k * AP_FCGI_HEADER_LEN;

        sg_put_header(h, AP_FCGI_STDIN, len);
        sc->outv[hdr].iov_base = h;
        sc->outv[hdr].iov_len = AP_FCGI_HEADER_LEN;
        sc->outv_n = n;
        sc->outlen += AP_FCGI_HEADER_LEN + len;
        sc->body_sent += len;
    }
    if (*last) {
        unsigned char *h = sc->stdin_hdr
                           + SG_STDIN_BATCH * AP_FCGI_HEADER_LEN;

        sg_put_header(h, AP_FCGI_STDIN, 0);
        sc->outv[sc->outv_n].iov_base = h;
        sc->outv[sc->outv_n].iov_len = AP_FCGI_HEADER_LEN;
        sc->outv_n++;
        sc->outlen += AP_FCGI_HEADER_LEN;
    }
    return APR_SUCCESS;
}

/* Reads the next batch of the client body into STDIN records: the first
 * record waits for the client, the others take only what has arrived. */
static apr_status_t sg_read_stdin_batch(sg_conn *sc, int *last)
{
    request_rec *r = sc->r;
    int k;

    *last = 0;
    apr_brigade_cleanup(sc->ib);        /* the pieces sent last time */
    sc->outv_i = sc->outv_n = 0;
    sc->outlen = 0;
    for (k = 0; k < SG_STDIN_BATCH && !*last; ++k) {
        apr_status_t rv;
        int got;

        /* room for a record's header, one piece and the empty STDIN */
        if (sc->outv_n > SG_STDIN_IOV - 3) {
            break;
        }
        rv = ap_get_brigade(r->input_filters, sc->ib_next, AP_MODE_READBYTES,
                            k == 0 ? APR_BLOCK_READ : APR_NONBLOCK_READ,
                            SG_STDIN_CHUNK);
        if (k > 0 && APR_STATUS_IS_EAGAIN(rv)) {
            break;              /* send what is here; the client is slower */
        }
        if (rv == APR_SUCCESS) {
            rv = sg_queue_stdin(sc, sc->ib_next, k, last);
        }
        got = !APR_BRIGADE_EMPTY(sc->ib_next);
        APR_BRIGADE_CONCAT(sc->ib, sc->ib_next);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (!got) {
            break;              /* nothing more has arrived */
        }
    }
    return APR_SUCCESS;
}

/* Drop n sent bytes from the front of the pending iovecs. */
static void sg_advance(sg_conn *sc, apr_size_t n)
{
    sc->outlen -= n;
    sc->sent += n;
    while (n > 0 && sc->outv_i < sc->outv_n) {
        struct iovec *v = &sc->outv[sc->outv_i];

        if (n < v->iov_len) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= n;
            return;
        }
        n -= v->iov_len;
        sc->outv_i++;
    }
}

static sg_outcome sg_send_some(sg_conn *sc)
{
    request_rec *r = sc->r;
    apr_status_t rv;

    if (sc->outlen == 0) {
        int last = 0;

        if (sc->stdin_done) {
            return SG_DONE;
        }
        if ((rv = sg_read_stdin_batch(sc, &last)) != APR_SUCCESS) {
            sc->why = "reading the request body from the client";
            sc->why_rv = rv;
            return SG_CLIENT_BODY;
        }
        if (last) {
            sc->stdin_last_queued = 1;
        }
        if (sc->outlen == 0) {
            return SG_DONE;
        }
    }

    /* a worker gone away is an error, never SIGPIPE; a full socket is EAGAIN
     * (MSG_DONTWAIT: the connection blocks only for the answer) */
    {
        struct msghdr msg;
        ssize_t w;

        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = sc->outv + sc->outv_i;
        msg.msg_iovlen = sc->outv_n - sc->outv_i;
        do {
            w = sendmsg(sc->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (w < 0 && errno == EINTR);
        rv = w < 0 ? errno : APR_SUCCESS;
        if (w > 0) {
            sg_advance(sc, (apr_size_t)w);
        }
    }
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EAGAIN(rv)) {
        if (sc->pooled && sc->sent == 0
            && (rv == EPIPE || rv == ECONNRESET || rv == ENOTCONN)) {
            /* the idle connection died before carrying a byte */
            sc->why_rv = rv;
            return SG_NOT_SENT;
        }
        /* The worker stopped reading (it may have answered already): stop
         * sending and keep reading what it has to say. */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      "SG0513: group %s: the worker stopped reading the "
                      "request after %" APR_OFF_T_FMT " body bytes",
                      sc->group->name, sc->body_sent);
        sc->stdin_broken = 1;
        sc->stdin_done = 1;
        sc->outlen = 0;
        return SG_DONE;
    }
    if (sc->outlen == 0 && sc->stdin_last_queued) {
        sc->stdin_done = 1;
    }
    return SG_DONE;
}

/* ------------------------------------------------------------------------
 * From the worker: STDOUT (headers, then body), STDERR, END_REQUEST
 */

/* One line of the worker's stderr to the error log, control characters
 * escaped (into a buffer allocated once per request: a chatty worker must
 * not grow the request pool). */
static void sg_log_stderr_line(sg_conn *sc, const char *line, apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *o;
    apr_size_t i;

    if (len && line[len - 1] == '\r') {
        --len;
    }
    if (!len) {
        return;
    }
    if (!sc->eline) {
        sc->eline = apr_palloc(sc->r->pool, 4 * SG_STDERR_LINE_MAX + 1);
    }
    for (o = sc->eline, i = 0; i < len; ++i) {
        unsigned char ch = (unsigned char)line[i];

        if (ch >= 0x20 && ch != 0x7f && ch != '\\') {
            *o++ = (char)ch;
        }
        else if (ch == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        }
        else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 0xf];
        }
    }
    *o = '\0';
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, sc->r, "SG0501: [%s] %s",
                  sc->group->name, sc->eline);
}

static void sg_stderr(sg_conn *sc, const char *data, apr_size_t len)
{
    while (len) {
        const char *nl = memchr(data, '\n', len);
        apr_size_t take = nl ? (apr_size_t)(nl - data) : len;

        if (!sc->ebuf) {
            sc->ebuf = apr_palloc(sc->r->pool, SG_STDERR_LINE_MAX);
        }
        while (sc->elen + take > SG_STDERR_LINE_MAX) {
            apr_size_t room = SG_STDERR_LINE_MAX - sc->elen;

            memcpy(sc->ebuf + sc->elen, data, room);
            sg_log_stderr_line(sc, sc->ebuf, SG_STDERR_LINE_MAX);
            sc->elen = 0;
            data += room;
            len -= room;
            take -= room;
        }
        memcpy(sc->ebuf + sc->elen, data, take);
        sc->elen += take;
        data += take;
        len -= take;
        if (nl) {
            sg_log_stderr_line(sc, sc->ebuf, sc->elen);
            sc->elen = 0;
            data++;
            len--;
        }
    }
}

static void sg_stderr_flush(sg_conn *sc)
{
    if (sc->elen) {
        sg_log_stderr_line(sc, sc->ebuf, sc->elen);
        sc->elen = 0;
    }
}

/* RFC 9110 token characters (letters, digits and !#$%&'*+-.^_`|~), one bit
 * per byte value: the test runs for every byte of every header name. */
static const apr_uint32_t sg_tchar_bits[8] = {
    0x00000000, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff, 0, 0, 0, 0
};

static int sg_is_tchar(unsigned char c)
{
    return (sg_tchar_bits[c >> 5] >> (c & 31)) & 1;
}

static sg_outcome sg_bad_headers(sg_conn *sc, const char *why)
{
    sc->bad_status = HTTP_BAD_GATEWAY;
    sc->bad_why = why;
    return SG_BAD_HEADERS;
}

/* The checked header block, handed line by line to httpd's CGI header
 * scanner: each line without its CR LF, as ap_scan_script_header_err_core_ex
 * expects from a getsfunc; 0 once no complete line is left. */
typedef struct {
    const char *pos;
    const char *end;
} sg_header_lines;

static int sg_next_header_line(char *buf, int len, void *data)
{
    sg_header_lines *lines = data;
    const char *nl = memchr(lines->pos, '\n', lines->end - lines->pos);
    apr_size_t n;

    /* the block was checked: a CR only ever comes right before its LF */
    if (!nl || nl - lines->pos > len - 1) {
        *buf = '\0';
        return 0;
    }
    n = (apr_size_t)(nl - lines->pos);
    if (n && nl[-1] == '\r') {
        --n;
    }
    memcpy(buf, lines->pos, n);
    buf[n] = '\0';
    lines->pos = nl + 1;
    return 1;
}

/* Parse the collected header block with httpd's CGI header scanner. */
static sg_outcome sg_finish_headers(sg_conn *sc)
{
    request_rec *r = sc->r;
    sg_header_lines lines = { sc->hbuf, sc->hbuf + sc->hlen };
    char buf[MAX_STRING_LEN];
    int status;

    status = ap_scan_script_header_err_core_ex(r, buf, sg_next_header_line,
                                               &lines, APLOG_MODULE_INDEX);
    sc->headers_done = 1;

    if (status == HTTP_NOT_MODIFIED || status == HTTP_PRECONDITION_FAILED) {
        /* the request's conditions decided: send that, drop the body */
        r->status = status;
        sc->ignore_body = 1;
    }
    else if (status != OK) {
        return sg_bad_headers(sc, apr_psprintf(r->pool, "httpd's CGI header "
                              "parser refused them (%s)", buf));
    }
    else if (!ap_is_HTTP_VALID_RESPONSE(r->status)) {
        return sg_bad_headers(sc, apr_psprintf(r->pool, "invalid Status %d",
                                               r->status));
    }

    /* FastCGI frames the body; let httpd pick Content-Length or chunked
     * from what is actually sent, unless told to trust the application
     * (or no body is sent: a HEAD response keeps the application's). */
    if (!r->header_only
        && !apr_table_get(r->subprocess_env, AP_TRUST_CGILIKE_CL_ENVVAR)) {
        apr_table_unset(r->headers_out, "Content-Length");
    }
    apr_table_unset(r->headers_out, "Transfer-Encoding");

    if (sc->ignore_body) {
        APR_BRIGADE_INSERT_TAIL(sc->ob, apr_bucket_eos_create(sc->c->bucket_alloc));
    }
    return SG_DONE;
}

/* Appends checked bytes to the header block; the caller made sure the block
 * stays within header-buffer-size. */
static void sg_keep_header_bytes(sg_conn *sc, const char *data, apr_size_t n)
{
    if (sc->hlen + n > sc->hcap) {
        apr_size_t limit = (apr_size_t)sc->group->header_buffer_size;
        apr_size_t cap = sc->hcap ? sc->hcap : SG_HEADER_CHUNK;
        char *nb;

        while (cap < sc->hlen + n) {
            cap *= 2;
        }
        if (cap > limit) {
            cap = limit;
        }
        nb = apr_palloc(sc->r->pool, cap + 1);
        if (sc->hlen) {
            memcpy(nb, sc->hbuf, sc->hlen);
        }
        sc->hbuf = nb;
        sc->hcap = cap;
    }
    memcpy(sc->hbuf + sc->hlen, data, n);
    sc->hlen += n;
}

/* STDOUT content while headers are still expected: checks every byte of
 * the header block (no CR without LF, no NUL or other control character,
 * names of token characters, at most header-buffer-size bytes), keeps it for
 * httpd's scanner, and tells in *used how much of data belonged to it; the
 * rest is body.  The scan state lives in locals: stores into the block could
 * alias sc's fields and would make the compiler reload them per byte. */
static sg_outcome sg_header_bytes(sg_conn *sc, const char *data,
                                  apr_size_t len, apr_size_t *used)
{
    apr_size_t limit = (apr_size_t)sc->group->header_buffer_size;
    apr_size_t scan = limit - sc->hlen < len ? limit - sc->hlen : len;
    apr_size_t line_len = sc->line_len;
    int in_name = sc->in_name;
    int prev_cr = sc->prev_cr;
    int complete = 0;
    const char *why = NULL;
    apr_size_t i;

    for (i = 0; i < scan; ++i) {
        unsigned char ch = (unsigned char)data[i];

        if (!prev_cr && (in_name ? sg_is_tchar(ch) : ch >= 0x20 && ch != 0x7f)) {
            line_len += in_name;
            continue;       /* a name or value byte: the common cases */
        }
        if (prev_cr && ch != '\n') {
            why = "a bare CR in the header block (header injection)";
            break;
        }
        if (ch == '\r') {
            prev_cr = 1;
        }
        else if (ch == '\n') {
            prev_cr = 0;
            if (line_len == 0) {
                complete = 1;
                ++i;
                break;
            }
            if (in_name) {
                why = "a header line without ':'";
                break;
            }
            line_len = 0;
            in_name = 1;
        }
        else if (ch == '\0') {
            why = "a NUL byte in the header block (header injection)";
            break;
        }
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            why = "a control character in the header block";
            break;
        }
        else if (in_name && ch == ':') {
            if (line_len == 0) {
                why = "a header with an empty name";
                break;
            }
            in_name = 0;
        }
        else if (in_name) {
            why = "an invalid character in a header name";
            break;
        }
    }
    if (why) {
        return sg_bad_headers(sc, why);
    }
    if (!complete && scan < len) {
        return sg_bad_headers(sc, apr_psprintf(sc->r->pool,
                              "the header block exceeds "
                              "header-buffer-size=%" APR_OFF_T_FMT " bytes",
                              sc->group->header_buffer_size));
    }
    sg_keep_header_bytes(sc, data, i);
    sc->line_len = line_len;
    sc->in_name = in_name;
    sc->prev_cr = prev_cr;
    if (complete) {
        *used = i;
        return sg_finish_headers(sc);
    }
    *used = len;
    return SG_DONE;
}

static sg_outcome sg_stdout(sg_conn *sc, const char *data, apr_size_t len)
{
    if (!sc->headers_done) {
        apr_size_t used = 0;
        sg_outcome o = sg_header_bytes(sc, data, len, &used);

        if (o != SG_DONE || !sc->headers_done) {
            return o;
        }
        data += used;
        len -= used;
    }
    if (len && !sc->ignore_body) {
        APR_BRIGADE_INSERT_TAIL(sc->ob, apr_bucket_transient_create(data, len,
                                                    sc->c->bucket_alloc));
        sc->body_bytes += len;
    }
    return SG_DONE;
}

/* FastCGI's four-byte big-endian integer at p */
static apr_uint32_t sg_uint32_at(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

/* Feed received bytes through the record parser. */
static sg_outcome sg_parse(sg_conn *sc, const char *data, apr_size_t len)
{
    sg_outcome o;

    while (len > 0 && !sc->end_seen) {
        if (!sc->in_content && sc->rplen == 0) {
            apr_size_t take = AP_FCGI_HEADER_LEN - sc->rhdr_have;
            unsigned char version, type, plen;
            apr_uint16_t rid, clen;

            if (take > len) {
                take = len;
            }
            memcpy(sc->rhdr + sc->rhdr_have, data, take);
            sc->rhdr_have += take;
            data += take;
            len -= take;
            if (sc->rhdr_have < AP_FCGI_HEADER_LEN) {
                break;
            }
            sc->rhdr_have = 0;
            ap_fcgi_header_fields_from_array(&version, &type, &rid, &clen,
                                             &plen, sc->rhdr);
            if (version != AP_FCGI_VERSION_1) {
                sc->why = apr_psprintf(sc->r->pool, "FastCGI version %d "
                                       "(expected 1)", version);
                return SG_PROTOCOL;
            }
            if (rid != SG_REQUEST_ID && rid != 0) {
                sc->why = apr_psprintf(sc->r->pool, "FastCGI request id %d "
                                       "(expected %d)", rid, SG_REQUEST_ID);
                return SG_PROTOCOL;
            }
            sc->rtype = rid ? type : 0;     /* management records: skip */
            if (rid && type != AP_FCGI_END_REQUEST
                && type != SG_FCGI_REQUEST_WAITING
                && type != SG_FCGI_REQUEST_STARTED) {
                sc->answered = 1;
            }
            sc->rclen = clen;
            sc->rplen = plen;
            sc->in_content = 1;
            sc->rbody_have = 0;
        }
        else if (sc->in_content && sc->rclen > 0) {
            apr_size_t take = sc->rclen < len ? sc->rclen : len;

            switch (sc->rtype) {
            case AP_FCGI_STDOUT:
                if ((o = sg_stdout(sc, data, take)) != SG_DONE) {
                    return o;
                }
                break;
            case AP_FCGI_STDERR:
                sg_stderr(sc, data, take);
                break;
            case AP_FCGI_END_REQUEST:
            case SG_FCGI_REQUEST_WAITING:
                if (sc->rbody_have < sizeof(sc->rbody)) {
                    apr_size_t n = sizeof(sc->rbody) - sc->rbody_have;

                    if (n > take) {
                        n = take;
                    }
                    memcpy(sc->rbody + sc->rbody_have, data, n);
                    sc->rbody_have += n;
                }
                break;
            default:
                break;
            }
            sc->rclen -= take;
            data += take;
            len -= take;
        }
        else if (sc->rplen > 0 && !sc->in_content) {
            apr_size_t take = sc->rplen < len ? sc->rplen : len;

            sc->rplen -= take;
            data += take;
            len -= take;
        }

        if (sc->in_content && sc->rclen == 0) {
            /* a record's content is complete */
            sc->in_content = 0;
            if (sc->rtype == AP_FCGI_END_REQUEST) {
                sc->end_seen = 1;
                if (sc->rbody_have >= 5) {
                    sc->app_status = sg_uint32_at(sc->rbody);
                    sc->protocol_status = sc->rbody[4];
                }
            }
            else if (sc->rtype == SG_FCGI_REQUEST_WAITING) {
                /* its content is the worker's pid: tells a worker with a
                 * hung request from a saturated group */
                long pid = sc->rbody_have >= 4
                           ? (long)sg_uint32_at(sc->rbody) : 0;

                sc->waiting = 1;
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, sc->r,
                              "SG0518: group %s: the worker's request slots "
                              "are all running; the request waits for one "
                              "(worker pid %ld)",
                              sc->group->name, pid);
            }
            else if (sc->rtype == SG_FCGI_REQUEST_STARTED) {
                sc->waiting = 0;
            }
            else if (sc->rtype != AP_FCGI_STDOUT && sc->rtype != AP_FCGI_STDERR
                     && sc->rtype != 0) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, sc->r,
                              "SG0507: group %s: ignored FastCGI record type %d",
                              sc->group->name, sc->rtype);
            }
        }
    }
    if (sc->end_seen && len > 0) {
        /* END_REQUEST's padding; more would be the worker's notice that it
         * closes the connection (FCGI_OVERLOADED) */
        apr_size_t take = sc->rplen < len ? sc->rplen : len;

        sc->rplen -= take;
        sc->leftover = len > take;
    }
    return SG_DONE;
}

/* Pass what was collected, with a flush when the worker had nothing more
 * ready.  Once END_REQUEST is in, the rest waits for sg_conclude: all of a
 * short response then reaches httpd together with EOS, which lets it send
 * one write with a Content-Length instead of a chunked body in two. */
static sg_outcome sg_pass(sg_conn *sc, int headers_now, int flush)
{
    apr_status_t rv;

    if (sc->end_seen || (APR_BRIGADE_EMPTY(sc->ob) && !headers_now)) {
        return SG_DONE;
    }
    if (flush) {
        APR_BRIGADE_INSERT_TAIL(sc->ob,
                                apr_bucket_flush_create(sc->c->bucket_alloc));
    }
    if (sc->headers_done) {
        sc->headers_passed = 1;     /* from now on the response has begun */
    }
    rv = ap_pass_brigade(sc->r->output_filters, sc->ob);
    apr_brigade_cleanup(sc->ob);
    if (rv != APR_SUCCESS || sc->c->aborted) {
        sc->why_rv = rv;
        return SG_CLIENT_GONE;
    }
    return SG_DONE;
}

/* Read what the worker has ready, up to a buffer full, and pass it on in
 * one go: the bytes stay in iobuf (transient buckets) until passed.  With
 * `wait`, the first read sleeps until the worker writes, for at most
 * socket-timeout (SO_RCVTIMEO): one system call where poll() and recv()
 * were two. */
static sg_outcome sg_receive(sg_conn *sc, int wait)
{
    apr_size_t used = 0;
    int had_headers = sc->headers_done;
    int drained = 0;
    sg_outcome o;

    while (!sc->end_seen && used < SG_RECV_BUF_SIZE) {
        ssize_t n = recv(sc->fd, sc->iobuf + used, SG_RECV_BUF_SIZE - used,
                         wait ? 0 : MSG_DONTWAIT);
        apr_status_t rv = n < 0 ? errno : APR_SUCCESS;

        if (n < 0 && rv == EINTR) {
            continue;
        }
        if (n < 0 && (rv == EAGAIN || rv == EWOULDBLOCK)) {
            if (wait) {
                return SG_WORKER_TIMEOUT;
            }
            drained = 1;
            break;
        }
        wait = 0;
        if (n > 0) {
            sc->received += n;
            if ((o = sg_parse(sc, sc->iobuf + used, (apr_size_t)n)) != SG_DONE) {
                return o;
            }
            used += (apr_size_t)n;
            continue;
        }
        /* EOF (or an error): what came before it is passed first */
        o = sg_pass(sc, !had_headers && sc->headers_done, 1);
        if (o != SG_DONE || sc->end_seen) {
            return o;
        }
        sc->why_rv = rv;
        return SG_WORKER_EOF;
    }
    return sg_pass(sc, !had_headers && sc->headers_done, drained);
}

static sg_outcome sg_exchange(sg_conn *sc)
{
    sg_outcome o;
    apr_interval_time_t timeout = apr_time_from_sec(sc->group->socket_timeout);

    /* the socket has room for the first records: no poll before them */
    if ((o = sg_send_some(sc)) != SG_DONE) {
        return o;
    }
    while (!sc->end_seen) {
        apr_int32_t n = 0;
        apr_status_t rv;
        int want_write = sc->outlen > 0 || !sc->stdin_done;

        if (!want_write) {
            /* all sent: the answer is waited for in the read itself */
            if ((o = sg_receive(sc, 1)) != SG_DONE) {
                return o;
            }
            continue;
        }
        sc->pfd.reqevents = APR_POLLIN | APR_POLLOUT;
        rv = apr_poll(&sc->pfd, 1, &n, timeout);
        if (APR_STATUS_IS_EINTR(rv)) {
            continue;
        }
        if (APR_STATUS_IS_TIMEUP(rv)) {
            return SG_WORKER_TIMEOUT;
        }
        if (rv != APR_SUCCESS) {
            sc->why = "polling the worker socket";
            sc->why_rv = rv;
            return SG_IO_ERROR;
        }
        if (sc->pfd.rtnevents & APR_POLLOUT) {
            if ((o = sg_send_some(sc)) != SG_DONE) {
                return o;
            }
        }
        if (sc->pfd.rtnevents & (APR_POLLIN | APR_POLLHUP | APR_POLLERR)) {
            if ((o = sg_receive(sc, 0)) != SG_DONE) {
                return o;
            }
        }
    }
    return SG_DONE;
}

/* The worker failed after the response started: make the client see a
 * broken response (no final chunk) and close the connection. */
static void sg_abort_response(sg_conn *sc)
{
    request_rec *r = sc->r;

    apr_brigade_cleanup(sc->ob);
    r->no_cache = 1;
    if (r->main) {
        r->main->no_cache = 1;
    }
    APR_BRIGADE_INSERT_TAIL(sc->ob, ap_bucket_error_create(HTTP_BAD_GATEWAY,
                            NULL, sc->c->pool, sc->c->bucket_alloc));
    APR_BRIGADE_INSERT_TAIL(sc->ob, apr_bucket_eos_create(sc->c->bucket_alloc));
    ap_pass_brigade(r->output_filters, sc->ob);
    apr_brigade_cleanup(sc->ob);
    sc->c->keepalive = AP_CONN_CLOSE;
}

/* Map how the exchange ended to the client's response. */
static void sg_log_client_body_failure(request_rec *r, const sg_group *g,
                                       const char *what, apr_status_t rv,
                                       apr_off_t got)
{
    /* AP_FILTER_ERROR is no errno: httpd's input filter refused the body
     * (bad chunk, LimitRequestBody) and logged why itself */
    ap_log_rerror(APLOG_MARK, APLOG_INFO, rv == AP_FILTER_ERROR ? 0 : rv, r,
                  "SG0509: group %s: %s failed after %" APR_OFF_T_FMT
                  " bytes%s", g->name, what, got, rv == AP_FILTER_ERROR
                  ? " (httpd refused the body and answers the client)" : "");
}

/* A finished short response leaves now, not after httpd has looked for the
 * client's next request (ap_check_pipeline): the core output filter holds a
 * short response without a file bucket until the event MPM's write
 * completion, so the next request could never be there yet and every request
 * went back through the MPM's listener.  Connection filters only: the
 * request's have seen EOS. */
static void sg_flush_to_client(sg_conn *sc)
{
    if (sc->body_bytes > SG_FLUSH_AT_END_MAX) {
        return;
    }
    ap_fflush(sc->c->output_filters, sc->ob);
    apr_brigade_cleanup(sc->ob);
}

static int sg_conclude(sg_conn *sc, sg_outcome o)
{
    request_rec *r = sc->r;
    const sg_group *g = sc->group;

    sg_stderr_flush(sc);

    if (o == SG_CLIENT_GONE) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, sc->why_rv, r,
                      "SG0508: group %s: the client went away after %"
                      APR_OFF_T_FMT " response body bytes", g->name,
                      sc->body_bytes);
        sc->c->keepalive = AP_CONN_CLOSE;
        return OK;
    }
    if (o == SG_CLIENT_BODY) {
        sg_log_client_body_failure(r, g, sc->why, sc->why_rv, sc->body_sent);
        if (sc->headers_passed) {
            sg_abort_response(sc);
            return OK;
        }
        return ap_map_http_request_error(sc->why_rv, HTTP_BAD_REQUEST);
    }

    if (o == SG_DONE) {
        if (!sc->headers_done) {
            if (sc->protocol_status == SG_FCGI_OVERLOADED) {
                ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                              "SG0506: group %s: the worker refused the "
                              "request as overloaded (socket %s)", g->name,
                              g->socket_path);
                return HTTP_SERVICE_UNAVAILABLE;
            }
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0505: group %s: the worker ended the request "
                          "without complete response headers (%" APR_SIZE_T_FMT
                          " header bytes; socket %s)", g->name, sc->hlen,
                          g->socket_path);
            return HTTP_BAD_GATEWAY;
        }
        if (!sc->ignore_body) {
            APR_BRIGADE_INSERT_TAIL(sc->ob,
                                    apr_bucket_eos_create(sc->c->bucket_alloc));
        }
        if (!APR_BRIGADE_EMPTY(sc->ob)) {
            apr_status_t rv = ap_pass_brigade(r->output_filters, sc->ob);

            apr_brigade_cleanup(sc->ob);
            if (rv != APR_SUCCESS) {
                sc->c->keepalive = AP_CONN_CLOSE;
                return OK;
            }
            sg_flush_to_client(sc);
        }
        if (!sc->stdin_done || sc->stdin_broken) {
            /* answered before reading the whole request body */
            ap_discard_request_body(r);
        }
        return OK;
    }

    if (sc->headers_passed) {
        const char *what =
            o == SG_WORKER_EOF     ? "the worker closed the connection" :
            o == SG_WORKER_TIMEOUT ? apr_psprintf(r->pool, "the worker sent "
                                     "nothing for socket-timeout=%d s",
                                     g->socket_timeout) :
            o == SG_PROTOCOL       ? sc->why :
                                     "I/O error on the worker socket";

        ap_log_rerror(APLOG_MARK, APLOG_ERR, sc->why_rv, r,
                      "SG0510: group %s: response truncated after %"
                      APR_OFF_T_FMT " body bytes: %s before END_REQUEST "
                      "(socket %s); aborting the client connection",
                      g->name, sc->body_bytes, what, g->socket_path);
        sg_abort_response(sc);
        return OK;
    }

    switch (o) {
    case SG_WORKER_EOF:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, sc->why_rv, r,
                      "SG0502: group %s: the worker closed the connection "
                      "before sending response headers (socket %s); it "
                      "probably crashed or was killed, see its log lines",
                      g->name, g->socket_path);
        return HTTP_BAD_GATEWAY;
    case SG_WORKER_TIMEOUT:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0503: group %s: no response headers within "
                      "socket-timeout=%d s (socket %s)", g->name,
                      g->socket_timeout, g->socket_path);
        return HTTP_GATEWAY_TIME_OUT;
    case SG_BAD_HEADERS:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0504: group %s: bad response headers from the "
                      "worker: %s (socket %s)", g->name, sc->bad_why,
                      g->socket_path);
        return sc->bad_status;
    case SG_PROTOCOL:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "SG0511: group %s: the worker does not speak FastCGI "
                      "as expected: %s (socket %s)", g->name, sc->why,
                      g->socket_path);
        return HTTP_BAD_GATEWAY;
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, sc->why_rv, r,
                      "SG0512: group %s: %s failed (socket %s)", g->name,
                      sc->why ? sc->why : "talking to the worker",
                      g->socket_path);
        return HTTP_BAD_GATEWAY;
    }
}

/* Content-Length when the request declares one of at most SG_SMALL_BODY
 * bytes and no Transfer-Encoding, else -1. */
static apr_off_t sg_small_body_length(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    apr_off_t len;
    char *end;

    if (!cl || apr_table_get(r->headers_in, "Transfer-Encoding")
        || apr_strtoff(&len, cl, &end, 10) != APR_SUCCESS || *end
        || len <= 0 || len > SG_SMALL_BODY) {
        return -1;
    }
    return len;
}

/* Reads a short body whole through the input filters (so LimitRequestBody,
 * mod_reqtimeout and 100-continue apply as before) straight into its STDIN
 * record in params.  Such a request then goes in one send, may use a kept
 * connection and may be sent again if the worker turns it away; and a slow
 * client holds no worker slot meanwhile.  *got tells how much arrived. */
static apr_status_t sg_read_small_body(sg_conn *sc, apr_off_t *got)
{
    request_rec *r = sc->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, sc->c->bucket_alloc);
    char *buf = sc->small_body;
    apr_size_t len = sc->small_body_len;
    apr_size_t have = 0;
    apr_status_t rv = APR_SUCCESS;
    int eos = 0;

    while (!eos && rv == APR_SUCCESS) {
        apr_bucket *e;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, SG_SMALL_BODY);
        for (e = APR_BRIGADE_FIRST(bb);
             rv == APR_SUCCESS && e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(e)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                continue;
            }
            rv = apr_bucket_read(e, &data, &n, APR_BLOCK_READ);
            if (rv == APR_SUCCESS && n > len - have) {
                rv = APR_EGENERAL;  /* HTTP_IN passes no more than Content-Length */
            }
            if (rv == APR_SUCCESS) {
                memcpy(buf + have, data, n);
                have += n;
            }
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    *got = have;
    /* HTTP_IN reports a body cut short itself; the record's length is fixed */
    return rv == APR_SUCCESS && have != len ? APR_INCOMPLETE : rv;
}

/* ------------------------------------------------------------------------
 * The handler
 */

/* Per-exchange state, for the first attempt and for a retry: the request
 * goes out again from its first record, the response is parsed afresh. */
static void sg_conn_reset(sg_conn *sc)
{
    sc->outv[0].iov_base = (void *)sc->params;
    sc->outv[0].iov_len = sc->params_len;
    sc->outv_i = 0;
    sc->outv_n = 1;
    sc->outlen = sc->params_len;
    sc->sent = 0;
    sc->stdin_last_queued = sc->replayable;     /* empty STDIN is in params */
    sc->stdin_done = 0;
    sc->stdin_broken = 0;
    sc->body_sent = 0;

    sc->rhdr_have = 0;
    sc->rtype = 0;
    sc->rclen = 0;
    sc->rplen = 0;
    sc->in_content = 0;
    sc->rbody_have = 0;
    sc->end_seen = 0;
    sc->protocol_status = -1;
    sc->app_status = 0;
    sc->answered = 0;
    sc->waiting = 0;
    sc->received = 0;
    sc->leftover = 0;

    sc->hlen = 0;
    sc->line_len = 0;
    sc->in_name = 1;
    sc->prev_cr = 0;
    sc->headers_done = 0;
    sc->headers_passed = 0;
    sc->ignore_body = 0;
    sc->bad_status = 0;
    sc->bad_why = NULL;
    sc->body_bytes = 0;

    sc->elen = 0;
    sc->why = NULL;
    sc->why_rv = APR_SUCCESS;
    apr_brigade_cleanup(sc->ob);
}

/* Why the worker turned away, unrun, a request sent on an idle connection
 * (so it may go again on a new one), or NULL. */
static const char *sg_turned_away(const sg_conn *sc, sg_outcome o)
{
    /* A socket closed with bytes unread makes the kernel report ECONNRESET
     * to its peer, not EOF: the worker (gone, or closing) never read this
     * request, so never ran it.  Only a replayable request (no body, or a
     * short one read whole) can go again. */
    if (o == SG_WORKER_EOF && sc->replayable && sc->received == 0
        && APR_STATUS_IS_ECONNRESET(sc->why_rv)) {
        return "the worker closed the connection without reading the request";
    }
    /* It waited for a slot: the worker went away (exited, or crashed through
     * another request) before starting it. */
    if (o == SG_WORKER_EOF && sc->replayable && sc->waiting && !sc->answered) {
        return "the worker closed the connection while the request waited "
               "for a request slot";
    }
    if (!sc->pooled) {
        return NULL;
    }
    if (o == SG_NOT_SENT) {
        return "closed before the request was sent";
    }
    if (o == SG_DONE && sc->protocol_status == SG_FCGI_OVERLOADED
        && !sc->answered) {
        return "END_REQUEST with FCGI_OVERLOADED";
    }
    return NULL;
}

/* The connection can carry another request: the worker completed this
 * one, got all of it, said it keeps the connection, and sent nothing after
 * END_REQUEST. */
static int sg_reusable(const sg_conn *sc, sg_outcome o)
{
    return o == SG_DONE && sc->end_seen
           && sc->protocol_status == SG_FCGI_REQUEST_COMPLETE
           && sc->app_status == SG_APP_STATUS_KEPT
           && sc->stdin_done && !sc->stdin_broken
           && sc->rplen == 0 && !sc->leftover;
}

int sg_handler(request_rec *r)
{
    sg_dir_conf *dconf;
    sg_request_conf *rconf;
    const sg_alias *alias;
    const sg_group *g;
    sg_source source;
    const char *script_name, *path_info;
    const char *why;
    sg_conn *sc;
    sg_outcome o;
    int rc;

    if (!r->handler || strcmp(r->handler, SG_HANDLER)) {
        return DECLINED;
    }
    dconf = ap_get_module_config(r->per_dir_config, &swift_gateway_module);
    rconf = ap_get_module_config(r->request_config, &swift_gateway_module);
    alias = rconf ? rconf->alias : NULL;

    if ((rc = sg_resolve_group(r, dconf, alias, &g, &source)) != OK) {
        return rc;
    }
    if (alias) {
        if (g->program_real && strcmp(g->program_real, alias->program_real)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                          "SG0404: %s routes %s to process group %s, which "
                          "runs %s, but SwiftScriptAlias %s (%s) mounts %s "
                          "here; give the alias its own group or fix "
                          "program=", sg_describe_source(r, &source), r->uri,
                          g->name, g->program,
                          alias->len ? alias->path : "/", alias->defined_at,
                          alias->program);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        script_name = rconf->script_name;
        path_info = rconf->path_info;
    }
    else {
        script_name = sg_location_mount(r);
        path_info = r->uri + (sg_path_covers(script_name, r->uri)
                              ? strlen(script_name) : 0);
    }

    /* the response's type is the application's, not the file name's */
    r->content_type = NULL;
    r->content_encoding = NULL;
    r->content_languages = NULL;

    sc = apr_pcalloc(r->pool, sizeof(*sc));
    sc->r = r;
    sc->c = r->connection;
    sc->group = g;
    sc->fd = -1;
    sc->replayable = !ap_request_has_body(r);
    if (!sc->replayable) {
        apr_off_t len = sg_small_body_length(r);

        if (len > 0) {
            sc->small_body_len = (apr_size_t)len;
            sc->replayable = 1;
        }
    }

    sg_build_env(r, dconf, g, script_name, path_info);
    sg_build_params(sc);
    if (sc->small_body_len) {
        apr_off_t got = 0;
        apr_status_t rv = sg_read_small_body(sc, &got);

        if (rv != APR_SUCCESS) {
            sg_log_client_body_failure(r, g, "reading the request body from "
                                       "the client", rv, got);
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
    }

    /* the connection last: it holds a worker's request slot */
    if ((rc = sg_open(sc)) != OK) {
        return rc;
    }

    if (!sc->replayable) {
        sc->ib = apr_brigade_create(r->pool, sc->c->bucket_alloc);
        sc->ib_next = apr_brigade_create(r->pool, sc->c->bucket_alloc);
    }
    sc->iobuf = apr_palloc(r->pool, SG_RECV_BUF_SIZE);
    sc->ob = apr_brigade_create(r->pool, sc->c->bucket_alloc);

    sg_conn_reset(sc);
    o = sg_exchange(sc);
    if ((why = sg_turned_away(sc, o)) != NULL) {
        /* once, and on a new connection: no worker has run it */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, sc->why_rv, r,
                      "SG0515: group %s: the worker turned away the request "
                      "(%s); sending it again on a new connection",
                      g->name, why);
        sg_detach(sc);
        if ((rc = sg_connect(sc)) != OK) {
            return rc;
        }
        sg_conn_reset(sc);
        o = sg_exchange(sc);
    }

    /* back to the pool before the client has had the last bytes */
    sc->reusable = sg_reusable(sc, o);
    sg_detach(sc);
    return sg_conclude(sc, o);
}
