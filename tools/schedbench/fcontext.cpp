// Boost.Context's fcontext ping-pong, the reference the asm switch is held
// to. Kept in its own C++ file so schedbench.c stays C and Boost optional.
#include <boost/context/detail/fcontext.hpp>

#include <cstdlib>
#include <sys/mman.h>

#include "sched/sched.h"

namespace ctx = boost::context::detail;

namespace {

long g_iters;

void bouncer(ctx::transfer_t t)
{
	for (;;)
		t = ctx::jump_fcontext(t.fctx, nullptr);
}

double now_ns()
{
	return (double)sched_clock_ns(CLOCK_MONOTONIC);
}

}  // namespace

// ns per switch: main and a bouncer jump back and forth `iters` times each.
extern "C" double schedbench_fcontext_switch_ns(long iters)
{
	const size_t size = 64 * 1024;
	void *stack = mmap(nullptr, size, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	g_iters = iters;
	ctx::fcontext_t f = ctx::make_fcontext((char *)stack + size, size, bouncer);
	ctx::transfer_t t = ctx::jump_fcontext(f, nullptr);  // warm up
	double t0 = now_ns();
	for (long i = 0; i < g_iters; i++)
		t = ctx::jump_fcontext(t.fctx, nullptr);
	double ns = (now_ns() - t0) / (2.0 * g_iters);
	munmap(stack, size);  // the bouncer is abandoned mid-loop, on purpose
	return ns;
}
