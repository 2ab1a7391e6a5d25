/*
 * mod_swift_gateway: mod_wsgi-style daemon mode for Swift programs.
 *
 * This file: the module record and its hooks.  What each hook does lives
 * in the file named in mod_swift_gateway.h.
 */

#include "mod_swift_gateway.h"
#include "sg_body.h"
#include "sg_config.h"
#include "sg_config_check.h"
#include "sg_daemon.h"
#include "sg_handler.h"
#include "sg_pool.h"
#include "sg_route.h"

#include "http_request.h"
#include "mpm_common.h"

static void sg_register_hooks(apr_pool_t *p)
{
    static const char *const before_alias[] = {"mod_alias.c", NULL};
    static const char *const after_rewrite[] = {"mod_rewrite.c", NULL};
    static const char *const before_mime[] = {"mod_mime.c", NULL};

    ap_hook_pre_config(sg_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sg_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(sg_daemon_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sg_daemon_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sg_pool_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_monitor(sg_daemon_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(sg_translate_name, after_rewrite, before_alias,
                           APR_HOOK_MIDDLE);
    ap_hook_type_checker(sg_type_checker, NULL, before_mime, APR_HOOK_FIRST);
    /* an aliased request's file is the program: no handler may serve it */
    ap_hook_handler(sg_refuse_file_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* after every handler but httpd's default one (REALLY_LAST); a successor
     * constraint on core.c would also put it before core's REALLY_FIRST one */
    ap_hook_handler(sg_refuse_unserved, NULL, NULL, APR_HOOK_REALLY_LAST - 1);
    ap_hook_handler(sg_handler, NULL, NULL, APR_HOOK_MIDDLE);
    sg_body_register(p);
}

AP_DECLARE_MODULE(swift_gateway) = {
    STANDARD20_MODULE_STUFF,
    sg_create_dir_config,    /* create per-directory config structure */
    sg_merge_dir_config,     /* merge per-directory config structures */
    sg_create_server_config, /* create per-server config structure */
    sg_merge_server_config,  /* merge per-server config structures */
    sg_cmds,                 /* command table */
    sg_register_hooks,       /* register hooks */
    AP_MODULE_FLAG_NONE      /* flags */
};
