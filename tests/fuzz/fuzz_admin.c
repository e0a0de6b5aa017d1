/*
 * The admin endpoint's request parsing on arbitrary bytes: the request
 * line (admin_parse_request), the headers and body (admin_parse:
 * Content-Length, Authorization, Transfer-Encoding) and what a
 * POST /servers/L/S carries (servers_parse_path, servers_parse_change: form
 * and JSON bodies). Beyond not crashing:
 *   - `consumed`, the request's length, its path, token and body stay
 *     within the input, and the body within ADMIN_MAX_BODY;
 *   - a verdict reached on a prefix never changes when more bytes arrive
 *     (a client that sends its request in pieces gets the same answer as
 *     one that sends it at once);
 *   - a body that parses says the same once written back as a form.
 * The whole input is tried as a body too, so the body parsers are fuzzed
 * without having to find a valid request line first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard/admin.h"
#include "shard/servers.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool within(const char *p, size_t n, const char *buf, size_t size)
{
	return !p || (p >= buf && n <= size && (size_t)(p - buf) <= size - n);
}

static void check_line(const char *buf, size_t size)
{
	size_t consumed = 0;
	admin_route whole = admin_parse_request(buf, size, &consumed);

	if (whole == ADMIN_INCOMPLETE)
		CHECK(consumed == 0);
	else
		CHECK(consumed <= size);
	/* A few prefixes, chosen by the input itself, not all (quadratic). */
	for (size_t k = 1; k <= 4 && size > 0; k++) {
		size_t cut = ((uint8_t)buf[0] * k * 131u + k) % (size + 1);
		size_t part_consumed = 0;
		admin_route part = admin_parse_request(buf, cut, &part_consumed);
		if (part == ADMIN_INCOMPLETE)
			continue;
		CHECK(part == whole);
		CHECK(part_consumed == consumed);
	}
}

/* Written back as a form, the change reads the same. */
static void check_change_roundtrip(const servers_change *ch)
{
	char form[64];
	servers_change again;

	CHECK(ch->has_state || ch->has_weight);
	CHECK(!ch->has_weight || ch->weight <= SHARD_SERVER_MAX_WEIGHT);
	CHECK(ch->state <= SHARD_SERVER_MAINT);
	const char *state = shard_server_admin_name(ch->state);
	int n;
	if (ch->has_state && ch->has_weight)
		n = snprintf(form, sizeof(form), "state=%s&weight=%u", state,
			     ch->weight);
	else if (ch->has_state)
		n = snprintf(form, sizeof(form), "state=%s", state);
	else
		n = snprintf(form, sizeof(form), "weight=%u", ch->weight);
	CHECK(servers_parse_change(form, (size_t)n, &again));
	CHECK(again.has_state == ch->has_state);
	CHECK(again.has_weight == ch->has_weight);
	CHECK(!ch->has_state || again.state == ch->state);
	CHECK(!ch->has_weight || again.weight == ch->weight);
}

static void check_body(const char *body, size_t len)
{
	servers_change ch;

	if (servers_parse_change(body, len, &ch))
		check_change_roundtrip(&ch);
}

static void check_server_set(const admin_request *req)
{
	char listener[SHARD_NAME_MAX], server[SHARD_NAME_MAX];

	if (servers_parse_path(req->path, req->path_len, listener, server)) {
		size_t l = strlen(listener), s = strlen(server);
		CHECK(l > 0 && l < SHARD_NAME_MAX);
		CHECK(s > 0 && s < SHARD_NAME_MAX);
	}
	check_body(req->body, req->body_len);
}

static bool settled(admin_route r)
{
	return r != ADMIN_INCOMPLETE && r != ADMIN_BAD_REQUEST &&
	       r != ADMIN_TOO_LARGE;
}

static void check_request(const char *buf, size_t size)
{
	admin_request req;
	admin_route whole = admin_parse(buf, size, &req);

	CHECK(req.route == whole);
	if (settled(whole)) {
		CHECK(req.length <= size);
		CHECK(within(req.path, req.path_len, buf, size));
		CHECK(within(req.token, req.token_len, buf, size));
		CHECK(within(req.body, req.body_len, buf, size));
		CHECK(req.body_len <= ADMIN_MAX_BODY);
		CHECK(req.body + req.body_len == buf + req.length);
		/* Headers only ever make a request worse, never another route. */
		CHECK(whole == admin_parse_request(buf, size, NULL));
		if (whole == ADMIN_SERVER_SET)
			check_server_set(&req);
	}
	for (size_t k = 1; k <= 4 && size > 1; k++) {
		size_t cut = ((uint8_t)buf[size - 1] * k * 197u + k) % (size + 1);
		admin_request part_req;
		admin_route part = admin_parse(buf, cut, &part_req);
		if (part == ADMIN_INCOMPLETE)
			continue;
		CHECK(part == whole);
		if (settled(part))
			CHECK(part_req.length == req.length);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	check_line(buf, size);
	check_request(buf, size);
	check_body(buf, size);
	return 0;
}
