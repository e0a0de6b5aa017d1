/*
 * The non-blocking stderr sink (log_use_nonblocking_stderr). It is in
 * proxy_relay, not proxy_core, because it sends on sockets; it reaches the
 * line assembly only through log_set_sink.
 *
 * A line that cannot be written at once is dropped and counted rather than
 * waited for: a log reader that stalls (a full pipe, a slow journal) must
 * never stall the relay. The count goes out as one "log lines dropped"
 * line once the sink takes lines again.
 */
#include "proxy/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "proxy/log_internal.h"

static int sink_fd = -1;      /* a non-blocking way to stderr, or -1 */
static bool sink_is_socket;   /* send(MSG_DONTWAIT) instead of write */
static char sink_rest[LOG_LINE_MAX]; /* a socket's cut line, still owed */
static size_t sink_rest_len;
static uint64_t sink_dropped; /* since the last "dropped" line */
static uint64_t sink_dropped_total;

static void sink_emit(const char *buf, size_t n);

int log_use_nonblocking_stderr(void)
{
	struct stat st;

	if (fstat(STDERR_FILENO, &st) < 0)
		return -errno;
	if (S_ISSOCK(st.st_mode)) {
		sink_fd = STDERR_FILENO;
		sink_is_socket = true;
		log_set_sink(sink_emit);
		return 0;
	}
	if (!S_ISFIFO(st.st_mode))
		return 0; /* files and terminals: writes do not wait on a reader */
	/* A description of our own: O_NONBLOCK on fd 2 itself would also
	 * change it for whoever shares the pipe (the shell that started us). */
	int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	sink_fd = fd;
	sink_is_socket = false;
	log_set_sink(sink_emit);
	return 0;
}

void log_use_blocking_stderr(void)
{
	log_set_sink(NULL);
	if (sink_fd > STDERR_FILENO)
		close(sink_fd);
	sink_fd = -1;
	sink_is_socket = false;
	sink_rest_len = 0;
	sink_dropped = 0;
}

uint64_t log_dropped_lines(void)
{
	return sink_dropped_total;
}

static ssize_t sink_write(const char *buf, size_t n)
{
	ssize_t w;

	do {
		w = sink_is_socket ? send(sink_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL)
				   : write(sink_fd, buf, n);
	} while (w < 0 && errno == EINTR);
	return w;
}

/* Finishes a line a socket took only part of; true when none is owed. */
static bool sink_finish_rest(void)
{
	size_t at = 0;

	while (at < sink_rest_len) {
		ssize_t w = sink_write(sink_rest + at, sink_rest_len - at);
		if (w <= 0)
			break;
		at += (size_t)w;
	}
	memmove(sink_rest, sink_rest + at, sink_rest_len - at);
	sink_rest_len -= at;
	return sink_rest_len == 0;
}

/* Writes a whole line or nothing (a pipe takes up to PIPE_BUF bytes at
 * once); a socket may take part, and the rest is owed. */
static bool sink_put(const char *buf, size_t n)
{
	ssize_t w = sink_write(buf, n);

	if (w < 0)
		return false;
	if ((size_t)w < n) {
		memcpy(sink_rest, buf + w, n - (size_t)w);
		sink_rest_len = n - (size_t)w;
	}
	return true;
}

static void sink_drop(void)
{
	sink_dropped++;
	sink_dropped_total++;
}

static void sink_emit(const char *buf, size_t n)
{
	static char note[256];

	if (!sink_finish_rest()) {
		sink_drop();
		return;
	}
	if (sink_dropped > 0) {
		size_t len = log_format(note, sizeof(note), log_realtime_ns(),
					LOG_LEVEL_WARN, "log lines dropped",
					"dropped=%llu reason=%s",
					(unsigned long long)sink_dropped,
					"stderr not taking lines");
		if (!sink_put(note, len)) {
			sink_drop();
			return;
		}
		sink_dropped = 0;
		if (sink_rest_len > 0) { /* the note went out in part */
			sink_drop();
			return;
		}
	}
	if (!sink_put(buf, n))
		sink_drop();
}
