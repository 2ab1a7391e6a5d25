/*
 * mod_swift_gateway: the groups' listening sockets and their directory,
 * made by Apache's parent (root) for its User, mode 0600 in a 0700
 * directory, and the sockets of former Apache parents removed.
 */

#include "sg_sockets.h"

#include "http_core.h"
#include "unixd.h"

#include "apr_strings.h"
#include "apr_file_info.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

APLOG_USE_MODULE(swift_gateway);

static int sg_am_root(void)
{
    return geteuid() == 0;
}

const char *sg_socket_prefix(apr_pool_t *p, server_rec *s)
{
    sg_server_conf *sconf = ap_get_module_config(s->module_config,
                                                 &swift_gateway_module);

    if (sconf->socket_prefix) {
        return sconf->socket_prefix;
    }
    return ap_runtime_dir_relative(p, "swift-gateway");
}

int sg_socket_dir_make(apr_pool_t *p, server_rec *s, const char *dir)
{
    struct stat st;
    int fd;
    uid_t owner = sg_am_root() ? ap_unixd_config.user_id : geteuid();
    gid_t group = sg_am_root() ? ap_unixd_config.group_id : getegid();

    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        char *parent = apr_pstrdup(p, dir), *slash = strrchr(parent, '/');
        apr_status_t rv = APR_EGENERAL;

        if (errno == ENOENT && slash && slash != parent) {
            *slash = '\0';
            rv = apr_dir_make_recursive(parent,
                                        APR_FPROT_UREAD | APR_FPROT_UWRITE
                                            | APR_FPROT_UEXECUTE
                                            | APR_FPROT_GREAD
                                            | APR_FPROT_GEXECUTE
                                            | APR_FPROT_WREAD
                                            | APR_FPROT_WEXECUTE,
                                        p);
        }
        if (rv != APR_SUCCESS || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                         "SG0201: cannot create the socket directory %s; "
                         "create it or fix SwiftSocketPrefix",
                         dir);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0202: socket directory %s is not a directory (or is a "
                     "symbolic link); remove it or fix SwiftSocketPrefix",
                     dir);
        if (fd >= 0) {
            close(fd);
        }
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (st.st_uid != 0 && st.st_uid != owner && st.st_uid != geteuid()) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "SG0202: socket directory %s belongs to uid %ld, neither "
                     "root nor Apache's User; refusing to use it (remove it or "
                     "fix SwiftSocketPrefix)",
                     dir, (long)st.st_uid);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if ((sg_am_root() && fchown(fd, owner, group) != 0)
        || fchmod(fd, 0700) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0203: cannot give socket directory %s mode 0700 and "
                     "owner uid %ld",
                     dir, (long)owner);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    close(fd);
    return OK;
}

/* Remove "<pid>.<generation>.<group>.sock" files of Apache parents that no
 * longer exist (killed without cleanup). */
void sg_socket_remove_stale(apr_pool_t *p, server_rec *s, const char *dir)
{
    DIR *dh = opendir(dir);
    struct dirent *de;

    if (!dh) {
        return;
    }
    while ((de = readdir(dh)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        apr_size_t n = strlen(de->d_name);

        if (end == de->d_name || *end != '.' || pid <= 0
            || pid == (long)getpid() || n < 5
            || strcmp(de->d_name + n - 5, ".sock")) {
            continue;
        }
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            const char *path = apr_pstrcat(p, dir, "/", de->d_name, NULL);

            if (unlink(path) == 0) {
                ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                             "SG0218: removed stale socket %s of a former "
                             "Apache (pid %ld)",
                             path, pid);
            }
        }
    }
    closedir(dh);
}

int sg_socket_create(server_rec *s, const sg_group *g, int *listen_fd)
{
    struct sockaddr_un sa;
    const char *path = g->socket_path;
    mode_t omask;
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "SG0204: group %s: socket path %s is too long for a Unix "
                     "socket; use a shorter SwiftSocketPrefix",
                     g->name, path);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    apr_cpystrn(sa.sun_path, path, sizeof(sa.sun_path));

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0205: group %s: cannot create a Unix socket", g->name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, errno, s,
                     "SG0219: group %s: cannot remove socket %s", g->name,
                     path);
    }
    omask = umask(0077);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(omask);
    if (rc != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0206: group %s: cannot bind socket %s", g->name, path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (chmod(path, 0600) != 0
        || (sg_am_root()
            && chown(path, ap_unixd_config.user_id, ap_unixd_config.group_id)
                   != 0)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0207: group %s: cannot give socket %s mode 0600 and "
                     "Apache's User as owner",
                     g->name, path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (listen(fd, g->listen_backlog) != 0) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                     "SG0208: group %s: cannot listen on socket %s", g->name,
                     path);
        close(fd);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    *listen_fd = fd;
    return OK;
}
