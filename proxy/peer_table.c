#include "proxy/peer_table.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int peer_table_init(peer_table *table, uint32_t initial_capacity)
{
	uint32_t capacity = 16;

	while (capacity < initial_capacity)
		capacity <<= 1;
	*table = (peer_table){.capacity = capacity};
	table->slots = calloc(capacity, sizeof(*table->slots));
	return table->slots ? 0 : -ENOMEM;
}

void peer_table_free(peer_table *table)
{
	free(table->slots);
	*table = (peer_table){0};
}

int peer_key_from_sockaddr(const struct sockaddr *addr, peer_key *out)
{
	static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(out, 0, sizeof(*out));
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
		memcpy(out->bytes, &v4->sin_addr, 4);
		out->family = AF_INET;
		return 0;
	}
	if (addr->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
	if (memcmp(v6->sin6_addr.s6_addr, v4_mapped, 12) == 0) {
		memcpy(out->bytes, v6->sin6_addr.s6_addr + 12, 4);
		out->family = AF_INET;
		return 0;
	}
	memcpy(out->bytes, v6->sin6_addr.s6_addr, 16);
	out->family = AF_INET6;
	return 0;
}

static uint32_t key_hash(const peer_key *key)
{
	/* FNV-1a: keys are attacker-chosen addresses, but the table only
	 * degrades to longer probes, never to unbounded memory. */
	uint32_t hash = 2166136261u ^ key->family;
	for (int i = 0; i < 16; i++)
		hash = (hash ^ key->bytes[i]) * 16777619u;
	return hash;
}

static bool key_equal(const peer_key *a, const peer_key *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* The slot holding `key`, or NULL. */
static peer_entry *table_find(const peer_table *table, const peer_key *key)
{
	uint32_t mask = table->capacity - 1;

	for (uint32_t i = key_hash(key) & mask, n = 0; n < table->capacity;
	     i = (i + 1) & mask, n++) {
		peer_entry *slot = &table->slots[i];
		if (slot->key.family == 0 && !slot->tombstone)
			return NULL;
		if (!slot->tombstone && key_equal(&slot->key, key))
			return slot;
	}
	return NULL;
}

static peer_entry *table_insert_slot(peer_table *table, const peer_key *key)
{
	uint32_t mask = table->capacity - 1;
	uint32_t i = key_hash(key) & mask;

	while (table->slots[i].key.family != 0 && !table->slots[i].tombstone)
		i = (i + 1) & mask;
	if (!table->slots[i].tombstone)
		table->used++;
	table->slots[i] = (peer_entry){.key = *key};
	table->live++;
	return &table->slots[i];
}

/* Rebuild at a size where live entries fill at most a quarter. */
static int table_rehash(peer_table *table)
{
	peer_table bigger;
	uint32_t capacity = table->capacity;

	while (table->live * 4 >= capacity)
		capacity <<= 1;
	if (peer_table_init(&bigger, capacity) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < table->capacity; i++) {
		peer_entry *slot = &table->slots[i];
		if (slot->key.family != 0 && !slot->tombstone)
			table_insert_slot(&bigger, &slot->key)->count = slot->count;
	}
	free(table->slots);
	*table = bigger;
	return 0;
}

int peer_table_acquire(peer_table *table, const peer_key *key, uint32_t limit)
{
	peer_entry *slot = table_find(table, key);

	if (slot) {
		if (limit && slot->count >= limit)
			return -EUSERS;
		slot->count++;
		return 0;
	}
	if ((table->used + 1) * 2 > table->capacity && table_rehash(table) < 0)
		return -ENOMEM;
	table_insert_slot(table, key)->count = 1;
	return 0;
}

void peer_table_release(peer_table *table, const peer_key *key)
{
	peer_entry *slot = table_find(table, key);

	if (!slot)
		return;
	if (--slot->count > 0)
		return;
	slot->key.family = 0;
	slot->tombstone = true;
	table->live--;
}
