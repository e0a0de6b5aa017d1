/* The shared active-health board (shard/shard.h, "active health results
 * shared between shards"). */
#include <errno.h>
#include <sys/mman.h>

#include "shard/shard.h"

/*
 * One word per (listener, server): generation (24 bits), state (2 bits),
 * CLOCK_MONOTONIC in milliseconds (38 bits: 8.7 years of uptime). A zero
 * word is "never published".
 */
#define GEN_BITS 24
#define STATE_BITS 2
#define TIME_BITS 38
#define TIME_MASK ((UINT64_C(1) << TIME_BITS) - 1)
#define STATE_MASK ((UINT64_C(1) << STATE_BITS) - 1)
#define GEN_MASK ((UINT64_C(1) << GEN_BITS) - 1)

struct shard_health_board {
	uint64_t words[SHARD_MAX_LISTENERS][SHARD_HEALTH_MAX_SERVERS];
};

uint32_t shard_health_owner(uint32_t shards, uint32_t listener, uint32_t server)
{
	if (shards == 0)
		return 0;
	/* Listener offset: listeners with one server each do not all land on
	 * shard 0. */
	return (uint32_t)(((uint64_t)listener * 7 + server) % shards);
}

static uint64_t *entry(shard_health_board *board, uint32_t listener,
		       uint32_t server)
{
	if (!board || listener >= SHARD_MAX_LISTENERS ||
	    server >= SHARD_HEALTH_MAX_SERVERS)
		return NULL;
	return &board->words[listener][server];
}

void shard_health_publish(shard_health_board *board, uint32_t generation,
			  uint32_t listener, uint32_t server, shard_health state,
			  int64_t now_ns)
{
	uint64_t *w = entry(board, listener, server);
	uint64_t ms = now_ns > 0 ? (uint64_t)(now_ns / 1000000) : 0;

	if (!w)
		return;
	uint64_t word = ((uint64_t)(generation & GEN_MASK) << (STATE_BITS + TIME_BITS)) |
			(((uint64_t)state & STATE_MASK) << TIME_BITS) | (ms & TIME_MASK);
	__atomic_store_n(w, word, __ATOMIC_RELAXED);
}

shard_health shard_health_read(const shard_health_board *board,
			       uint32_t generation, uint32_t listener,
			       uint32_t server, int64_t now_ns, int64_t max_age_ns)
{
	uint64_t *w = entry((shard_health_board *)board, listener, server);

	if (!w)
		return SHARD_HEALTH_UNKNOWN;
	uint64_t word = __atomic_load_n(w, __ATOMIC_RELAXED);
	uint32_t gen = (uint32_t)(word >> (STATE_BITS + TIME_BITS));
	shard_health state = (shard_health)((word >> TIME_BITS) & STATE_MASK);
	int64_t at_ns = (int64_t)(word & TIME_MASK) * 1000000;

	if (word == 0 || gen != (generation & GEN_MASK) ||
	    (state != SHARD_HEALTH_UP && state != SHARD_HEALTH_DOWN))
		return SHARD_HEALTH_UNKNOWN;
	if (now_ns - at_ns > max_age_ns)
		return SHARD_HEALTH_UNKNOWN;
	return state;
}

shard_health_board *shard_health_board_map(void)
{
	void *p = mmap(NULL, sizeof(shard_health_board), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void shard_health_board_unmap(shard_health_board *board)
{
	if (board)
		munmap(board, sizeof(*board));
}
