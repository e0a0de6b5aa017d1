/*
 * One serving process: the scheduler, the poller, every listener, signals.
 *
 * SIGTERM: stop accepting, let relays finish the frames they have
 * started and close at frame boundaries; after drain_timeout close what is
 * left; a second signal exits at once. SIGUSR1 (a reload replaced this
 * shard): stop accepting, serve the connections there are until they end;
 * at drain_timeout drain as for SIGTERM. Each shard runs one of these on
 * the sockets its supervisor made (listen_fds) and publishes its counters
 * into its slot every SERVER_PUBLISH_NS.
 */
#ifndef FRAMEPROXY_PROXY_SERVER_H
#define FRAMEPROXY_PROXY_SERVER_H

#include <stdint.h>

#include "poll/poll.h"
#include "proxy/listener.h"
#include "proxy/resolve.h"
#include "shard/shard.h"

typedef struct server_settings {
	poll_kind poller;
	bool uring_write_batching;    /* only with the io_uring backend */
	poll_uring_io uring_io;       /* io_uring shards only (mixed: the odd ones) */
	int64_t drain_timeout_ns;
	int64_t linger_timeout_ns;    /* proxy/linger.h; 0 = close at once */
	uint64_t max_buffer_memory;   /* proxy/overload.h; 0 = off */
	const listener_params *listeners;
	uint32_t listener_count;
	const int *listen_fds;        /* per listener, made by the supervisor */
	shard_slot *slot;             /* counters for the supervisor, or NULL */
	/* Handoff on reload (proxy/handoff.h): where the retire signal's
	 * channel comes (shard_take_channel), and the channel from the shard
	 * this one replaces (-1: none). */
	int control_fd;
	int handoff_fd;
	resolve_params resolve;       /* server names (proxy/resolve.h) */
	bool resolve_required;        /* start only once every name resolved */
} server_settings;

/* Runs until drained. 0 after a clean shutdown, -errno when start-up
 * failed (already logged in one line). */
int server_run(const server_settings *settings);

#endif
