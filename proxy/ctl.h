/*
 * ctl — `frameproxy ctl`: a command-line client of the admin endpoint
 * (docs/ADMIN.md).
 *
 *   frameproxy ctl [-c FILE] [--admin ADDR] [--token-file FILE] [--json]
 *                  servers | drain L S | ready L S | maint L S |
 *                  weight L S N | stats | reload
 *
 * The address and the token come from the flags, else from the config
 * file's `admin` and `admin_token` (read with the same key parsers as the
 * proxy), else 127.0.0.1:9100. Plain blocking sockets with timeouts: this
 * runs in no shard. Tables for people; --json prints the server's JSON as
 * it came.
 *
 * Exit status: 0 done, 1 the endpoint answered an error or could not be
 * reached, 2 usage (bad arguments, an unreadable config or token file).
 */
#ifndef FRAMEPROXY_PROXY_CTL_H
#define FRAMEPROXY_PROXY_CTL_H

#define CTL_DEFAULT_ADMIN "127.0.0.1:9100"

/* argv[0] is "ctl". Returns the exit status. */
int ctl_main(int argc, char **argv);

#endif
