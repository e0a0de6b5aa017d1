#include "shard/sockets.h"

#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "poll/poll.h"

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

static int *slot_of(shard_sockets *s, uint32_t shard, uint32_t listener)
{
	return &s->fds[(size_t)shard * s->listener_count + listener];
}

/* Every shard's socket for one listener, all on the same port. */
static int open_group(shard_sockets *s, const shard_listen_spec *spec,
		      uint32_t listener)
{
	struct sockaddr_storage *addr = &s->bound[listener];
	unsigned flags = POLL_LISTEN_REUSEPORT;

	memcpy(addr, &spec->addr, spec->addr_len);
	s->bound_len[listener] = spec->addr_len;
	if (spec->addr.ss_family == AF_INET6)
		flags |= POLL_LISTEN_V6ONLY;
	for (uint32_t i = 0; i < s->shards; i++) {
		int fd = poll_listen_socket((struct sockaddr *)addr,
					    s->bound_len[listener],
					    spec->backlog, flags);
		if (fd < 0)
			return fd;
		*slot_of(s, i, listener) = fd;
		if (i > 0)
			continue;
		/* Port 0: the rest of the group joins the port the kernel chose. */
		socklen_t len = sizeof(*addr);
		if (getsockname(fd, (struct sockaddr *)addr, &len) < 0)
			return -errno;
		s->bound_len[listener] = len;
	}
	return 0;
}

int sockets_open(shard_sockets *s, const shard_listen_spec *listeners,
		 uint32_t listener_count, uint32_t shards, uint32_t *failed)
{
	size_t n = (size_t)shards * listener_count;

	*s = (shard_sockets){.shards = shards, .listener_count = listener_count};
	s->fds = malloc(n * sizeof(*s->fds));
	s->bound = calloc(listener_count, sizeof(*s->bound));
	s->bound_len = calloc(listener_count, sizeof(*s->bound_len));
	if (!s->fds || !s->bound || !s->bound_len) {
		sockets_close(s);
		*failed = listener_count;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		s->fds[i] = -1;
	for (uint32_t l = 0; l < listener_count; l++) {
		int rc = open_group(s, &listeners[l], l);
		if (rc == 0)
			continue;
		*failed = l;
		sockets_close(s);
		return rc;
	}
	return 0;
}

/* Same family, address and (unless the spec asks for any, port 0) port. */
static bool same_endpoint(const struct sockaddr_storage *spec,
			  const struct sockaddr_storage *got)
{
	if (spec->ss_family != got->ss_family)
		return false;
	if (spec->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)spec, *b = (const void *)got;
		return a->sin_addr.s_addr == b->sin_addr.s_addr &&
		       (a->sin_port == 0 || a->sin_port == b->sin_port);
	}
	if (spec->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)spec, *b = (const void *)got;
		return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0 &&
		       (a->sin6_port == 0 || a->sin6_port == b->sin6_port);
	}
	return false;
}

/* A listening stream socket on the spec's endpoint; its address to *got. */
static bool adoptable(int fd, const shard_listen_spec *spec,
		      struct sockaddr_storage *got, socklen_t *got_len)
{
	int listening = 0, type = 0;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening)
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return false;
	*got_len = sizeof(*got);
	if (getsockname(fd, (struct sockaddr *)got, got_len) < 0)
		return false;
	return same_endpoint(&spec->addr, got);
}

int sockets_adopt(shard_sockets *s, const shard_listen_spec *listeners,
		  uint32_t listener_count, uint32_t shards, const int *fds,
		  uint32_t fd_shards, uint32_t fd_listeners, char *why,
		  size_t why_len)
{
	size_t n = (size_t)shards * listener_count;

	*s = (shard_sockets){0};
	if (fd_shards != shards || fd_listeners != listener_count) {
		snprintf(why, why_len, "the old supervisor has %u shards and %u "
			 "listeners, this configuration %u and %u (restart needed)",
			 fd_shards, fd_listeners, shards, listener_count);
		for (size_t i = 0; i < (size_t)fd_shards * fd_listeners; i++)
			close(fds[i]);
		return -EINVAL;
	}
	*s = (shard_sockets){.shards = shards, .listener_count = listener_count};
	s->fds = malloc(n * sizeof(*s->fds));
	s->bound = calloc(listener_count, sizeof(*s->bound));
	s->bound_len = calloc(listener_count, sizeof(*s->bound_len));
	if (!s->fds || !s->bound || !s->bound_len) {
		sockets_close(s);
		snprintf(why, why_len, "out of memory");
		return -ENOMEM;
	}
	memcpy(s->fds, fds, n * sizeof(*s->fds));
	for (size_t i = 0; i < n; i++) {
		uint32_t l = (uint32_t)(i % listener_count);
		struct sockaddr_storage got;
		socklen_t got_len;
		if (!adoptable(s->fds[i], &listeners[l], &got, &got_len) ||
		    (i >= listener_count && !same_endpoint(&s->bound[l], &got))) {
			snprintf(why, why_len, "listener %s: the inherited socket is not "
				 "its listen address (restart needed)", listeners[l].name);
			sockets_close(s);
			return -EINVAL;
		}
		s->bound[l] = got;
		s->bound_len[l] = got_len;
	}
	return 0;
}

void sockets_close(shard_sockets *s)
{
	size_t n = (size_t)s->shards * s->listener_count;

	for (size_t i = 0; s->fds && i < n; i++)
		if (s->fds[i] >= 0)
			close(s->fds[i]);
	free(s->fds);
	free(s->bound);
	free(s->bound_len);
	*s = (shard_sockets){0};
}

const int *sockets_of(const shard_sockets *s, uint32_t shard)
{
	return &s->fds[(size_t)shard * s->listener_count];
}

void sockets_close_others(shard_sockets *s, uint32_t keep)
{
	for (uint32_t i = 0; i < s->shards; i++) {
		if (i == keep)
			continue;
		for (uint32_t l = 0; l < s->listener_count; l++) {
			int *fd = slot_of(s, i, l);
			if (*fd >= 0)
				close(*fd);
			*fd = -1;
		}
	}
}

/*
 * The program returns an index into the reuseport group, whose order is the
 * order the sockets joined it: shard order. With shard i on CPU i mod cpus,
 * "cpu mod shards" is the shard pinned on the receiving CPU when shards ==
 * cpus; with more shards than CPUs only the first `cpus` get steered
 * traffic, so the supervisor only allows it when shards <= cpus.
 */
int sockets_steer_by_cpu(shard_sockets *s)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 (uint32_t)(SKF_AD_OFF + SKF_AD_CPU)),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, s->shards),
		BPF_STMT(BPF_RET | BPF_A, 0),
	};
	struct sock_fprog prog = {
		.len = sizeof(code) / sizeof(code[0]),
		.filter = code,
	};

	for (uint32_t l = 0; l < s->listener_count; l++) {
		if (setsockopt(*slot_of(s, 0, l), SOL_SOCKET,
			       SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) < 0)
			return -errno;
	}
	return 0;
}
