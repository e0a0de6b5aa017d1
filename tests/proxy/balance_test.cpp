// balance: upstream selection policies.
#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <vector>

#include "proxy/balance.h"

namespace {

upstream_spec spec(const std::string &addr, unsigned weight)
{
	upstream_spec s{};
	REQUIRE(netaddr_parse(&s.addr, addr.c_str(), NETADDR_NUMERIC) == 0);
	s.weight = weight;
	return s;
}

std::string spec_addr(const upstream_spec &s)
{
	char buf[NETADDR_STRLEN];
	return netaddr_format((const sockaddr *)&s.addr.ss, buf, sizeof(buf));
}

struct Pool {
	balance_state b;
	explicit Pool(balance_kind kind, std::vector<unsigned> weights,
		      uint64_t seed = 42)
	{
		std::vector<upstream_spec> specs;
		for (size_t i = 0; i < weights.size(); i++)
			specs.push_back(spec("10.0.0." + std::to_string(i + 1) + ":9000",
					     weights[i]));
		REQUIRE(balance_init(&b, kind, specs.data(), specs.size(),
				     seed) == 0);
	}
	~Pool() { balance_free(&b); }
	int pick(const sockaddr *client = nullptr,
		 const balance_tried *tried = nullptr)
	{
		return balance_pick(&b, client, tried);
	}
};

sockaddr_in client4(uint32_t n)
{
	sockaddr_in sin;
	std::memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x0a000000u + n * 7919u); // spread a bit
	sin.sin_port = htons((uint16_t)(1024 + n % 5000));
	return sin;
}

const balance_kind all_kinds[] = { BALANCE_ROUNDROBIN, BALANCE_LEASTCONN,
				   BALANCE_RANDOM2, BALANCE_HASH };

} // namespace

TEST_CASE("roundrobin: nginx's smooth sequence for 5,1,1", "[balance]")
{
	Pool p(BALANCE_ROUNDROBIN, { 5, 1, 1 });
	std::string seq;
	for (int i = 0; i < 14; i++)
		seq += (char)('a' + p.pick());
	CHECK(seq == "aabacaaaabacaa");
}

TEST_CASE("roundrobin: exact proportions over whole cycles", "[balance]")
{
	Pool p(BALANCE_ROUNDROBIN, { 3, 2, 1, 4 });
	int counts[4] = { 0, 0, 0, 0 };
	for (int i = 0; i < 10000; i++)
		counts[p.pick()]++;
	CHECK(counts[0] == 3000);
	CHECK(counts[1] == 2000);
	CHECK(counts[2] == 1000);
	CHECK(counts[3] == 4000);

	// Equal weights: plain rotation.
	Pool q(BALANCE_ROUNDROBIN, { 1, 1, 1 });
	std::string seq;
	for (int i = 0; i < 6; i++)
		seq += (char)('a' + q.pick());
	CHECK(seq == "abcabc");
}

TEST_CASE("roundrobin: a down server's share goes to the others", "[balance]")
{
	Pool p(BALANCE_ROUNDROBIN, { 2, 1, 1 });
	balance_set_up(&p.b, 0, false);
	int counts[3] = { 0, 0, 0 };
	for (int i = 0; i < 100; i++)
		counts[p.pick()]++;
	CHECK(counts[0] == 0);
	CHECK(counts[1] == 50);
	CHECK(counts[2] == 50);
	balance_set_up(&p.b, 0, true);
	for (int i = 0; i < 400; i++)
		counts[p.pick()]++;
	CHECK(counts[0] == 200);
}

TEST_CASE("leastconn: least active per weight, ties rotate", "[balance]")
{
	Pool p(BALANCE_LEASTCONN, { 1, 1, 1 });
	std::string seq;
	for (int i = 0; i < 6; i++)
		seq += (char)('a' + p.pick());
	CHECK(seq == "abcabc"); // all idle: round-robin

	for (int i = 0; i < 5; i++)
		balance_conn_begin(&p.b, 0);
	for (int i = 0; i < 2; i++)
		balance_conn_begin(&p.b, 1);
	for (int i = 0; i < 7; i++)
		balance_conn_begin(&p.b, 2);
	CHECK(p.pick() == 1);
	CHECK(p.pick() == 1); // pick alone does not count a connection
	balance_conn_begin(&p.b, 1);
	balance_conn_begin(&p.b, 1);
	balance_conn_begin(&p.b, 1); // 5,5,7: tie between 0 and 1
	int a = p.pick(), b = p.pick();
	CHECK(a != b);
	CHECK((a == 0 || a == 1));
	CHECK((b == 0 || b == 1));
	balance_conn_end(&p.b, 2);
	balance_conn_end(&p.b, 2);
	balance_conn_end(&p.b, 2); // 5,5,4
	CHECK(p.pick() == 2);
}

TEST_CASE("leastconn: weight scales capacity", "[balance]")
{
	Pool p(BALANCE_LEASTCONN, { 1, 4 });
	// Simulate long-lived connections: each pick becomes active.
	int counts[2] = { 0, 0 };
	for (int i = 0; i < 500; i++) {
		int s = p.pick();
		counts[s]++;
		balance_conn_begin(&p.b, (size_t)s);
	}
	CHECK(counts[0] == 100);
	CHECK(counts[1] == 400);
}

TEST_CASE("random2: even spread, and avoids the loaded server", "[balance]")
{
	Pool p(BALANCE_RANDOM2, { 1, 1, 1, 1 }, 7);
	int counts[4] = { 0, 0, 0, 0 };
	for (int i = 0; i < 40000; i++)
		counts[p.pick()]++;
	for (int c : counts) {
		CHECK(c > 9000);
		CHECK(c < 11000);
	}

	Pool q(BALANCE_RANDOM2, { 1, 1, 1, 1 }, 7);
	for (int i = 0; i < 1000; i++)
		balance_conn_begin(&q.b, 2);
	int loaded = 0, others[4] = { 0, 0, 0, 0 };
	for (int i = 0; i < 30000; i++) {
		int s = q.pick();
		others[s]++;
		loaded += s == 2;
	}
	CHECK(loaded == 0); // always compared against an idle one, always loses
	CHECK(others[0] > 9000);
	CHECK(others[1] > 9000);
	CHECK(others[3] > 9000);
}

TEST_CASE("random2: with live load it keeps servers balanced", "[balance]")
{
	Pool p(BALANCE_RANDOM2, { 1, 1, 1, 1, 1 }, 99);
	// Connections arrive and each lives for 50 picks.
	std::vector<int> live;
	for (int i = 0; i < 5000; i++) {
		int s = p.pick();
		balance_conn_begin(&p.b, (size_t)s);
		live.push_back(s);
		if (live.size() > 50) {
			balance_conn_end(&p.b, (size_t)live.front());
			live.erase(live.begin());
		}
		unsigned lo = ~0u, hi = 0;
		for (size_t k = 0; k < 5; k++) {
			lo = std::min(lo, p.b.servers[k].active);
			hi = std::max(hi, p.b.servers[k].active);
		}
		// Power of two choices keeps the spread tight: simulated,
		// its worst gap here is 7..11, a uniform random pick's 17..21.
		REQUIRE(hi - lo <= 13);
	}
}

TEST_CASE("random2: same seed, same choices; weights matter", "[balance]")
{
	Pool a(BALANCE_RANDOM2, { 1, 1, 1 }, 1234), b(BALANCE_RANDOM2, { 1, 1, 1 }, 1234);
	Pool c(BALANCE_RANDOM2, { 1, 1, 1 }, 4321);
	std::string sa, sb, sc;
	for (int i = 0; i < 64; i++) {
		sa += (char)('a' + a.pick());
		sb += (char)('a' + b.pick());
		sc += (char)('a' + c.pick());
	}
	CHECK(sa == sb);
	CHECK(sa != sc);

	Pool w(BALANCE_RANDOM2, { 3, 1 }, 5);
	int counts[2] = { 0, 0 };
	for (int i = 0; i < 20000; i++) {
		int s = w.pick();
		counts[s]++;
		balance_conn_begin(&w.b, (size_t)s);
	}
	// Load per weight stays level: about 3:1.
	double ratio = (double)counts[0] / counts[1];
	CHECK(ratio > 2.7);
	CHECK(ratio < 3.3);
}

TEST_CASE("hash: a client sticks to its server", "[balance]")
{
	Pool p(BALANCE_HASH, { 1, 1, 1, 1 });
	for (uint32_t n = 0; n < 200; n++) {
		sockaddr_in c = client4(n);
		int first = p.pick((sockaddr *)&c);
		for (int k = 0; k < 3; k++) {
			c.sin_port = htons((uint16_t)(2000 + k)); // new connection
			REQUIRE(p.pick((sockaddr *)&c) == first);
		}
	}
	// IPv4-mapped IPv6 is the same client.
	sockaddr_in c = client4(17);
	sockaddr_in6 m;
	std::memset(&m, 0, sizeof(m));
	m.sin6_family = AF_INET6;
	m.sin6_addr.s6_addr[10] = 0xff;
	m.sin6_addr.s6_addr[11] = 0xff;
	std::memcpy(&m.sin6_addr.s6_addr[12], &c.sin_addr, 4);
	CHECK(p.pick((sockaddr *)&m) == p.pick((sockaddr *)&c));
}

TEST_CASE("hash: even spread over 4 servers within 25%", "[balance]")
{
	Pool p(BALANCE_HASH, { 1, 1, 1, 1 });
	int counts[4] = { 0, 0, 0, 0 };
	for (uint32_t n = 0; n < 10000; n++) {
		sockaddr_in c = client4(n);
		counts[p.pick((sockaddr *)&c)]++;
	}
	for (int c : counts) {
		CHECK(c >= 1875);
		CHECK(c <= 3125);
	}

	Pool w(BALANCE_HASH, { 2, 1, 1 });
	int wc[3] = { 0, 0, 0 };
	for (uint32_t n = 0; n < 10000; n++) {
		sockaddr_in c = client4(n);
		wc[w.pick((sockaddr *)&c)]++;
	}
	CHECK(wc[0] > 4500); // 2/4 of the weight
	CHECK(wc[0] < 5500);
	CHECK(wc[1] > 2000);
	CHECK(wc[2] > 2000);
}

TEST_CASE("hash: removing one of 5 moves about 1/5, nobody else", "[balance]")
{
	Pool p(BALANCE_HASH, { 1, 1, 1, 1, 1 });
	const uint32_t N = 10000;
	std::vector<int> before(N);
	for (uint32_t n = 0; n < N; n++) {
		sockaddr_in c = client4(n);
		before[n] = p.pick((sockaddr *)&c);
	}
	balance_set_up(&p.b, 3, false);
	int moved = 0;
	for (uint32_t n = 0; n < N; n++) {
		sockaddr_in c = client4(n);
		int now = p.pick((sockaddr *)&c);
		REQUIRE(now != 3);
		if (now != before[n]) {
			moved++;
			REQUIRE(before[n] == 3); // only the removed server's clients
		}
	}
	double frac = (double)moved / N;
	CHECK(frac > 0.10);
	CHECK(frac < 0.30);

	// It comes back: everyone returns to where they were.
	balance_set_up(&p.b, 3, true);
	for (uint32_t n = 0; n < N; n++) {
		sockaddr_in c = client4(n);
		REQUIRE(p.pick((sockaddr *)&c) == before[n]);
	}
}

TEST_CASE("hash: server ids, not positions, decide", "[balance]")
{
	// The same servers listed in another order keep their clients.
	std::vector<upstream_spec> s1 = { spec("10.0.0.1:1", 1), spec("10.0.0.2:1", 1),
					  spec("10.0.0.3:1", 1) };
	std::vector<upstream_spec> s2 = { spec("10.0.0.3:1", 1), spec("10.0.0.1:1", 1),
					  spec("10.0.0.2:1", 1) };
	balance_state b1, b2;
	REQUIRE(balance_init(&b1, BALANCE_HASH, s1.data(), 3, 0) == 0);
	REQUIRE(balance_init(&b2, BALANCE_HASH, s2.data(), 3, 0) == 0);
	for (uint32_t n = 0; n < 500; n++) {
		sockaddr_in c = client4(n);
		int i1 = balance_pick(&b1, (sockaddr *)&c, nullptr);
		int i2 = balance_pick(&b2, (sockaddr *)&c, nullptr);
		REQUIRE(spec_addr(s1[(size_t)i1]) == spec_addr(s2[(size_t)i2]));
	}
	balance_free(&b1);
	balance_free(&b2);
}

TEST_CASE("every policy: down servers are never picked, all down is -1", "[balance]")
{
	for (balance_kind k : all_kinds) {
		INFO("kind: " << balance_kind_name(k));
		Pool p(k, { 1, 2, 1, 3 });
		balance_set_up(&p.b, 1, false);
		balance_set_up(&p.b, 3, false);
		CHECK(balance_up_count(&p.b) == 2);
		for (uint32_t n = 0; n < 500; n++) {
			sockaddr_in c = client4(n);
			int s = p.pick((sockaddr *)&c);
			REQUIRE((s == 0 || s == 2));
		}
		balance_set_up(&p.b, 0, false);
		balance_set_up(&p.b, 2, false);
		sockaddr_in c = client4(1);
		CHECK(p.pick((sockaddr *)&c) == -1);
		CHECK(p.pick(nullptr) == -1);
		balance_set_up(&p.b, 2, true);
		CHECK(p.pick((sockaddr *)&c) == 2);
	}
}

TEST_CASE("every policy: a retry skips what was tried", "[balance]")
{
	for (balance_kind k : all_kinds) {
		INFO("kind: " << balance_kind_name(k));
		Pool p(k, { 1, 1, 1, 1 });
		for (uint32_t n = 0; n < 100; n++) {
			sockaddr_in c = client4(n);
			balance_tried tried;
			balance_tried_clear(&tried);
			std::vector<bool> seen(4, false);
			for (int attempt = 0; attempt < 4; attempt++) {
				int s = p.pick((sockaddr *)&c, &tried);
				REQUIRE(s >= 0);
				REQUIRE_FALSE(seen[(size_t)s]);
				seen[(size_t)s] = true;
				balance_tried_add(&tried, (size_t)s);
			}
			REQUIRE(p.pick((sockaddr *)&c, &tried) == -1);
		}
	}
}

TEST_CASE("hash: the retry order is stable per client", "[balance]")
{
	Pool p(BALANCE_HASH, { 1, 1, 1, 1, 1 });
	sockaddr_in c = client4(5);
	balance_tried t;
	balance_tried_clear(&t);
	int first = p.pick((sockaddr *)&c, &t);
	balance_tried_add(&t, (size_t)first);
	int second = p.pick((sockaddr *)&c, &t);
	// When the first choice is down, the client goes to its second choice.
	balance_set_up(&p.b, (size_t)first, false);
	CHECK(p.pick((sockaddr *)&c) == second);
}

TEST_CASE("balance: init validation, names, tried set bounds", "[balance]")
{
	balance_state b;
	upstream_spec bad_w[] = { { {}, 0, 0 } };
	upstream_spec big_w[] = { { {}, 257, 0 } };
	upstream_spec ok[] = { { {}, 256, 0 } };
	CHECK(balance_init(&b, BALANCE_ROUNDROBIN, bad_w, 1, 0) == -EINVAL);
	CHECK(balance_init(&b, BALANCE_ROUNDROBIN, big_w, 1, 0) == -EINVAL);
	CHECK(balance_init(&b, BALANCE_ROUNDROBIN, ok, 0, 0) == -EINVAL);
	std::vector<upstream_spec> many(BALANCE_MAX_SERVERS + 1, { {}, 1, 0 });
	CHECK(balance_init(&b, BALANCE_ROUNDROBIN, many.data(), many.size(), 0) == -EINVAL);
	REQUIRE(balance_init(&b, BALANCE_ROUNDROBIN, many.data(), BALANCE_MAX_SERVERS, 0) == 0);
	balance_tried t;
	balance_tried_clear(&t);
	for (size_t i = 0; i < BALANCE_MAX_SERVERS - 1; i++)
		balance_tried_add(&t, i);
	CHECK(balance_pick(&b, nullptr, &t) == BALANCE_MAX_SERVERS - 1);
	CHECK_FALSE(balance_tried_has(&t, BALANCE_MAX_SERVERS - 1));
	CHECK_FALSE(balance_tried_has(&t, 100000)); // out of range is "not tried"
	balance_free(&b);

	balance_kind k;
	CHECK(balance_kind_parse("leastconn", &k) == 0);
	CHECK(k == BALANCE_LEASTCONN);
	CHECK(balance_kind_parse("random", &k) == -EINVAL);
	CHECK(std::string(balance_kind_name(BALANCE_RANDOM2)) == "random2");
}

TEST_CASE("balance_ln matches libm", "[balance]")
{
	const double xs[] = { 1e-16, 1e-9, 0.001, 0.1, 0.5, 0.7071, 0.70711,
			      0.9, 0.999999, 1.0, 1.5, 2.0, 1e6 };
	for (double x : xs) {
		INFO("x=" << x);
		CHECK(balance_ln(x) == Approx(std::log(x)).margin(1e-12));
	}
}

TEST_CASE("balance: pick_key hashes any bytes, skipping tried servers", "[balance]")
{
	Pool p(BALANCE_HASH, {1, 1, 1, 1});
	std::vector<int> seen(4, 0);
	for (uint32_t k = 0; k < 2000; k++) {
		std::string key = "key-" + std::to_string(k) + std::string(20, 'x');
		int s = balance_pick_key(&p.b, key.data(), key.size(), nullptr);
		REQUIRE(s >= 0);
		CHECK(balance_pick_key(&p.b, key.data(), key.size(), nullptr) == s);
		seen[(size_t)s]++;
		balance_tried tried;
		balance_tried_clear(&tried);
		balance_tried_add(&tried, (size_t)s);
		int other = balance_pick_key(&p.b, key.data(), key.size(), &tried);
		CHECK(other >= 0);
		CHECK(other != s);
	}
	for (int n : seen)
		CHECK(n > 350);
}

TEST_CASE("balance: active is the count leastconn compares", "[balance]")
{
	Pool p(BALANCE_LEASTCONN, {1, 1});
	unsigned *a0 = balance_active(&p.b, 0);
	REQUIRE(a0 != nullptr);
	CHECK(balance_active(&p.b, 2) == nullptr);
	*a0 = 5;
	for (int i = 0; i < 4; i++)
		CHECK(p.pick() == 1);
	*a0 = 0;
	*balance_active(&p.b, 1) = 3;
	CHECK(p.pick() == 0);
}

namespace {

// Servers 10.0.0.i:9000 with the given weights and maxconns.
struct LimitedPool {
	balance_state b;
	explicit LimitedPool(balance_kind kind, std::vector<unsigned> maxconn)
	{
		std::vector<upstream_spec> specs;
		for (size_t i = 0; i < maxconn.size(); i++) {
			specs.push_back(spec("10.0.0." + std::to_string(i + 1) + ":9000", 1));
			specs.back().maxconn = maxconn[i];
		}
		REQUIRE(balance_init(&b, kind, specs.data(), specs.size(), 7) == 0);
	}
	~LimitedPool() { balance_free(&b); }
	// Picks and counts, as upstream_connect does.
	int take(const sockaddr *client = nullptr)
	{
		int i = balance_pick(&b, client, nullptr);
		if (i >= 0)
			balance_conn_begin(&b, (size_t)i);
		return i;
	}
};

} // namespace

TEST_CASE("maxconn: no policy gives a server more than its maxconn", "[balance][maxconn]")
{
	for (balance_kind kind : all_kinds) {
		INFO(balance_kind_name(kind));
		LimitedPool p(kind, {2, 3, 0});
		std::vector<unsigned> taken(3, 0);
		for (int i = 0; i < 200; i++) {
			sockaddr_in c = client4((uint32_t)i);
			int idx = p.take((const sockaddr *)&c);
			if (idx >= 0)
				taken[(size_t)idx]++;
			// Free one now and then, as connections end.
			if (i % 3 == 2 && taken[0] && *balance_active(&p.b, 0)) {
				balance_conn_end(&p.b, 0);
				taken[0]--;
			}
			CHECK(*balance_active(&p.b, 0) <= 2);
			CHECK(*balance_active(&p.b, 1) <= 3);
		}
	}
}

TEST_CASE("maxconn: full servers are passed over, all full is BALANCE_FULL", "[balance][maxconn]")
{
	for (balance_kind kind : {BALANCE_ROUNDROBIN, BALANCE_LEASTCONN, BALANCE_RANDOM2}) {
		INFO(balance_kind_name(kind));
		LimitedPool p(kind, {1, 2});
		std::vector<int> got;
		for (int i = 0; i < 3; i++)
			got.push_back(p.take());
		std::sort(got.begin(), got.end());
		CHECK(got == std::vector<int>({0, 1, 1}));
		CHECK(p.take() == BALANCE_FULL);
		balance_conn_end(&p.b, 1);
		CHECK(p.take() == 1);
		// Down is not full: with the only free one down, nothing.
		balance_set_up(&p.b, 0, false);
		balance_set_up(&p.b, 1, false);
		CHECK(p.take() == BALANCE_NONE);
	}
}

TEST_CASE("maxconn: hash keeps a client on its server and says FULL when it is", "[balance][maxconn]")
{
	LimitedPool p(BALANCE_HASH, {1, 1, 1});
	sockaddr_in c = client4(5);
	int first = p.take((const sockaddr *)&c);
	REQUIRE(first >= 0);
	// The same client again: its server is full, and it is not moved.
	CHECK(p.take((const sockaddr *)&c) == BALANCE_FULL);
	CHECK(balance_pick_key(&p.b, "k", 1, nullptr) >= BALANCE_FULL);
	balance_conn_end(&p.b, (size_t)first);
	CHECK(p.take((const sockaddr *)&c) == first);
}
