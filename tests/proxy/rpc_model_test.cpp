// The rpc core against a reference model: thousands of random operations on
// a few clients and upstream connections (push, write, reply, connection
// death with retry or failure, stop, client close), checking after each one
// that no reply reaches the wrong client, comes twice or out of order, that
// a stopped client got exactly the replies before its stop point, and that
// the pool's live records are exactly the ones someone holds.
#include "rpc_fixture.hpp"

#include <deque>
#include <map>
#include <memory>
#include <random>

using namespace rpctest;

namespace {

enum { REASON_LOST = 1, REASON_STOP = 2 };

constexpr int CLIENTS = 4;
constexpr int CONNS = 3;
constexpr int MAX_ATTEMPTS = 4;

struct Client {
	std::unique_ptr<Order> order;
	uint64_t gen = 0;
	uint64_t next_expected = 0;
	std::map<uint64_t, std::string> payloads; // seq -> request payload
};

struct Upstream {
	std::unique_ptr<Conn> conn;
	std::vector<Bytes> in_transit; // gathered, write not finished
	std::deque<Bytes> received;    // written, not answered
};

struct Model {
	std::mt19937_64 rng;
	Pool pool{ 64, 256 };
	rpc_field tag;
	bool retry;
	Upstream up[CONNS];
	Client cl[CLIENTS];
	uint64_t delivered = 0, dropped = 0, failed = 0, retried = 0;

	Model(uint64_t seed, rpc_field t, bool r) : rng(seed), tag(t), retry(r)
	{
		for (auto &u : up)
			u.conn.reset(new Conn(pool, 1 + rng() % 6, tag, retry));
	}

	uint64_t pick(uint64_t n) { return rng() % n; }

	void open_client(int i)
	{
		Client &c = cl[i];
		c.order.reset(new Order(pool, 1 + (uint32_t)pick(6),
					20 + pick(200)));
		c.gen++;
		c.next_expected = 0;
		c.payloads.clear();
	}

	void close_client(int i)
	{
		rpc_order_detach(&cl[i].order->o);
		cl[i].order.reset();
	}

	// A connection with room other than `not_this`, or -1.
	int conn_with_room(int not_this = -1)
	{
		int start = (int)pick(CONNS);
		for (int k = 0; k < CONNS; k++) {
			int j = (start + k) % CONNS;
			if (j != not_this && !rpc_inflight_full(&up[j].conn->q))
				return j;
		}
		return -1;
	}

	void push(int i)
	{
		Client &c = cl[i];
		if (!c.order) // a new client in the closed one's place
			open_client(i);
		int j = conn_with_room();
		if (!rpc_order_can_push(&c.order->o) || j < 0)
			return;
		uint64_t seq = c.order->o.tail;
		std::string p(tag.offset + tag.len, '\0');
		for (char &ch : p)
			ch = (char)pick(256); // the client's own tag bytes
		p += "c" + std::to_string(i) + "." + std::to_string(c.gen) +
		     ":" + std::to_string(seq);
		rpc_req *r = pool.request(p);
		REQUIRE(rpc_order_push(&c.order->o, r) == 0);
		REQUIRE(r->seq == seq);
		REQUIRE(rpc_inflight_push(&up[j].conn->q, r) == 0);
		c.payloads[seq] = p;
	}

	void write_conn(int j)
	{
		Upstream &u = up[j];
		if (!u.in_transit.empty()) { // the write completes
			rpc_inflight_wrote(&u.conn->q);
			for (Bytes &b : u.in_transit)
				u.received.push_back(b);
			u.in_transit.clear();
			return;
		}
		iovec iov[8];
		size_t n = rpc_inflight_gather(&u.conn->q, iov, 1 + pick(8),
					       nullptr);
		for (size_t k = 0; k < n; k++) {
			const uint8_t *b = (const uint8_t *)iov[k].iov_base;
			u.in_transit.emplace_back(b, b + iov[k].iov_len);
		}
	}

	// The client of a reply, from its echoed payload; -1 when that
	// client (this generation of it) is gone.
	int owner_of(const Bytes &reply)
	{
		std::string p = payload_of(reply.data(), reply.size());
		p = p.substr(tag.offset + tag.len);
		int i = p[1] - '0';
		uint64_t gen = std::stoull(p.substr(3));
		if (!cl[i].order || cl[i].gen != gen)
			return -1;
		return i;
	}

	void reply(int j)
	{
		Upstream &u = up[j];
		if (u.received.empty())
			return;
		size_t k = tag.len ? pick(u.received.size()) : 0;
		Bytes reply = u.received[k];
		u.received.erase(u.received.begin() + (long)k);
		reply.push_back('|');
		reply.push_back('R');
		frame_write_length(reply.data(),
				   (uint32_t)(reply.size() - FRAME_HEADER_SIZE));
		rpc_req *r = nullptr;
		REQUIRE(rpc_inflight_match(&u.conn->q, reply.data(),
					   reply.size(), &r) == RPC_MATCH_OK);
		int who = owner_of(reply); // after the tag is restored
		REQUIRE((r->owner != nullptr) == (who >= 0));
		if (who >= 0)
			REQUIRE(r->owner == &cl[who].order->o);
		int rc = rpc_order_answer(&pool.p, r, reply.data(),
					  reply.size());
		REQUIRE(rc >= 0);
		dropped += rc == RPC_ANSWER_DROPPED;
	}

	// A reply no request awaits: the connection must say so.
	void bogus_reply(int j)
	{
		Upstream &u = up[j];
		Bytes reply;
		if (!tag.len) {
			if (!u.received.empty())
				return;
			reply = frame("stray");
		} else {
			Bytes p(tag.offset + tag.len, 0);
			uint64_t id = pick(1u << (8 * tag.len));
			for (rpc_req *r = u.conn->q.list.head; r; r = r->next)
				if (r->wire_id == id && r->state == RPC_REQ_SENT)
					return;
			rpc_field_put(&p[tag.offset], tag.len, id);
			reply = frame(p);
		}
		rpc_req *r = nullptr;
		REQUIRE(rpc_inflight_match(&u.conn->q, reply.data(),
					   reply.size(), &r) == RPC_MATCH_NONE);
		kill_conn(j);
	}

	void lose(rpc_req *r)
	{
		rpc_order_fail(r->owner, r, REASON_LOST);
		failed++;
	}

	void kill_conn(int j)
	{
		Upstream &u = up[j];
		rpc_req_list out = {};
		rpc_inflight_drain(&u.conn->q, &out);
		u.in_transit.clear();
		u.received.clear();
		while (rpc_req *r = rpc_req_list_pop(&out)) {
			REQUIRE(r->owner);
			int k = conn_with_room(j);
			bool may = (retry || !r->sent) &&
				   !rpc_order_past_stop(r->owner, r);
			if (!may || k < 0 || r->attempts >= MAX_ATTEMPTS) {
				lose(r);
				continue;
			}
			REQUIRE(rpc_inflight_push(&up[k].conn->q, r) == 0);
			retried++;
		}
	}

	void write_client(int i)
	{
		Client &c = cl[i];
		if (!c.order)
			return;
		iovec iov[8];
		size_t n;
		while ((n = rpc_order_take(&c.order->o, iov, 1 + pick(8),
					   nullptr))) {
			for (size_t k = 0; k < n; k++) {
				auto it = c.payloads.find(c.next_expected);
				REQUIRE(it != c.payloads.end());
				REQUIRE(payload_of(iov[k]) == it->second + "|R");
				c.payloads.erase(it);
				c.next_expected++;
				delivered++;
			}
			rpc_order_release(&c.order->o);
		}
		if (rpc_order_finished(&c.order->o)) {
			REQUIRE(c.next_expected == c.order->o.stop);
			close_client(i);
		}
	}

	void check_invariants()
	{
		uint64_t held_by_clients = 0, ownerless = 0;
		for (Client &c : cl) {
			if (!c.order)
				continue;
			rpc_order &o = c.order->o;
			size_t held = 0;
			held_by_clients += rpc_order_outstanding(&o);
			for (uint64_t s = o.head; s < o.tail; s++) {
				rpc_req *r = o.ring[s & o.mask];
				REQUIRE(r->seq == s);
				REQUIRE(r->owner == &o);
				if (r->state == RPC_REQ_READY ||
				    r->state == RPC_REQ_TAKEN)
					held += r->len;
				// never delivered: not kept, not sent
				if (s >= o.stop && r->state == RPC_REQ_READY)
					REQUIRE(r->len == 0);
				if (s >= o.stop)
					REQUIRE(r->state != RPC_REQ_QUEUED);
			}
			REQUIRE(held == o.held);
			REQUIRE(c.next_expected == o.head);
		}
		for (Upstream &u : up) {
			uint32_t n = 0;
			for (rpc_req *r = u.conn->q.list.head; r; r = r->next) {
				REQUIRE(r->on == &u.conn->q);
				ownerless += r->owner == nullptr;
				// a closed client's unwritten requests left
				if (!r->owner)
					REQUIRE(r->state != RPC_REQ_QUEUED);
				n++;
			}
			REQUIRE(n == rpc_inflight_count(&u.conn->q));
			REQUIRE(n <= u.conn->q.max);
		}
		REQUIRE(pool.p.live == held_by_clients + ownerless);
	}

	void step()
	{
		int i = (int)pick(CLIENTS), j = (int)pick(CONNS);
		uint64_t op = pick(1000);
		if (op < 10)
			cl[i].order ? close_client(i) : open_client(i);
		else if (op < 18)
			kill_conn(j);
		else if (op < 22)
			bogus_reply(j);
		else if (op < 30 && cl[i].order)
			rpc_order_stop(&cl[i].order->o, REASON_STOP);
		else if (op < 350)
			push(i);
		else if (op < 550)
			write_conn(j);
		else if (op < 800)
			reply(j);
		else
			write_client(i);
		check_invariants();
	}

	void finish()
	{
		for (int i = 0; i < CLIENTS; i++)
			if (cl[i].order)
				close_client(i);
		for (Upstream &u : up) {
			rpc_req_list out = {};
			rpc_inflight_drain(&u.conn->q, &out);
			REQUIRE(out.count == 0); // nobody owns anything now
		}
		REQUIRE(pool.p.live == 0);
	}
};

} // namespace

TEST_CASE("rpc model: random operations against a reference model",
	  "[rpc]")
{
	rpc_field tag = GENERATE(rpc_field{ 0, 0 }, rpc_field{ 0, 1 },
				 rpc_field{ 3, 2 });
	bool retry = GENERATE(false, true);
	uint64_t seed = GENERATE(1u, 2u, 3u);
	Model m(seed * 7919 + tag.len * 31 + retry, tag, retry);
	for (int i = 0; i < CLIENTS; i++)
		m.open_client(i);
	for (int step = 0; step < 40000; step++)
		m.step();
	m.finish();
	INFO("delivered " << m.delivered << " dropped " << m.dropped
			  << " failed " << m.failed << " retried "
			  << m.retried);
	CHECK(m.delivered > 2000);
	CHECK(m.dropped > 0);
	CHECK(m.failed > 0);
	if (retry)
		CHECK(m.retried > 0);
}
