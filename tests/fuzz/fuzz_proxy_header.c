/*
 * The PROXY header parser (proxy/proxy_header.h) as the listener drives it
 * and as a test would. Byte 0 picks the mode (v1, v2, any) and byte 1 the
 * chunk sizes; the rest is what the peer sent. Checked:
 *   - fed whole, in chunks, and proxy_header_need() bytes at a time, the
 *     parser comes to the same status and, when done, the same length;
 *   - reading by need never takes a byte past the end of a header that
 *     turns out complete, and need is >= 1 exactly while more is wanted;
 *   - a complete header is within its version's bound, and one that names
 *     addresses writes back (proxy_header_write) to a header that parses
 *     to the same addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_header.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

typedef struct run {
	proxy_header_status status;
	size_t consumed;
	proxy_header_info info;
} run;

static run finish(const proxy_header_parser *p, proxy_header_status st,
		  size_t consumed)
{
	run r = { st, consumed, {0} };

	if (st == PROXY_HEADER_DONE)
		r.info = *proxy_header_result(p);
	else
		CHECK(proxy_header_result(p) == NULL);
	return r;
}

static run feed_chunks(proxy_header_mode mode, const uint8_t *s, size_t n,
		       uint8_t seed)
{
	proxy_header_parser p;
	proxy_header_status st = PROXY_HEADER_MORE;
	size_t pos = 0, used = 0;

	proxy_header_init(&p, mode);
	while (st == PROXY_HEADER_MORE && pos < n) {
		size_t chunk = 1 + (seed + pos * 7) % 23;
		if (chunk > n - pos)
			chunk = n - pos;
		st = proxy_header_feed(&p, s + pos, chunk, &used);
		CHECK(used <= chunk);
		if (st == PROXY_HEADER_MORE)
			CHECK(used == chunk);
		pos += used;
	}
	return finish(&p, st, pos);
}

static run feed_by_need(proxy_header_mode mode, const uint8_t *s, size_t n)
{
	proxy_header_parser p;
	proxy_header_status st = PROXY_HEADER_MORE;
	size_t pos = 0, used = 0;

	proxy_header_init(&p, mode);
	while (st == PROXY_HEADER_MORE && pos < n) {
		uint32_t need = proxy_header_need(&p);
		CHECK(need >= 1);
		size_t chunk = need < n - pos ? need : n - pos;
		st = proxy_header_feed(&p, s + pos, chunk, &used);
		if (st == PROXY_HEADER_DONE || st == PROXY_HEADER_MORE)
			CHECK(used == chunk); /* nothing past the header */
		pos += used;
	}
	if (st != PROXY_HEADER_MORE)
		CHECK(proxy_header_need(&p) == 0);
	return finish(&p, st, pos);
}

static void check_same(const run *a, const run *b)
{
	CHECK(a->status == b->status);
	if (a->status != PROXY_HEADER_DONE)
		return;
	CHECK(a->consumed == b->consumed);
	CHECK(a->info.version == b->info.version);
	CHECK(a->info.local == b->info.local);
	CHECK(a->info.has_addr == b->info.has_addr);
	if (!a->info.has_addr)
		return;
	CHECK(a->info.addr_len == b->info.addr_len);
	CHECK(memcmp(&a->info.src, &b->info.src, a->info.addr_len) == 0);
	CHECK(memcmp(&a->info.dst, &b->info.dst, a->info.addr_len) == 0);
}

/* Written back, the addresses parse to themselves. */
static void check_rewrite(const run *r)
{
	uint8_t buf[PROXY_HEADER_WRITE_MAX];
	proxy_header_parser p;
	size_t used;

	if (!r->info.has_addr)
		return;
	proxy_header_mode version = r->info.version == 1 ? PROXY_HEADER_V1
							 : PROXY_HEADER_V2;
	int n = proxy_header_write(version, (const struct sockaddr *)&r->info.src,
				   (const struct sockaddr *)&r->info.dst, buf,
				   sizeof(buf));
	CHECK(n > 0 && (size_t)n <= sizeof(buf));
	proxy_header_init(&p, PROXY_HEADER_ANY);
	CHECK(proxy_header_feed(&p, buf, (size_t)n, &used) == PROXY_HEADER_DONE);
	CHECK(used == (size_t)n);
	const proxy_header_info *again = proxy_header_result(&p);
	/* IPv4-mapped IPv6 comes back as IPv4: compare only same-family. */
	if (again->src.ss_family != r->info.src.ss_family)
		return;
	CHECK(again->addr_len == r->info.addr_len);
	CHECK(memcmp(&again->src, &r->info.src, r->info.addr_len) == 0);
	CHECK(memcmp(&again->dst, &r->info.dst, r->info.addr_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	proxy_header_mode mode = (proxy_header_mode)(PROXY_HEADER_V1 + data[0] % 3);
	const uint8_t *s = data + 2;
	size_t n = size - 2;

	proxy_header_parser p;
	size_t used;
	proxy_header_init(&p, mode);
	proxy_header_status st = proxy_header_feed(&p, s, n, &used);
	run whole = finish(&p, st, used);
	CHECK(used <= n);
	run chunks = feed_chunks(mode, s, n, data[1]);
	run need = feed_by_need(mode, s, n);
	check_same(&whole, &chunks);
	check_same(&whole, &need);
	if (whole.status != PROXY_HEADER_DONE)
		return 0;
	CHECK(whole.info.version == 1 || whole.info.version == 2);
	CHECK(whole.consumed <= (whole.info.version == 1 ? PROXY_HEADER_V1_MAX
							 : PROXY_HEADER_V2_MAX));
	check_rewrite(&whole);
	return 0;
}
