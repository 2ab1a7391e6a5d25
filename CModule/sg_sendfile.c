/*
 * mod_swift_gateway: X-Sendfile (Apache children).
 *
 * A worker that answers 200 with "X-Sendfile: /path" hands the body to
 * Apache: the exchange with the worker ends as usual (END_REQUEST, its body
 * discarded, the connection released or kept), then the file goes out
 * through the output filters the way httpd's default handler sends one, so
 * that Range, conditional requests, Content-Length, sendfile/mmap and
 * mod_mime's Content-Type all apply.  Only where SwiftSendfile is On, and
 * only files whose real path lies within the real path of a
 * SwiftSendfilePath directory: anything else is refused and logged.
 */

#include "sg_config.h"
#include "sg_sendfile.h"

#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_buckets.h"
#include "apr_file_info.h"
#include "apr_file_io.h"
#include "apr_strings.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

const char *sg_sendfile_claim(request_rec *r)
{
    const sg_dir_conf *dconf = ap_get_module_config(r->per_dir_config,
                                                    &swift_gateway_module);
    /* httpd's CGI header scanner files headers it does not know under
     * err_headers_out */
    const char *path = apr_table_get(r->err_headers_out, SG_SENDFILE_HEADER);

    if (!path) {
        path = apr_table_get(r->headers_out, SG_SENDFILE_HEADER);
    }
    if (!path) {
        return NULL;
    }
    /* a server path never reaches the client, honoured or not */
    apr_table_unset(r->err_headers_out, SG_SENDFILE_HEADER);
    apr_table_unset(r->headers_out, SG_SENDFILE_HEADER);
    if (dconf->sendfile != 1 || r->status != HTTP_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "SG0533: X-Sendfile %s dropped: %s", path,
                      dconf->sendfile != 1
                          ? "SwiftSendfile is not On here"
                          : apr_psprintf(r->pool,
                                         "the application answered %d, not "
                                         "200",
                                         r->status));
        return NULL;
    }
    return path;
}

/* Does path name a parent directory anywhere ("..", "/../", "/..")? */
static int sg_has_dotdot(const char *path)
{
    const char *p = path;

    while ((p = strstr(p, "..")) != NULL) {
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) {
            return 1;
        }
        p += 2;
    }
    return 0;
}

/* realpath() into the pool, or NULL with errno set. */
static const char *sg_realpath(apr_pool_t *p, const char *path)
{
    char *resolved = realpath(path, NULL);
    const char *copy;

    if (!resolved) {
        return NULL;
    }
    copy = apr_pstrdup(p, resolved);
    free(resolved);
    return copy;
}

/* Is real (a resolved path) inside one of the resolved allowed directories;
 * with lexical set, is path (as written) inside one of them as written? */
static int sg_allowed(request_rec *r, const apr_array_header_t *dirs,
                      const char *path, int lexical)
{
    int i;

    for (i = 0; dirs && i < dirs->nelts; ++i) {
        const char *dir = APR_ARRAY_IDX(dirs, i, const char *);
        const char *real_dir = lexical ? dir : sg_realpath(r->pool, dir);

        if (real_dir && sg_path_covers(real_dir, path)) {
            return 1;
        }
    }
    return 0;
}

static int sg_refuse_path(request_rec *r, const char *path, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "SG0531: X-Sendfile %s refused: %s; answering 500", path,
                  why);
    return HTTP_INTERNAL_SERVER_ERROR;
}

static int sg_unsendable(request_rec *r, const char *path, apr_status_t rv,
                         const char *what, int status)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                  "SG0532: X-Sendfile %s: %s; answering %d", path, what,
                  status);
    return status;
}

/* The path resolved and checked: the real path of a regular file within a
 * SwiftSendfilePath directory, with its finfo; or a handler status. */
static int sg_resolve(request_rec *r, const char *path, const char **real,
                      apr_finfo_t *finfo)
{
    const sg_dir_conf *dconf = ap_get_module_config(r->per_dir_config,
                                                    &swift_gateway_module);
    const apr_array_header_t *dirs = dconf->sendfile_paths;
    apr_status_t rv;

    if (path[0] != '/') {
        return sg_refuse_path(r, path, "not an absolute path");
    }
    if (sg_has_dotdot(path)) {
        return sg_refuse_path(r, path, "a '..' segment in the path");
    }
    if (!dirs || !dirs->nelts) {
        return sg_refuse_path(r, path,
                              "no SwiftSendfilePath directory is "
                              "configured for this location");
    }
    if (!(*real = sg_realpath(r->pool, path))) {
        rv = errno;
        if ((rv == ENOENT || rv == ENOTDIR) && sg_allowed(r, dirs, path, 1)) {
            return sg_unsendable(r, path, rv, "no such file", HTTP_NOT_FOUND);
        }
        if (rv == ENOENT || rv == ENOTDIR) {
            return sg_refuse_path(r, path,
                                  "no such file, and not within a "
                                  "SwiftSendfilePath directory");
        }
        return sg_unsendable(r, path, rv, "cannot resolve the path",
                             HTTP_INTERNAL_SERVER_ERROR);
    }
    if (!sg_allowed(r, dirs, *real, 0)) {
        return sg_refuse_path(r, path,
                              apr_psprintf(r->pool,
                                           "its real path %s is not within "
                                           "a SwiftSendfilePath directory",
                                           *real));
    }
    rv = apr_stat(finfo, *real, APR_FINFO_NORM, r->pool);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_INCOMPLETE(rv)) {
        return sg_unsendable(r, path, rv, "cannot stat the file",
                             HTTP_INTERNAL_SERVER_ERROR);
    }
    if (finfo->filetype != APR_REG) {
        return sg_unsendable(r, path, 0, "not a regular file",
                             HTTP_INTERNAL_SERVER_ERROR);
    }
    return OK;
}

/* The Content-Type mod_mime (and any other type checker) gives the file,
 * unless the application set one, which wins.  The type checkers run on a
 * copy of the request naming the file, without the gateway's note, so that
 * the gateway's own type checker declines it. */
static void sg_set_file_type(request_rec *r)
{
    request_rec *fr;

    if (r->content_type) {
        return;
    }
    fr = apr_pmemdup(r->pool, r, sizeof(*r));
    fr->request_config = ap_create_request_config(r->pool);
    fr->handler = NULL;
    fr->content_encoding = NULL;
    fr->content_languages = NULL;
    if (ap_run_type_checker(fr) == OK || fr->content_type) {
        if (fr->content_type) {
            ap_set_content_type(r, fr->content_type);
        }
        r->content_encoding = fr->content_encoding;
        r->content_languages = fr->content_languages;
    }
}

/* Whether the file opened is the one checked: a directory on the way
 * replaced by a symbolic link between the check and the open would lead
 * elsewhere.  Where /proc does not tell, the check stands. */
static int sg_opened_as_checked(request_rec *r, apr_file_t *fd,
                                const char *path, const char *real)
{
    apr_os_file_t os_fd;
    char link[64], target[PATH_MAX];
    ssize_t n;

    if (apr_os_file_get(&os_fd, fd) != APR_SUCCESS) {
        return 1;
    }
    apr_snprintf(link, sizeof(link), "/proc/self/fd/%d", os_fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        return 1;
    }
    target[n] = '\0';
    if (strcmp(target, real)) {
        sg_refuse_path(r, path,
                       apr_psprintf(r->pool,
                                    "it was replaced while being opened and "
                                    "led to %s",
                                    target));
        return 0;
    }
    return 1;
}

int sg_sendfile_send(request_rec *r, const char *path)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    conn_rec *c = r->connection;
    const char *real = NULL;
    apr_finfo_t finfo;
    apr_file_t *fd;
    apr_bucket_brigade *bb;
    apr_status_t rv;
    int rc;

    if ((rc = sg_resolve(r, path, &real, &finfo)) != OK) {
        return rc;
    }
    rv = apr_file_open(&fd, real,
                       APR_FOPEN_READ | APR_FOPEN_BINARY
                           | AP_SENDFILE_ENABLED(d->enable_sendfile),
                       0, r->pool);
    if (rv != APR_SUCCESS) {
        return sg_unsendable(r, path, rv, "cannot open the file",
                             APR_STATUS_IS_EACCES(rv)
                                 ? HTTP_FORBIDDEN
                                 : HTTP_INTERNAL_SERVER_ERROR);
    }
    if (!sg_opened_as_checked(r, fd, path, real)) {
        apr_file_close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "SG0530: X-Sendfile %s: sending %s (%" APR_OFF_T_FMT
                  " bytes)",
                  path, real, finfo.size);

    r->filename = apr_pstrdup(r->pool, real);
    r->canonical_filename = r->filename;
    r->finfo = finfo;
    sg_set_file_type(r);
    /* the file's validators and length, not the application's */
    apr_table_unset(r->headers_out, "ETag");
    apr_table_unset(r->err_headers_out, "ETag");
    apr_table_unset(r->headers_out, "Last-Modified");
    ap_update_mtime(r, finfo.mtime);
    ap_set_last_modified(r);
    ap_set_etag_fd(r, fd);
    ap_set_accept_ranges(r);
    ap_set_content_length(r, finfo.size);

    bb = apr_brigade_create(r->pool, c->bucket_alloc);
    if ((rc = ap_meets_conditions(r)) != OK) {
        apr_file_close(fd);
        r->status = rc;
    }
    else {
        apr_bucket *e = apr_brigade_insert_file(bb, fd, 0, finfo.size, r->pool);

#if APR_HAS_MMAP
        if (d->enable_mmap == ENABLE_MMAP_OFF) {
            (void)apr_bucket_file_enable_mmap(e, 0);
        }
#endif
        if (d->read_buf_size) {
            apr_bucket_file_set_buf_size(e, d->read_buf_size);
        }
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(c->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv != APR_SUCCESS && !c->aborted && r->status == HTTP_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r,
                      "SG0534: X-Sendfile %s: passing the file failed", path);
        return AP_FILTER_ERROR;
    }
    return OK;
}
