// proxy/upstream: servers from a name joining and leaving the pool
// (upstream_pool_answer), without a resolver: the answers are made here.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

extern "C" {
#include "proxy/upstream.h"
#include "sched/sched.h"
}

namespace {

struct Pool {
	upstream_pool pool;
	upstream_name names[1];
	upstream_spec literal;
	std::vector<uint32_t> added, removed;

	Pool()
	{
		REQUIRE(sched_init(nullptr) == 0);
		names[0] = upstream_name{};
		snprintf(names[0].host, sizeof(names[0].host), "svc.test");
		names[0].port = 80;
		names[0].weight = 1;
		REQUIRE(netaddr_parse(&literal.addr, "10.9.9.9:80", NETADDR_NUMERIC) == 0);
		literal.weight = 1;
		upstream_params params{};
		params.connect_timeout_ns = 1000000000;
		params.fail_timeout_ns = 1000000000;
		REQUIRE(upstream_pool_init(&pool, "t", &params, BALANCE_ROUNDROBIN,
					   &literal, 1, names, 1, 1) == 0);
		pool.hooks.added = [](void *arg, uint32_t i) {
			static_cast<Pool *>(arg)->added.push_back(i);
		};
		pool.hooks.removed = [](void *arg, uint32_t i) {
			static_cast<Pool *>(arg)->removed.push_back(i);
		};
		pool.hooks.arg = this;
	}
	~Pool()
	{
		upstream_pool_free(&pool);
		sched_shutdown();
	}

	void answer(const std::vector<std::string> &addrs, unsigned weight = 1)
	{
		std::vector<upstream_spec> specs(addrs.size());
		for (size_t i = 0; i < addrs.size(); i++) {
			REQUIRE(netaddr_parse(&specs[i].addr, addrs[i].c_str(),
					      NETADDR_NUMERIC) == 0);
			specs[i].weight = weight;
		}
		resolve_result r{};
		r.servers = specs.data();
		r.count = (uint32_t)specs.size();
		upstream_pool_answer(&pool, 0, &r);
	}

	void fail()
	{
		resolve_result r{};
		r.error = "Timeout";
		upstream_pool_answer(&pool, 0, &r);
	}

	int index_of(const std::string &name) const
	{
		for (uint32_t i = 0; i < pool.count; i++)
			if (name == pool.servers[i].name)
				return (int)i;
		return -1;
	}

	std::vector<std::string> in_set() const
	{
		std::vector<std::string> out;
		for (uint32_t i = 0; i < pool.count; i++)
			if (upstream_server_in_set(&pool, i))
				out.push_back(pool.servers[i].name);
		return out;
	}
};

} // namespace

TEST_CASE("upstream: a name's answers add and remove servers", "[upstream][dns]")
{
	Pool p;
	CHECK(p.pool.count == 1 + UPSTREAM_NAME_SLOTS);
	CHECK(p.in_set() == std::vector<std::string>{"10.9.9.9:80"});

	p.answer({"10.0.0.1:80", "10.0.0.2:80"});
	CHECK(p.in_set() == (std::vector<std::string>{"10.9.9.9:80", "10.0.0.1:80",
						      "10.0.0.2:80"}));
	CHECK(p.added.size() == 2);
	CHECK(p.pool.lines[0].servers == 2);
	uint64_t changes = p.pool.changes;

	// The same answer changes nothing; a failure keeps the servers.
	p.answer({"10.0.0.1:80", "10.0.0.2:80"});
	p.fail();
	CHECK(p.pool.changes == changes);
	CHECK(p.pool.lines[0].servers == 2);

	// .1 leaves; .2 keeps its index and its state.
	int two = p.index_of("10.0.0.2:80");
	p.pool.servers[two].counters[COUNTER_CONNECTS] = 7;
	p.answer({"10.0.0.2:80", "10.0.0.3:80"});
	CHECK(p.index_of("10.0.0.2:80") == two);
	CHECK(p.pool.servers[two].counters[COUNTER_CONNECTS] == 7);
	int one = p.index_of("10.0.0.1:80");
	REQUIRE(one >= 0);
	CHECK(p.pool.servers[one].slot == UPSTREAM_SLOT_REMOVED);
	CHECK(p.removed == std::vector<uint32_t>{(uint32_t)one});
	CHECK_FALSE(upstream_server_usable(&p.pool, (uint32_t)one, sched_now()));
	CHECK(p.pool.changes == changes + 1);
}

TEST_CASE("upstream: a removed server keeps its index while it is used", "[upstream][dns]")
{
	Pool p;
	p.answer({"10.0.0.1:80"});
	int one = p.index_of("10.0.0.1:80");
	REQUIRE(one > 0);
	balance_conn_begin(&p.pool.balancer, (size_t)one); // a connection on it

	// Answers that fill every index: the used one is never taken.
	for (int round = 0; round < 4; round++) {
		std::vector<std::string> a;
		for (int k = 0; k < UPSTREAM_NAME_MAX_SERVERS; k++)
			a.push_back("10.1." + std::to_string(round) + "." +
				    std::to_string(k) + ":80");
		p.answer(a);
		CHECK(std::string(p.pool.servers[one].name) == "10.0.0.1:80");
		CHECK(p.pool.servers[one].slot == UPSTREAM_SLOT_REMOVED);
	}
	CHECK(p.pool.lines[0].servers == UPSTREAM_NAME_MAX_SERVERS);
	CHECK_FALSE(upstream_server_unused(&p.pool, (uint32_t)one));
	upstream_release(&p.pool, one);
	CHECK(upstream_server_unused(&p.pool, (uint32_t)one));

	// Back in an answer before its index was reused: the same index.
	p.answer({"10.0.0.1:80"});
	int again = p.index_of("10.0.0.1:80");
	CHECK(again == one);
	CHECK(p.pool.servers[again].slot == UPSTREAM_SLOT_LIVE);
	CHECK(p.pool.lines[0].servers == 1);
}

TEST_CASE("upstream: a changed weight is applied to the server that stays",
	  "[upstream][dns]")
{
	Pool p;
	p.answer({"10.0.0.1:80"}, 1);
	int one = p.index_of("10.0.0.1:80");
	p.answer({"10.0.0.1:80"}, 5);
	CHECK(p.index_of("10.0.0.1:80") == one);
	CHECK(p.pool.balancer.servers[one].weight == 5);
}
