/*
 * pollbench — ping-pong echo over loopback, to compare the poller backends.
 *
 *   pollbench --poller epoll|uring|uring-batch|uring-completion|auto|both|
 *             modes|all [-c CONNS] [-s SIZE] [-t SECONDS] [-r REPEAT]
 *             [--json]
 *
 * "uring-batch" is io_uring with poll_set_uring_write_batching(true),
 * "uring-completion" io_uring with completion I/O (poll_set_uring_io);
 * "both" runs epoll and uring, "modes" the three I/O modes side by side
 * (epoll, uring, uring-completion), "all" every configuration.
 *
 * Each connection sends SIZE bytes and waits for the echo, again and again,
 * for SECONDS. The client and the server are two fork()ed processes, each
 * with its own scheduler and poller: in one process both ends would share
 * one poller, so every readiness wave would carry both sides' events and the
 * batching per poll (the thing that separates the backends) would look
 * twice as good as a real proxy sees. The parent only orchestrates.
 *
 * Reported per run: round trips per second ("messages/s"), and syscalls per
 * message as counted by the poller (poll_stats.syscalls) on the server, the
 * client and both; plus submits, polls and CPU time per side. `both` runs
 * epoll and uring alternately, REPEAT times each, and prints medians.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "poll/poll.h"
#include "sched/sched.h"

#define MAX_REPEAT 25

/* A backend configuration: "uring-batch" is io_uring with write batching,
 * "uring-completion" io_uring with completion I/O. */
typedef struct poller_variant {
	poll_kind kind;
	bool batch;
	bool completion;
	const char *name;
} poller_variant;

#define MAX_VARIANTS 4

static const poller_variant variants[] = {
	{POLL_EPOLL, false, false, "epoll"},
	{POLL_URING, false, false, "uring"},
	{POLL_URING, true, false, "uring-batch"},
	{POLL_URING, false, true, "uring-completion"},
	{POLL_AUTO, false, false, "auto"},
};

/* --poller groups, as indexes into variants. */
typedef struct poller_group {
	const char *name;
	int count;
	int index[MAX_VARIANTS];
} poller_group;

static const poller_group groups[] = {
	{"both", 2, {0, 1}},
	{"modes", 3, {0, 1, 3}},
	{"all", 4, {0, 1, 2, 3}},
};

typedef struct pollbench_options {
	const poller_variant *kinds[MAX_VARIANTS];
	int kind_count;
	int conns;
	size_t size;
	double seconds;
	int repeat;
	bool json;
} pollbench_options;

/* What one side measured during the timed window. */
typedef struct side_result {
	poll_stats stats;
	int64_t cpu_ns;
	uint64_t messages;
	int64_t window_ns;
	uint64_t polls_blocking;    /* sched's view: hook calls that could block */
	uint64_t polls_nonblocking;
	int error;
} side_result;

typedef struct run_result {
	const poller_variant *v;
	side_result server, client;
	double msgs_per_s;
	double sys_per_msg;        /* client + server */
	double server_sys_per_msg;
	double client_sys_per_msg;
	double server_poll_sys_per_msg; /* epoll_wait / io_uring_enter only */
	double server_cpu_us_per_msg;   /* user+sys CPU: steadier than msg/s */
	double client_cpu_us_per_msg;   /* on a shared, noisy machine */
} run_result;

/* --- helpers ------------------------------------------------------------ */

static int64_t cpu_now(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ll +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ll;
}

static void stats_sub(poll_stats *a, const poll_stats *b)
{
	a->waits -= b->waits;
	a->events -= b->events;
	a->stale_events -= b->stale_events;
	a->submits -= b->submits;
	a->syscalls -= b->syscalls;
	a->netpoll_calls -= b->netpoll_calls;
	a->accept_pauses -= b->accept_pauses;
	a->timeouts -= b->timeouts;
	a->poll_syscalls -= b->poll_syscalls;
	a->enters -= b->enters;
	a->completions -= b->completions;
	a->recv_nobufs -= b->recv_nobufs;
	/* bufs_in_use is a gauge: kept as it was at the end */
}

/* All len bytes through write(2) or read(2): 0, or -1 on error or EOF. */
static int transfer_all(int fd, char *p, size_t len, bool writing)
{
	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	return transfer_all(fd, (char *)buf, len, true);
}

static int read_all(int fd, void *buf, size_t len)
{
	return transfer_all(fd, buf, len, false);
}

static int open_poller(const poller_variant *v)
{
	char why[256];
	if (sched_init(NULL) < 0)
		return -1;
	int rc = poll_open(v->kind, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "pollbench: %s: %s\n", v->name, why);
		return rc;
	}
	if (why[0])
		fprintf(stderr, "pollbench: %s\n", why);
	if (v->batch && (rc = poll_set_uring_write_batching(true)) < 0) {
		fprintf(stderr, "pollbench: %s: write batching needs io_uring\n",
			v->name);
		return rc;
	}
	if (v->completion) {
		poll_uring_io_config cfg = {.mode = POLL_URING_IO_COMPLETION};
		rc = poll_set_uring_io(&cfg, why, sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "pollbench: %s: %s\n", v->name,
				why[0] ? why : strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* --- server ------------------------------------------------------------- */

typedef struct echo_server {
	poll_desc *listener;
	poll_desc *control;        /* 'S' starts the window, 'E' ends it */
	size_t size;
	side_result result;
	poll_stats start;
	sched_stats sched_start;
	int64_t cpu_start;
	int64_t t_start;
	bool stopping;
} echo_server;

static echo_server srv;

static void echo_conn(void *arg)
{
	poll_desc *c = arg;
	char buf[16384];
	for (;;) {
		ssize_t n = pd_read(c, buf, sizeof(buf));
		if (n <= 0 || pd_write_full(c, buf, (size_t)n) < 0)
			break;
	}
	pd_close(c);
}

static void accept_loop(void *arg)
{
	(void)arg;
	for (;;) {
		poll_desc *c;
		if (pd_accept(srv.listener, &c, NULL, NULL) < 0)
			return;
		coro_opts o = {.stack_size = 0, .name = "echo"};
		if (!coro_spawn(echo_conn, c, &o))
			pd_close(c);
	}
}

static void server_control(void *arg)
{
	(void)arg;
	char cmd;
	while (pd_read(srv.control, &cmd, 1) == 1) {
		if (cmd == 'S') {
			poll_get_stats(&srv.start);
			sched_get_stats(&srv.sched_start);
			srv.cpu_start = cpu_now();
			srv.t_start = sched_now();
		} else if (cmd == 'E') {
			poll_get_stats(&srv.result.stats);
			stats_sub(&srv.result.stats, &srv.start);
			srv.result.cpu_ns = cpu_now() - srv.cpu_start;
			srv.result.window_ns = sched_now() - srv.t_start;
			sched_stats now;
			sched_get_stats(&now);
			srv.result.polls_blocking =
				now.polls_blocking - srv.sched_start.polls_blocking;
			srv.result.polls_nonblocking =
				now.polls_nonblocking - srv.sched_start.polls_nonblocking;
			break;
		}
	}
	/* Ending the loop: the echo coroutines are abandoned on purpose. */
	sched_stop();
}

static int server_main(const poller_variant *kind, int listen_fd, int control_fd,
		       int result_fd)
{
	signal(SIGPIPE, SIG_IGN);
	if (open_poller(kind) < 0)
		return 2;
	if (pd_open(listen_fd, &srv.listener) < 0 ||
	    pd_open(control_fd, &srv.control) < 0)
		return 3;
	coro_spawn(accept_loop, NULL, NULL);
	coro_spawn(server_control, NULL, NULL);
	sched_run();
	return write_all(result_fd, &srv.result, sizeof(srv.result)) < 0 ? 4 : 0;
}

/* --- client ------------------------------------------------------------- */

typedef struct bench_client {
	struct sockaddr_in addr;
	int conns;
	size_t size;
	int connected;
	int failed;
	int finished;
	coro **parked;        /* connections waiting for the start */
	coro *main;
	bool main_parked;
	bool started;
	int64_t end;
	int64_t seconds_ns;
	uint64_t messages;
	int control_fd;
	int result_fd;
} bench_client;

static bench_client cli;

static void client_conn(void *arg)
{
	int index = (int)(intptr_t)arg;
	char *out = malloc(cli.size), *in = malloc(cli.size);
	poll_desc *c = NULL;
	if (!out || !in || poll_connect((struct sockaddr *)&cli.addr,
					sizeof(cli.addr), 10000000000ll, &c) < 0) {
		cli.failed++;
		goto done;
	}
	memset(out, 'p', cli.size);
	cli.connected++;
	if (!cli.started) {
		cli.parked[index] = coro_self();
		coro_park("wait start");
	}
	while (sched_now() < cli.end) {
		if (pd_write_full(c, out, cli.size) != (ssize_t)cli.size ||
		    pd_read_full(c, in, cli.size) != (ssize_t)cli.size) {
			cli.failed++;
			break;
		}
		if (sched_now() <= cli.end)
			cli.messages++;
	}
	pd_close(c);
done:
	free(out);
	free(in);
	if (++cli.finished == cli.conns && cli.main_parked) {
		cli.main_parked = false;
		coro_ready(cli.main);
	}
}

static void client_main_coro(void *arg)
{
	(void)arg;
	side_result *res = calloc(1, sizeof(*res));

	for (int i = 0; i < 30000 && cli.connected + cli.failed < cli.conns; i++)
		coro_sleep(1000000);
	if (cli.failed) {
		fprintf(stderr, "pollbench: %d connections failed\n", cli.failed);
		res->error = 1;
	}
	poll_stats start;
	poll_get_stats(&start);
	int64_t cpu0 = cpu_now(), t0 = sched_now();
	write_all(cli.control_fd, "S", 1);
	cli.end = t0 + cli.seconds_ns;
	cli.started = true;
	for (int i = 0; i < cli.conns; i++)
		if (cli.parked[i])
			coro_ready(cli.parked[i]);
	while (cli.finished < cli.conns) {
		cli.main = coro_self();
		cli.main_parked = true;
		coro_park("wait finish");
	}
	poll_get_stats(&res->stats);
	stats_sub(&res->stats, &start);
	res->cpu_ns = cpu_now() - cpu0;
	res->window_ns = cli.end - t0;
	res->messages = cli.messages;
	write_all(cli.control_fd, "E", 1);
	write_all(cli.result_fd, res, sizeof(*res));
	free(res);
}

static int client_main(const poller_variant *kind, const pollbench_options *o, uint16_t port,
		       int control_fd, int result_fd)
{
	signal(SIGPIPE, SIG_IGN);
	if (open_poller(kind) < 0)
		return 2;
	memset(&cli, 0, sizeof(cli));
	cli.addr.sin_family = AF_INET;
	cli.addr.sin_port = htons(port);
	cli.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cli.conns = o->conns;
	cli.size = o->size;
	cli.parked = calloc((size_t)o->conns, sizeof(*cli.parked));
	cli.seconds_ns = (int64_t)(o->seconds * 1e9);
	cli.end = INT64_MAX; /* until the start, nobody loops */
	cli.control_fd = control_fd;
	cli.result_fd = result_fd;
	for (int i = 0; i < o->conns; i++)
		coro_spawn(client_conn, (void *)(intptr_t)i, NULL);
	coro_spawn(client_main_coro, NULL, NULL);
	sched_run();
	free(cli.parked);
	return 0;
}

/* --- orchestration ------------------------------------------------------ */

static int make_listener(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

typedef struct child_args {
	const poller_variant *kind;
	const pollbench_options *o;
	uint16_t port;
	int listen_fd, control_fd, result_fd;
	int close_fds[4];
} child_args;

static void close_others(const child_args *a)
{
	for (int i = 0; i < 4; i++)
		if (a->close_fds[i] >= 0)
			close(a->close_fds[i]);
}

static int server_child(void *p)
{
	child_args *a = p;
	close_others(a);
	return server_main(a->kind, a->listen_fd, a->control_fd, a->result_fd);
}

static int client_child(void *p)
{
	child_args *a = p;
	close_others(a);
	close(a->listen_fd);
	return client_main(a->kind, a->o, a->port, a->control_fd, a->result_fd);
}

static int wait_ok(pid_t pid, const char *who)
{
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	fprintf(stderr, "pollbench: %s failed (status 0x%x)\n", who, status);
	return -1;
}

static int run_once(const poller_variant *kind, const pollbench_options *o,
		    run_result *out)
{
	uint16_t port;
	int lfd = make_listener(&port);
	int ctl[2], sres[2], cres[2];
	if (lfd < 0 || pipe(ctl) < 0 || pipe(sres) < 0 || pipe(cres) < 0)
		return -1;
	child_args s = {kind, o, port, lfd, ctl[0], sres[1],
			       {ctl[1], sres[0], cres[0], cres[1]}};
	child_args c = {kind, o, port, lfd, ctl[1], cres[1],
			       {ctl[0], sres[0], sres[1], cres[0]}};
	pid_t sp = spawn(server_child, &s);
	pid_t cp = spawn(client_child, &c);
	close(lfd);
	close(ctl[0]);
	close(ctl[1]);
	close(sres[1]);
	close(cres[1]);
	memset(out, 0, sizeof(*out));
	out->v = kind;
	int rc = read_all(cres[0], &out->client, sizeof(out->client));
	rc |= read_all(sres[0], &out->server, sizeof(out->server));
	close(sres[0]);
	close(cres[0]);
	rc |= wait_ok(cp, "client");
	rc |= wait_ok(sp, "server");
	if (rc || out->client.error || out->client.messages == 0)
		return -1;
	double msgs = (double)out->client.messages;
	out->msgs_per_s = msgs / ((double)out->client.window_ns / 1e9);
	out->server_sys_per_msg = (double)out->server.stats.syscalls / msgs;
	out->client_sys_per_msg = (double)out->client.stats.syscalls / msgs;
	out->sys_per_msg = out->server_sys_per_msg + out->client_sys_per_msg;
	out->server_poll_sys_per_msg = (double)out->server.stats.poll_syscalls / msgs;
	out->server_cpu_us_per_msg = (double)out->server.cpu_ns / 1e3 / msgs;
	out->client_cpu_us_per_msg = (double)out->client.cpu_ns / 1e3 / msgs;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median_of(const run_result *runs, int n, size_t field)
{
	double v[MAX_REPEAT];
	for (int i = 0; i < n; i++)
		memcpy(&v[i], (const char *)&runs[i] + field, sizeof(double));
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_run(const pollbench_options *o, const run_result *r, int rep)
{
	const side_result *s = &r->server, *c = &r->client;
	double msgs = (double)c->messages;
	if (o->json) {
		printf("{\"poller\":\"%s\",\"rep\":%d,\"conns\":%d,\"size\":%zu,"
		       "\"seconds\":%.3f,\"messages\":%llu,\"msgs_per_s\":%.0f,"
		       "\"syscalls_per_msg\":%.3f,\"server_syscalls_per_msg\":%.3f,"
		       "\"client_syscalls_per_msg\":%.3f,"
		       "\"server_poll_syscalls_per_msg\":%.4f,"
		       "\"server_polls_per_msg\":%.4f,\"server_submits_per_msg\":%.4f,"
		       "\"server_events_per_msg\":%.3f,"
		       "\"server_enters_per_msg\":%.4f,"
		       "\"server_completions_per_msg\":%.3f,"
		       "\"server_recv_nobufs\":%llu,"
		       "\"server_cpu_us_per_msg\":%.3f,\"client_cpu_us_per_msg\":%.3f}\n",
		       r->v->name, rep, o->conns, o->size,
		       (double)c->window_ns / 1e9, (unsigned long long)c->messages,
		       r->msgs_per_s, r->sys_per_msg, r->server_sys_per_msg,
		       r->client_sys_per_msg, r->server_poll_sys_per_msg,
		       (double)s->stats.netpoll_calls / msgs,
		       (double)s->stats.submits / msgs, (double)s->stats.events / msgs,
		       (double)s->stats.enters / msgs,
		       (double)s->stats.completions / msgs,
		       (unsigned long long)s->stats.recv_nobufs,
		       (double)s->cpu_ns / 1e3 / msgs, (double)c->cpu_ns / 1e3 / msgs);
		return;
	}
	printf("%-16s rep %-2d c %-5d s %-5zu %8.0f msg/s  sys/msg %.3f "
	       "(server %.3f [poller %.4f] client %.3f)  server polls/msg %.3f "
	       "(blocking %.3f) enters/msg %.3f cqes/msg %.2f nobufs %llu "
	       "cpu us/msg server %.2f client %.2f\n",
	       r->v->name, rep, o->conns, o->size, r->msgs_per_s,
	       r->sys_per_msg, r->server_sys_per_msg, r->server_poll_sys_per_msg,
	       r->client_sys_per_msg, (double)s->stats.netpoll_calls / msgs,
	       (double)s->polls_blocking / msgs,
	       (double)s->stats.enters / msgs, (double)s->stats.completions / msgs,
	       (unsigned long long)s->stats.recv_nobufs,
	       (double)s->cpu_ns / 1e3 / msgs, (double)c->cpu_ns / 1e3 / msgs);
}

#define MEDIAN(field) median_of(runs, n, offsetof(run_result, field))

static void print_median(const pollbench_options *o, const poller_variant *kind,
			 const run_result *runs, int n)
{
	double mps = MEDIAN(msgs_per_s), spm = MEDIAN(sys_per_msg);
	double sspm = MEDIAN(server_sys_per_msg), cspm = MEDIAN(client_sys_per_msg);
	double pspm = MEDIAN(server_poll_sys_per_msg);
	double scpu = MEDIAN(server_cpu_us_per_msg), ccpu = MEDIAN(client_cpu_us_per_msg);
	if (o->json) {
		printf("{\"poller\":\"%s\",\"median_of\":%d,\"conns\":%d,\"size\":%zu,"
		       "\"msgs_per_s\":%.0f,\"syscalls_per_msg\":%.3f,"
		       "\"server_syscalls_per_msg\":%.3f,\"client_syscalls_per_msg\":%.3f,"
		       "\"server_poll_syscalls_per_msg\":%.4f,"
		       "\"server_cpu_us_per_msg\":%.2f,\"client_cpu_us_per_msg\":%.2f}\n",
		       kind->name, n, o->conns, o->size, mps, spm, sspm,
		       cspm, pspm, scpu, ccpu);
		return;
	}
	printf("median %-16s of %d  c %-5d s %-5zu %8.0f msg/s  sys/msg %.3f "
	       "(server %.3f [poller %.4f] client %.3f)  cpu us/msg server %.2f "
	       "client %.2f\n",
	       kind->name, n, o->conns, o->size, mps, spm, sspm, pspm,
	       cspm, scpu, ccpu);
}

static void usage(void)
{
	fprintf(stderr, "usage: pollbench --poller epoll|uring|uring-batch|"
		"uring-completion|auto|both|modes|all [-c CONNS] [-s SIZE]\n"
		"                 [-t SECONDS] [-r REPEAT] [--json]\n"
		"  both = epoll and uring; modes = epoll, uring and "
		"uring-completion;\n  all = epoll, uring, uring-batch and "
		"uring-completion\n");
	exit(2);
}

static void parse(int argc, char **argv, pollbench_options *o)
{
	static const struct option longs[] = {
		{"poller", required_argument, NULL, 'p'},
		{"conns", required_argument, NULL, 'c'},
		{"size", required_argument, NULL, 's'},
		{"time", required_argument, NULL, 't'},
		{"repeat", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	*o = (pollbench_options){.kinds = {&variants[3]}, .kind_count = 1, .conns = 100,
			   .size = 64, .seconds = 3, .repeat = 1};
	int ch;
	while ((ch = getopt_long(argc, argv, "p:c:s:t:r:j", longs, NULL)) != -1) {
		switch (ch) {
		case 'p':
			o->kind_count = 0;
			for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
				if (strcmp(optarg, groups[g].name) != 0)
					continue;
				o->kind_count = groups[g].count;
				for (int i = 0; i < o->kind_count; i++)
					o->kinds[i] = &variants[groups[g].index[i]];
			}
			if (o->kind_count)
				break;
			for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++)
				if (strcmp(optarg, variants[i].name) == 0)
					o->kinds[o->kind_count++] = &variants[i];
			if (o->kind_count != 1)
				usage();
			break;
		case 'c': o->conns = atoi(optarg); break;
		case 's': o->size = (size_t)atol(optarg); break;
		case 't': o->seconds = atof(optarg); break;
		case 'r': o->repeat = atoi(optarg); break;
		case 'j': o->json = true; break;
		default: usage();
		}
	}
	if (o->conns < 1 || o->conns > 8000 || o->size < 1 || o->size > 1 << 20 ||
	    o->seconds <= 0 || o->seconds > 600 || o->repeat < 1 ||
	    o->repeat > MAX_REPEAT)
		usage();
}

int main(int argc, char **argv)
{
	pollbench_options o;
	parse(argc, argv, &o);
	static run_result runs[MAX_VARIANTS][MAX_REPEAT];
	int done[MAX_VARIANTS] = {0};
	/* Alternate backends so drift (thermal, noise) hits both alike. */
	for (int rep = 0; rep < o.repeat; rep++) {
		for (int k = 0; k < o.kind_count; k++) {
			run_result *r = &runs[k][done[k]];
			if (run_once(o.kinds[k], &o, r) < 0) {
				fprintf(stderr, "pollbench: %s run %d failed\n",
					o.kinds[k]->name, rep);
				return 1;
			}
			print_run(&o, r, rep);
			fflush(stdout);
			done[k]++;
		}
	}
	if (o.repeat > 1 || o.kind_count > 1)
		for (int k = 0; k < o.kind_count; k++)
			print_median(&o, o.kinds[k], runs[k], done[k]);
	return 0;
}
