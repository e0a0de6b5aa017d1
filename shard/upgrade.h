/*
 * Binary upgrade (SIGUSR2), the supervisor's side. The old supervisor
 * runs the binary at its path with --check, then forks and execs it; the
 * new one inherits the listening sockets, the admin socket and one end of
 * a socketpair (the "peer" socket), named in the environment variable
 * UPGRADE_ENV. It starts its shards on those sockets, each with a handoff
 * channel, and when all are ready sends the channels' other ends to the
 * old supervisor (UPGRADE_READY), which hands them to its shards and
 * retires them as on a reload, then answers UPGRADE_COMMITTED and exits
 * once its shards are gone. Until UPGRADE_READY arrives the old one
 * serves on; if the new one dies or is late, it is killed and that is
 * all that happens.
 *
 * The variable and the messages carry a version: a supervisor that does
 * not know the version refuses the upgrade (the old one keeps serving).
 */
#ifndef FRAMEPROXY_SHARD_UPGRADE_H
#define FRAMEPROXY_SHARD_UPGRADE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shard/sockets.h"

#define UPGRADE_ENV "FRAMEPROXY_UPGRADE"
#define UPGRADE_VERSION 1
/* Most shards one READY message carries (SCM_RIGHTS takes at most 253). */
#define UPGRADE_MAX_SHARDS 128

/* What the new supervisor inherited, as the old one described it. */
typedef struct upgrade_inherited {
	int peer;                 /* -1: not an upgrade */
	int admin;                /* -1: none */
	pid_t old_pid;
	uint32_t shards;
	uint32_t listeners;
	int *fds;                 /* [shard * listeners + listener] */
} upgrade_inherited;

/* "v=1 peer=P admin=A old=PID shards=S listeners=L fds=a,b,..." into
 * buf: the sockets' length, or -ENOSPC. */
int upgrade_env_format(char *buf, size_t len, int peer, int admin,
		       const shard_sockets *s);
/* The reverse: 0, or -EINVAL with one reason in `why`. On success the
 * caller frees with upgrade_inherited_free. */
int upgrade_env_parse(const char *text, upgrade_inherited *out, char *why,
		      size_t why_len);
/* UPGRADE_ENV, read and removed from the environment (so that shards and
 * later children do not see it): 1 taken, 0 not set (out->peer is -1),
 * -EINVAL as upgrade_env_parse. Every named fd gets FD_CLOEXEC again. */
int upgrade_take_env(upgrade_inherited *out, char *why, size_t why_len);
/* Closes nothing: frees the fd list only. */
void upgrade_inherited_free(upgrade_inherited *u);

/* The running binary's path (/proc/self/exe), read at start before the
 * file can be replaced. 0 or -errno. */
int upgrade_self_path(char *buf, size_t len);

/* Fork and exec `exe` with argv[1..] plus "--check" (stdout to
 * /dev/null, stderr kept): the child's pid or -errno. */
pid_t upgrade_spawn_check(const char *exe, char *const argv[]);
/* Fork and exec `exe` with argv[1..], `env` (UPGRADE_ENV's value) set,
 * and the `keep` fds inheritable: the child's pid or -errno. */
pid_t upgrade_spawn_new(const char *exe, char *const argv[], const char *env,
			const int *keep, size_t keep_count);

typedef enum upgrade_msg_kind {
	UPGRADE_READY = 1,        /* new -> old: every shard is up; fds */
	UPGRADE_COMMITTED = 2,    /* old -> new: handed over, exiting */
} upgrade_msg_kind;

/* One message with up to UPGRADE_MAX_SHARDS fds. 0 or -errno. */
int upgrade_send(int sock, upgrade_msg_kind kind, const int *fds, size_t n);
/*
 * One message: its kind (>0), 0 at EOF, -EAGAIN when none is there,
 * -EPROTO for a message of another version or shape (its fds closed).
 * Up to `max` fds go to `fds` (*n of them; extra ones are closed).
 */
int upgrade_recv(int sock, int *fds, size_t max, size_t *n);

#endif
