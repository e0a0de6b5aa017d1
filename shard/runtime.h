/*
 * runtime — shard/'s own table of per-shard figures: scheduler, poller,
 * process. Private to shard/. shard_slot_publish_runtime (slot.c) stores
 * them in slot->runtime at the indexes below; the renderers read them
 * through runtime_metrics, made from the same list (see "metric tables" in
 * shard/shard.h). /stats shows them in this order.
 */
#ifndef FRAMEPROXY_SHARD_RUNTIME_H
#define FRAMEPROXY_SHARD_RUNTIME_H

#include "shard/shard.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RUNTIME_METRICS(X) \
	X(RUNTIME_CPU, 2, .name = "shard_cpu_seconds_total", \
	  .help = "CPU time of the shard's processes.", .unit = SHARD_UNIT_NS, \
	  .label = "mode", .label_value = runtime_cpu_mode, \
	  .json_each = runtime_cpu_keys) \
	X(RUNTIME_RSS, 1, .name = "shard_resident_bytes", .type = SHARD_GAUGE, \
	  .help = "Resident memory of the shard's processes.", \
	  .json = "rss_bytes") \
	X(RUNTIME_RUNQ, 1, .name = "sched_runq_length", .type = SHARD_GAUGE, \
	  .help = "Coroutines ready to run.", .json = "runq_length") \
	X(RUNTIME_COROUTINES, 1, .name = "sched_coroutines", \
	  .type = SHARD_GAUGE, .help = "Coroutines alive.", \
	  .json = "coroutines") \
	X(RUNTIME_ROUNDS, 1, .name = "sched_rounds_total", \
	  .help = "Coroutines picked and run by the scheduler.", \
	  .json = "sched_rounds") \
	X(RUNTIME_SWITCHES, 1, .name = "sched_switches_total", \
	  .help = "Coroutine context switches.", .json = "sched_switches") \
	X(RUNTIME_WAITS, 1, .name = "poller_waits_total", \
	  .help = "Times a coroutine parked on a socket.", \
	  .json = "poller_waits") \
	X(RUNTIME_EVENTS, 1, .name = "poller_events_total", \
	  .help = "Readiness events taken from the poller.", \
	  .json = "poller_events") \
	X(RUNTIME_SYSCALLS, 1, .name = "poller_syscalls_total", \
	  .help = "System calls made by the poller and its socket operations.", \
	  .json = "poller_syscalls") \
	X(RUNTIME_POLLS, 1, .name = "poller_polls_total", \
	  .help = "Times the scheduler entered the poller.", \
	  .json = "poller_polls") \
	X(RUNTIME_SUBMITS, 1, .name = "poller_submits_total", \
	  .help = "io_uring submissions (0 with epoll).", \
	  .json = "poller_submits") \
	X(RUNTIME_ENTERS, 1, .name = "poller_enters_total", \
	  .help = "io_uring_enter calls (0 with epoll).", \
	  .json = "poller_enters") \
	X(RUNTIME_COMPLETIONS, 1, .name = "poller_completions_total", \
	  .help = "io_uring completions handled (0 with epoll).", \
	  .json = "poller_completions") \
	X(RUNTIME_RECV_NOBUFS, 1, .name = "poller_recv_nobufs_total", \
	  .help = "io_uring completion I/O: receives stopped by an empty " \
		  "buffer ring (ENOBUFS).", \
	  .json = "poller_recv_nobufs") \
	X(RUNTIME_BUFS_IN_USE, 1, .name = "poller_buffers_in_use", \
	  .type = SHARD_GAUGE, \
	  .help = "io_uring completion I/O: ring buffers holding received " \
		  "data not yet read.", \
	  .json = "poller_buffers_in_use")

enum { RUNTIME_METRICS(SHARD_METRIC_ENUM) RUNTIME_VALUES };

extern const shard_metric_list runtime_metrics;

#ifdef __cplusplus
}
#endif

#endif
