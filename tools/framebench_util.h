/*
 * framebench_util — command-line parsing shared by frameecho and framebench:
 * durations, sizes and socket addresses.
 */
#ifndef FRAMEPROXY_TOOLS_FRAMEBENCH_UTIL_H
#define FRAMEPROXY_TOOLS_FRAMEBENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "1.5s", "250ms", "100us", "10ns", "2m", "1h"; a bare number is seconds. */
int fbu_parse_duration(const char *text, int64_t *ns_out);
/* "4096", "64K", "64KiB", "16M", "16MiB", "1G" (binary multiples). */
int fbu_parse_size(const char *text, uint64_t *out);
/* Plain unsigned decimal, rejecting junk and overflow past `max`. */
int fbu_parse_u64(const char *text, uint64_t max, uint64_t *out);
/*
 * "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces, IPv4). HOST may be a
 * name (resolved once, first address). 0 or -errno (-EINVAL when malformed).
 */
int fbu_parse_addr(const char *text, struct sockaddr_storage *out,
		   socklen_t *len_out);
/* "127.0.0.1:8080" or "[::1]:8080" into buf; returns buf. */
const char *fbu_format_addr(const struct sockaddr *addr, char *buf,
			    size_t len);

#ifdef __cplusplus
}
#endif

#endif
