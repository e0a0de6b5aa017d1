// rpc_order: one client's replies in request order, coalesced writes,
// bounds, failure and detach.
#include "rpc_fixture.hpp"

#include <cerrno>

using namespace rpctest;

namespace {

enum { REASON_LOST = 7, REASON_DRAIN = 8, REASON_BAD = 9 };

// Requests pushed to the order and sent on the connection, ready to be
// answered.
std::vector<rpc_req *> send(Pool &pool, Order &order, Conn &conn, int n,
			    const std::string &prefix = "q")
{
	std::vector<rpc_req *> reqs;
	for (int i = 0; i < n; i++) {
		rpc_req *r = pool.request(prefix + std::to_string(i));
		REQUIRE(rpc_order_push(&order.o, r) == 0);
		REQUIRE(rpc_inflight_push(&conn.q, r) == 0);
		reqs.push_back(r);
	}
	conn.write_all();
	return reqs;
}

// The upstream answers its oldest request (FIFO) with `text`.
rpc_req *answer(Pool &pool, Conn &conn, const std::string &text)
{
	Bytes reply = frame(text);
	rpc_req *r = nullptr;
	REQUIRE(rpc_inflight_match(&conn.q, reply.data(), reply.size(), &r) ==
		RPC_MATCH_OK);
	REQUIRE(rpc_order_answer(&pool.p, r, reply.data(), reply.size()) >= 0);
	return r;
}

using Strings = std::vector<std::string>;

} // namespace

TEST_CASE("rpc order: replies go out in request order whatever order they "
	  "arrive in", "[rpc]")
{
	Pool pool;
	Conn a(pool, 8), b(pool, 8), c(pool, 8);
	Order order(pool, 8);
	// q0 -> a, q1 -> b, q2 -> c, q3 -> a
	rpc_req *q0 = send(pool, order, a, 1, "q0")[0];
	rpc_req *q1 = send(pool, order, b, 1, "q1")[0];
	rpc_req *q2 = send(pool, order, c, 1, "q2")[0];
	rpc_req *q3 = send(pool, order, a, 1, "q3")[0];
	CHECK(q0->seq == 0);
	CHECK(q3->seq == 3);

	answer(pool, c, "r2");
	answer(pool, b, "r1");
	CHECK(!rpc_order_deliverable(&order.o)); // q0 not there yet
	CHECK(order.deliver().empty());
	CHECK(order.o.held == 2 * (FRAME_HEADER_SIZE + 2));
	answer(pool, a, "r0");
	CHECK(rpc_order_deliverable(&order.o));
	CHECK(order.deliver() == Strings{ "r0", "r1", "r2" });
	CHECK(order.o.held == 0);
	CHECK(rpc_order_outstanding(&order.o) == 1);
	answer(pool, a, "r3");
	CHECK(order.deliver() == Strings{ "r3" });
	CHECK(rpc_order_outstanding(&order.o) == 0);
	(void)q1;
	(void)q2;
}

TEST_CASE("rpc order: the ready run is one batch; a reply that comes during "
	  "the write is in the next one", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 3, "a");
	send(pool, order, b, 2, "b");
	for (int i = 0; i < 3; i++)
		answer(pool, a, "ra" + std::to_string(i));
	answer(pool, b, "rb0");
	iovec iov[16];
	size_t bytes = 0;
	REQUIRE(rpc_order_take(&order.o, iov, 16, &bytes) == 4); // coalesced
	CHECK(bytes == 3 * (FRAME_HEADER_SIZE + 3) + FRAME_HEADER_SIZE + 3);
	CHECK(payload_of(iov[0]) == "ra0");
	CHECK(payload_of(iov[3]) == "rb0");
	CHECK(!rpc_order_deliverable(&order.o));
	// while the write is under way
	answer(pool, b, "rb1");
	CHECK(rpc_order_deliverable(&order.o));
	CHECK(pool.p.live == 5);
	rpc_order_release(&order.o);
	CHECK(pool.p.live == 1);
	REQUIRE(rpc_order_take(&order.o, iov, 16, nullptr) == 1);
	CHECK(payload_of(iov[0]) == "rb1");
	rpc_order_release(&order.o);
	CHECK(rpc_order_outstanding(&order.o) == 0);
}

TEST_CASE("rpc order: take honours max_iov", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 10);
	for (int i = 0; i < 10; i++)
		answer(pool, a, "r" + std::to_string(i));
	CHECK(order.deliver(3) ==
	      Strings{ "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8",
		       "r9" });
}

TEST_CASE("rpc order: max_inflight stops new requests until a reply is "
	  "released", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16);
	Order order(pool, 3);
	send(pool, order, a, 3);
	CHECK(!rpc_order_can_push(&order.o));
	rpc_req *extra = pool.request("x");
	CHECK(rpc_order_push(&order.o, extra) == -EAGAIN);
	CHECK(extra->owner == nullptr);
	answer(pool, a, "r0");
	CHECK(!rpc_order_can_push(&order.o)); // stored, not yet written
	iovec iov[4];
	REQUIRE(rpc_order_take(&order.o, iov, 4, nullptr) == 1);
	CHECK(!rpc_order_can_push(&order.o)); // being written
	rpc_order_release(&order.o);
	CHECK(rpc_order_can_push(&order.o));
	REQUIRE(rpc_order_push(&order.o, extra) == 0);
	CHECK(extra->seq == 3);
	CHECK(rpc_order_outstanding(&order.o) == 3);
	rpc_order_detach(&order.o); // extra was on no connection: freed
}

TEST_CASE("rpc order: the ring wraps many times", "[rpc]")
{
	Pool pool;
	Conn a(pool, 8);
	Order order(pool, 5); // ring of 8
	for (int round = 0; round < 50; round++) {
		send(pool, order, a, 5, "r" + std::to_string(round) + "-");
		for (int i = 0; i < 5; i++)
			answer(pool, a, std::to_string(round * 5 + i));
		Strings got = order.deliver(2);
		REQUIRE(got.size() == 5);
		for (int i = 0; i < 5; i++)
			CHECK(got[i] == std::to_string(round * 5 + i));
	}
	CHECK(order.o.tail == 250);
}

TEST_CASE("rpc order: over the byte budget no request is admitted, but "
	  "every reply already read is kept", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16, 20); // 20 bytes of held replies
	rpc_req *head = send(pool, order, a, 1, "head")[0];
	send(pool, order, b, 4, "b");
	CHECK(rpc_order_can_push(&order.o));
	answer(pool, b, std::string(8, 'x')); // 12 held
	CHECK(rpc_order_can_push(&order.o));
	answer(pool, b, std::string(8, 'y')); // 24 held: over
	CHECK(!rpc_order_can_push(&order.o));
	rpc_req *extra = pool.request("x");
	CHECK(rpc_order_push(&order.o, extra) == -EAGAIN);
	answer(pool, b, std::string(100, 'z')); // still kept
	CHECK(order.o.held == 24 + 104);
	CHECK(order.deliver().empty()); // the head is not answered yet
	answer(pool, a, "H");
	Strings got = order.deliver();
	REQUIRE(got.size() == 4);
	CHECK(got[0] == "H");
	CHECK(got[3] == std::string(100, 'z'));
	CHECK(order.o.held == 0);
	CHECK(rpc_order_can_push(&order.o));
	REQUIRE(rpc_order_push(&order.o, extra) == 0);
	(void)head;
}

TEST_CASE("rpc order: a failed request in the middle: exactly the replies "
	  "before it are delivered, then the client is finished", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 2, "a");     // seq 0, 1
	send(pool, order, b, 1, "b");     // seq 2: will be lost
	send(pool, order, a, 2, "a2-");   // seq 3, 4
	answer(pool, a, "r0");
	answer(pool, a, "r1");
	answer(pool, a, "r3");            // after the failure: never sent
	rpc_req_list lost = {};
	rpc_inflight_drain(&b.q, &lost);
	REQUIRE(lost.count == 1);
	rpc_req *r2 = rpc_req_list_pop(&lost);
	CHECK(r2->seq == 2);
	rpc_order_fail(&order.o, r2, REASON_LOST);
	CHECK(!rpc_order_can_push(&order.o));
	rpc_req *extra = pool.request("x");
	CHECK(rpc_order_push(&order.o, extra) == -EPIPE);
	rpc_pool_put(&pool.p, extra);
	CHECK(!rpc_order_finished(&order.o));
	iovec iov[8];
	REQUIRE(rpc_order_take(&order.o, iov, 8, nullptr) == 2);
	CHECK(!rpc_order_finished(&order.o)); // not written yet
	rpc_order_release(&order.o);
	CHECK(rpc_order_finished(&order.o));
	CHECK(rpc_order_reason(&order.o) == REASON_LOST);
	CHECK(rpc_order_take(&order.o, iov, 8, nullptr) == 0);
	answer(pool, a, "r4");
	CHECK(rpc_order_take(&order.o, iov, 8, nullptr) == 0);
	CHECK(order.o.held == 0); // replies past the failure are not kept
	CHECK(rpc_order_detach(&order.o) == 0);
	CHECK(pool.p.live == 0);
}

TEST_CASE("rpc order: the earliest stop point wins, with its reason",
	  "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 2, "a"); // 0, 1
	send(pool, order, b, 2, "b"); // 2, 3
	rpc_order_stop(&order.o, REASON_DRAIN); // at 4
	CHECK(order.o.stop == 4);
	rpc_req_list lost = {};
	rpc_inflight_drain(&b.q, &lost);
	REQUIRE(lost.count == 2);
	rpc_req *r3 = lost.tail, *r2 = lost.head;
	rpc_req_list_pop(&lost);
	rpc_req_list_pop(&lost);
	rpc_order_fail(&order.o, r3, REASON_LOST);
	CHECK(order.o.stop == 3);
	rpc_order_fail(&order.o, r2, REASON_BAD);
	CHECK(order.o.stop == 2);
	CHECK(rpc_order_reason(&order.o) == REASON_BAD);
	rpc_order_stop(&order.o, REASON_DRAIN); // later: changes nothing
	CHECK(rpc_order_reason(&order.o) == REASON_BAD);
	answer(pool, a, "r0");
	answer(pool, a, "r1");
	CHECK(order.deliver() == Strings{ "r0", "r1" });
	CHECK(rpc_order_finished(&order.o));
}

TEST_CASE("rpc order: a drain stop finishes once everything owed is "
	  "delivered", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16);
	Order order(pool, 16);
	rpc_order_stop(&order.o, REASON_DRAIN);
	CHECK(rpc_order_finished(&order.o)); // nothing owed: at once

	Order busy(pool, 16);
	send(pool, busy, a, 2);
	rpc_order_stop(&busy.o, REASON_DRAIN);
	CHECK(!rpc_order_finished(&busy.o));
	answer(pool, a, "r0");
	busy.deliver();
	CHECK(!rpc_order_finished(&busy.o));
	answer(pool, a, "r1");
	CHECK(busy.deliver() == Strings{ "r1" });
	CHECK(rpc_order_finished(&busy.o));
	CHECK(rpc_order_reason(&busy.o) == REASON_DRAIN);
}

TEST_CASE("rpc order: detach; late replies are dropped, queued requests "
	  "leave their connection", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	auto *order = new Order(pool, 16);
	send(pool, *order, a, 2, "sent");     // 0, 1 on a, written
	rpc_req *ready = send(pool, *order, b, 1, "b")[0]; // 2
	answer(pool, b, "rb");                // stored
	rpc_req *queued = pool.request("queued");
	REQUIRE(rpc_order_push(&order->o, queued) == 0);
	REQUIRE(rpc_inflight_push(&b.q, queued) == 0); // not written
	rpc_req *loose = pool.request("loose");          // on no connection
	REQUIRE(rpc_order_push(&order->o, loose) == 0);
	CHECK(pool.p.live == 5);

	CHECK(rpc_order_detach(&order->o) == 2); // the two sent on a
	CHECK(pool.p.live == 2);
	CHECK(rpc_inflight_count(&b.q) == 0);
	CHECK(rpc_inflight_count(&a.q) == 2);
	CHECK(rpc_order_outstanding(&order->o) == 0);
	delete order; // the client is gone for good

	// The replies come later: matched, dropped, nothing touched.
	for (int i = 0; i < 2; i++) {
		Bytes reply = frame("late");
		rpc_req *r = nullptr;
		REQUIRE(rpc_inflight_match(&a.q, reply.data(), reply.size(),
					   &r) == RPC_MATCH_OK);
		CHECK(r->owner == nullptr);
		CHECK(rpc_order_answer(&pool.p, r, reply.data(),
				       reply.size()) == RPC_ANSWER_DROPPED);
	}
	CHECK(pool.p.live == 0);
	(void)ready;
}

TEST_CASE("rpc order: detach during the client's write frees the batch",
	  "[rpc]")
{
	Pool pool;
	Conn a(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 3);
	answer(pool, a, "r0");
	answer(pool, a, "r1");
	iovec iov[4];
	REQUIRE(rpc_order_take(&order.o, iov, 4, nullptr) == 2);
	CHECK(rpc_order_detach(&order.o) == 1);
	rpc_order_release(&order.o); // a writer that comes back late: no-op
	CHECK(pool.p.live == 1);
	Bytes reply = frame("r2");
	rpc_req *r = nullptr;
	REQUIRE(rpc_inflight_match(&a.q, reply.data(), reply.size(), &r) ==
		RPC_MATCH_OK);
	CHECK(rpc_order_answer(&pool.p, r, reply.data(), reply.size()) ==
	      RPC_ANSWER_DROPPED);
}

TEST_CASE("rpc order: the oldest request still waiting, for "
	  "request_timeout", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16);
	CHECK(rpc_order_oldest_waiting(&order.o) == nullptr);
	rpc_req *r0 = pool.request("0", 100);
	rpc_req *r1 = pool.request("1", 200);
	rpc_req *r2 = pool.request("2", 300);
	for (rpc_req *r : { r0, r1, r2 })
		REQUIRE(rpc_order_push(&order.o, r) == 0);
	REQUIRE(rpc_inflight_push(&a.q, r0) == 0);
	REQUIRE(rpc_inflight_push(&b.q, r1) == 0);
	REQUIRE(rpc_inflight_push(&a.q, r2) == 0);
	a.write_all();
	b.write_all();
	CHECK(rpc_order_oldest_waiting(&order.o) == r0);
	answer(pool, a, "a0");
	CHECK(rpc_order_oldest_waiting(&order.o) == r1);
	answer(pool, a, "a2"); // r2 answered early
	CHECK(rpc_order_oldest_waiting(&order.o) == r1);
	iovec iov[4];
	REQUIRE(rpc_order_take(&order.o, iov, 4, nullptr) == 1);
	CHECK(rpc_order_oldest_waiting(&order.o) == r1);
	rpc_order_release(&order.o);
	answer(pool, b, "b1");
	CHECK(rpc_order_oldest_waiting(&order.o) == nullptr);
	CHECK(order.deliver() == Strings{ "b1", "a2" });
}

TEST_CASE("rpc order: init bounds", "[rpc]")
{
	Pool pool;
	rpc_order o;
	CHECK(rpc_order_init(&o, &pool.p, 0, 1) == -EINVAL);
	CHECK(rpc_order_init(&o, &pool.p, RPC_ORDER_MAX_INFLIGHT + 1, 1) ==
	      -EINVAL);
	REQUIRE(rpc_order_init(&o, &pool.p, RPC_ORDER_MAX_INFLIGHT, 1) == 0);
	CHECK(o.mask == RPC_ORDER_MAX_INFLIGHT - 1);
	rpc_order_free(&o);
	REQUIRE(rpc_order_init(&o, &pool.p, 100, 1) == 0);
	CHECK(o.mask == 127);
	rpc_order_free(&o);
}

TEST_CASE("rpc order: a failure takes the later unwritten requests off "
	  "their connection", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16), b(pool, 16);
	Order order(pool, 16);
	rpc_req *lost = send(pool, order, b, 1, "b")[0]; // seq 0
	send(pool, order, a, 1, "written");              // seq 1
	rpc_req *later = pool.request("later");          // seq 2, queued
	REQUIRE(rpc_order_push(&order.o, later) == 0);
	REQUIRE(rpc_inflight_push(&a.q, later) == 0);
	CHECK(rpc_inflight_count(&a.q) == 2);
	rpc_req_list out = {};
	rpc_inflight_drain(&b.q, &out);
	REQUIRE(rpc_req_list_pop(&out) == lost);
	rpc_order_fail(&order.o, lost, REASON_LOST);
	CHECK(rpc_inflight_count(&a.q) == 1); // the written one stays
	CHECK(later->on == nullptr);
	CHECK(later->len == 0);
	CHECK(rpc_order_past_stop(&order.o, later));
	CHECK(rpc_order_past_stop(&order.o, lost)); // the stop point itself
	CHECK(a.write_all().empty());
	CHECK(rpc_order_finished(&order.o)); // nothing before seq 0
	CHECK(rpc_order_detach(&order.o) == 1);
}

TEST_CASE("rpc order: a matched request whose reply could not be stored "
	  "can be failed", "[rpc]")
{
	Pool pool;
	Conn a(pool, 16);
	Order order(pool, 16);
	send(pool, order, a, 3);
	answer(pool, a, "r0");
	Bytes reply = frame("r1");
	rpc_req *r1 = nullptr;
	REQUIRE(rpc_inflight_match(&a.q, reply.data(), reply.size(), &r1) ==
		RPC_MATCH_OK);
	// as after rpc_order_answer's -ENOMEM
	rpc_order_fail(&order.o, r1, REASON_BAD);
	answer(pool, a, "r2");
	CHECK(order.deliver() == Strings{ "r0" });
	CHECK(rpc_order_finished(&order.o));
	CHECK(rpc_order_reason(&order.o) == REASON_BAD);
}
