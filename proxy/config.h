/* config — frameproxy's settings: data model, INI loader, command-line
 * overrides and validation. docs/frameproxy.example.ini shows every key;
 * proxy/config_keys.c holds the table of keys (name, section, setter,
 * default, flag, help).
 *
 *   [frameproxy]            log_level poller uring_write_batching uring_io
 *                           shards pin resolvers resolve_min resolve_max
 *                           resolve_required
 *                           steer user admin drain_timeout
 *   [listener NAME]         listen, limits, timeouts, allow/deny, balance,
 *                           health, and repeated `server = ADDR [weight=N]`
 *                           (or HOST:PORT, or NAME srv: upstream_name)
 *
 * Use:
 *   config cfg;
 *   config_init(&cfg);                         defaults, no listeners
 *   config_load_file(&cfg, path);              may be skipped
 *   config_apply_override(&cfg, "max_frame", "1MiB", "--max-frame");
 *   if (config_finish(&cfg) < 0) {             cross-key checks
 *           config_print_errors(&cfg, stderr);
 *           ...
 *   }
 *   config_free(&cfg);
 *
 * Every step keeps going after an error and records it, so one run shows
 * them all (up to CONFIG_MAX_ERRORS, then a count). Each message names
 * where the value came from:
 *   frameproxy.ini:12: key 'max_frame': invalid size '16XB'
 *   frameproxy.ini:30: section [listener api]: no 'server' lines
 *   --max-frame: invalid size '16XB'
 * Control bytes and bytes that are not UTF-8 in a message (from a value,
 * a key, a section, a file name) are written as \xNN, so a message is one
 * line that cannot drive the terminal showing it.
 * Any recorded error makes config_load_file/config_finish return -EINVAL.
 */
#ifndef FRAMEPROXY_PROXY_CONFIG_H
#define FRAMEPROXY_PROXY_CONFIG_H

/* admin_token: the longest token taken (shard/admin.h keeps 255). */
#define ADMIN_TOKEN_MAX 255

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proxy/acl.h"
#include "proxy/balance.h"
#include "proxy/log.h"
#include "proxy/netaddr.h"
#include "proxy/proxy_header.h"
#include "proxy/rpc_field.h"
#include "proxy/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CONFIG_MAX_ERRORS 32
#define CONFIG_NAME_MAX 32 /* listener names: [A-Za-z0-9_-]{1,32} */
#define CONFIG_RESOLVERS_MAX 512 /* the resolvers list, as kept */


typedef enum config_poller {
	CONFIG_POLLER_AUTO, /* io_uring when it works, else epoll */
	CONFIG_POLLER_EPOLL,
	CONFIG_POLLER_URING,
	CONFIG_POLLER_MIXED, /* even shards epoll, odd shards io_uring: both
			      * pollers side by side on the same traffic */
} config_poller;

/* io_uring's I/O mode (poll/poll.h's poll_uring_io). */
typedef enum config_uring_io {
	CONFIG_URING_IO_POLL = 0,
	CONFIG_URING_IO_COMPLETION,
	CONFIG_URING_IO_AUTO,
} config_uring_io;

/* How the kernel spreads new connections over the shards' SO_REUSEPORT
 * sockets. */
typedef enum config_steer {
	CONFIG_STEER_HASH, /* the kernel's hash of the 4-tuple (default) */
	CONFIG_STEER_CPU,  /* an SO_ATTACH_REUSEPORT_CBPF program picks the
			    * shard pinned on the CPU that received the
			    * connection; needs pin */
} config_steer;

/* What a listener does with the frames of a client (docs/RPC.md). */
typedef enum config_mode {
	CONFIG_MODE_STREAM, /* one upstream connection per client, relayed */
	CONFIG_MODE_RPC,    /* every frame a request, balanced on its own over
			     * a pool of shared upstream connections */
} config_mode;

/* The keys that only rpc mode reads (docs/RPC.md, section 6). */
typedef struct config_rpc {
	unsigned pool_size;             /* connections per server per shard */
	unsigned max_inflight;          /* requests per client */
	uint64_t max_held;              /* held reply bytes per client */
	unsigned upstream_max_inflight; /* requests per upstream connection */
	int64_t request_timeout;        /* ns, 0 = none */
	bool retry;                     /* resend a written request */
	rpc_field tag;                  /* len 0: replies come in order */
	rpc_field hash_key;             /* len 0: hash the client address */
	/* Where the first of these keys was set (none for defaults), for
	 * config_finish's "only in rpc mode": a line of the file in path
	 * with its key, or a flag (owned). */
	const char *set_key;
	int set_line;
	char *set_flag;
} config_rpc;

typedef struct config_listener {
	char *name;
	int line; /* of its [listener NAME] header; 0 if made by a flag */

	bool has_listen;
	netaddr listen;

	uint64_t max_frame;     /* bytes, default 16MiB, at most 4GiB-1 */
	uint64_t buffer;        /* per direction, default 64KiB */
	int64_t connect_timeout; /* all durations in ns */
	int64_t queue_timeout;  /* for a server below its maxconn; 0 = no wait */
	int64_t idle_timeout;
	int64_t frame_timeout;  /* 0 = off */
	unsigned max_connections;
	unsigned max_per_client; /* 0 = unlimited */
	acl_set acl;
	bool access_log;        /* one info line per closed connection; default on */

	balance_kind balance;
	unsigned retries;
	unsigned fail_threshold;
	unsigned outlier_errors;  /* proxy/outlier.h; 0 = off */
	unsigned outlier_latency; /* rpc: times the others' median; 0 = off */
	unsigned max_ejected;     /* percent of the servers */
	int64_t fail_timeout;
	int64_t health_interval; /* 0 = no active checks */
	unsigned health_rise, health_fall;
	bool has_check_frame;    /* "check_frame =" (empty) is a 0-byte frame */
	uint8_t *check_frame;
	size_t check_frame_len;

	config_mode mode;
	config_rpc rpc;

	/* PROXY protocol (proxy/proxy_header.h): the header expected from
	 * clients, the peers allowed to send it (no rule: any peer), the
	 * header written to upstreams. send_proxy's line or flag is kept for
	 * the rpc-mode refusal (flag owned). */
	proxy_header_mode accept_proxy;
	acl_set accept_proxy_from;
	proxy_header_mode send_proxy;
	int send_proxy_line;
	char *send_proxy_flag;

	/* TLS termination (docs/TLS.md): certificate and key files in
	 * pairs, in the order given (the first pair is the default, the
	 * others chosen by SNI), each file checked when its line is read;
	 * the line of the first tls_cert, for the cross-key errors; the
	 * context config_finish builds from them (NULL: no TLS). */
	char **tls_certs;
	size_t ntls_certs;
	char **tls_keys;
	size_t ntls_keys;
	int tls_line;
	size_t tls_unreadable;   /* tls_cert/tls_key/tls_client_ca lines refused (reported) */
	tls_version tls_min_version;
	char *tls_ciphers;       /* NULL: OpenSSL's default */
	char *tls_ciphersuites;
	int64_t tls_handshake_timeout;
	/* mTLS and ALPN (docs/TLS.md): the lines (or flags, owned) that set
	 * the CA and the verify mode, for the errors that pair them. */
	tls_verify tls_verify_client;
	int tls_verify_line;
	char *tls_verify_flag;
	char *tls_client_ca;
	int tls_client_ca_line;
	char *tls_client_ca_flag;
	char *tls_alpn;          /* "p1,p2" as given, NULL: no ALPN */
	tls_ctx *tls;
	/* TLS origination (docs/TLS.md): upstream connections speak TLS,
	 * the server's certificate verified against upstream_tls_ca (NULL:
	 * OpenSSL's default store) for upstream_tls_name (NULL: the server's
	 * host name, or its address); the client context config_finish
	 * builds (NULL: plain TCP). */
	bool upstream_tls;
	char *upstream_tls_ca;
	char *upstream_tls_name;
	tls_ctx *upstream_tls_ctx;

	upstream_spec *servers; /* see proxy/balance.h */
	size_t nservers;
	upstream_name *names;   /* server lines naming a host (proxy/resolve.h) */
	size_t nnames;

	/* Loader bookkeeping: a flag's first server/allow/deny replaces the
	 * file's list, later ones add to it. */
	bool flag_servers, flag_allow, flag_deny;
} config_listener;

#define CONFIG_BUFFER_MEMORY_AUTO UINT64_MAX

typedef struct config {
	char *path; /* last file loaded, or NULL */

	log_severity log_level;
	config_poller poller;
	bool uring_write_batching; /* io_uring: sends go in with the round's enter */
	config_uring_io uring_io;  /* io_uring: readiness or completion I/O */
	unsigned shards; /* 0 = auto: one per online CPU */
	bool pin;        /* shard i runs pinned on CPU i (wrapping) */
	config_steer steer;
	char *user;      /* drop privileges to it after binding; NULL = stay */
	bool has_admin;
	netaddr admin;     /* AF_UNIX for admin = unix:PATH */
	unsigned admin_mode;  /* that socket's file mode */
	char *admin_token;    /* admin_token's file, read; NULL = none */
	int64_t drain_timeout;
	int64_t linger_timeout; /* a draining close waits this for the client's EOF */
	/* The overload guard's budget per shard (proxy/overload.h), bytes;
	 * 0 = off, CONFIG_BUFFER_MEMORY_AUTO = a share of physical memory. */
	uint64_t max_buffer_memory;
	bool reload_handoff;    /* reload: hand live connections to the new shards */
	int64_t upgrade_timeout; /* SIGUSR2: the new binary's time to be ready */
	/* Server names (proxy/resolve.h): the DNS servers ("IP:PORT,...";
	 * NULL: /etc/resolv.conf), the bounds on a TTL, and whether a name
	 * that does not resolve at start stops the start. */
	char *resolvers;
	int64_t resolve_min, resolve_max;
	bool resolve_required;

	/* Loader bookkeeping: where steer was last set, for config_finish's
	 * message: the flag (owned) or else the line of the file in path. */
	char *steer_flag;
	int steer_line;

	config_listener *listeners;
	size_t nlisteners;

	char *errors[CONFIG_MAX_ERRORS];
	size_t nerrors;
	size_t errors_dropped; /* beyond CONFIG_MAX_ERRORS */
} config;

void config_init(config *cfg);
void config_free(config *cfg);

/* Reads and applies an INI file. -errno when it cannot be read (also
 * recorded as an error), -EINVAL when it has errors, 0 otherwise. */
int config_load_file(config *cfg, const char *path);

/* Same from memory; name stands for the file name in messages. */
int config_load_string(config *cfg, const char *name,
		       const char *text);

/* Sets one key the way the file would, overriding it:
 *   "listener.NAME.key"  that listener (created when missing)
 *   "key"                a [frameproxy] key, or else a listener key of the
 *                        first listener (one named "default" is created
 *                        when there is none)
 * origin names the source in error messages, e.g. "--max-frame"; NULL
 * uses the key. Returns 0 or -EINVAL (recorded). */
int config_apply_override(config *cfg, const char *key,
			  const char *value, const char *origin);

/* Checks what no single key can: at least one listener, each with listen
 * and servers, listen addresses distinct, check_frame within max_frame,
 * steer = cpu only with pin = on...
 * Returns -EINVAL when any error was recorded so far (by any step). */
int config_finish(config *cfg);

size_t config_error_count(const config *cfg);
const char *config_error(const config *cfg, size_t i);
/* One message per line, then "... and N more errors" if some were dropped. */
void config_print_errors(const config *cfg, FILE *out);

const config_listener *config_find_listener(const config *cfg,
					    const char *name);

/* "epoll" | "uring" | "auto" | "mixed". */
const char *config_poller_name(config_poller poller);

/* "hash" | "cpu". */
const char *config_steer_name(config_steer steer);

/* A command-line flag that sets a key: its value goes to
 * config_apply_override(cfg, key, value, flag). A flag that takes no
 * argument (--pin) sets "on". */
typedef struct config_flag {
	const char *flag; /* with its leading "--" */
	const char *key;
	bool takes_arg;
} config_flag;

/* The i-th flag (0, 1, ...): true, or false past the last one. */
bool config_flag_get(size_t i, config_flag *out);

/* The flags for --help: one line each (two for a long argument), the
 * [frameproxy] keys, a blank line, the listener keys. */
void config_print_flags(FILE *out);

/* For reload: true when b can take over a's sockets and privileges, that
 * is both have the same listeners (names, in the same order, with the same
 * listen addresses), the same shards value, the same admin (set or not,
 * and address) and the same user. Otherwise false, with one short reason
 * in why (when why_len > 0), e.g.
 *   "listener api: listen address changed (restart needed)"
 *   "shards changed from 2 to 4 (restart needed)" */
bool config_same_sockets(const config *a, const config *b,
			 char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
