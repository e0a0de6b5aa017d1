/*
 * frametop — a live view of a frameproxy supervisor's admin endpoint
 * (GET /stats), one row per shard, so that imbalance between shards shows
 * at a glance; with rpc listeners, also one row per server (requests/s,
 * in flight, p99 latency).
 *
 * Every interval it fetches /stats, parses it (tools/frametop/json.h) and
 * prints one table (tools/frametop/stats.h). Rates are deltas between two
 * consecutive samples over the time between them, so the first table shows
 * "-" in the rate columns: it is printed at once rather than after an
 * interval, so that a wrong address fails immediately. --once is the
 * exception: it samples twice, one interval apart, and prints one table
 * with rates.
 *
 * On a terminal it redraws in place (ANSI home + clear to end of line) and
 * quits on q or Ctrl-C; otherwise, or with --once, it prints plain tables
 * separated by blank lines, without escape codes, for scripts and tests.
 * It is only an HTTP client: it links nothing of proxy/ or shard/.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sched/sched.h"
#include "tools/lib/cli.h"
#include "tools/frametop/http.h"
#include "tools/frametop/stats.h"
#include "tools/frametop/table.h"

#define DEFAULT_ADMIN "127.0.0.1:9100"
#define DEFAULT_INTERVAL_NS 1000000000ll
#define MIN_INTERVAL_NS 10000000ll          /* 10ms */
#define MAX_INTERVAL_NS 3600000000000ll     /* 1h */
#define EXIT_UNREACHABLE 1
#define EXIT_USAGE 2

typedef struct top_options {
	const char *admin;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	int64_t interval_ns;
	bool once;
	uint64_t count;                  /* tables to print; 0: until quit */
} top_options;

/* Set by SIGINT/SIGTERM; every wait is a poll(2) that the signal cuts. */
static volatile sig_atomic_t stop_requested;
/* The terminal's settings while keys are read raw (tty_raw). */
static struct termios saved_tty;
static volatile sig_atomic_t tty_raw;

static const char usage_text[] =
	"usage: frametop [--admin HOST:PORT] [--interval DUR] [--once]\n"
	"                [--count N]\n"
	"A live view of frameproxy's admin endpoint (GET /stats).\n"
	"  --admin HOST:PORT  the supervisor's --admin address\n"
	"                     (default " DEFAULT_ADMIN ")\n"
	"  --interval DUR     time between samples, 10ms..1h (default 1s)\n"
	"  --once             print one plain table and exit; it samples\n"
	"                     twice, one interval apart, so it has rates\n"
	"  --count N          stop after N tables\n"
	"On a terminal the table is redrawn in place; q or Ctrl-C quits.\n"
	"Otherwise (or with --once) plain tables separated by blank lines.\n"
	"Rates are per second between two samples, so the first table shows\n"
	"'-' in the rate columns; a counter that went backwards counts 0.\n"
	"Columns, one row per shard, then a total:\n"
	"  ^/v        ^ busiest and v idlest shard by frames/s (in + out),\n"
	"             marked when the busiest does more than 2x the idlest\n"
	"             and at least 1 frame/s\n"
	"  SHARD PID  shard index and its newest live process (0: none)\n"
	"  STATE      starting, ready, retiring, draining, or down\n"
	"  POLLER GEN the shard's netpoller and generation (reload count)\n"
	"  CONNS      active connections\n"
	"  ACC/s      connections accepted per second\n"
	"  FRM_IN/s   frames per second client -> upstream\n"
	"  FRM_OUT/s  frames per second upstream -> client\n"
	"  BYTES/s    bytes per second, both directions\n"
	"  CPU%       user + system CPU time over wall time (100 = 1 core)\n"
	"  RSS RUNQ   resident memory, scheduler run-queue length\n"
	"When some server does rpc (its rpc figures in /stats are not all 0;\n"
	"never with stream listeners only), an rpc view follows, one row per\n"
	"server (listener, address), summed over the shards:\n"
	"  REQ/s      requests sent to it per second (rpc_sent)\n"
	"  INFLIGHT   requests sent and not yet answered\n"
	"  POOL       pool connections open to it\n"
	"  P99        99th percentile of the latency of the replies of the\n"
	"             interval, estimated from how much each bucket of the\n"
	"             latency histogram grew between the two samples: the\n"
	"             bucket holding the 99% rank, linearly interpolated between\n"
	"             its bounds (as Prometheus' histogram_quantile); '>10.0s'\n"
	"             when above the last bound, '-' with no replies\n"
	"Exit status: 0; 1 when the endpoint cannot be reached or answers\n"
	"something that is not its /stats JSON; 2 on a usage error.\n";

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("frametop: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\n(frametop --help for usage)\n", stderr);
	va_end(ap);
	return -EINVAL;
}

/* --- options -------------------------------------------------------------- */

static int set_interval(top_options *o, const char *text)
{
	if (cli_parse_duration(text, &o->interval_ns) < 0 ||
	    o->interval_ns < MIN_INTERVAL_NS ||
	    o->interval_ns > MAX_INTERVAL_NS)
		return usage_error("--interval '%s': a duration from 10ms "
				   "to 1h, e.g. 200ms, 2s", text);
	return 0;
}

static int set_count(top_options *o, const char *text)
{
	if (cli_parse_u64(text, UINT32_MAX, &o->count) < 0 || o->count == 0)
		return usage_error("--count '%s': a whole number >= 1", text);
	return 0;
}

/* 0, 1 when --help was printed, or -EINVAL (usage error, reported). */
static int parse_args(int argc, char **argv, top_options *o)
{
	static const struct option longs[] = {
		{"admin", required_argument, NULL, 'a'},
		{"interval", required_argument, NULL, 'i'},
		{"once", no_argument, NULL, 'o'},
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, err = 0;
	opterr = 0;  /* our own message, with the option's name */
	while (err == 0 &&
	       (c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		if (c == 'a')
			o->admin = optarg;
		else if (c == 'i')
			err = set_interval(o, optarg);
		else if (c == 'o')
			o->once = true;
		else if (c == 'n')
			err = set_count(o, optarg);
		else if (c == 'h')
			return 1;
		else
			err = usage_error("unknown option or missing value: "
					  "'%s'", argv[optind - 1]);
	}
	if (err == 0 && optind < argc)
		err = usage_error("unexpected argument '%s'", argv[optind]);
	if (err == 0 && o->once && o->count)
		err = usage_error("--once prints one table: drop --count");
	return err;
}

/* Malformed is a usage error (2); a name that does not resolve is 1. */
static int resolve_admin(top_options *o)
{
	int err = cli_parse_addr(o->admin, &o->addr, &o->addr_len);
	if (err == -EINVAL) {
		usage_error("--admin '%s': expected HOST:PORT or [V6]:PORT",
			    o->admin);
		return EXIT_USAGE;
	}
	if (err < 0) {
		fprintf(stderr, "frametop: %s: cannot resolve the host\n",
			o->admin);
		return EXIT_UNREACHABLE;
	}
	return 0;
}

/* --- terminal ------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	int saved_errno = errno;   /* the interrupted poll's EINTR */
	stop_requested = 1;
	/* Restore at once: async-signal-safe, and harmless when main does it
	 * again on its way out. */
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	errno = saved_errno;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must cut a poll(2) short. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* Keys one at a time without echo. ISIG stays on: Ctrl-C is a SIGINT. */
static bool tty_enter(bool keys)
{
	fputs("\033[?25l\033[H\033[2J", stdout);   /* hide cursor, clear */
	if (!keys || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return false;
	struct termios raw = saved_tty;
	raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		return false;
	tty_raw = 1;
	return true;
}

static void tty_leave(void)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	tty_raw = 0;
	fputs("\033[?25h", stdout);                 /* cursor back */
	fflush(stdout);
}

/* A key was read: true when it asks to quit. False on EOF too (*keys off). */
static bool read_key(bool *keys)
{
	char buf[32];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n <= 0) {
		if (n == 0 || errno != EINTR)
			*keys = false;      /* stdin closed: stop polling it */
		return false;
	}
	return memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n);
}

/* Sleep until `due` (CLOCK_MONOTONIC). True when asked to quit. */
static bool wait_until(int64_t due, bool *keys)
{
	while (!stop_requested) {
		int64_t left_ms =
			(due - sched_clock_ns(CLOCK_MONOTONIC) + 999999) / 1000000;
		if (left_ms <= 0)
			return false;
		struct pollfd p = {STDIN_FILENO, POLLIN, 0};
		int n = poll(&p, *keys ? 1 : 0, (int)left_ms);
		if (n > 0 && read_key(keys))
			return true;
	}
	return true;
}

/* --- sampling ------------------------------------------------------------- */

/* 0; -EINTR when asked to stop; otherwise the error, with msg set. */
static int fetch(const top_options *o, stats_sample *out, char *msg,
		 size_t msg_len)
{
	http_reply reply;
	char why[160];
	int err;
	memset(out, 0, sizeof(*out));
	do {
		err = http_get((const struct sockaddr *)&o->addr,
			       o->addr_len, o->admin, "/stats",
			       HTTP_TIMEOUT_MS, &reply);
		if (err == 0)
			err = stats_sample_parse(reply.body, reply.body_len, out,
						 why, sizeof(why));
		else
			http_strerror(err, &reply, why, sizeof(why));
		http_free(&reply);
	} while (err == -EINTR && !stop_requested);
	if (err == -ENOMEM)
		snprintf(why, sizeof(why), "out of memory");
	if (err < 0 && err != -EINTR)
		snprintf(msg, msg_len, "%s: GET /stats: %s", o->admin, why);
	out->mono_ns = sched_clock_ns(CLOCK_MONOTONIC);
	return err;
}

/* One table: in place on a terminal (one write, so it does not flicker). */
static int show(const stats_sample *prev, const stats_sample *cur,
		const top_options *o, bool screen, bool first)
{
	if (!screen) {
		if (!first)
			fputc('\n', stdout);
		int err = table_render(stdout, prev, cur, o->admin, "\n");
		return fflush(stdout) == 0 ? err : -EIO;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return -ENOMEM;
	fputs("\033[H", mem);
	int err = table_render(mem, prev, cur, o->admin, "\033[K\n");
	fputs("q: quit\033[K\033[J", mem);
	if (fclose(mem) != 0 && err == 0)
		err = -ENOMEM;
	if (err == 0 && (fwrite(text, 1, len, stdout) != len || fflush(stdout)))
		err = -EIO;
	free(text);
	return err;
}

/* The sampling loop: an exit status, with msg set when it is not 0. */
static int loop(const top_options *o, bool screen, bool *keys, char *msg,
		size_t msg_len)
{
	stats_sample prev = {0}, cur;
	bool have_prev = false;
	uint64_t shown = 0, want = o->once ? 1 : o->count;
	int64_t due = sched_clock_ns(CLOCK_MONOTONIC);
	int status = 0;
	for (;;) {
		int err = fetch(o, &cur, msg, msg_len);
		if (err < 0) {
			status = err == -EINTR ? 0 : EXIT_UNREACHABLE;
			break;
		}
		/* --once waits for a second sample: its table has rates. */
		if (!o->once || have_prev) {
			err = show(have_prev ? &prev : NULL, &cur, o, screen,
				   shown == 0);
			if (err < 0 && !stop_requested) {
				snprintf(msg, msg_len, "writing the table: %s",
					 strerror(-err));
				status = EXIT_UNREACHABLE;
			}
			shown++;
		}
		stats_sample_free(&prev);
		prev = cur;
		have_prev = true;
		if (status || stop_requested || (want && shown >= want))
			break;
		due += o->interval_ns;
		/* After a slow fetch, go on from now rather than catch up. */
		if (due < sched_clock_ns(CLOCK_MONOTONIC))
			due = sched_clock_ns(CLOCK_MONOTONIC);
		if (wait_until(due, keys))
			break;
	}
	stats_sample_free(&prev);
	return status;
}

int main(int argc, char **argv)
{
	top_options o = {.admin = DEFAULT_ADMIN,
			    .interval_ns = DEFAULT_INTERVAL_NS};
	int err = parse_args(argc, argv, &o);
	if (err == 1) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (err < 0)
		return EXIT_USAGE;
	int status = resolve_admin(&o);
	if (status)
		return status;
	install_signals();
	bool screen = !o.once && isatty(STDOUT_FILENO);
	bool keys = screen && isatty(STDIN_FILENO);
	if (screen)
		keys = tty_enter(keys);
	char msg[320] = "";
	status = loop(&o, screen, &keys, msg, sizeof(msg));
	if (screen) {
		tty_leave();
		fputc('\n', stdout);
	}
	/* After the terminal is restored, so the line is not drawn over. */
	if (status)
		fprintf(stderr, "frametop: %s\n", msg);
	return status;
}
