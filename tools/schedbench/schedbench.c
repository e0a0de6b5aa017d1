/*
 * schedbench: what sched/ costs. Every figure is the median of several runs.
 *   switch_ns            raw asm switch, two contexts ping-ponging
 *   switch_ns_ucontext   the same with swapcontext
 *   switch_ns_fcontext   the same with Boost.Context fcontext (if built)
 *   yield_ns             one coro_yield between two coroutines (loop included)
 *   spawn_exit_ns        coro_spawn + run + exit with a pooled stack, 32 at a time
 *   spawn_exit_cold_ns   the same 1000 at a time (most stacks madvised on exit)
 *   timer_ns             sched_timer_set + firing, 10,000 timers in the heap
 *   rss_per_parked_bytes resident memory per parked coroutine (10,000)
 * Usage: schedbench [--json]
 */
#include "sched/sched.h"
#include "sched/switch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef SCHEDBENCH_HAVE_FCONTEXT
double schedbench_fcontext_switch_ns(long iters);
#endif

enum { REPEATS = 11 };

static double now_ns(void)
{
	return (double)sched_now();
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double (*measure)(void))
{
	double v[REPEATS];

	for (int i = 0; i < REPEATS; i++)
		v[i] = measure();
	qsort(v, REPEATS, sizeof(v[0]), cmp_double);
	return v[REPEATS / 2];
}

static void *map_stack(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* --- raw switches ---------------------------------------------------------- */

#define STACK_SIZE (64 * 1024)

static struct {
	sched_ctx_asm main, peer;
	sched_ctx_uc uc_main, uc_peer;
} raw;

static void asm_bouncer(void *arg)
{
	(void)arg;
	for (;;)
		sched_ctx_asm_swap(&raw.peer, &raw.main);
}

static double raw_asm(void)
{
	const long iters = 2000000;
	void *stack = map_stack(STACK_SIZE);

	sched_ctx_asm_make(&raw.peer, stack, STACK_SIZE, asm_bouncer, NULL);
	sched_ctx_asm_swap(&raw.main, &raw.peer);  /* warm up */
	double t0 = now_ns();
	for (long i = 0; i < iters; i++)
		sched_ctx_asm_swap(&raw.main, &raw.peer);
	double ns = (now_ns() - t0) / (2.0 * iters);
	munmap(stack, STACK_SIZE);  /* the bouncer is abandoned mid-loop */
	return ns;
}

static void uc_bouncer(void *arg)
{
	(void)arg;
	for (;;)
		sched_ctx_uc_swap(&raw.uc_peer, &raw.uc_main);
}

static double raw_ucontext(void)
{
	const long iters = 50000;
	void *stack = map_stack(STACK_SIZE);

	sched_ctx_uc_make(&raw.uc_peer, stack, STACK_SIZE, uc_bouncer, NULL);
	sched_ctx_uc_swap(&raw.uc_main, &raw.uc_peer);
	double t0 = now_ns();
	for (long i = 0; i < iters; i++)
		sched_ctx_uc_swap(&raw.uc_main, &raw.uc_peer);
	double ns = (now_ns() - t0) / (2.0 * iters);
	munmap(stack, STACK_SIZE);
	return ns;
}

#ifdef SCHEDBENCH_HAVE_FCONTEXT
static double raw_fcontext(void)
{
	return schedbench_fcontext_switch_ns(2000000);
}
#endif

/* --- through the scheduler ------------------------------------------------- */

static void start(void)
{
	if (sched_init(NULL) != 0) {
		fprintf(stderr, "schedbench: sched_init failed\n");
		exit(1);
	}
}

enum { YIELDS = 1000000 };

static void yielder(void *arg)
{
	(void)arg;
	for (int i = 0; i < YIELDS; i++)
		coro_yield();
}

static double yield_pair(void)
{
	start();
	coro_spawn(yielder, NULL, NULL);
	coro_spawn(yielder, NULL, NULL);
	double t0 = now_ns();
	sched_run();
	double ns = (now_ns() - t0) / (2.0 * YIELDS);
	sched_shutdown();
	return ns;
}

static void nothing(void *arg)
{
	(void)arg;
}

/* Batches of `batch` spawns, each run to exit before the next batch. */
static double spawn_exit_batches(int batch, int batches)
{
	start();
	for (int i = 0; i < batch; i++)  /* fill the pool */
		coro_spawn(nothing, NULL, NULL);
	sched_run();
	double t0 = now_ns();
	for (int b = 0; b < batches; b++) {
		for (int i = 0; i < batch; i++)
			coro_spawn(nothing, NULL, NULL);
		sched_run();
	}
	double ns = (now_ns() - t0) / ((double)batch * batches);
	sched_shutdown();
	return ns;
}

/* Hot: 32 at a time, all served from dirty pooled stacks. */
static double spawn_exit(void)
{
	return spawn_exit_batches(32, 10000);
}

/* 1000 at a time: beyond the dirty bound each freed stack is madvised. */
static double spawn_exit_cold(void)
{
	return spawn_exit_batches(1000, 100);
}

static void count_fire(sched_timer *t, void *arg)
{
	(void)t;
	++*(long *)arg;
}

static double timers(void)
{
	const int n = 10000;
	sched_timer *t = malloc(sizeof(*t) * n);
	long fired = 0;

	if (!t)
		exit(1);
	start();
	/* Distinct deadlines in the past in shuffled order: the heap does real
	 * work, and everything fires in the first round. */
	int64_t base = sched_now() - 1000000000;
	uint64_t x = 88172645463325252ull;
	double t0 = now_ns();
	for (int i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sched_timer_init(&t[i], count_fire, &fired);
		sched_timer_set(&t[i], base + (int64_t)(x % 1000000));
	}
	sched_run();
	double ns = (now_ns() - t0) / n;
	sched_shutdown();
	free(t);
	if (fired != n)
		fprintf(stderr, "schedbench: %ld of %d timers fired\n", fired, n);
	return ns;
}

static long resident_pages(void)
{
	long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = -1;
	fclose(f);
	return resident;
}

static void parker(void *arg)
{
	(void)arg;
	coro_park("bench");
}

static double rss_per_parked(void)
{
	const int n = 10000;

	start();
	long before = resident_pages();
	for (int i = 0; i < n; i++)
		if (!coro_spawn(parker, NULL, NULL))
			exit(1);
	sched_run();  /* returns once all are parked: nothing can wake them */
	long after = resident_pages();
	sched_shutdown();
	return (double)(after - before) * (double)sysconf(_SC_PAGESIZE) / n;
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

/*
 * asm and fcontext are measured in alternating rounds, so background load
 * hits both alike instead of skewing whichever ran during a spike. ucontext
 * runs apart: its signal-mask syscalls disturb the CPU state the others see.
 */
/* Fastest asm and fcontext rounds: less sensitive to a loaded machine. */
static double sw_min, fc_min;

static void raw_switches(double *sw, double *uc, double *fc)
{
	enum { ROUNDS = 3 * REPEATS };
	double a[ROUNDS], f[ROUNDS], u[REPEATS];

	for (int i = 0; i < ROUNDS; i++) {
		a[i] = raw_asm();
#ifdef SCHEDBENCH_HAVE_FCONTEXT
		f[i] = raw_fcontext();
#else
		f[i] = -1;
#endif
	}
	for (int i = 0; i < REPEATS; i++)
		u[i] = raw_ucontext();
	*sw = median_of(a, ROUNDS);
	*fc = median_of(f, ROUNDS);
	sw_min = a[0];  /* sorted by median_of */
	fc_min = f[0];
	*uc = median_of(u, REPEATS);
}

int main(int argc, char **argv)
{
	bool json = argc > 1 && strcmp(argv[1], "--json") == 0;
	double sw, uc, fc;

	raw_switches(&sw, &uc, &fc);
	double yield = median(yield_pair);
	double spawn = median(spawn_exit);
	double spawn_cold = median(spawn_exit_cold);
	double timer = median(timers);
	double rss = median(rss_per_parked);

	if (json) {
		printf("{\"switch_ns\": %.2f, \"switch_ns_ucontext\": %.2f, ", sw, uc);
		if (fc >= 0)
			printf("\"switch_ns_fcontext\": %.2f, ", fc);
		else
			printf("\"switch_ns_fcontext\": null, ");
		printf("\"switch_ns_min\": %.2f, ", sw_min);
		if (fc >= 0)
			printf("\"switch_ns_fcontext_min\": %.2f, ", fc_min);
		else
			printf("\"switch_ns_fcontext_min\": null, ");
		printf("\"yield_ns\": %.2f, \"spawn_exit_ns\": %.2f, "
			"\"spawn_exit_cold_ns\": %.2f, \"timer_ns\": %.2f, "
			"\"rss_per_parked_bytes\": %.1f, \"sched_switch\": \"%s\"}\n",
			yield, spawn, spawn_cold, timer, rss, sched_switch_name());
		return 0;
	}
	printf("median of %d runs each (asm and fcontext: %d alternating runs)\n",
		REPEATS, 3 * REPEATS);
	printf("switch (asm):        %8.2f ns  (fastest run %.2f)\n", sw, sw_min);
	printf("switch (ucontext):   %8.2f ns  (%.1fx the asm switch)\n", uc, uc / sw);
	if (fc >= 0)
		printf("switch (fcontext):   %8.2f ns  (fastest run %.2f; asm/fcontext %.2f)\n",
			fc, fc_min, sw / fc);
	else
		printf("fcontext: not available\n");
	printf("yield (via loop, %s): %6.2f ns\n", sched_switch_name(), yield);
	printf("spawn+exit (pooled): %8.2f ns  (32 at a time: hot stacks)\n", spawn);
	printf("spawn+exit (cold):   %8.2f ns  (1000 at a time: madvise on exit)\n", spawn_cold);
	printf("timer add+fire:      %8.2f ns  (10,000 timers)\n", timer);
	printf("rss per parked coro: %8.1f bytes (10,000 parked)\n", rss);
	return 0;
}
