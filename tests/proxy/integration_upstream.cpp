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

namespace {

// Health flags: checks every 100 ms, 2 in a row to go down or come back.
// (frameproxy has no --health-rise/--health-fall flags; --set reaches the
// keys.)
std::vector<std::string> health_args(std::vector<std::string> more = {})
{
	std::vector<std::string> a = {"--health-interval", "100ms", "--set",
				      "health_rise=2", "--set", "health_fall=2"};
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

std::vector<std::string> concat(std::vector<std::string> a,
				const std::vector<std::string> &b)
{
	a.insert(a.end(), b.begin(), b.end());
	return a;
}

// Records `msg` about upstream `addr`.
std::vector<LogRecord> about(const Proxy &proxy, const std::string &msg,
			     const std::string &addr)
{
	std::vector<LogRecord> out;
	for (auto &r : proxy.records(msg))
		if (r.is("upstream", addr))
			out.push_back(r);
	return out;
}

// n clients one after another, each a roundtrip then close; returns the
// upstream each one's access line names ("" when a client failed).
std::vector<std::string> serve_clients(Proxy &proxy, int n, const std::string &tag)
{
	std::vector<std::string> where;
	for (int i = 0; i < n; i++) {
		INFO(tag << " client " << i << "\n" << proxy.log_tail());
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		CHECK(c.roundtrip(tag + " " + std::to_string(i)));
		c.close();
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		INFO(access.line);
		CHECK(access.get("reason") == "client_eof");
		where.push_back(access.get("upstream"));
	}
	return where;
}

size_t count_of(const std::vector<std::string> &v, const std::string &x)
{
	return (size_t)std::count(v.begin(), v.end(), x);
}

// The "upstream out" lines once there are n of them (or what there is at
// the timeout).
std::vector<LogRecord> wait_outs(Proxy &proxy, size_t n, milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	for (;;) {
		auto outs = proxy.records("upstream out");
		if (outs.size() >= n || Clock::now() >= deadline)
			return outs;
		std::this_thread::sleep_for(milliseconds(10));
	}
}

} // namespace

TEST_CASE("active health: a server with nothing listening goes down after fall checks and comes back after rise",
	  "[upstream][health]")
{
	// The port stays bound (refusing) until frameecho takes it over.
	std::unique_ptr<RefusingPort> hold(new RefusingPort);
	const uint16_t port = hold->port();
	const std::string dead = hold->addr();
	Echo live;
	// --retries 0 and passive ejection out of the way: a client sent to the
	// dead server would fail, so every success below is the checks' doing.
	Proxy proxy(concat({"--server", dead, "--server", live.addr(), "--retries", "0",
			    "--fail-threshold", "1000"},
			   health_args()));

	LogRecord down;
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream down") && r.is("upstream", dead);
	}, T5, &down));
	INFO(down.line);
	CHECK(down.num("checks") == 2);
	CHECK(down.get("error") == "Connection refused");

	// Out of the pool: every client goes to the live server, none is even
	// tried on the dead one.
	auto where = serve_clients(proxy, 10, "while down");
	CHECK(count_of(where, live.addr()) == 10);
	CHECK(proxy.records("upstream connect failed").empty());

	// Something listens there now: rise (2) passing checks bring it back.
	hold.reset();
	Echo revived({}, "127.0.0.1:" + std::to_string(port));
	REQUIRE(revived.addr() == dead);
	LogRecord up;
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream up") && r.is("upstream", dead);
	}, T5, &up));
	INFO(up.line);
	CHECK(up.num("checks") == 2);
	CHECK(log_ms(up) - log_ms(down) >= 100);

	// In the pool again: round robin shares the clients.
	where = serve_clients(proxy, 10, "after up");
	INFO("to the revived server " << count_of(where, dead) << ", to the other "
	     << count_of(where, live.addr()));
	CHECK(count_of(where, dead) >= 4);
	CHECK(count_of(where, live.addr()) >= 4);
	CHECK(count_of(where, dead) + count_of(where, live.addr()) == 10);

	// The live server was never taken out; the dead one went down once.
	CHECK(about(proxy, "upstream down", live.addr()).empty());
	CHECK(about(proxy, "upstream down", dead).size() == 1);
	CHECK(about(proxy, "upstream up", dead).size() == 1);
}

TEST_CASE("active health with --check-frame: a server that accepts but never answers is down, an echo stays up",
	  "[upstream][health]")
{
	TestUpstream silent(TestUpstream::Mode::Hold); // reads, never replies
	Echo echo;
	Proxy proxy(concat({"--server", silent.addr(), "--server", echo.addr(),
			    "--retries", "0", "--fail-threshold", "1000",
			    "--connect-timeout", "500ms", "--check-frame", "70696e67"},
			   health_args()));

	LogRecord down;
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream down") && r.is("upstream", silent.addr());
	}, T5, &down));
	INFO(down.line);
	CHECK(down.num("checks") == 2);
	// It accepted: the check timed out waiting for the answer.
	CHECK(down.get("error") == "Connection timed out");

	// What the checks sent it: the check frame, "ping", and nothing else.
	REQUIRE(silent.accepted() >= 2);
	for (size_t i = 0; i < silent.accepted(); i++) {
		INFO("check connection " << i);
		CHECK(silent.wait_conn(i, T5, [](const TestUpstream::ConnInfo &c) {
			return c.data.size() >= 8 || c.ended();
		}));
		CHECK(silent.conn(i).data == frame("ping"));
	}

	// A few more check rounds: the echo answers every one and stays up;
	// clients only go there.
	std::this_thread::sleep_for(milliseconds(500));
	const size_t checks_so_far = silent.accepted();
	auto where = serve_clients(proxy, 6, "check-frame");
	CHECK(count_of(where, echo.addr()) == 6);
	CHECK(about(proxy, "upstream down", echo.addr()).empty());
	CHECK(about(proxy, "upstream up", silent.addr()).empty());
	// The silent server is still being checked (and got no client).
	CHECK(silent.wait_accepted(checks_so_far + 1, T5));
	for (size_t i = 0; i < silent.accepted(); i++) {
		auto data = silent.conn(i).data;
		CHECK((data.empty() || data == frame("ping")));
	}
}

TEST_CASE("passive ejection: for_ms doubles on each ejection in a row",
	  "[upstream][ejection]")
{
	RefusingPort dead;
	Echo live;
	Proxy proxy({"--server", dead.addr(), "--server", live.addr(), "--retries", "1",
		     "--fail-threshold", "1", "--fail-timeout", "200ms"});

	// Clients every ~20 ms: each time the dead server is back in rotation,
	// the next client that picks it fails over (retries 1) and ejects it
	// again. Four ejections take 200+400+800 ms of out time.
	auto t0 = Clock::now();
	std::vector<std::string> clients;
	while (proxy.records("upstream out").size() < 4 && ms_since(t0) < 15000) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		clients.push_back(c.local_addr());
		INFO("client " << clients.size());
		REQUIRE(c.roundtrip("client " + std::to_string(clients.size())));
		c.close();
		std::this_thread::sleep_for(milliseconds(20));
	}
	auto outs = proxy.records("upstream out");
	INFO(proxy.log_tail(40));
	REQUIRE(outs.size() >= 4);
	for (size_t i = 0; i < 4; i++) {
		INFO(outs[i].line);
		CHECK(outs[i].get("upstream") == dead.addr());
		CHECK(outs[i].get("reason") == "connect_failures");
		CHECK(outs[i].num("ejections") == i + 1);
		CHECK(outs[i].num("for_ms") == 200ull << i);
		// It stayed out for the whole time (ms stamps; 5 ms of slack).
		if (i > 0)
			CHECK(log_ms(outs[i]) - log_ms(outs[i - 1]) >=
			      (long long)outs[i - 1].num("for_ms") - 5);
	}
	// Every client was served, by the live server.
	REQUIRE(proxy.wait_access_count(clients.size(), T5));
	for (const auto &r : proxy.records("access")) {
		INFO(r.line);
		CHECK(r.get("upstream") == live.addr());
		CHECK(r.get("reason") == "client_eof");
	}
}

TEST_CASE("passive ejection: a burst of clients failing on the dead server doubles for_ms once",
	  "[upstream][ejection]")
{
	// 500 ms out: the whole burst is over well within it, even on a busy
	// machine.
	RefusingPort dead;
	Echo live;
	Proxy proxy({"--server", dead.addr(), "--server", live.addr(), "--retries", "1",
		     "--fail-threshold", "1", "--fail-timeout", "500ms"});

	const int burst = 12;
	for (size_t round = 0; round < 2; round++) {
		// The previous ejection (if any) has run out: the dead server is
		// in rotation again. A burst at once: the acceptor takes them
		// together and their connects to it run side by side.
		if (round > 0) {
			auto prev = proxy.records("upstream out");
			REQUIRE(prev.size() == round);
			std::this_thread::sleep_for(milliseconds(prev.back().num("for_ms") + 100));
		}
		std::vector<Conn> conns(burst);
		for (auto &c : conns) {
			c = Conn::connect(proxy.port());
			REQUIRE(c.valid());
		}
		for (int i = 0; i < burst; i++)
			REQUIRE(conns[i].send_frame("burst " + std::to_string(i)) == Io::Ok);
		for (int i = 0; i < burst; i++) {
			std::string back;
			INFO("round " << round << " client " << i << "\n" << proxy.log_tail());
			REQUIRE(conns[i].read_frame(back, T5) == Io::Ok);
			CHECK(back == "burst " + std::to_string(i));
		}
		// Exactly one more ejection, one doubling further.
		auto outs = wait_outs(proxy, round + 1, T5);
		std::this_thread::sleep_for(milliseconds(50)); // any stragglers
		outs = proxy.records("upstream out");
		INFO("round " << round << "\n" << proxy.log_tail(40));
		REQUIRE(outs.size() == round + 1);
		CHECK(outs.back().num("ejections") == round + 1);
		CHECK(outs.back().num("for_ms") == 500ull << round);
	}
}

TEST_CASE("passive ejection: connects still in flight when the server goes out do not eject it again",
	  "[upstream][ejection]")
{
	// Connects to the black hole hang for the whole connect timeout (1.5 s),
	// longer than the out time (200 ms): clients that picked it over half a
	// second all time out after the first one ejected it, most after its
	// out time has passed. They are the same outage: one ejection.
	BlackHole hole;
	Echo live;
	Proxy proxy({"--server", hole.addr(), "--server", live.addr(), "--retries", "1",
		     "--fail-threshold", "1", "--fail-timeout", "200ms",
		     "--connect-timeout", "1500ms"});

	const int n = 10;
	std::vector<Conn> conns(n);
	auto t0 = Clock::now();
	for (int i = 0; i < n; i++) {
		conns[i] = Conn::connect(proxy.port());
		REQUIRE(conns[i].valid());
		REQUIRE(conns[i].send_frame("late " + std::to_string(i)) == Io::Ok);
		std::this_thread::sleep_for(milliseconds(50));
	}
	// (All of them started before the first timeout could eject it.)
	INFO("clients started over " << ms_since(t0) << " ms");
	for (int i = 0; i < n; i++) {
		std::string back;
		INFO("client " << i << "\n" << proxy.log_tail());
		REQUIRE(conns[i].read_frame(back, T5) == Io::Ok);
		CHECK(back == "late " + std::to_string(i));
	}
	auto outs = proxy.records("upstream out");
	INFO(proxy.log_tail(40));
	// Several connects to it were in flight at once, and timed out.
	size_t timed_out = 0;
	for (const auto &r : about(proxy, "upstream connect failed", hole.addr()))
		timed_out += r.is("error", "Connection timed out");
	CHECK(timed_out >= 3);
	REQUIRE(outs.size() == 1);
	CHECK(outs[0].get("upstream") == hole.addr());
	CHECK(outs[0].num("for_ms") == 200);
	CHECK(outs[0].num("ejections") == 1);
	for (auto &c : conns) {
		const std::string client = c.local_addr();
		c.close();
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("upstream") == live.addr());
	}
}
