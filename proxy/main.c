/*
 * frameproxy: command line, configuration, then the supervisor (shard/),
 * which forks the shards that each run server_run on their own sockets.
 *
 * Flags set the same keys as the config file and win over it; the file is
 * read first whatever the order on the command line. SIGHUP reads both
 * again (the same file, the same flags).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxy/config.h"
#include "proxy/ctl.h"
#include "proxy/counters.h"
#include "proxy/log.h"
#include "proxy/overload.h"
#include "proxy/reason.h"
#include "proxy/server.h"
#include "shard/shard.h"

#ifndef FRAMEPROXY_VERSION
#define FRAMEPROXY_VERSION "unknown"
#endif

/* Flags that set a config key (config_flag_get) come from OPT_KEY_BASE on. */
enum { OPT_CHECK = 256, OPT_SET, OPT_VERSION, OPT_KEY_BASE = 512 };

static void usage(FILE *out)
{
	fprintf(out,
"usage: frameproxy [-c FILE] [--check] [flags]\n"
"       frameproxy ctl [--admin ADDR] COMMAND   (frameproxy ctl --help)\n"
"\n"
"A reverse proxy for length-prefixed TCP frames (4-byte big-endian length\n"
"+ payload). Settings come from an INI file (docs/frameproxy.example.ini)\n"
"and from flags, which override the file. Flags without a listener name\n"
"apply to the first listener (one named \"default\" is made if none).\n"
"\n"
"  -c, --config FILE        read settings from FILE\n"
"      --check              validate the settings, print errors, exit 0 or 1\n"
"      --set KEY=VALUE      any key: 'max_frame=1MiB', 'listener.api.retries=3'\n"
"  -h, --help               this text\n"
"      --version            print the version\n"
"\n");
	config_print_flags(out);
	fprintf(out,
"\n"
"Sizes read like 64KiB or 16MiB; durations like 250ms, 30s or 1m30s.\n"
"SIGTERM/SIGINT drain (frames in flight finish), a second one exits now.\n"
"SIGHUP reloads: the settings are checked, then shards are replaced one at a\n"
"time on the same sockets while the old ones finish their connections.\n"
"SIGUSR2 upgrades: the binary at this one's path is checked with --check,\n"
"then takes over the sockets and the connections (docs/RELIABILITY.md).\n");
}

typedef struct cli_args {
	const char *config_path;
	bool check;
	/* Flags are applied after the file, in command-line order. */
	struct { const char *key; const char *value; const char *origin; } *sets;
	size_t set_count;
	char **owned; /* strings split out of --set */
	size_t owned_count;
} cli_args;

static int cli_add(cli_args *c, const char *key, const char *value,
		   const char *origin)
{
	void *grown = realloc(c->sets, (c->set_count + 1) * sizeof(*c->sets));

	if (!grown)
		return -ENOMEM;
	c->sets = grown;
	c->sets[c->set_count].key = key;
	c->sets[c->set_count].value = value;
	c->sets[c->set_count].origin = origin;
	c->set_count++;
	return 0;
}

/* --set KEY=VALUE: the key is split into its own string. */
static int cli_add_set(cli_args *c, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg) {
		fprintf(stderr, "frameproxy: --set: expected KEY=VALUE, got '%s'\n", arg);
		return -EINVAL;
	}
	char *key = strndup(arg, (size_t)(eq - arg));
	void *grown = realloc(c->owned, (c->owned_count + 1) * sizeof(char *));
	if (!key || !grown) {
		free(key);
		return -ENOMEM;
	}
	c->owned = grown;
	c->owned[c->owned_count++] = key;
	return cli_add(c, key, eq + 1, "--set");
}

static void cli_free(cli_args *c)
{
	for (size_t i = 0; i < c->owned_count; i++)
		free(c->owned[i]);
	free(c->owned);
	free(c->sets);
}

static struct option *options_build(void)
{
	static const struct option fixed[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, OPT_CHECK},
		{"set", required_argument, NULL, OPT_SET},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
	};
	size_t fixed_count = sizeof(fixed) / sizeof(fixed[0]);
	size_t flag_count = 0;
	config_flag f;

	while (config_flag_get(flag_count, &f))
		flag_count++;
	struct option *all = calloc(fixed_count + flag_count + 1, sizeof(*all));
	if (!all)
		return NULL;
	memcpy(all, fixed, sizeof(fixed));
	for (size_t i = 0; config_flag_get(i, &f); i++)
		all[fixed_count + i] = (struct option){
			f.flag + 2, f.takes_arg ? required_argument : no_argument,
			NULL, OPT_KEY_BASE + (int)i};
	return all;
}

/* 0 to go on, 1 to exit 0 (help, version), -1 to exit 2 (usage error). */
static int cli_parse(cli_args *c, int argc, char **argv)
{
	struct option *options = options_build();
	config_flag f;
	int opt, rc = 0;

	if (!options)
		return -1;
	while (rc == 0 && (opt = getopt_long(argc, argv, "c:h", options, NULL)) != -1) {
		if (opt == 'c') {
			c->config_path = optarg;
		} else if (opt == OPT_CHECK) {
			c->check = true;
		} else if (opt == OPT_SET) {
			rc = cli_add_set(c, optarg) < 0 ? -1 : 0;
		} else if (opt == 'h') {
			usage(stdout);
			rc = 1;
		} else if (opt == OPT_VERSION) {
			printf("frameproxy %s\n", FRAMEPROXY_VERSION);
			rc = 1;
		} else if (opt >= OPT_KEY_BASE &&
			   config_flag_get((size_t)(opt - OPT_KEY_BASE), &f)) {
			rc = cli_add(c, f.key, f.takes_arg ? optarg : "on",
				     f.flag) < 0 ? -1 : 0;
		} else {
			fprintf(stderr, "Try 'frameproxy --help'.\n");
			rc = -1;
		}
	}
	if (rc == 0 && optind < argc) {
		fprintf(stderr, "frameproxy: unexpected argument '%s'\n", argv[optind]);
		rc = -1;
	}
	free(options);
	return rc;
}

static int config_build(config *cfg, const cli_args *c)
{
	config_init(cfg);
	if (c->config_path)
		config_load_file(cfg, c->config_path);
	for (size_t i = 0; i < c->set_count; i++)
		config_apply_override(cfg, c->sets[i].key, c->sets[i].value,
				      c->sets[i].origin);
	return config_finish(cfg);
}

static poll_kind poller_from_config(config_poller poller)
{
	switch (poller) {
	case CONFIG_POLLER_EPOLL:
		return POLL_EPOLL;
	case CONFIG_POLLER_URING:
		return POLL_URING;
	default:
		return POLL_AUTO;
	}
}

/* Listener arrays live as long as the run; freed by the caller. They point
 * into the config (acl, servers), which outlives them. */
typedef struct run_plan {
	listener_params *listeners;
	shard_listen_spec *sockets;
	size_t count;
} run_plan;

static void plan_free(run_plan *plan)
{
	free(plan->listeners);
	free(plan->sockets);
	*plan = (run_plan){0};
}

static void plan_listener(listener_params *p, const config_listener *cl)
{
	*p = (listener_params){
		.name = cl->name,
		.addr_len = cl->listen.len,
		.backlog = 4096,
		.max_connections = cl->max_connections,
		.max_per_client = cl->max_per_client,
		.acl = &cl->acl,
		.access_log = cl->access_log,
		.relay = {
			.max_frame = (uint32_t)cl->max_frame,
			.buffer_size = (uint32_t)cl->buffer,
			.idle_timeout_ns = cl->idle_timeout,
			.frame_timeout_ns = cl->frame_timeout,
		},
		.upstream = {
			.connect_timeout_ns = cl->connect_timeout,
			.queue_timeout_ns = cl->queue_timeout,
			.retries = cl->retries,
			.fail_threshold = cl->fail_threshold,
			.outlier_errors = cl->outlier_errors,
			.outlier_latency = cl->outlier_latency,
			.max_ejected = cl->max_ejected,
			.fail_timeout_ns = cl->fail_timeout,
			.health_interval_ns = cl->health_interval,
			.health_rise = cl->health_rise,
			.health_fall = cl->health_fall,
			.check_frame = cl->has_check_frame ? cl->check_frame : NULL,
			.check_frame_len = (uint32_t)cl->check_frame_len,
			.max_frame = (uint32_t)cl->max_frame,
			.tls = cl->upstream_tls_ctx,
			.tls_name = cl->upstream_tls_name,
		},
		.balance = cl->balance,
		.servers = cl->servers,
		.server_count = (uint32_t)cl->nservers,
		.names = cl->names,
		.name_count = (uint32_t)cl->nnames,
		.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid(),
		.rpc_mode = cl->mode == CONFIG_MODE_RPC,
		.rpc = {
			.pool_size = cl->rpc.pool_size,
			.max_inflight = cl->rpc.max_inflight,
			.max_held = cl->rpc.max_held,
			.upstream_max_inflight = cl->rpc.upstream_max_inflight,
			.request_timeout_ns = cl->rpc.request_timeout,
			.queue_timeout_ns = cl->queue_timeout,
			.retry = cl->rpc.retry,
			.tag = cl->rpc.tag,
			.hash_key = cl->rpc.hash_key,
		},
		.accept_proxy = cl->accept_proxy,
		.accept_proxy_from = cl->accept_proxy_from.allow.count
					     ? &cl->accept_proxy_from : NULL,
		.send_proxy = cl->send_proxy,
		.tls = cl->tls,
		.tls_handshake_timeout_ns = cl->tls_handshake_timeout,
	};
	p->upstream.check_prefix = proxy_header_local(cl->send_proxy,
						      &p->upstream.check_prefix_len);
	memcpy(&p->addr, &cl->listen.ss, cl->listen.len);
}

static int plan_build(run_plan *plan, const config *cfg)
{
	plan->count = cfg->nlisteners;
	plan->listeners = calloc(plan->count, sizeof(*plan->listeners));
	plan->sockets = calloc(plan->count, sizeof(*plan->sockets));
	if (!plan->listeners || !plan->sockets)
		return -ENOMEM;
	for (size_t i = 0; i < plan->count; i++) {
		const config_listener *cl = &cfg->listeners[i];
		plan_listener(&plan->listeners[i], cl);
		shard_listen_spec *sock = &plan->sockets[i];
		sock->name = cl->name;
		sock->addr = plan->listeners[i].addr;
		sock->addr_len = plan->listeners[i].addr_len;
		sock->backlog = plan->listeners[i].backlog;
	}
	return 0;
}

/* --- the application the supervisor runs ---------------------------------- */

typedef struct proxy_app {
	const cli_args *cli;
	char *const *argv;    /* as given: a binary upgrade runs with it */
	config cfg;           /* the running configuration */
	run_plan plan;
} proxy_app;

static void app_settings(const proxy_app *app, shard_settings *s)
{
	const config *cfg = &app->cfg;

	*s = (shard_settings){
		.shards = cfg->shards,
		.pin = cfg->pin,
		.steer_by_cpu = cfg->steer == CONFIG_STEER_CPU,
		.drain_timeout_ns = cfg->drain_timeout,
		.has_admin = cfg->has_admin,
		.admin_len = cfg->admin.len,
		.admin_mode = cfg->admin_mode,
		.admin_token = cfg->admin_token,
		.user = cfg->user,
		.listeners = app->plan.sockets,
		.listener_count = (uint32_t)app->plan.count,
		.metrics = &counters_metrics,
		.handoff = cfg->reload_handoff,
		.argv = app->argv,
		.upgrade_timeout_ns = cfg->upgrade_timeout,
		.version = FRAMEPROXY_VERSION,
	};
	memcpy(&s->admin, &cfg->admin.ss, cfg->admin.len);
}

static poll_uring_io uring_io_from_config(config_uring_io mode)
{
	switch (mode) {
	case CONFIG_URING_IO_COMPLETION:
		return POLL_URING_IO_COMPLETION;
	case CONFIG_URING_IO_AUTO:
		return POLL_URING_IO_AUTO;
	default:
		return POLL_URING_IO_POLL;
	}
}

/* `mixed` runs both pollers side by side on the same traffic: even shards
 * epoll, odd shards io_uring (in the uring_io mode; server_start applies
 * it to io_uring shards only). */
static poll_kind app_poller(void *ctx, uint32_t index)
{
	const proxy_app *app = ctx;

	if (app->cfg.poller == CONFIG_POLLER_MIXED)
		return index % 2 ? POLL_URING : POLL_EPOLL;
	return poller_from_config(app->cfg.poller);
}

/* max_buffer_memory for one of `shards` shards: auto is a share of the
 * machine's physical memory. */
static uint64_t buffer_budget(const config *cfg, unsigned shards)
{
	if (cfg->max_buffer_memory != CONFIG_BUFFER_MEMORY_AUTO)
		return cfg->max_buffer_memory;
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || page <= 0)
		return 0;
	return overload_default_budget((uint64_t)pages * (uint64_t)page, shards);
}

static int app_run_shard(void *ctx, const shard_context *shard)
{
	proxy_app *app = ctx;
	char tag[32];

	snprintf(tag, sizeof(tag), "shard=%u", shard->index);
	log_set_context(tag);
	/* random2 must not make the same choices in every shard. */
	for (size_t i = 0; i < app->plan.count; i++)
		app->plan.listeners[i].seed ^= (uint64_t)(shard->index + 1) *
					       0x9e3779b97f4a7c15ull;
	/* One shard checks each server; the rest read its results. */
	for (size_t i = 0; i < app->plan.count; i++) {
		upstream_params *u = &app->plan.listeners[i].upstream;
		u->health_board = shard->health;
		u->admin_board = shard->servers;
		u->health_listener = (uint32_t)i;
		u->shard_index = shard->index;
		u->shard_count = shard->shards;
		u->generation = shard->generation;
	}
	server_settings settings = {
		.poller = shard->poller,
		.uring_write_batching = app->cfg.uring_write_batching,
		.uring_io = uring_io_from_config(app->cfg.uring_io),
		.drain_timeout_ns = app->cfg.drain_timeout,
		.linger_timeout_ns = app->cfg.linger_timeout,
		.max_buffer_memory = buffer_budget(&app->cfg, shard->shards),
		.control_fd = shard->control_fd,
		.handoff_fd = shard->handoff_fd,
		.listeners = app->plan.listeners,
		.listener_count = (uint32_t)app->plan.count,
		.listen_fds = shard->listen_fds,
		.slot = shard->slot,
		.resolve = {
			.servers = app->cfg.resolvers,
			.min_ns = app->cfg.resolve_min,
			.max_ns = app->cfg.resolve_max,
			.board = shard->names,
			.shard_index = shard->index,
			.shard_count = shard->shards,
			.generation = shard->generation,
		},
		.resolve_required = app->cfg.resolve_required,
	};
	int rc = server_run(&settings);
	log_set_context(NULL);
	return rc < 0 ? 1 : 0;
}

/* Config errors as one line: the supervisor logs it with a reason= pair. */
static void errors_one_line(const config *cfg, char *why, size_t len)
{
	size_t at = 0;

	why[0] = '\0';
	for (size_t i = 0; i < config_error_count(cfg) && at + 1 < len; i++) {
		int n = snprintf(why + at, len - at, "%s%s", i ? "; " : "",
				 config_error(cfg, i));
		if (n < 0)
			break;
		at += (size_t)n;
	}
}

static int app_reload(void *ctx, shard_settings *next, char *why, size_t why_len)
{
	proxy_app *app = ctx;
	config cfg;
	run_plan plan = {0};

	why[0] = '\0';
	if (config_build(&cfg, app->cli) < 0) {
		errors_one_line(&cfg, why, why_len);
		config_free(&cfg);
		return -EINVAL;
	}
	/* The steering program sits on the sockets the supervisor keeps. */
	if (cfg.steer != app->cfg.steer)
		snprintf(why, why_len, "steer changed from %s to %s (restart needed)",
			 config_steer_name(app->cfg.steer), config_steer_name(cfg.steer));
	if (why[0] || !config_same_sockets(&app->cfg, &cfg, why, why_len) ||
	    plan_build(&plan, &cfg) < 0) {
		if (!why[0])
			snprintf(why, why_len, "out of memory");
		plan_free(&plan);
		config_free(&cfg);
		return -EINVAL;
	}
	plan_free(&app->plan);
	config_free(&app->cfg);
	app->cfg = cfg;
	app->plan = plan;
	log_set_level(app->cfg.log_level);
	app_settings(app, next);
	return 0;
}

static void app_log(void *ctx, shard_log_level level, const char *msg,
		    const char *fmt, va_list ap)
{
	static const log_severity levels[] = {
		[SHARD_LOG_DEBUG] = LOG_LEVEL_DEBUG,
		[SHARD_LOG_INFO] = LOG_LEVEL_INFO,
		[SHARD_LOG_WARN] = LOG_LEVEL_WARN,
		[SHARD_LOG_ERROR] = LOG_LEVEL_ERROR,
	};

	(void)ctx;
	log_vline(levels[level], msg, fmt, ap);
}

static const shard_ops app_ops = {
	.run = app_run_shard,
	.reload = app_reload,
	.poller = app_poller,
	.log = app_log,
};

/* Takes the configuration over (frees it). */
static int serve(const cli_args *c, config *cfg, char *const *argv)
{
	proxy_app app = {.cli = c, .cfg = *cfg, .argv = argv};
	shard_settings settings;
	int rc = plan_build(&app.plan, &app.cfg);

	if (rc == 0) {
		app_settings(&app, &settings);
		rc = shard_supervise(&settings, &app_ops, &app);
	}
	plan_free(&app.plan);
	config_free(&app.cfg);
	return rc;
}

int main(int argc, char **argv)
{
	cli_args c = {0};
	config cfg;

	if (argc > 1 && strcmp(argv[1], "ctl") == 0)
		return ctl_main(argc - 1, argv + 1);
	int rc = cli_parse(&c, argc, argv);

	if (rc != 0) {
		cli_free(&c);
		return rc > 0 ? 0 : 2;
	}
	rc = config_build(&cfg, &c);
	if (rc < 0 || c.check) {
		config_print_errors(&cfg, stderr);
		if (c.check && rc == 0)
			printf("%s: ok\n", c.config_path ? c.config_path : "flags");
		config_free(&cfg);
		cli_free(&c);
		return rc < 0 ? 1 : 0;
	}
	log_set_level(cfg.log_level);
	rc = log_use_nonblocking_stderr();
	if (rc < 0)
		log_line(LOG_LEVEL_WARN, "stderr stays blocking",
			 "error=%s", strerror(-rc));
	rc = serve(&c, &cfg, argv);
	cli_free(&c);
	return rc != 0 ? 1 : 0;
}
