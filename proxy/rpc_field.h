/*
 * rpc_field — a fixed field of a frame's payload, named OFFSET:LEN in the
 * config (`rpc_tag`, `hash_key`): LEN bytes starting OFFSET bytes after the
 * 4-byte length header. A tag's LEN is 1..RPC_TAG_MAX_LEN (its value is
 * read and written big-endian, as an integer); a hash key's is
 * 1..RPC_HASH_KEY_MAX_LEN (its bytes are hashed as they are).
 *
 * A frame too short to contain the field is an error (-EBADMSG) which the
 * caller turns into a close: of the client for a request, of the upstream
 * connection for a reply.
 */
#ifndef FRAMEPROXY_PROXY_RPC_FIELD_H
#define FRAMEPROXY_PROXY_RPC_FIELD_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/balance.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RPC_TAG_MAX_LEN 8u
#define RPC_HASH_KEY_MAX_LEN 256u

typedef struct rpc_field {
	uint32_t offset; /* from the start of the payload */
	uint32_t len;    /* 0: no field */
} rpc_field;

/*
 * "OFFSET:LEN", both decimal, LEN 1..max_len and OFFSET + LEN at most
 * UINT32_MAX (the config also checks it against max_frame). -EINVAL with
 * `why` set to "invalid field 'TEXT' (OFFSET:LEN, LEN 1..MAX)".
 */
int rpc_field_parse(const char *text, uint32_t max_len, rpc_field *out,
		    char *why, size_t why_len);

/*
 * Where the field starts in `frame` (header included, `len` bytes of it
 * given): 0 with *at set, or -EBADMSG when the payload the header announces,
 * or the bytes given, end before the field does.
 */
int rpc_field_find(const rpc_field *field, const uint8_t *frame, size_t len,
		   size_t *at);

/* Big-endian value of the len (1..8) bytes at p, and its inverse. */
uint64_t rpc_field_get(const uint8_t *p, uint32_t len);
void rpc_field_put(uint8_t *p, uint32_t len, uint64_t value);

/*
 * hash_key balancing: balance_pick with the field's bytes as the key, so
 * a given key always goes to the same server and HASH keeps all of its
 * properties (weights, down and tried servers skipped, little movement when
 * the list changes). 0 with *server set (-1: no server fit), or -EBADMSG.
 */
int rpc_field_pick(balance_state *b, const rpc_field *field,
		   const uint8_t *frame, size_t len,
		   const balance_tried *tried, int *server);

#ifdef __cplusplus
}
#endif

#endif
