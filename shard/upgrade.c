/* Binary upgrade: what the old and the new supervisor pass each other
 * (shard/upgrade.h). */
#include "shard/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UPGRADE_MAGIC 0x46505547u /* "FPUG" */

/* --- the environment variable ---------------------------------------------- */

int upgrade_env_format(char *buf, size_t len, int peer, int admin,
		       const shard_sockets *s)
{
	size_t n = (size_t)s->shards * s->listener_count;
	int at = snprintf(buf, len, "v=%d peer=%d admin=%d old=%d shards=%" PRIu32
			  " listeners=%" PRIu32 " fds=", UPGRADE_VERSION, peer, admin,
			  (int)getpid(), s->shards, s->listener_count);

	for (size_t i = 0; at >= 0 && (size_t)at < len && i < n; i++)
		at += snprintf(buf + at, len - (size_t)at, "%s%d", i ? "," : "",
			       s->fds[i]);
	if (at < 0 || (size_t)at >= len)
		return -ENOSPC;
	return at;
}

static int fail(char *why, size_t why_len, const char *text)
{
	snprintf(why, why_len, "%s", text);
	return -EINVAL;
}

/* A decimal in [min, max] at *p, which moves past it. */
static int parse_num(const char **p, long min, long max, long *out)
{
	char *end;

	errno = 0;
	long v = strtol(*p, &end, 10);
	if (end == *p || errno || v < min || v > max)
		return -EINVAL;
	*p = end;
	*out = v;
	return 0;
}

/* "key=" then a number, then a space (or the end for the last key). */
static int parse_field(const char **p, const char *key, long min, long max,
		       long *out)
{
	size_t klen = strlen(key);

	if (strncmp(*p, key, klen) != 0 || (*p)[klen] != '=')
		return -EINVAL;
	*p += klen + 1;
	if (parse_num(p, min, max, out) < 0)
		return -EINVAL;
	if (**p == ' ')
		(*p)++;
	return 0;
}

static int parse_fds(const char *p, upgrade_inherited *out)
{
	size_t n = (size_t)out->shards * out->listeners;

	if (strncmp(p, "fds=", 4) != 0)
		return -EINVAL;
	p += 4;
	out->fds = calloc(n ? n : 1, sizeof(int));
	if (!out->fds)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		long fd;
		if (i && *p++ != ',')
			return -EINVAL;
		if (parse_num(&p, 0, INT32_MAX, &fd) < 0)
			return -EINVAL;
		out->fds[i] = (int)fd;
	}
	return *p == '\0' ? 0 : -EINVAL;
}

int upgrade_env_parse(const char *text, upgrade_inherited *out, char *why,
		      size_t why_len)
{
	long v, peer, admin, old, shards, listeners;
	const char *p = text;

	*out = (upgrade_inherited){.peer = -1, .admin = -1};
	if (parse_field(&p, "v", 0, INT32_MAX, &v) < 0)
		return fail(why, why_len, "no version");
	if (v != UPGRADE_VERSION) {
		snprintf(why, why_len, "version %ld, this binary speaks %d", v,
			 UPGRADE_VERSION);
		return -EINVAL;
	}
	if (parse_field(&p, "peer", 0, INT32_MAX, &peer) < 0 ||
	    parse_field(&p, "admin", -1, INT32_MAX, &admin) < 0 ||
	    parse_field(&p, "old", 1, INT32_MAX, &old) < 0 ||
	    parse_field(&p, "shards", 1, UPGRADE_MAX_SHARDS, &shards) < 0 ||
	    parse_field(&p, "listeners", 1, SHARD_MAX_LISTENERS, &listeners) < 0)
		return fail(why, why_len, "malformed");
	out->shards = (uint32_t)shards;
	out->listeners = (uint32_t)listeners;
	int rc = parse_fds(p, out);
	if (rc < 0) {
		upgrade_inherited_free(out);
		return fail(why, why_len, rc == -ENOMEM ? "out of memory" :
			    "malformed socket list");
	}
	out->peer = (int)peer;
	out->admin = (int)admin;
	out->old_pid = (pid_t)old;
	return 0;
}

void upgrade_inherited_free(upgrade_inherited *u)
{
	free(u->fds);
	u->fds = NULL;
}

static void set_cloexec(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

int upgrade_take_env(upgrade_inherited *out, char *why, size_t why_len)
{
	const char *text = getenv(UPGRADE_ENV);

	*out = (upgrade_inherited){.peer = -1, .admin = -1};
	if (!text)
		return 0;
	int rc = upgrade_env_parse(text, out, why, why_len);
	unsetenv(UPGRADE_ENV);
	if (rc < 0)
		return rc;
	set_cloexec(out->peer, true);
	if (out->admin >= 0)
		set_cloexec(out->admin, true);
	for (size_t i = 0; i < (size_t)out->shards * out->listeners; i++)
		set_cloexec(out->fds[i], true);
	return 1;
}

int upgrade_self_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n < 0)
		return -errno;
	if ((size_t)n >= len - 1)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

/* --- the new process -------------------------------------------------------- */

static size_t argv_count(char *const argv[])
{
	size_t n = 0;

	while (argv[n])
		n++;
	return n;
}

/* In the child: the signal state a fresh process has (the supervisor
 * blocks its signals for a signalfd; the mask survives exec). */
static void child_signals(void)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
}

pid_t upgrade_spawn_check(const char *exe, char *const argv[])
{
	size_t n = argv_count(argv);
	char **args = calloc(n + 2, sizeof(char *));

	if (!args)
		return -ENOMEM;
	memcpy(args, argv, n * sizeof(char *));
	args[n] = (char *)"--check";
	pid_t pid = fork();
	if (pid == 0) {
		child_signals();
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDOUT_FILENO);
		execv(exe, args);
		_exit(127);
	}
	int err = errno;
	free(args);
	return pid < 0 ? -err : pid;
}

pid_t upgrade_spawn_new(const char *exe, char *const argv[], const char *env,
			const int *keep, size_t keep_count)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid > 0)
		return pid;
	child_signals();
	for (size_t i = 0; i < keep_count; i++)
		if (keep[i] >= 0)
			set_cloexec(keep[i], false);
	if (setenv(UPGRADE_ENV, env, 1) == 0)
		execv(exe, argv);
	_exit(127);
}

/* --- messages --------------------------------------------------------------- */

typedef struct upgrade_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t kind;
	uint32_t count;               /* fds attached */
} upgrade_msg;

typedef union upgrade_cmsg {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * UPGRADE_MAX_SHARDS)];
} upgrade_cmsg;

int upgrade_send(int sock, upgrade_msg_kind kind, const int *fds, size_t n)
{
	upgrade_msg m = {.magic = UPGRADE_MAGIC, .version = UPGRADE_VERSION,
			 .kind = (uint16_t)kind, .count = (uint32_t)n};
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	upgrade_cmsg control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	if (n > UPGRADE_MAX_SHARDS)
		return -E2BIG;
	memset(&control, 0, sizeof(control));
	if (n) {
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	ssize_t sent = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (sent < 0)
		return -errno;
	return sent == (ssize_t)sizeof(m) ? 0 : -EIO;
}

/* The fds of every SCM_RIGHTS header: the first `max` to `fds`, the rest
 * closed. */
static size_t take_fds(struct msghdr *msg, int *fds, size_t max)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

int upgrade_recv(int sock, int *fds, size_t max, size_t *n)
{
	upgrade_msg m;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	upgrade_cmsg control;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf)};

	*n = 0;
	ssize_t got = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (got < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (got == 0)
		return 0;
	*n = take_fds(&msg, fds, max);
	bool ours = got == (ssize_t)sizeof(m) && m.magic == UPGRADE_MAGIC &&
		    m.version == UPGRADE_VERSION && m.count == *n &&
		    (m.kind == UPGRADE_READY || m.kind == UPGRADE_COMMITTED);
	if (ours)
		return m.kind;
	for (size_t i = 0; i < *n; i++)
		close(fds[i]);
	*n = 0;
	return -EPROTO;
}
