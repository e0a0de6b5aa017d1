// Integration tests (issue 4): upstream pools — dead servers, all servers
// down, and every balancing policy, through the real frameproxy.
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

using Pool = std::vector<std::unique_ptr<TestUpstream>>;

Pool make_pool(size_t n)
{
	Pool pool;
	for (size_t i = 0; i < n; i++)
		pool.emplace_back(new TestUpstream(TestUpstream::Mode::Hold));
	return pool;
}

std::vector<size_t> accepted(Pool &pool)
{
	std::vector<size_t> n;
	for (auto &u : pool)
		n.push_back(u->accepted());
	return n;
}

size_t total(const std::vector<size_t> &v)
{
	size_t t = 0;
	for (auto x : v)
		t += x;
	return t;
}

// Which server took the connection opened since `before` was taken: waits
// until exactly one more connection has been accepted in all; -1 on
// timeout.
int wait_one_new(Pool &pool, const std::vector<size_t> &before, milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	while (Clock::now() < deadline) {
		auto now = accepted(pool);
		if (total(now) > total(before)) {
			for (size_t i = 0; i < pool.size(); i++)
				if (now[i] > before[i])
					return (int)i;
		}
		std::this_thread::sleep_for(milliseconds(2));
	}
	return -1;
}

std::string counts_text(const std::vector<size_t> &v)
{
	std::string s;
	for (auto x : v)
		s += (s.empty() ? "" : "/") + std::to_string(x);
	return s;
}

// Opens a connection (from src), waits for the upstream that accepts it;
// the index, or -1.
int connect_and_see(Proxy &proxy, Pool &pool, const std::string &src,
		    Conn *keep = nullptr)
{
	auto before = accepted(pool);
	Conn c = Conn::connect(proxy.port(), src);
	if (!c.valid())
		return -1;
	int i = wait_one_new(pool, before, T5);
	if (keep)
		*keep = std::move(c);
	return i;
}

} // namespace

TEST_CASE("a dead upstream is skipped", "[upstream][retries]")
{
	RefusingPort dead;
	Echo echo;
	std::vector<std::string> extra;
	SECTION("defaults: retried, then ejected") {}
	SECTION("never ejected: every other client retries")
	{
		extra = {"--fail-threshold", "1000"};
	}
	std::vector<std::string> args = {"--server", dead.addr(), "--server",
					 echo.addr(), "--retries", "1"};
	args.insert(args.end(), extra.begin(), extra.end());
	Proxy proxy(args);

	std::vector<std::string> clients;
	for (int i = 0; i < 20; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		clients.push_back(c.local_addr());
		INFO("client " << i);
		REQUIRE(c.roundtrip("hello " + std::to_string(i) + std::string(i * 100, 'x')));
	}
	REQUIRE(proxy.wait_access_count(20, T5));
	for (const auto &r : proxy.records("access")) {
		INFO(r.line);
		CHECK(r.get("upstream") == echo.addr());
		CHECK(r.get("reason") == "client_eof");
	}
	// The dead server was tried (and the log says so).
	CHECK_FALSE(proxy.records("upstream connect failed").empty());
}

TEST_CASE("all upstreams down: the client is closed at once with no_upstream",
	  "[upstream][down]")
{
	RefusingPort dead1, dead2;
	Proxy proxy({"--server", dead1.addr(), "--server", dead2.addr(),
		     "--fail-threshold", "2", "--fail-timeout", "30s"});
	bool saw_no_upstream = false;
	// Connect failures eject the servers; then no_upstream. Bounded: 20
	// clients.
	for (int i = 0; i < 20 && !saw_no_upstream; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		c.send_frame("anyone?");
		auto t0 = Clock::now();
		Io r = c.wait_closed(milliseconds(2000));
		INFO("client " << i << " after " << ms_since(t0) << " ms");
		REQUIRE((r == Io::Eof || r == Io::Reset));
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		INFO(access.line);
		CHECK((access.get("reason") == "no_upstream" ||
		       access.get("reason") == "connect_failed"));
		CHECK(access.get("upstream") == "-");
		saw_no_upstream = access.get("reason") == "no_upstream";
	}
	REQUIRE(saw_no_upstream);

	// From now on every client gets no_upstream at once.
	for (int i = 0; i < 3; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		auto t0 = Clock::now();
		Io r = c.wait_closed(milliseconds(2000));
		CHECK((r == Io::Eof || r == Io::Reset));
		CHECK(ms_since(t0) < 2000);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "no_upstream");
	}
}

TEST_CASE("roundrobin with weights 2,1,1 over 40 connections: 20/10/10",
	  "[upstream][balance]")
{
	Pool pool = make_pool(3);
	Proxy proxy({"--balance", "roundrobin", "--server", pool[0]->addr() + " weight=2",
		     "--server", pool[1]->addr(), "--server", pool[2]->addr()});
	for (int i = 0; i < 40; i++) {
		INFO("connection " << i << ", counts so far " << counts_text(accepted(pool)));
		REQUIRE(connect_and_see(proxy, pool, "") >= 0);
	}
	auto n = accepted(pool);
	INFO("counts " << counts_text(n));
	CHECK(n[0] == 20);
	CHECK(n[1] == 10);
	CHECK(n[2] == 10);
}

TEST_CASE("leastconn spreads held connections evenly and fills the emptiest",
	  "[upstream][balance]")
{
	Pool pool = make_pool(3);
	Proxy proxy({"--balance", "leastconn", "--server", pool[0]->addr(),
		     "--server", pool[1]->addr(), "--server", pool[2]->addr()});
	std::vector<Conn> held(30);
	for (int i = 0; i < 30; i++) {
		INFO("connection " << i);
		REQUIRE(connect_and_see(proxy, pool, "", &held[i]) >= 0);
	}
	auto n = accepted(pool);
	INFO("counts " << counts_text(n));
	CHECK(n[0] == 10);
	CHECK(n[1] == 10);
	CHECK(n[2] == 10);

	// Server 0 ends its connections; their clients see EOF and close.
	pool[0]->close_all();
	size_t closed = 0;
	auto t0 = Clock::now();
	while (closed < n[0] && ms_since(t0) < 5000) {
		for (auto &c : held) {
			if (!c.valid())
				continue;
			Io r = c.wait_closed(milliseconds(1));
			if (r == Io::Eof || r == Io::Reset) {
				c.close();
				closed++;
			}
		}
		std::this_thread::sleep_for(milliseconds(5));
	}
	REQUIRE(closed == n[0]);
	REQUIRE(proxy.wait_access_count(n[0], T5));

	// Now server 0 is the least loaded by 10: the next 10 all go there.
	std::vector<Conn> more(10);
	for (int i = 0; i < 10; i++) {
		INFO("new connection " << i);
		CHECK(connect_and_see(proxy, pool, "", &more[i]) == 0);
	}
	auto m = accepted(pool);
	INFO("counts " << counts_text(m));
	CHECK(m[0] == n[0] + 10);
	CHECK(m[1] == n[1]);
	CHECK(m[2] == n[2]);
}

TEST_CASE("random2 spreads 300 held connections roughly evenly", "[upstream][balance]")
{
	Pool pool = make_pool(3);
	Proxy proxy({"--balance", "random2", "--server", pool[0]->addr(),
		     "--server", pool[1]->addr(), "--server", pool[2]->addr()});
	std::vector<Conn> held(300);
	for (int i = 0; i < 300; i++) {
		INFO("connection " << i);
		REQUIRE(connect_and_see(proxy, pool, "", &held[i]) >= 0);
	}
	auto n = accepted(pool);
	INFO("counts " << counts_text(n));
	// Power of two choices on held connections keeps them within a few of
	// each other; 80..120 is loose.
	for (size_t i = 0; i < 3; i++) {
		CHECK(n[i] >= 80);
		CHECK(n[i] <= 120);
	}
}

TEST_CASE("hash: a client address always lands on the same server; removing a server moves only its clients",
	  "[upstream][balance]")
{
	Pool pool = make_pool(3);
	const int clients = 60;
	std::vector<int> where(clients, -1);
	auto ip = [](int i) { return "127.0.0." + std::to_string(2 + i); };
	{
		Proxy proxy({"--balance", "hash", "--server", pool[0]->addr(),
			     "--server", pool[1]->addr(), "--server", pool[2]->addr()});
		for (int i = 0; i < clients; i++) {
			for (int k = 0; k < 3; k++) {
				int s = connect_and_see(proxy, pool, ip(i));
				INFO("client " << ip(i) << " try " << k);
				REQUIRE(s >= 0);
				if (k == 0)
					where[i] = s;
				CHECK(s == where[i]);
			}
		}
		// The proxy saw the source addresses we bound to.
		LogRecord r;
		CHECK(proxy.wait_record([&](const LogRecord &x) {
			return x.is("msg", "access") &&
			       x.get("client").compare(0, ip(5).size() + 1, ip(5) + ":") == 0;
		}, T5, &r));
	}
	std::vector<int> per(3, 0);
	for (int w : where)
		per[(size_t)w]++;
	INFO("clients per server " << per[0] << "/" << per[1] << "/" << per[2]);
	for (int p : per)
		CHECK(p > 0);

	// Same servers minus the last: only the clients that were on it move.
	Proxy proxy2({"--balance", "hash", "--server", pool[0]->addr(),
		      "--server", pool[1]->addr()});
	int moved = 0;
	for (int i = 0; i < clients; i++) {
		auto before = accepted(pool);
		Conn c = Conn::connect(proxy2.port(), ip(i));
		REQUIRE(c.valid());
		int s = wait_one_new(pool, before, T5);
		INFO("client " << ip(i) << " was on " << where[i]);
		REQUIRE(s >= 0);
		CHECK(s != 2);
		if (where[i] != 2)
			CHECK(s == where[i]);
		else
			moved++;
	}
	CHECK(moved == per[2]);
}
