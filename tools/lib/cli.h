/*
 * cli — command-line parsing shared by the tools: durations, sizes and
 * socket addresses. Prefix cli_.
 */
#ifndef FRAMEPROXY_TOOLS_LIB_CLI_H
#define FRAMEPROXY_TOOLS_LIB_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "1.5s", "250ms", "100us", "10ns", "2m", "1h"; a bare number is seconds. */
int cli_parse_duration(const char *text, int64_t *ns_out);
/* "4096", "64K", "64KiB", "16M", "16MiB", "1G" (binary multiples). */
int cli_parse_size(const char *text, uint64_t *out);
/* Plain unsigned decimal, rejecting junk and overflow past `max`. */
int cli_parse_u64(const char *text, uint64_t max, uint64_t *out);
/*
 * The tools' addresses: poll_addr_parse (poll/poll.h) with port 0 allowed
 * and ":PORT" for all interfaces (IPv4): "HOST:PORT", "[V6]:PORT" or
 * ":PORT"; a name is resolved once. 0, -EINVAL when malformed (a port out
 * of range included), -ENOENT when the name does not resolve. The tools
 * print addresses with poll_addr_format.
 */
int cli_parse_addr(const char *text, struct sockaddr_storage *out,
		   socklen_t *len_out);

#ifdef __cplusplus
}
#endif

#endif
