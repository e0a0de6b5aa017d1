/* The servers' admin-state board (shard/shard.h, "servers' admin state
 * shared between shards"). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "shard/shard.h"

/* One row: written by the supervisor alone, under `seq` (odd while it
 * changes), so a shard never takes half a row. */
typedef struct board_row {
	uint32_t seq;
	uint32_t used;
	uint32_t state;               /* shard_server_admin */
	uint32_t weight;              /* 0: the configured one */
	char listener[SHARD_NAME_MAX];
	char server[SHARD_NAME_MAX];
} board_row;

struct shard_server_board {
	uint64_t version;             /* bumped by every change */
	board_row rows[SHARD_SERVER_BOARD_ROWS];
};

shard_server_board *shard_server_board_map(void)
{
	void *p = mmap(NULL, sizeof(shard_server_board), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void shard_server_board_unmap(shard_server_board *board)
{
	if (board)
		munmap(board, sizeof(*board));
}

uint64_t shard_server_board_version(const shard_server_board *board)
{
	return board ? __atomic_load_n(&board->version, __ATOMIC_ACQUIRE) : 0;
}

static bool row_is(const board_row *r, const char *listener, const char *server)
{
	return r->used && strncmp(r->listener, listener, SHARD_NAME_MAX) == 0 &&
	       strncmp(r->server, server, SHARD_NAME_MAX) == 0;
}

static void row_write(shard_server_board *b, board_row *r, bool used,
		      const char *listener, const char *server,
		      shard_server_admin state, uint32_t weight)
{
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	r->used = used;
	r->state = (uint32_t)state;
	r->weight = weight;
	shard_slot_name(r->listener, listener);
	shard_slot_name(r->server, server);
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&b->version, b->version + 1, __ATOMIC_RELEASE);
}

int shard_server_board_set(shard_server_board *board, const char *listener,
			   const char *server, shard_server_admin state,
			   uint32_t weight)
{
	board_row *found = NULL, *free_row = NULL;

	if (!board)
		return -EINVAL;
	for (uint32_t k = 0; k < SHARD_SERVER_BOARD_ROWS; k++) {
		board_row *r = &board->rows[k];
		if (row_is(r, listener, server))
			found = r;
		else if (!r->used && !free_row)
			free_row = r;
	}
	/* ready with the configured weight is no admin state at all. */
	bool plain = state == SHARD_SERVER_READY && weight == 0;
	if (found)
		row_write(board, found, !plain, listener, server, state, weight);
	else if (plain)
		return 0;
	else if (free_row)
		row_write(board, free_row, true, listener, server, state, weight);
	else
		return -ENOSPC;
	return 0;
}

bool shard_server_board_get(const shard_server_board *board,
			    const char *listener, const char *server,
			    shard_server_admin *state, uint32_t *weight)
{
	if (!board)
		return false;
	for (uint32_t k = 0; k < SHARD_SERVER_BOARD_ROWS; k++) {
		const board_row *r = &board->rows[k];
		for (int tries = 0; tries < 64; tries++) {
			uint32_t s1 = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
			if (s1 & 1)
				continue;
			board_row copy;
			memcpy(&copy, r, sizeof(copy));
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&r->seq, __ATOMIC_RELAXED) != s1)
				continue;
			if (!row_is(&copy, listener, server))
				break;
			*state = (shard_server_admin)copy.state;
			*weight = copy.weight;
			return true;
		}
	}
	return false;
}

void shard_server_board_prune(shard_server_board *board,
			      bool (*keep)(void *arg, const char *listener,
					   const char *server),
			      void *arg)
{
	if (!board)
		return;
	for (uint32_t k = 0; k < SHARD_SERVER_BOARD_ROWS; k++) {
		board_row *r = &board->rows[k];
		if (r->used && !keep(arg, r->listener, r->server))
			row_write(board, r, false, "", "", SHARD_SERVER_READY, 0);
	}
}

int shard_server_board_row(const shard_server_board *board, uint32_t k,
			   shard_server_row *out)
{
	if (!board || k >= SHARD_SERVER_BOARD_ROWS)
		return -ENOENT;
	const board_row *r = &board->rows[k];
	if (!r->used)
		return -ENOENT;
	shard_slot_name(out->listener, r->listener);
	shard_slot_name(out->server, r->server);
	out->state = (shard_server_admin)r->state;
	out->weight = r->weight;
	return 0;
}

const char *shard_server_admin_name(shard_server_admin state)
{
	switch (state) {
	case SHARD_SERVER_DRAIN: return "drain";
	case SHARD_SERVER_MAINT: return "maint";
	case SHARD_SERVER_READY: break;
	}
	return "ready";
}
