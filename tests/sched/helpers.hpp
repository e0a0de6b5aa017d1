// Shared by the sched/ tests: a scheduler per test case, and lambdas as
// coroutine bodies. Assertions that throw (REQUIRE) must stay out of
// coroutines: an exception cannot cross a context switch, so coroutines
// record what they saw and the test body asserts after sched_run().
#pragma once

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "sched/sched.h"

struct SchedScope {
	explicit SchedScope(const sched_config *config = nullptr)
	{
		REQUIRE(sched_init(config) == 0);
	}
	~SchedScope() { sched_shutdown(); }
	SchedScope(const SchedScope &) = delete;
	SchedScope &operator=(const SchedScope &) = delete;
};

// Owns the std::function bodies for the duration of a test case.
struct Bodies {
	std::vector<std::unique_ptr<std::function<void()>>> fns;

	coro *spawn(std::function<void()> fn, const char *name = nullptr,
		size_t stack_size = 0)
	{
		fns.emplace_back(new std::function<void()>(std::move(fn)));
		coro_opts opts = {};
		opts.name = name;
		opts.stack_size = stack_size;
		return coro_spawn(trampoline, fns.back().get(), &opts);
	}

	static void trampoline(void *arg)
	{
		(*static_cast<std::function<void()> *>(arg))();
	}
};

inline sched_stats stats()
{
	sched_stats s;
	sched_get_stats(&s);
	return s;
}
