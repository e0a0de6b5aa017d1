// rpc_inflight: the requests of one upstream connection, FIFO and tag
// matching, coalesced writes, drain.
#include "rpc_fixture.hpp"

#include <algorithm>
#include <cerrno>
#include <random>
#include <set>

using namespace rpctest;

namespace {

Bytes reply_to(const Bytes &request_frame, const std::string &suffix = "")
{
	Bytes r = request_frame;
	r.insert(r.end(), suffix.begin(), suffix.end());
	frame_write_length(r.data(), (uint32_t)(r.size() - FRAME_HEADER_SIZE));
	return r;
}

// Gather and write; the frames as the upstream receives them.
std::vector<Bytes> write_frames(rpc_inflight *q)
{
	std::vector<Bytes> out;
	iovec iov[64];
	size_t n;
	while ((n = rpc_inflight_gather(q, iov, 64, nullptr))) {
		for (size_t i = 0; i < n; i++) {
			const uint8_t *p = (const uint8_t *)iov[i].iov_base;
			out.emplace_back(p, p + iov[i].iov_len);
		}
		rpc_inflight_wrote(q);
	}
	return out;
}

// The reply is rewritten in place (the client's tag bytes put back).
rpc_req *match(rpc_inflight *q, Bytes &reply)
{
	rpc_req *r = nullptr;
	REQUIRE(rpc_inflight_match(q, reply.data(), reply.size(), &r) ==
		RPC_MATCH_OK);
	REQUIRE(r);
	CHECK(r->on == nullptr);
	CHECK(r->state == RPC_REQ_SENT);
	return r;
}

rpc_req *match(rpc_inflight *q, Bytes &&reply)
{
	return match(q, reply);
}

rpc_match match_code(rpc_inflight *q, Bytes reply)
{
	rpc_req *r = nullptr;
	rpc_match m = rpc_inflight_match(q, reply.data(), reply.size(), &r);
	if (m != RPC_MATCH_OK)
		CHECK(r == nullptr);
	return m;
}

} // namespace

TEST_CASE("rpc inflight: FIFO replies match requests in order", "[rpc]")
{
	Pool pool;
	Conn c(pool, 16);
	std::vector<rpc_req *> reqs;
	for (int i = 0; i < 5; i++) {
		reqs.push_back(pool.request("req" + std::to_string(i)));
		REQUIRE(rpc_inflight_push(&c.q, reqs.back()) == 0);
		CHECK(reqs.back()->state == RPC_REQ_QUEUED);
		CHECK(reqs.back()->on == &c.q);
		CHECK(reqs.back()->attempts == 1);
	}
	CHECK(rpc_inflight_count(&c.q) == 5);
	CHECK(c.write_all() ==
	      std::vector<std::string>{ "req0", "req1", "req2", "req3",
					"req4" });
	for (int i = 0; i < 5; i++) {
		rpc_req *r = match(&c.q, frame("any reply"));
		CHECK(r == reqs[i]);
		rpc_pool_put(&pool.p, r);
	}
	CHECK(rpc_inflight_count(&c.q) == 0);
	CHECK(match_code(&c.q, frame("extra")) == RPC_MATCH_NONE);
}

TEST_CASE("rpc inflight: everything queued since the last write goes out "
	  "in one gather", "[rpc]")
{
	Pool pool;
	Conn c(pool, 16);
	iovec iov[8];
	size_t bytes = 0;
	for (int i = 0; i < 3; i++)
		REQUIRE(rpc_inflight_push(&c.q, pool.request("a" +
				std::to_string(i))) == 0);
	REQUIRE(rpc_inflight_gather(&c.q, iov, 8, &bytes) == 3);
	CHECK(bytes == 3 * (FRAME_HEADER_SIZE + 2));
	CHECK(payload_of(iov[0]) == "a0");
	CHECK(payload_of(iov[2]) == "a2");
	CHECK(c.q.list.head->state == RPC_REQ_WRITING);
	// queued during the write: the next gather, not this one
	REQUIRE(rpc_inflight_push(&c.q, pool.request("b0")) == 0);
	REQUIRE(rpc_inflight_push(&c.q, pool.request("b1")) == 0);
	rpc_inflight_wrote(&c.q);
	CHECK(c.q.list.head->state == RPC_REQ_SENT);
	REQUIRE(rpc_inflight_gather(&c.q, iov, 1, nullptr) == 1); // max_iov
	CHECK(payload_of(iov[0]) == "b0");
	rpc_inflight_wrote(&c.q);
	REQUIRE(rpc_inflight_gather(&c.q, iov, 8, nullptr) == 1);
	CHECK(payload_of(iov[0]) == "b1");
	rpc_inflight_wrote(&c.q);
	CHECK(rpc_inflight_gather(&c.q, iov, 8, nullptr) == 0);
	for (int i = 0; i < 5; i++)
		rpc_pool_put(&pool.p, match(&c.q, frame("r")));
}

TEST_CASE("rpc inflight: a reply before its request is wholly written "
	  "matches nothing", "[rpc]")
{
	Pool pool;
	Conn c(pool, 4);
	CHECK(match_code(&c.q, frame("r")) == RPC_MATCH_NONE); // nothing
	REQUIRE(rpc_inflight_push(&c.q, pool.request("q")) == 0);
	CHECK(match_code(&c.q, frame("r")) == RPC_MATCH_NONE); // queued
	iovec iov[4];
	REQUIRE(rpc_inflight_gather(&c.q, iov, 4, nullptr) == 1);
	CHECK(match_code(&c.q, frame("r")) == RPC_MATCH_NONE); // writing
	rpc_inflight_wrote(&c.q);
	rpc_pool_put(&pool.p, match(&c.q, frame("r")));
}

TEST_CASE("rpc inflight: bounded per connection", "[rpc]")
{
	Pool pool;
	Conn c(pool, 3);
	for (int i = 0; i < 3; i++)
		REQUIRE(rpc_inflight_push(&c.q, pool.request("x")) == 0);
	CHECK(rpc_inflight_full(&c.q));
	rpc_req *extra = pool.request("y");
	CHECK(rpc_inflight_push(&c.q, extra) == -EAGAIN);
	CHECK(extra->state == RPC_REQ_NEW);
	CHECK(extra->on == nullptr);
	c.write_all();
	rpc_pool_put(&pool.p, match(&c.q, frame("r")));
	CHECK(!rpc_inflight_full(&c.q));
	REQUIRE(rpc_inflight_push(&c.q, extra) == 0);
	c.write_all();
	for (int i = 0; i < 3; i++)
		rpc_pool_put(&pool.p, match(&c.q, frame("r")));
}

TEST_CASE("rpc inflight: request bytes are dropped after the write unless "
	  "kept for retry", "[rpc]")
{
	Pool pool;
	bool keep = GENERATE(false, true);
	Conn c(pool, 4, { 0, 0 }, keep);
	rpc_req *r = pool.request("payload");
	REQUIRE(rpc_inflight_push(&c.q, r) == 0);
	c.write_all();
	CHECK(r->sent);
	if (keep)
		CHECK(payload_of(r) == "payload");
	else
		CHECK(r->len == 0);
	rpc_pool_put(&pool.p, match(&c.q, frame("r")));
}

TEST_CASE("rpc inflight: tag rewrite and restore give the client its bytes "
	  "back exactly", "[rpc]")
{
	Pool pool;
	rpc_field tag = { 3, 4 };
	Conn c(pool, 8, tag);
	std::vector<Bytes> originals;
	std::vector<rpc_req *> reqs;
	for (int i = 0; i < 6; i++) {
		Bytes p = { 'h', 'd', 'r', 0xde, 0xad, 0xbe, (uint8_t)i, 'b',
			    'o', 'd', 'y', (uint8_t)i };
		originals.push_back(frame(p));
		rpc_req *r = rpc_pool_get(&pool.p);
		REQUIRE(rpc_req_store(r, originals.back().data(),
				      originals.back().size()) == 0);
		REQUIRE(rpc_inflight_push(&c.q, r) == 0);
		reqs.push_back(r);
	}
	std::vector<Bytes> wire = write_frames(&c.q);
	REQUIRE(wire.size() == 6);
	std::set<uint64_t> ids;
	for (int i = 0; i < 6; i++) {
		size_t at = FRAME_HEADER_SIZE + 3;
		uint64_t id = rpc_field_get(&wire[i][at], 4);
		CHECK(id == reqs[i]->wire_id);
		ids.insert(id);
		// only the tag field changed
		Bytes w = wire[i];
		memcpy(&w[at], &originals[i][at], 4);
		CHECK(w == originals[i]);
	}
	CHECK(ids.size() == 6);
	// The upstream answers in another order; each reply is the request
	// echoed with its tag, plus a suffix.
	for (int i : { 4, 1, 5, 0, 3, 2 }) {
		Bytes reply = reply_to(wire[i], "!");
		rpc_req *r = match(&c.q, reply);
		CHECK(r == reqs[i]);
		CHECK(reply == reply_to(originals[i], "!")); // restored
		rpc_pool_put(&pool.p, r);
	}
}

namespace {

// A request whose payload starts with a 1- or 2-byte tag.
rpc_req *tagged(Pool &pool, const std::string &rest, uint32_t len = 1)
{
	return pool.request(std::string(len, '\0') + rest);
}

std::set<uint64_t> ids_on(const rpc_inflight *q)
{
	std::set<uint64_t> ids;
	for (rpc_req *r = q->list.head; r; r = r->next)
		ids.insert(r->wire_id);
	return ids;
}

Bytes with_id(uint64_t id, uint32_t len)
{
	Bytes p(len);
	rpc_field_put(p.data(), len, id);
	return frame(p);
}

} // namespace

TEST_CASE("rpc inflight: LEN 1 allows 256 in flight, and a freed id is "
	  "the one reused when it is the only one", "[rpc]")
{
	Pool pool;
	Conn c(pool, 1000, { 0, 1 });
	CHECK(c.q.max == 256); // the id space bounds the connection
	for (int i = 0; i < 256; i++)
		REQUIRE(rpc_inflight_push(&c.q, tagged(pool, "t")) == 0);
	CHECK(ids_on(&c.q).size() == 256);
	rpc_req *extra = tagged(pool, "t");
	CHECK(rpc_inflight_push(&c.q, extra) == -EAGAIN);
	c.write_all();
	rpc_pool_put(&pool.p, match(&c.q, with_id(10, 1)));
	REQUIRE(rpc_inflight_push(&c.q, extra) == 0);
	CHECK(extra->wire_id == 10);
	c.write_all();
	for (uint64_t id = 0; id < 256; id++)
		rpc_pool_put(&pool.p, match(&c.q, with_id(id, 1)));
}

TEST_CASE("rpc inflight: ids skip the ones in use, and a stale id matches "
	  "nothing", "[rpc]")
{
	Pool pool;
	Conn c(pool, 4, { 0, 2 });
	for (int i = 0; i < 4; i++)
		REQUIRE(rpc_inflight_push(&c.q, tagged(pool, "x", 2)) == 0);
	CHECK(ids_on(&c.q) == std::set<uint64_t>{ 0, 1, 2, 3 });
	c.write_all();
	rpc_pool_put(&pool.p, match(&c.q, with_id(1, 2)));
	rpc_pool_put(&pool.p, match(&c.q, with_id(2, 2)));
	rpc_req *a = tagged(pool, "a", 2), *b = tagged(pool, "b", 2);
	REQUIRE(rpc_inflight_push(&c.q, a) == 0);
	REQUIRE(rpc_inflight_push(&c.q, b) == 0);
	CHECK(a->wire_id == 5); // 4 would share a slot with 0, still in use
	CHECK(b->wire_id == 6);
	c.write_all();
	CHECK(match_code(&c.q, with_id(1, 2)) == RPC_MATCH_NONE); // answered
	CHECK(match_code(&c.q, with_id(2, 2)) == RPC_MATCH_NONE);
	CHECK(match_code(&c.q, with_id(4, 2)) == RPC_MATCH_NONE); // never
	CHECK(match_code(&c.q, with_id(0x0105, 2)) == RPC_MATCH_NONE);
	CHECK(rpc_inflight_count(&c.q) == 4);
	for (uint64_t id : { 6, 0, 5, 3 })
		rpc_pool_put(&pool.p, match(&c.q, with_id(id, 2)));
}

TEST_CASE("rpc inflight: ids stay unique through many wraps of the id "
	  "space", "[rpc]")
{
	Pool pool;
	uint32_t len = GENERATE(1u, 2u);
	uint32_t max = GENERATE(7u, 64u, 256u);
	Conn c(pool, max, { 0, len });
	std::mt19937 rng(len * 1000 + max);
	while (c.q.id_next <= 3 * (c.q.id_mask + 1)) {
		while (!rpc_inflight_full(&c.q) && rng() % 4) {
			REQUIRE(rpc_inflight_push(&c.q, tagged(pool, "w", len))
				== 0);
		}
		REQUIRE(ids_on(&c.q).size() == rpc_inflight_count(&c.q));
		c.write_all();
		// answer a random subset, in random order
		std::vector<uint64_t> ids;
		for (uint64_t id : ids_on(&c.q))
			if (rng() % 2)
				ids.push_back(id);
		std::shuffle(ids.begin(), ids.end(), rng);
		for (uint64_t id : ids) {
			rpc_req *r = match(&c.q, with_id(id, len));
			CHECK(r->wire_id == id);
			rpc_pool_put(&pool.p, r);
		}
	}
	rpc_req_list out = {};
	rpc_inflight_drain(&c.q, &out);
	while (rpc_req *r = rpc_req_list_pop(&out))
		rpc_pool_put(&pool.p, r);
}

TEST_CASE("rpc inflight: LEN 8 ids use the whole field", "[rpc]")
{
	Pool pool;
	Conn c(pool, 2, { 0, 8 });
	c.q.id_next = UINT64_MAX; // about to wrap
	rpc_req *a = tagged(pool, "a", 8), *b = tagged(pool, "b", 8);
	REQUIRE(rpc_inflight_push(&c.q, a) == 0);
	REQUIRE(rpc_inflight_push(&c.q, b) == 0);
	CHECK(a->wire_id == UINT64_MAX);
	CHECK(b->wire_id == 0);
	c.write_all();
	rpc_pool_put(&pool.p, match(&c.q, with_id(UINT64_MAX, 8)));
	rpc_pool_put(&pool.p, match(&c.q, with_id(0, 8)));
}

TEST_CASE("rpc inflight: frames too short for the tag", "[rpc]")
{
	Pool pool;
	Conn c(pool, 4, { 2, 2 });
	rpc_req *shorty = pool.request("abc");
	CHECK(rpc_inflight_push(&c.q, shorty) == -EBADMSG);
	CHECK(shorty->state == RPC_REQ_NEW);
	CHECK(shorty->on == nullptr);
	CHECK(payload_of(shorty) == "abc"); // untouched
	rpc_pool_put(&pool.p, shorty);

	rpc_req *ok = pool.request("abcd");
	REQUIRE(rpc_inflight_push(&c.q, ok) == 0);
	c.write_all();
	CHECK(match_code(&c.q, frame("abc")) == RPC_MATCH_SHORT);
	CHECK(rpc_inflight_count(&c.q) == 1);
	Bytes reply = frame("ab??");
	rpc_field_put(&reply[FRAME_HEADER_SIZE + 2], 2, ok->wire_id);
	rpc_req *r = match(&c.q, reply);
	CHECK(payload_of(reply.data(), reply.size()) == "abcd");
	rpc_pool_put(&pool.p, r);
}

TEST_CASE("rpc inflight: a retried request keeps the client's tag bytes "
	  "from before the first rewrite", "[rpc]")
{
	Pool pool;
	Conn first(pool, 4, { 0, 2 }, true), second(pool, 4, { 0, 2 }, true);
	second.q.id_next = 0x4242; // ids differ between the connections
	rpc_req *r = pool.request("CLrest");
	r->owner = reinterpret_cast<rpc_order *>(&pool); // someone's
	REQUIRE(rpc_inflight_push(&first.q, r) == 0);
	first.write_all();
	rpc_req_list lost = {};
	CHECK(rpc_inflight_drain(&first.q, &lost) == 0);
	REQUIRE(lost.count == 1);
	REQUIRE(rpc_req_list_pop(&lost) == r);
	CHECK(r->state == RPC_REQ_NEW);
	CHECK(r->sent);
	REQUIRE(rpc_inflight_push(&second.q, r) == 0);
	CHECK(r->attempts == 2);
	std::vector<Bytes> wire = write_frames(&second.q);
	REQUIRE(wire.size() == 1);
	CHECK(rpc_field_get(&wire[0][FRAME_HEADER_SIZE], 2) == 0x4242);
	Bytes reply = wire[0];
	rpc_req *m = match(&second.q, reply);
	CHECK(m == r);
	CHECK(payload_of(reply.data(), reply.size()) == "CLrest");
	m->owner = nullptr;
	rpc_pool_put(&pool.p, m);
}

TEST_CASE("rpc inflight: a queued request can be cancelled, a written one "
	  "not", "[rpc]")
{
	Pool pool;
	Conn c(pool, 8, { 0, 1 });
	rpc_req *a = tagged(pool, "a"), *b = tagged(pool, "b"),
		*d = tagged(pool, "d");
	REQUIRE(rpc_inflight_push(&c.q, a) == 0);
	c.write_all();
	REQUIRE(rpc_inflight_push(&c.q, b) == 0);
	REQUIRE(rpc_inflight_push(&c.q, d) == 0);
	CHECK(rpc_inflight_cancel(&c.q, a) == -EBUSY);
	REQUIRE(rpc_inflight_cancel(&c.q, b) == 0); // the first queued
	CHECK(b->on == nullptr);
	CHECK(b->state == RPC_REQ_NEW);
	CHECK(rpc_inflight_count(&c.q) == 2);
	std::vector<Bytes> wire = write_frames(&c.q);
	REQUIRE(wire.size() == 1);
	CHECK(payload_of(wire[0].data(), wire[0].size()).substr(1) == "d");
	CHECK(match_code(&c.q, with_id(b->wire_id, 1)) == RPC_MATCH_NONE);
	rpc_pool_put(&pool.p, b);
	rpc_pool_put(&pool.p, match(&c.q, with_id(a->wire_id, 1)));
	rpc_pool_put(&pool.p, match(&c.q, with_id(d->wire_id, 1)));
}

TEST_CASE("rpc inflight: drain returns owned requests in queue order and "
	  "puts ownerless ones back", "[rpc]")
{
	Pool pool;
	bool tagged_mode = GENERATE(false, true);
	Conn c(pool, 16, tagged_mode ? rpc_field{ 0, 1 } : rpc_field{ 0, 0 });
	rpc_order *someone = reinterpret_cast<rpc_order *>(&pool);
	std::vector<rpc_req *> reqs;
	for (int i = 0; i < 6; i++) {
		reqs.push_back(tagged(pool, std::to_string(i)));
		reqs.back()->owner = i % 3 == 1 ? nullptr : someone;
		REQUIRE(rpc_inflight_push(&c.q, reqs.back()) == 0);
		if (i == 2)
			c.write_all(); // 0..2 sent, 3..5 queued
	}
	iovec iov[8];
	REQUIRE(rpc_inflight_gather(&c.q, iov, 2, nullptr) == 2); // 3, 4
	rpc_req_list out = {};
	CHECK(rpc_inflight_drain(&c.q, &out) == 2); // 1 and 4
	CHECK(pool.p.live == 4);
	CHECK(rpc_inflight_count(&c.q) == 0);
	std::vector<rpc_req *> got;
	while (rpc_req *r = rpc_req_list_pop(&out)) {
		CHECK(r->on == nullptr);
		CHECK(r->state == RPC_REQ_NEW);
		got.push_back(r);
	}
	CHECK(got == std::vector<rpc_req *>{ reqs[0], reqs[2], reqs[3],
					     reqs[5] });
	CHECK(reqs[0]->sent);
	CHECK(reqs[3]->sent);  // was being written: may have gone out
	CHECK(!reqs[5]->sent); // never left: safe to resend anywhere
	CHECK(payload_of(reqs[5]).substr(1) == "5");
	// every id is free again
	for (int i = 0; i < 16; i++)
		REQUIRE(rpc_inflight_push(&c.q, tagged(pool, "n")) == 0);
	c.write_all();
	for (rpc_req *r : got) {
		r->owner = nullptr;
		rpc_pool_put(&pool.p, r);
	}
	for (int i = 0; i < 16; i++) {
		Bytes reply = tagged_mode ? with_id(c.q.list.tail->wire_id, 1)
					  : frame("r");
		rpc_pool_put(&pool.p, match(&c.q, reply));
	}
}

TEST_CASE("rpc inflight: a server's load counts its requests on every "
	  "connection, through every way off", "[rpc]")
{
	Pool pool;
	unsigned load = 0;
	Conn a(pool, 8, { 0, 0 }, false, &load), b(pool, 8, { 0, 0 }, false,
						   &load);
	rpc_order *someone = reinterpret_cast<rpc_order *>(&pool);
	rpc_req *r[6];
	for (int i = 0; i < 6; i++) {
		r[i] = pool.request("x");
		r[i]->owner = someone;
		REQUIRE(rpc_inflight_push(i < 3 ? &a.q : &b.q, r[i]) == 0);
	}
	CHECK(load == 6);
	a.write_all();
	rpc_req *m = match(&a.q, frame("r")); // matched: off
	CHECK(load == 5);
	REQUIRE(rpc_inflight_cancel(&b.q, r[5]) == 0); // cancelled: off
	CHECK(load == 4);
	rpc_req_list out = {};
	rpc_inflight_drain(&b.q, &out); // drained: off
	CHECK(load == 2);
	rpc_inflight_drain(&a.q, &out);
	CHECK(load == 0);
	REQUIRE(rpc_inflight_push(&a.q, pool.request("y")) == 0);
	CHECK(load == 1);
	rpc_inflight_drain(&a.q, &out); // ownerless: back to the pool
	CHECK(load == 0);
	m->owner = nullptr;
	rpc_pool_put(&pool.p, m);
	r[5]->owner = nullptr;
	rpc_pool_put(&pool.p, r[5]);
	while (rpc_req *x = rpc_req_list_pop(&out)) {
		x->owner = nullptr;
		rpc_pool_put(&pool.p, x);
	}
}
