// shard/names.c: the shared name board. A row reads back whole as it was
// published, a forked child's answer reaches the parent (MAP_SHARED), and
// a reader racing a writer never sees half of an answer.
#include <catch2/catch.hpp>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shard/shard.h"

namespace {

struct Board {
	shard_name_board *b = shard_name_board_map();
	~Board() { shard_name_board_unmap(b); }
};

// Every entry of the answer carries `v`, so a torn read shows.
shard_name_answer answer_of(uint32_t v)
{
	shard_name_answer a;
	memset(&a, 0, sizeof(a));
	a.generation = 3;
	a.count = SHARD_NAME_BOARD_ENTRIES;
	a.version = v;
	a.next_ms = v;
	a.answered = 1;
	for (auto &e : a.entries) {
		memset(e.addr, (int)(v & 0xff), sizeof(e.addr));
		e.port = (uint16_t)v;
		e.weight = (uint16_t)v;
		e.family = 2;
	}
	return a;
}

bool whole(const shard_name_answer &a)
{
	for (const auto &e : a.entries)
		if (e.port != (uint16_t)a.version || e.addr[15] != (uint8_t)a.version)
			return false;
	return a.next_ms == (int64_t)a.version;
}

} // namespace

TEST_CASE("name board: rows read back as published", "[names]")
{
	Board board;
	REQUIRE(board.b != nullptr);
	shard_name_answer out;
	CHECK(shard_name_read(board.b, 0, &out) == -ENOENT);
	CHECK(shard_name_read(board.b, SHARD_NAME_BOARD_ROWS, &out) == -ENOENT);
	shard_name_publish(board.b, SHARD_NAME_BOARD_ROWS, &out); // ignored

	shard_name_answer a = answer_of(7);
	shard_name_publish(board.b, 5, &a);
	REQUIRE(shard_name_read(board.b, 5, &out) == 0);
	CHECK(memcmp(&a, &out, sizeof(a)) == 0);
	CHECK(shard_name_read(board.b, 4, &out) == -ENOENT);

	a = answer_of(8);
	shard_name_publish(board.b, 5, &a);
	REQUIRE(shard_name_read(board.b, 5, &out) == 0);
	CHECK(out.version == 8);
}

TEST_CASE("name board: a child's answers reach the parent, never torn", "[names]")
{
	Board board;
	REQUIRE(board.b != nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		for (uint32_t v = 1; v <= 200000; v++) {
			shard_name_answer a = answer_of(v);
			shard_name_publish(board.b, 9, &a);
		}
		_exit(0);
	}
	unsigned reads = 0, torn = 0;
	shard_name_answer out;
	for (int i = 0; i < 200000; i++) {
		if (shard_name_read(board.b, 9, &out) != 0)
			continue;
		reads++;
		torn += !whole(out);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	REQUIRE(shard_name_read(board.b, 9, &out) == 0);
	CHECK(out.version == 200000);
	CHECK(whole(out));
	CHECK(reads > 0);
	CHECK(torn == 0);
}
