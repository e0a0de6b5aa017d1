/*
 * linger — the lingering close of a client connection, as nginx's
 * lingering_close: the last complete reply is followed by a FIN, never an
 * RST.
 *
 * A client that keeps sending after the proxy decided to close (a
 * pipelining client while a shard drains) would get an RST for the first
 * byte that reaches a closed socket, and an RST makes the client's kernel
 * throw away the replies it has not read yet. So the write side is shut
 * down after the last reply (the FIN), and what the client still sends is
 * read and dropped until its EOF, an error or `timeout`, whichever comes
 * first; only then is the socket closed. A lingering socket holds a watch
 * (no coroutine, no buffer) and counts in its set, so a shard that stops
 * waits for it.
 */
#ifndef FRAMEPROXY_PROXY_LINGER_H
#define FRAMEPROXY_PROXY_LINGER_H

#include <stdint.h>

#include "poll/poll.h"

typedef struct linger_set {
	uint64_t active;         /* sockets lingering now */
	int64_t timeout_ns;      /* 0: close at once, as before */
	/* No linger lasts past this (sched_now clock; 0: no bound), so a
	 * shard's stop stays inside what its supervisor waits for. */
	int64_t not_after_ns;
} linger_set;

/* Takes `pd` (a client connection): shut down its write side, drop what
 * it sends until EOF or the timeout, close it. Never fails: without memory
 * it closes at once. */
void linger_close(linger_set *set, poll_desc *pd);

#endif
