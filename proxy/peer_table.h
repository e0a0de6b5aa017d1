/*
 * Connections per client address, for max_per_client. An open-addressing
 * table keyed by the IP (port ignored; IPv4-mapped IPv6 folded to IPv4), so
 * a check on accept is one probe sequence and no allocation per connection.
 */
#ifndef FRAMEPROXY_PROXY_PEER_TABLE_H
#define FRAMEPROXY_PROXY_PEER_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct peer_key {
	uint8_t bytes[16];     /* IPv4 in the first 4, family tells */
	uint8_t family;        /* AF_INET or AF_INET6, 0 = empty slot */
} peer_key;

typedef struct peer_entry {
	peer_key key;
	uint32_t count;
	bool tombstone;
} peer_entry;

typedef struct peer_table {
	peer_entry *slots;
	uint32_t capacity;     /* power of two */
	uint32_t used;         /* live + tombstones */
	uint32_t live;
} peer_table;

int peer_table_init(peer_table *table, uint32_t initial_capacity);
void peer_table_free(peer_table *table);
/* The key of a socket address; -EAFNOSUPPORT for non-IP families. */
int peer_key_from_sockaddr(const struct sockaddr *addr, peer_key *out);
/* Count one more connection unless that would exceed `limit` (0 = none).
 * 0 when counted, -EUSERS at the limit, -ENOMEM. */
int peer_table_acquire(peer_table *table, const peer_key *key, uint32_t limit);
void peer_table_release(peer_table *table, const peer_key *key);

#endif
