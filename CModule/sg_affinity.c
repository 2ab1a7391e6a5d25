/*
 * mod_swift_gateway: session affinity (Apache children).
 *
 * With affinity-cookie=NAME each worker also listens on a socket of its own
 * and its responses to requests that came another way set NAME to its route
 * (the worker does that: only it knows that it answered, the group socket's
 * peer being Apache's parent).  Here, the route of a request's cookie is
 * checked against the group's token and socket path; a valid one sends the
 * request to that worker's socket (sg_connect.c).  Nothing a client writes in
 * the cookie can do worse than name a worker of the same group: anything
 * else is ignored, at debug level.
 */

#include "sg_affinity.h"

#include "apr_sha1.h"
#include "apr_strings.h"

#include <stddef.h>
#include <string.h>

APLOG_USE_MODULE(swift_gateway);

#define SG_HMAC_BLOCK 64
/* What a route's MAC covers before the group's socket path. */
#define SG_ROUTE_LABEL "swift-gateway route"
/* The start of a worker socket's abstract name (after its NUL). */
#define SG_ROUTE_SOCKET_PREFIX "swift-gateway/"

/* HMAC-SHA1 (RFC 2104) of the route's label, the group's socket path and
 * the route's identity (pid and start), keyed with the group's token. */
static void sg_route_mac(const sg_group *g, const unsigned char *identity,
                         unsigned char mac[APR_SHA1_DIGESTSIZE])
{
    unsigned char key[SG_HMAC_BLOCK];
    unsigned char pad[SG_HMAC_BLOCK];
    unsigned char inner[APR_SHA1_DIGESTSIZE];
    apr_size_t key_len = strlen(g->token);
    apr_sha1_ctx_t ctx;
    int i;

    memset(key, 0, sizeof(key));
    if (key_len > SG_HMAC_BLOCK) {
        apr_sha1_init(&ctx);
        apr_sha1_update_binary(&ctx, (const unsigned char *)g->token,
                               (unsigned int)key_len);
        apr_sha1_final(key, &ctx);
    }
    else {
        memcpy(key, g->token, key_len);
    }

    for (i = 0; i < SG_HMAC_BLOCK; ++i) {
        pad[i] = key[i] ^ 0x36;
    }
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, pad, SG_HMAC_BLOCK);
    apr_sha1_update_binary(&ctx, (const unsigned char *)SG_ROUTE_LABEL,
                           sizeof(SG_ROUTE_LABEL)); /* with its NUL */
    apr_sha1_update_binary(&ctx, (const unsigned char *)g->socket_path,
                           (unsigned int)strlen(g->socket_path) + 1);
    apr_sha1_update_binary(&ctx, identity, SG_ROUTE_ID_BYTES);
    apr_sha1_final(inner, &ctx);

    for (i = 0; i < SG_HMAC_BLOCK; ++i) {
        pad[i] = key[i] ^ 0x5c;
    }
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, pad, SG_HMAC_BLOCK);
    apr_sha1_update_binary(&ctx, inner, sizeof(inner));
    apr_sha1_final(mac, &ctx);
}

/* One base64url character's 6 bits, or -1. */
static int sg_base64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes exactly SG_ROUTE_CHARS characters into SG_ROUTE_BYTES bytes. */
static int sg_route_decode(const char *text, unsigned char *out)
{
    int i;

    for (i = 0; i < SG_ROUTE_CHARS; i += 4) {
        int a = sg_base64url_value(text[i]);
        int b = sg_base64url_value(text[i + 1]);
        int c = sg_base64url_value(text[i + 2]);
        int d = sg_base64url_value(text[i + 3]);
        unsigned char *o = out + i / 4 * 3;

        if (a < 0 || b < 0 || c < 0 || d < 0) {
            return 0;
        }
        o[0] = (unsigned char)(a << 2 | b >> 4);
        o[1] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
        o[2] = (unsigned char)((c & 0x03) << 6 | d);
    }
    return 1;
}

int sg_affinity_verify(const sg_group *g, const char *text, apr_size_t len,
                       sg_route *route)
{
    unsigned char bytes[SG_ROUTE_BYTES];
    unsigned char mac[APR_SHA1_DIGESTSIZE];
    unsigned char differ = 0;
    apr_uint64_t start = 0;
    apr_uint32_t pid = 0;
    int i;

    if (len != SG_ROUTE_CHARS || !g->token || !g->socket_path
        || !sg_route_decode(text, bytes)) {
        return 0;
    }
    sg_route_mac(g, bytes, mac);
    for (i = 0; i < SG_ROUTE_BYTES - SG_ROUTE_ID_BYTES; ++i) {
        differ |= mac[i] ^ bytes[SG_ROUTE_ID_BYTES + i]; /* constant time */
    }
    for (i = 0; i < 4; ++i) {
        pid = pid << 8 | bytes[i];
    }
    for (i = 4; i < SG_ROUTE_ID_BYTES; ++i) {
        start = start << 8 | bytes[i];
    }
    if (differ || pid == 0 || pid > 0x7fffffff) {
        return 0;
    }
    route->pid = (pid_t)pid;
    route->start = start;
    memcpy(route->text, text, SG_ROUTE_CHARS);
    route->text[SG_ROUTE_CHARS] = '\0';
    return 1;
}

/* The next "name=value" of a Cookie header from *at; 0 at its end.  httpd
 * joins repeated Cookie headers with ", ", HTTP/2 with "; ": both end one. */
static int sg_next_cookie(const char **at, const char **name,
                          apr_size_t *name_len, const char **value,
                          apr_size_t *value_len)
{
    const char *s = *at;
    const char *eq;

    while (*s == ' ' || *s == '\t' || *s == ';' || *s == ',') {
        ++s;
    }
    if (!*s) {
        return 0;
    }
    *name = s;
    s += strcspn(s, "=;,");
    eq = s;
    *name_len = (apr_size_t)(eq - *name);
    while (
        *name_len
        && ((*name)[*name_len - 1] == ' ' || (*name)[*name_len - 1] == '\t')) {
        --*name_len;
    }
    if (*eq == '=') {
        s = eq + 1;
        while (*s == ' ' || *s == '\t') {
            ++s;
        }
        *value = s;
        s += strcspn(s, ";,");
        *value_len = (apr_size_t)(s - *value);
        while (*value_len
               && ((*value)[*value_len - 1] == ' '
                   || (*value)[*value_len - 1] == '\t')) {
            --*value_len;
        }
        if (*value_len >= 2 && **value == '"'
            && (*value)[*value_len - 1] == '"') {
            ++*value;
            *value_len -= 2;
        }
    }
    else {
        *value = s;
        *value_len = 0;
    }
    *at = s;
    return 1;
}

const sg_route *sg_affinity_route(request_rec *r, const sg_group *g)
{
    const char *at = apr_table_get(r->headers_in, "Cookie");
    apr_size_t want = strlen(g->affinity_cookie);
    const char *name, *value;
    apr_size_t name_len, value_len;
    int ignored = 0;

    if (!at) {
        return NULL;
    }
    while (sg_next_cookie(&at, &name, &name_len, &value, &value_len)) {
        sg_route *route;

        if (name_len != want || memcmp(name, g->affinity_cookie, want)) {
            continue;
        }
        route = apr_palloc(r->pool, sizeof(*route));
        if (sg_affinity_verify(g, value, value_len, route)) {
            return route;
        }
        ++ignored;
    }
    if (ignored) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "SG0640: group %s: ignoring %d %s cookie(s) that are "
                      "no route of this group (forged, cut, of another "
                      "group, or of an earlier run); any worker serves the "
                      "request and sets a new one",
                      g->name, ignored, g->affinity_cookie);
    }
    return NULL;
}

socklen_t sg_affinity_address(const sg_route *route, struct sockaddr_un *sa)
{
    apr_size_t prefix = sizeof(SG_ROUTE_SOCKET_PREFIX) - 1;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    /* sun_path[0] stays NUL: the abstract namespace */
    memcpy(sa->sun_path + 1, SG_ROUTE_SOCKET_PREFIX, prefix);
    memcpy(sa->sun_path + 1 + prefix, route->text, SG_ROUTE_CHARS);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + prefix
                       + SG_ROUTE_CHARS);
}

int sg_affinity_cookie_name_ok(const char *name)
{
    const char *c;

    if (!*name) {
        return 0;
    }
    for (c = name; *c; ++c) {
        /* RFC 6265 cookie-name = token (RFC 2616): no CTL, no separator */
        if (*c <= 0x20 || *c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *c)) {
            return 0;
        }
    }
    return 1;
}
