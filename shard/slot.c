/* The shard side of shard/shard.h's counter slots, and shard/'s own table
 * of runtime figures (shard/runtime.h) with what publishes them. */
#include "shard/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched.h"
#include "shard/runtime.h"

_Static_assert(RUNTIME_VALUES <= SHARD_MAX_RUNTIME_VALUES,
	       "a slot holds every runtime figure");

static const char *runtime_cpu_mode(uint32_t k)
{
	return k ? "system" : "user";
}

static const char *const runtime_cpu_keys[] = { "cpu_user_s", "cpu_system_s" };

static const shard_metric runtime_table[] = {
	RUNTIME_METRICS(SHARD_METRIC_ENTRY)
};

const shard_metric_list runtime_metrics = {
	runtime_table, sizeof(runtime_table) / sizeof(runtime_table[0])
};

void shard_slot_set_state(shard_slot *slot, shard_state state)
{
	/* Release: names and counters written before READY are visible to a
	 * supervisor that sees READY with an acquire load. */
	__atomic_store_n(&slot->state, (uint32_t)state, __ATOMIC_RELEASE);
}

shard_state shard_slot_get_state(const shard_slot *slot)
{
	return (shard_state)__atomic_load_n(&slot->state, __ATOMIC_ACQUIRE);
}

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8
 * sequence, so a cut name stays valid text for the exporters. */
static size_t utf8_cut(const char *s, size_t n)
{
	size_t back = 0;

	while (back < n && back < 4 &&
	       ((unsigned char)s[n - 1 - back] & 0xC0) == 0x80)
		back++;
	if (back == n)
		return n;
	unsigned char lead = (unsigned char)s[n - 1 - back];
	if (lead < 0xC0)
		return n - back; /* no sequence open: drop stray continuations */
	size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
	return want == back + 1 ? n : n - 1 - back;
}

void shard_slot_upstream_name(shard_slot_upstream *row, const char *name,
			      uint32_t listener, const char *origin)
{
	uint32_t seq = __atomic_load_n(&row->name_seq, __ATOMIC_RELAXED);

	__atomic_store_n(&row->name_seq, seq | 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	shard_slot_name(row->name, name);
	shard_slot_name(row->origin, origin);
	__atomic_store_n(&row->listener, listener, __ATOMIC_RELAXED);
	__atomic_store_n(&row->name_seq, (seq | 1) + 1, __ATOMIC_RELEASE);
}

void shard_slot_name(char dst[SHARD_NAME_MAX], const char *src)
{
	size_t n = src ? strnlen(src, SHARD_NAME_MAX) : 0;

	if (n == SHARD_NAME_MAX)
		n = utf8_cut(src, SHARD_NAME_MAX - 1);
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static uint64_t timeval_ns(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

/* Resident set from /proc/self/statm (cheaper than parsing status); 0 when
 * it cannot be read, since a missing gauge is better than a failed publish. */
static uint64_t resident_bytes(void)
{
	char buf[128];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';

	unsigned long long size = 0, resident = 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	long page = sysconf(_SC_PAGESIZE);
	return page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

static void publish_poller_name(shard_slot *slot)
{
	poll_kind kind = poll_backend();
	if (kind == POLL_AUTO)
		return; /* no poller open yet */

	char name[sizeof(slot->poller)] = {0};
	snprintf(name, sizeof(name), "%s", poll_kind_name(kind));
	/* Written only when it changes: the supervisor may be reading it. */
	if (memcmp(slot->poller, name, sizeof(name)) != 0)
		memcpy(slot->poller, name, sizeof(name));
}

void shard_slot_publish_runtime(shard_slot *slot)
{
	uint64_t *v = slot->runtime;
	sched_stats ss;
	poll_stats ps;
	struct rusage ru;

	sched_get_stats(&ss);
	shard_slot_store(&v[RUNTIME_ROUNDS], ss.rounds);
	shard_slot_store(&v[RUNTIME_SWITCHES], ss.switches);
	shard_slot_store(&v[RUNTIME_RUNQ], ss.runq_len);
	shard_slot_store(&v[RUNTIME_COROUTINES], ss.live);

	poll_get_stats(&ps);
	shard_slot_store(&v[RUNTIME_WAITS], ps.waits);
	shard_slot_store(&v[RUNTIME_EVENTS], ps.events);
	shard_slot_store(&v[RUNTIME_SYSCALLS], ps.syscalls);
	shard_slot_store(&v[RUNTIME_POLLS], ps.netpoll_calls);
	shard_slot_store(&v[RUNTIME_SUBMITS], ps.submits);
	shard_slot_store(&v[RUNTIME_ENTERS], ps.enters);
	shard_slot_store(&v[RUNTIME_COMPLETIONS], ps.completions);
	shard_slot_store(&v[RUNTIME_RECV_NOBUFS], ps.recv_nobufs);
	shard_slot_store(&v[RUNTIME_BUFS_IN_USE], ps.bufs_in_use);
	publish_poller_name(slot);

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		shard_slot_store(&v[RUNTIME_CPU], timeval_ns(ru.ru_utime));
		shard_slot_store(&v[RUNTIME_CPU + 1], timeval_ns(ru.ru_stime));
	}
	shard_slot_store(&v[RUNTIME_RSS], resident_bytes());
	__atomic_store_n(&slot->published_ns, sched_clock_ns(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
}
