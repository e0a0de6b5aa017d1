// shard/slot.c: state stores, names, and the runtime publish.
#include <catch2/catch.hpp>

#include <string.h>
#include <time.h>

#include <string>

#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
#include "poll/poll.h"
#include "sched/sched.h"
#include "shard/runtime.h"
#include "shard/shard.h"

static_assert(alignof(shard_slot) == 64, "slots own their cache lines");
static_assert(sizeof(shard_slot) % 64 == 0, "slots own their cache lines");

namespace {

int64_t cpu_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mono_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void yielder(void *arg)
{
	int *left = static_cast<int *>(arg);
	while ((*left)-- > 0)
		coro_yield();
}

} // namespace

TEST_CASE("slot state round-trips", "[slot]")
{
	static shard_slot slot;
	REQUIRE(shard_slot_get_state(&slot) == SHARD_STATE_FREE);
	shard_slot_set_state(&slot, SHARD_STATE_READY);
	REQUIRE(shard_slot_get_state(&slot) == SHARD_STATE_READY);
	REQUIRE(slot.state == (uint32_t)SHARD_STATE_READY);
	shard_slot_set_state(&slot, SHARD_STATE_DRAINING);
	REQUIRE(shard_slot_get_state(&slot) == SHARD_STATE_DRAINING);
}

TEST_CASE("slot names are cut to fit, never inside a UTF-8 character",
	  "[slot]")
{
	char dst[SHARD_NAME_MAX];

	memset(dst, 'x', sizeof(dst));
	shard_slot_name(dst, "api");
	REQUIRE(std::string(dst) == "api");

	shard_slot_name(dst, nullptr);
	REQUIRE(std::string(dst) == "");

	std::string fits(SHARD_NAME_MAX - 1, 'a');
	shard_slot_name(dst, fits.c_str());
	REQUIRE(std::string(dst) == fits);

	std::string longer(200, 'b');
	shard_slot_name(dst, longer.c_str());
	REQUIRE(std::string(dst) == std::string(SHARD_NAME_MAX - 1, 'b'));

	// 62 bytes + a 3-byte euro sign: the cut at 63 would split it.
	std::string euro = std::string(62, 'c') + "\xE2\x82\xAC" + "tail";
	shard_slot_name(dst, euro.c_str());
	REQUIRE(std::string(dst) == std::string(62, 'c'));

	// 60 bytes + euro ends exactly at 63: kept whole.
	std::string whole = std::string(60, 'd') + "\xE2\x82\xAC" + "tail";
	shard_slot_name(dst, whole.c_str());
	REQUIRE(std::string(dst) == std::string(60, 'd') + "\xE2\x82\xAC");

	// A 2-byte character split at the cut.
	std::string e_acute = std::string(62, 'e') + "\xC3\xA9";
	shard_slot_name(dst, e_acute.c_str());
	REQUIRE(std::string(dst) == std::string(62, 'e'));
}

TEST_CASE("publish_runtime without a poller fills process figures", "[slot]")
{
	static shard_slot slot;
	memset(&slot, 0, sizeof(slot));

	// Burn some CPU so getrusage has something to report (bounded: at
	// most 2 s of wall time).
	int64_t start = cpu_ns(), wall = mono_ns();
	volatile uint64_t sink = 0;
	while (cpu_ns() - start < 30000000 && mono_ns() - wall < 2000000000)
		for (int i = 0; i < 10000; i++)
			sink = sink + (uint64_t)i;

	int64_t before = mono_ns();
	shard_slot_publish_runtime(&slot);
	REQUIRE(slot.published_ns >= before);
	REQUIRE(slot.published_ns <= mono_ns());
	REQUIRE(slot.runtime[RUNTIME_RSS] > 0);
	REQUIRE(slot.runtime[RUNTIME_CPU] + slot.runtime[RUNTIME_CPU + 1] >= 10000000u);
	REQUIRE(slot.poller[0] == '\0'); // no poller open
}

TEST_CASE("publish_runtime reports the scheduler and the epoll poller",
	  "[slot]")
{
	static shard_slot slot;
	memset(&slot, 0, sizeof(slot));
	char why[128] = "";

	REQUIRE(sched_init(nullptr) == 0);
	REQUIRE(poll_open(POLL_EPOLL, why, sizeof(why)) == 0);
	int left[3] = { 5, 5, 5 };
	for (int &l : left)
		REQUIRE(coro_spawn(yielder, &l, nullptr) != nullptr);
	sched_run();

	shard_slot_publish_runtime(&slot);
	sched_stats ss;
	sched_get_stats(&ss);
	poll_stats ps;
	poll_get_stats(&ps);
	poll_close();
	sched_shutdown();

	REQUIRE(std::string(slot.poller) == "epoll");
	const uint64_t *v = slot.runtime;
	REQUIRE(v[RUNTIME_ROUNDS] >= 18); // 3 coroutines, 6 runs each
	REQUIRE(v[RUNTIME_ROUNDS] == ss.rounds);
	REQUIRE(v[RUNTIME_SWITCHES] == ss.switches);
	REQUIRE(v[RUNTIME_COROUTINES] == 0);
	REQUIRE(v[RUNTIME_POLLS] == ps.netpoll_calls);
	REQUIRE(v[RUNTIME_SYSCALLS] == ps.syscalls);
	REQUIRE(v[RUNTIME_RSS] > 0);
}
