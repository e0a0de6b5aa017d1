// rpc_req: the request record, its pool and its list.
#include "rpc_fixture.hpp"

#include <cerrno>
#include <set>

using namespace rpctest;

TEST_CASE("rpc pool: hands out distinct records and takes every one back",
	  "[rpc]")
{
	Pool pool(8);
	std::set<rpc_req *> out;
	std::vector<rpc_req *> held;

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 20; i++) {
			rpc_req *r = rpc_pool_get(&pool.p);
			REQUIRE(r);
			REQUIRE(out.insert(r).second); // never twice
			CHECK(r->state == RPC_REQ_NEW);
			CHECK(r->len == 0);
			CHECK(!r->owner);
			CHECK(!r->on);
			held.push_back(r);
		}
		CHECK(pool.p.live == 20);
		for (rpc_req *r : held) {
			out.erase(r);
			rpc_pool_put(&pool.p, r);
		}
		held.clear();
		CHECK(pool.p.live == 0);
		CHECK(pool.p.free_count == 8); // free_max: the rest freed
	}
}

TEST_CASE("rpc pool: a recycled record is clean and keeps a small buffer",
	  "[rpc]")
{
	Pool pool(4, 256);
	rpc_req *r = pool.request("hello");
	uint8_t *buf = r->bytes;
	r->seq = 7;
	r->attempts = 3;
	r->sent = true;
	r->tag_saved = true;
	rpc_pool_put(&pool.p, r);

	rpc_req *again = rpc_pool_get(&pool.p);
	REQUIRE(again == r); // LIFO: the warm one
	CHECK(again->bytes == buf);
	CHECK(again->cap >= 9);
	CHECK(again->len == 0);
	CHECK(again->seq == 0);
	CHECK(again->attempts == 0);
	CHECK(!again->sent);
	CHECK(!again->tag_saved);
	CHECK(again->state == RPC_REQ_NEW);

	// A buffer above keep_bytes does not stay with a pooled record.
	std::string big(1000, 'x');
	Bytes f = frame(big);
	REQUIRE(rpc_req_store(again, f.data(), f.size()) == 0);
	CHECK(again->cap >= f.size());
	rpc_pool_put(&pool.p, again);
	rpc_req *third = rpc_pool_get(&pool.p);
	CHECK(third->bytes == nullptr);
	CHECK(third->cap == 0);
	rpc_pool_put(&pool.p, third);
}

TEST_CASE("rpc req: store replaces the bytes and grows only when needed",
	  "[rpc]")
{
	Pool pool;
	rpc_req *r = pool.request("abc");
	CHECK(payload_of(r) == "abc");
	uint32_t cap = r->cap;
	uint8_t *buf = r->bytes;

	Bytes small = frame("xy");
	REQUIRE(rpc_req_store(r, small.data(), small.size()) == 0);
	CHECK(payload_of(r) == "xy");
	CHECK(r->bytes == buf);
	CHECK(r->cap == cap);

	Bytes big = frame(std::string(300, 'q'));
	REQUIRE(rpc_req_store(r, big.data(), big.size()) == 0);
	CHECK(payload_of(r) == std::string(300, 'q'));
	CHECK(r->cap >= big.size());

	rpc_req_drop_bytes(r, 4096);
	CHECK(r->len == 0);
	CHECK(r->bytes != nullptr); // kept: below keep_bytes
	rpc_req_drop_bytes(r, 16);
	CHECK(r->bytes == nullptr);
	CHECK(r->cap == 0);
	CHECK(rpc_req_store(r, nullptr, (size_t)UINT32_MAX + 1) == -EMSGSIZE);
	rpc_pool_put(&pool.p, r);
}

TEST_CASE("rpc req: settle puts back only a record nobody holds", "[rpc]")
{
	Pool pool;
	rpc_req *r = pool.request("x");
	rpc_order *fake_owner = reinterpret_cast<rpc_order *>(&pool);
	r->owner = fake_owner;
	CHECK(!rpc_req_settle(&pool.p, r));
	CHECK(pool.p.live == 1);
	r->owner = nullptr;
	CHECK(rpc_req_settle(&pool.p, r));
	CHECK(pool.p.live == 0);
}

TEST_CASE("rpc req list: append, unlink anywhere, pop in order", "[rpc]")
{
	Pool pool;
	rpc_req_list list = {};
	rpc_req *r[5];
	for (int i = 0; i < 5; i++) {
		r[i] = pool.request(std::to_string(i));
		rpc_req_list_append(&list, r[i]);
	}
	CHECK(list.count == 5);
	rpc_req_list_unlink(&list, r[0]); // head
	rpc_req_list_unlink(&list, r[2]); // middle
	rpc_req_list_unlink(&list, r[4]); // tail
	CHECK(list.count == 2);
	CHECK(list.head == r[1]);
	CHECK(list.tail == r[3]);
	CHECK(rpc_req_list_pop(&list) == r[1]);
	CHECK(rpc_req_list_pop(&list) == r[3]);
	CHECK(rpc_req_list_pop(&list) == nullptr);
	CHECK(list.count == 0);
	CHECK(list.tail == nullptr);
	for (rpc_req *x : r)
		rpc_pool_put(&pool.p, x);
}
