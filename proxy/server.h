/*
 * One serving process: the scheduler, the poller, every listener, signals.
 *
 * SIGTERM/SIGINT: stop accepting, let relays finish the frames they have
 * started and close at frame boundaries; after drain_timeout close what is
 * left; a second signal exits at once. The same code serves a lone process
 * and (later) each shard, which passes the sockets its supervisor made.
 */
#ifndef FRAMEPROXY_PROXY_SERVER_H
#define FRAMEPROXY_PROXY_SERVER_H

#include <stdint.h>

#include "poll/poll.h"
#include "proxy/listener.h"

typedef struct server_settings {
	poll_kind poller;
	bool uring_write_batching;    /* only with the io_uring backend */
	int64_t drain_timeout_ns;
	const listener_params *listeners;
	uint32_t listener_count;
	const int *listen_fds;        /* per listener, or NULL to bind */
	uint32_t buffer_pool_max;     /* idle relay buffers kept, 0 = 256 */
} server_settings;

/* Runs until drained. 0 after a clean shutdown, -errno when start-up
 * failed (already logged in one line). */
int server_run(const server_settings *settings);

#endif
