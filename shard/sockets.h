/*
 * The supervisor's listening sockets: for every listener, one SO_REUSEPORT
 * socket per shard, all bound before any shard exists and kept open by the
 * supervisor for its whole life. A shard that dies leaves its socket (and
 * the connections queued on it) to its replacement.
 */
#ifndef FRAMEPROXY_SHARD_SOCKETS_H
#define FRAMEPROXY_SHARD_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "shard/shard.h"

typedef struct shard_sockets {
	int *fds;                     /* [shard * listener_count + listener] */
	uint32_t shards;
	uint32_t listener_count;
	struct sockaddr_storage *bound; /* per listener, the port 0 resolved */
	socklen_t *bound_len;
} shard_sockets;

/*
 * Bind them all. A listener on port 0 gets its port from the first socket,
 * and the others join that port. On failure everything is closed, -errno
 * is returned and *failed is the listener that could not be bound, or
 * listener_count when memory ran out before any was tried (-ENOMEM).
 */
int sockets_open(shard_sockets *s, const shard_listen_spec *listeners,
		 uint32_t listener_count, uint32_t shards, uint32_t *failed);
/*
 * Binary upgrade: take over the sockets the old supervisor opened (`fds`,
 * laid out as `fds` above, fd_shards x fd_listeners), after checking that
 * they are what the configuration names: as many, listening, on each
 * listener's address. 0, or -errno and one reason in `why`; on failure
 * they are closed.
 */
int sockets_adopt(shard_sockets *s, const shard_listen_spec *listeners,
		  uint32_t listener_count, uint32_t shards, const int *fds,
		  uint32_t fd_shards, uint32_t fd_listeners, char *why,
		  size_t why_len);
void sockets_close(shard_sockets *s);
/* Shard i's sockets, one per listener. */
const int *sockets_of(const shard_sockets *s, uint32_t shard);
/* In a child: close every socket but shard `keep`'s. */
void sockets_close_others(shard_sockets *s, uint32_t keep);
/*
 * SO_ATTACH_REUSEPORT_CBPF on every listener's group: a connection goes to
 * the socket of the shard pinned on the CPU that received it (shard i is on
 * CPU i mod cpus). -errno when the kernel refuses.
 */
int sockets_steer_by_cpu(shard_sockets *s);


#endif
