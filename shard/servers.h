/*
 * servers — the admin endpoint's view of the servers and their admin state:
 * GET /servers, POST /servers/LISTENER/SERVER, and pruning the admin-state
 * board after a reload. Private to shard/; the supervisor calls it.
 *
 * What a server is comes from the shards' slots of the current generation
 * (their upstream rows), its admin state from the board. Its figures are
 * the upstream families whose /stats keys are "up" (health), "weight",
 * "active" (stream connections) and "rpc_inflight" (rpc requests): the
 * application's table names them, shard/ only looks them up.
 */
#ifndef FRAMEPROXY_SHARD_SERVERS_H
#define FRAMEPROXY_SHARD_SERVERS_H

#include "shard/admin.h"
#include "shard/metrics.h"
#include "shard/shard.h"
#include "shard/strbuf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct servers_view {
	const shard_metrics *metrics;
	const shard_app_metrics *app;
	uint32_t generation;          /* the slots that count */
	shard_server_board *board;
} servers_view;

/* What a POST /servers/L/S body asks for. */
typedef struct servers_change {
	bool has_state, has_weight;
	shard_server_admin state;
	uint32_t weight;              /* 0..SHARD_SERVER_MAX_WEIGHT; 0: configured */
} servers_change;

/* The body: `state=drain&weight=3` or {"state": "drain", "weight": 3}.
 * True when it is one of those, sets at least one key, and nothing else.
 * Pure: any bytes are safe input. */
bool servers_parse_change(const char *body, size_t len, servers_change *ch);
/* LISTENER and SERVER of "/servers/LISTENER/SERVER", %XX decoded, each
 * 1..SHARD_NAME_MAX-1 bytes without NUL. Pure. */
bool servers_parse_path(const char *path, size_t len,
			char listener[SHARD_NAME_MAX], char server[SHARD_NAME_MAX]);

/* GET /servers. 0 or -ENOMEM. */
int servers_render(const servers_view *v, strbuf *body);
/* POST /servers/L/S with `state=` and/or `weight=` (form or JSON body):
 * 0 with the server's new JSON in body, or 400/404/507 with the reason. */
int servers_post(const servers_view *v, const admin_request *req,
		 strbuf *body);
/* After a reload: rows of servers no slot of the generation has go. */
void servers_prune(const servers_view *v);

#ifdef __cplusplus
}
#endif

#endif
