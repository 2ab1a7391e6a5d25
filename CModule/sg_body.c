/*
 * mod_swift_gateway: a request body read ahead of the worker (Apache
 * children).
 *
 * A body streamed to the worker as it arrives holds one of the worker's
 * request slots for as long as the client takes to send it.  Up to
 * SG_BODY_AHEAD of it is read first, before a connection is taken, and
 * handed out again by an input filter in front of the request's others;
 * what follows streams as before.
 */

#include "sg_body.h"

#include "util_filter.h"

APLOG_USE_MODULE(swift_gateway);

#define SG_BODY_FILTER "SWIFT_GATEWAY_BODY_AHEAD"

static ap_filter_rec_t *sg_body_filter;

typedef struct {
    apr_bucket_brigade *ahead; /* read, not handed out yet (EOS included
                                * once the body ended) */
} sg_body_ctx;

/* Hands out what was read ahead, then reads on through the next filters. */
static apr_status_t sg_body_ahead_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                         ap_input_mode_t mode,
                                         apr_read_type_e block,
                                         apr_off_t readbytes)
{
    sg_body_ctx *ctx = f->ctx;
    apr_bucket *after;
    apr_status_t rv;

    if (APR_BRIGADE_EMPTY(ctx->ahead)) {
        ap_filter_t *next = f->next;

        ap_remove_input_filter(f);
        return ap_get_brigade(next, bb, mode, block, readbytes);
    }
    if (mode != AP_MODE_READBYTES) {
        return APR_ENOTIMPL; /* the gateway reads bodies by bytes only */
    }
    rv = apr_brigade_partition(ctx->ahead, readbytes, &after);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        return rv;
    }
    while (!APR_BRIGADE_EMPTY(ctx->ahead)
           && APR_BRIGADE_FIRST(ctx->ahead) != after) {
        apr_bucket *e = APR_BRIGADE_FIRST(ctx->ahead);

        APR_BUCKET_REMOVE(e);
        APR_BRIGADE_INSERT_TAIL(bb, e);
    }
    return APR_SUCCESS;
}

void sg_body_register(apr_pool_t *p)
{
    (void)p;
    /* before every other request input filter (mod_deflate's INFLATE is
     * AP_FTYPE_RESOURCE - 1): what it hands out went through them */
    sg_body_filter = ap_register_input_filter(SG_BODY_FILTER,
                                              sg_body_ahead_filter, NULL,
                                              AP_FTYPE_RESOURCE - 9);
}

/* Moves the buckets of `from` to the end of ctx's, each read (a socket or
 * pipe bucket becomes data) and set aside in the request's pool; counts
 * their bytes and tells whether the body ended. */
static apr_status_t sg_keep(request_rec *r, sg_body_ctx *ctx,
                            apr_bucket_brigade *from, apr_off_t *got, int *eos)
{
    while (!APR_BRIGADE_EMPTY(from)) {
        apr_bucket *e = APR_BRIGADE_FIRST(from);
        apr_status_t rv;

        if (APR_BUCKET_IS_EOS(e)) {
            *eos = 1;
        }
        else if (!APR_BUCKET_IS_METADATA(e)) {
            const char *data;
            apr_size_t n;

            if ((rv = apr_bucket_read(e, &data, &n, APR_BLOCK_READ))
                != APR_SUCCESS) {
                return rv;
            }
            *got += n;
        }
        rv = apr_bucket_setaside(e, r->pool);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOTIMPL(rv)) {
            return rv;
        }
        APR_BUCKET_REMOVE(e);
        APR_BRIGADE_INSERT_TAIL(ctx->ahead, e);
    }
    return APR_SUCCESS;
}

apr_status_t sg_body_read_ahead(request_rec *r, apr_off_t limit, apr_off_t *got)
{
    conn_rec *c = r->connection;
    sg_body_ctx *ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    apr_bucket_brigade *bb = apr_brigade_create(r->pool, c->bucket_alloc);
    apr_status_t rv = APR_SUCCESS;
    int eos = 0;

    *got = 0;
    ctx->ahead = apr_brigade_create(r->pool, c->bucket_alloc);
    while (!eos && *got < limit && rv == APR_SUCCESS) {
        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, limit - *got);
        if (rv == APR_SUCCESS && APR_BRIGADE_EMPTY(bb)) {
            break; /* nothing, yet no error: the rest streams */
        }
        if (rv == APR_SUCCESS) {
            rv = sg_keep(r, ctx, bb, got, &eos);
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    if (rv == APR_SUCCESS && !APR_BRIGADE_EMPTY(ctx->ahead)) {
        ap_add_input_filter_handle(sg_body_filter, ctx, r, c);
    }
    return rv;
}
