/* The shared name board (shard/shard.h, "server names shared between
 * shards"). */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "shard/shard.h"

/*
 * A row is a sequence lock over plain 64-bit words: the writer makes seq
 * odd, stores the words, makes it even again; a reader copies the words
 * between two reads of an even, unchanged seq. Every word is moved with a
 * relaxed atomic, so a reader racing the writer only retries.
 */
#define ROW_WORDS (sizeof(shard_name_answer) / sizeof(uint64_t))

typedef struct name_row {
	uint64_t seq;
	uint64_t words[ROW_WORDS];
} name_row;

struct shard_name_board {
	name_row rows[SHARD_NAME_BOARD_ROWS];
};

_Static_assert(sizeof(shard_name_answer) % sizeof(uint64_t) == 0,
	       "shard_name_answer must be whole words");

void shard_name_publish(shard_name_board *board, uint32_t row,
			const shard_name_answer *answer)
{
	uint64_t words[ROW_WORDS];

	if (!board || row >= SHARD_NAME_BOARD_ROWS)
		return;
	name_row *r = &board->rows[row];
	memcpy(words, answer, sizeof(words));
	uint64_t seq = __atomic_load_n(&r->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&r->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (size_t i = 0; i < ROW_WORDS; i++)
		__atomic_store_n(&r->words[i], words[i], __ATOMIC_RELAXED);
	__atomic_store_n(&r->seq, seq + 2, __ATOMIC_RELEASE);
}

int shard_name_read(const shard_name_board *board, uint32_t row,
		    shard_name_answer *out)
{
	uint64_t words[ROW_WORDS];

	if (!board || row >= SHARD_NAME_BOARD_ROWS)
		return -ENOENT;
	const name_row *r = &board->rows[row];
	for (int attempt = 0; attempt < 64; attempt++) {
		uint64_t before = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
		if (before & 1)
			continue;
		for (size_t i = 0; i < ROW_WORDS; i++)
			words[i] = __atomic_load_n(&r->words[i], __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&r->seq, __ATOMIC_RELAXED) != before)
			continue;
		if (before == 0)
			return -ENOENT;
		memcpy(out, words, sizeof(words));
		return 0;
	}
	return -EAGAIN;
}

shard_name_board *shard_name_board_map(void)
{
	void *p = mmap(NULL, sizeof(shard_name_board), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void shard_name_board_unmap(shard_name_board *board)
{
	if (board)
		munmap(board, sizeof(*board));
}
