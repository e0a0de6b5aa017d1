// shard/health.c: the shared active-health board. A result is read back only
// for the same generation and while fresh; a forked child's results reach
// the parent (MAP_SHARED); owners are spread over the shards.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "shard/shard.h"

namespace {

const int64_t MS = 1000000;

struct Board {
	shard_health_board *b = shard_health_board_map();
	~Board() { shard_health_board_unmap(b); }
};

} // namespace

TEST_CASE("health board: same generation and fresh, or unknown", "[health]")
{
	Board board;
	REQUIRE(board.b != nullptr);
	const int64_t t0 = 5000 * MS;
	CHECK(shard_health_read(board.b, 1, 0, 0, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);

	shard_health_publish(board.b, 1, 0, 0, SHARD_HEALTH_DOWN, t0);
	shard_health_publish(board.b, 1, 2, 7, SHARD_HEALTH_UP, t0);
	CHECK(shard_health_read(board.b, 1, 0, 0, t0 + 50 * MS, 100 * MS) == SHARD_HEALTH_DOWN);
	CHECK(shard_health_read(board.b, 1, 2, 7, t0 + 100 * MS, 100 * MS) == SHARD_HEALTH_UP);
	// Too old, another generation, another entry: not trusted.
	CHECK(shard_health_read(board.b, 1, 2, 7, t0 + 101 * MS, 100 * MS) == SHARD_HEALTH_UNKNOWN);
	CHECK(shard_health_read(board.b, 2, 2, 7, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);
	CHECK(shard_health_read(board.b, 1, 2, 6, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);
	// A newer result replaces the old one.
	shard_health_publish(board.b, 1, 0, 0, SHARD_HEALTH_UP, t0 + 200 * MS);
	CHECK(shard_health_read(board.b, 1, 0, 0, t0 + 250 * MS, 100 * MS) == SHARD_HEALTH_UP);
	// Generation 0 is a generation like any other.
	shard_health_publish(board.b, 0, 1, 1, SHARD_HEALTH_DOWN, t0);
	CHECK(shard_health_read(board.b, 0, 1, 1, t0, 100 * MS) == SHARD_HEALTH_DOWN);
	// Out of range: nothing written, nothing read.
	shard_health_publish(board.b, 1, SHARD_MAX_LISTENERS, 0, SHARD_HEALTH_UP, t0);
	shard_health_publish(board.b, 1, 0, SHARD_HEALTH_MAX_SERVERS, SHARD_HEALTH_UP, t0);
	CHECK(shard_health_read(board.b, 1, SHARD_MAX_LISTENERS, 0, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);
	CHECK(shard_health_read(board.b, 1, 0, SHARD_HEALTH_MAX_SERVERS, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);
	CHECK(shard_health_read(nullptr, 1, 0, 0, t0, 100 * MS) == SHARD_HEALTH_UNKNOWN);
}

TEST_CASE("health board: a child's results reach the parent", "[health]")
{
	Board board;
	REQUIRE(board.b != nullptr);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		shard_health_publish(board.b, 3, 1, 4, SHARD_HEALTH_DOWN, 9000 * MS);
		_exit(0);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(shard_health_read(board.b, 3, 1, 4, 9000 * MS, MS) == SHARD_HEALTH_DOWN);
}

TEST_CASE("health board: owners are spread over every shard", "[health]")
{
	for (uint32_t shards : {1u, 2u, 3u, 8u}) {
		CAPTURE(shards);
		std::set<uint32_t> owners;
		for (uint32_t server = 0; server < 16; server++) {
			uint32_t o = shard_health_owner(shards, 0, server);
			CHECK(o < shards);
			owners.insert(o);
		}
		CHECK(owners.size() == shards);
		// One server per listener: not every listener on shard 0.
		std::set<uint32_t> first;
		for (uint32_t listener = 0; listener < 8; listener++)
			first.insert(shard_health_owner(shards, listener, 0));
		CHECK(first.size() == std::min<size_t>(shards, 8));
	}
	CHECK(shard_health_owner(0, 3, 3) == 0);
}
