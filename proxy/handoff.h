/*
 * handoff — the wire format of a live handoff on reload (docs/ARCHITECTURE.md,
 * "Handoff"): a retiring shard passes each connection it holds at a frame
 * boundary, with nothing buffered in user space, to the shard that replaces
 * it, over the channel shard/ made between the two (shard_context.handoff_fd,
 * shard_take_channel).
 *
 * The channel is a SOCK_SEQPACKET Unix socket: one message per record, its
 * fds (SCM_RIGHTS) travel with it. The new shard opens with a HELLO naming
 * its version; the old one hands over only when the version is its own (a
 * mismatch, or no HELLO, and it drains as without handoff, with a log
 * line). Then one CONN per connection: the client and upstream fds and a
 * handoff_conn record; the new shard answers each with an ACK once the
 * connection is its own, and the old one keeps at most HANDOFF_WINDOW
 * unanswered. Both ends run on one host from one build, or two
 * builds of one source: native byte order, fixed-width fields, and a
 * `size` that a later version may grow (a reader takes what it knows).
 */
#ifndef FRAMEPROXY_PROXY_HANDOFF_H
#define FRAMEPROXY_PROXY_HANDOFF_H

#include <stdint.h>
#include <sys/socket.h>

#define HANDOFF_MAGIC 0x4f485046u   /* "FPHO" */
/* 2: the record carries `via`, the TCP peer behind a PROXY header. */
#define HANDOFF_VERSION 2
#define HANDOFF_NAME_MAX 64

typedef enum handoff_type {
	HANDOFF_HELLO = 1,           /* new -> old: its version */
	HANDOFF_CONN = 2,            /* old -> new: a connection, 2 fds */
	HANDOFF_ACK = 3,             /* new -> old: one CONN adopted */
} handoff_type;

/* CONNs the old shard sends before their ACKs: if the new shard dies, at
 * most these are lost with it; the rest stay with the old shard. */
#define HANDOFF_WINDOW 16

typedef struct handoff_header {
	uint32_t magic;
	uint16_t version;
	uint16_t type;               /* handoff_type */
	uint32_t size;               /* bytes of the whole message */
	uint32_t reserved;
} handoff_header;

/* One connection, at a frame boundary both ways. Times are CLOCK_MONOTONIC
 * (sched_now), one clock for every process of the host. */
typedef struct handoff_conn {
	handoff_header header;
	char listener[HANDOFF_NAME_MAX];    /* by name: indexes may differ */
	char upstream[HANDOFF_NAME_MAX];    /* the server's ip:port, or "" */
	struct sockaddr_storage peer;       /* the client's address */
	char via[HANDOFF_NAME_MAX];         /* accept_proxy: the TCP peer, or "" */
	uint32_t peer_len;
	uint8_t done[2];                    /* by relay_side: ended, EOF passed on */
	uint16_t first_eof;                 /* reason_code of the first EOF */
	uint64_t frames[2];                 /* forwarded, by the side read from */
	uint64_t bytes[2];
	int64_t accepted_ns;                /* the access line's duration */
	int64_t started_ns;
	int64_t last_active_ns;             /* the idle timeout runs on */
	uint32_t handoffs;                  /* times handed over before */
	uint32_t mode;                      /* HANDOFF_MODE_* */
	uint64_t lost;                      /* rpc: requests failed */
} handoff_conn;

/* A stream connection carries both fds; an rpc client only its own (the
 * second fd is a copy of it, and the counts are requests and replies). */
#define HANDOFF_MODE_STREAM 0
#define HANDOFF_MODE_RPC 1

/* A HELLO on `fd` (non-blocking). 0 or -errno. */
int handoff_send_hello(int fd);
/* The HELLO the new shard sent, if it is there: its version, or -EAGAIN
 * (none yet), -EPROTO (not a hello), -errno. */
int handoff_recv_hello(int fd);
/* An ACK for one adopted CONN. 0 or -errno. */
int handoff_send_ack(int fd);
/* The ACKs that came (without waiting): how many, or -EPIPE when the new
 * shard's end is closed (it died or exited). */
int handoff_recv_acks(int fd);
/* A CONN with its two fds (dup'd by the kernel: the caller still closes
 * its own). 0, -EAGAIN when the channel is full, or -errno (EPIPE: the
 * new shard is gone). */
int handoff_send_conn(int fd, const handoff_conn *rec, int client_fd,
		      int upstream_fd);
/* The next CONN: 1 with the record and fds[0] (client), fds[1] (upstream);
 * 0 at the end of the channel; -EAGAIN; -EPROTO for a message it cannot
 * use (its fds, if any, already closed); -errno. */
int handoff_recv_conn(int fd, handoff_conn *rec, int fds[2]);

#endif
