// Integration tests: what SIGTERM promises a connection (relay_drain). A
// draining relay starts no new request, lets the replies it owes come back
// (frames upstream->client >= frames client->upstream), then closes at a
// frame boundary with reason=drain; one whose replies never come is closed
// at --drain-timeout with reason=shutdown. Everything is observed from the
// outside (client bytes, access lines, exit status), so the tests hold
// whether the PID the harness started serves itself or supervises a shard.
#include "tests/proxy/harness.hpp"
#include "tests/proxy/pipeline.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

// Reads `want.size()` frames, expecting exactly `want[i]`.
void expect_frames(Conn &c, const std::vector<std::string> &want)
{
	for (size_t i = 0; i < want.size(); i++) {
		std::string got;
		Io r = c.read_frame(got, T5);
		INFO("frame " << i << " of " << want.size());
		REQUIRE(r == Io::Ok);
		REQUIRE(got.size() == want[i].size());
		REQUIRE(got == want[i]);
	}
}

// A connection the proxy is known to relay: one round trip made it through.
// Connecting alone proves nothing: the port may be held by a supervisor
// whose shard has not accepted yet, and a SIGTERM then would never let it.
Conn relayed_conn(Proxy &proxy)
{
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	REQUIRE(c.roundtrip("hello"));
	return c;
}

// The access line of `client`, after the proxy has exited.
LogRecord access_of(Proxy &proxy, const std::string &client)
{
	LogRecord access;
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_access(client, T5, &access));
	return access;
}

// Waits for the proxy to exit after SIGTERM at t0; returns the milliseconds
// it took.
long long expect_exit(Proxy &proxy, Clock::time_point t0, milliseconds within)
{
	bool exited = proxy.proc().wait_exit(within);
	long long took = ms_since(t0);
	INFO("SIGTERM " << took << " ms ago\n" << proxy.log_tail());
	REQUIRE(exited);
	CHECK(proxy.proc().exit_code() == 0);
	return took;
}

} // namespace

TEST_CASE("drain: a reply still on its way reaches the client, then EOF",
	  "[drain]")
{
	Echo echo({"--delay", "500ms"});
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
		     "--idle-timeout", "30s"});
	Conn c = relayed_conn(proxy);
	const std::string client = c.local_addr();
	const std::string request = random_bytes(3000, 41);

	REQUIRE(c.send_frame(request) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);

	expect_frames(c, {request});
	auto replied = Clock::now();
	std::string extra;
	CHECK(c.wait_closed(T5, &extra) == Io::Eof);
	CHECK(extra.empty());
	// Closed as the reply went out, not at some later timeout.
	CHECK(ms_since(replied) < 1000);

	long long took = expect_exit(proxy, t0, milliseconds(5000));
	CHECK(took < 3000); // drain_timeout is 10 s
	LogRecord access = access_of(proxy, client);
	CHECK(access.get("reason") == "drain");
	CHECK(access.num("client_frames") == 2);
	CHECK(access.num("upstream_frames") == 2);
}

TEST_CASE("drain: every client with pipelined requests gets all its replies, then EOF",
	  "[drain]")
{
	Echo echo({"--delay", "600ms"});
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
		     "--idle-timeout", "30s"});
	const int clients = 6, in_flight = 8;
	std::vector<Conn> conns;
	std::vector<std::string> names;
	std::vector<std::vector<std::string>> sent(clients);

	// Connected and relayed, all at once (each round trip takes the
	// echo's delay).
	for (int i = 0; i < clients; i++) {
		conns.push_back(Conn::connect(proxy.port()));
		REQUIRE(conns.back().valid());
		names.push_back(conns.back().local_addr());
		REQUIRE(conns.back().send_frame("hello") == Io::Ok);
	}
	for (auto &c : conns)
		expect_frames(c, {"hello"});
	for (int i = 0; i < clients; i++) {
		std::string burst;
		for (int k = 0; k < in_flight; k++) {
			// Includes an empty frame, and for one client a last
			// frame larger than the proxy's 64 KiB buffer (streamed).
			size_t size = k == 2 ? 0 : (size_t)(i * 131 + k * 977) % 4000;
			if (i == clients - 1 && k == in_flight - 1)
				size = 100000;
			sent[i].push_back(random_bytes(size, (uint32_t)(i * 100 + k)));
			burst += frame(sent[i].back());
		}
		REQUIRE(conns[i].send_all(burst) == Io::Ok);
	}
	// Every request is upstream by now; no reply is back yet.
	std::this_thread::sleep_for(milliseconds(150));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);

	for (int i = 0; i < clients; i++) {
		INFO("client " << i);
		expect_frames(conns[i], sent[i]);
		std::string extra;
		CHECK(conns[i].wait_closed(T5, &extra) == Io::Eof);
		CHECK(extra.empty());
	}
	long long took = expect_exit(proxy, t0, milliseconds(8000));
	CHECK(took < 5000);
	for (int i = 0; i < clients; i++) {
		LogRecord access = access_of(proxy, names[i]);
		INFO(access.line);
		CHECK(access.get("reason") == "drain");
		CHECK(access.num("client_frames") == (unsigned long long)in_flight + 1);
		CHECK(access.num("upstream_frames") == (unsigned long long)in_flight + 1);
	}
}

TEST_CASE("drain: a request the upstream never answers is closed at the drain timeout",
	  "[drain]")
{
	TestUpstream up(TestUpstream::Mode::Hold); // reads, never replies
	Proxy proxy({"--server", up.addr(), "--drain-timeout", "1s",
		     "--idle-timeout", "30s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	const std::string request = frame(random_bytes(500, 43));
	REQUIRE(c.send_all(request) == Io::Ok);
	REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
		return i.data.size() >= request.size();
	}));

	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	// The reply is owed: the connection stays open meanwhile.
	CHECK(c.wait_closed(milliseconds(600)) == Io::Timeout);
	Io r = c.wait_closed(milliseconds(3000));
	CHECK((r == Io::Eof || r == Io::Reset));
	long long took = expect_exit(proxy, t0, milliseconds(4000));
	CHECK(took >= 900);
	CHECK(took <= 2500);

	CHECK(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
	CHECK(up.conn(0).data == request);
	LogRecord access = access_of(proxy, client);
	CHECK(access.get("reason") == "shutdown");
	CHECK(access.num("client_frames") == 1);
	CHECK(access.num("upstream_frames") == 0);
	CHECK_FALSE(proxy.records("drain timeout").empty());
}

TEST_CASE("drain: an idle connection with every reply delivered closes at once",
	  "[drain]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
		     "--idle-timeout", "30s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	for (int i = 0; i < 3; i++)
		REQUIRE(c.roundtrip("ping " + std::to_string(i)));

	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	std::string extra;
	CHECK(c.wait_closed(milliseconds(1000), &extra) == Io::Eof);
	CHECK(extra.empty());
	// The proxy's FIN came first and it lingers for the client's EOF
	// (linger_timeout, 2 s): a client that closes on EOF lets it exit now.
	c.close();
	long long took = expect_exit(proxy, t0, milliseconds(3000));
	CHECK(took < 1000);
	LogRecord access = access_of(proxy, client);
	CHECK(access.get("reason") == "drain");
	CHECK(access.num("client_frames") == 3);
	CHECK(access.num("upstream_frames") == 3);
}

TEST_CASE("drain: a request sent after SIGTERM is not forwarded; the earlier reply is",
	  "[drain]")
{
	Echo echo({"--delay", "500ms"});
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
		     "--idle-timeout", "30s"});
	Conn c = relayed_conn(proxy);
	const std::string client = c.local_addr();
	const std::string first = random_bytes(200, 44);

	REQUIRE(c.send_frame(first) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	std::this_thread::sleep_for(milliseconds(100));
	REQUIRE(c.send_frame("too late") == Io::Ok);

	// The proxy reads and drops the unforwarded request before it closes,
	// so the close is a FIN after the reply, not an RST.
	std::string back;
	REQUIRE(c.read_frame(back, T5) == Io::Ok);
	CHECK(back == first);
	std::string extra;
	Io r = c.wait_closed(T5, &extra);
	CHECK(r == Io::Eof);
	CHECK(extra.empty());
	expect_exit(proxy, t0, milliseconds(5000));
	LogRecord access = access_of(proxy, client);
	CHECK(access.get("reason") == "drain");
	CHECK(access.num("client_frames") == 2);
	CHECK(access.num("upstream_frames") == 2);
}

TEST_CASE("drain: a client that half-closed still gets its reply", "[drain]")
{
	Echo echo({"--delay", "500ms"});
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
		     "--idle-timeout", "30s"});
	Conn c = relayed_conn(proxy);
	const std::string client = c.local_addr();
	const std::string request = random_bytes(1500, 45);

	REQUIRE(c.send_frame(request) == Io::Ok);
	c.shutdown_write();
	std::this_thread::sleep_for(milliseconds(100));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);

	expect_frames(c, {request});
	std::string extra;
	CHECK(c.wait_closed(T5, &extra) == Io::Eof);
	CHECK(extra.empty());
	long long took = expect_exit(proxy, t0, milliseconds(5000));
	CHECK(took < 3000);
	LogRecord access = access_of(proxy, client);
	// The client ended first; the drain only did not cut its reply.
	CHECK(access.get("reason") == "client_eof");
	CHECK(access.num("client_frames") == 2);
	CHECK(access.num("upstream_frames") == 2);
}

// The lingering close (proxy/linger.h): clients that keep 16 requests in
// flight while the proxy drains are never reset. Each gets the replies to
// what was forwarded, whole and in order, then a FIN; what it sent after
// the drain began is read and dropped until it closes. Without the linger
// a few of them saw ECONNRESET (the close hit requests still arriving) and
// lost the replies their kernel had not handed over yet.
TEST_CASE("drain: 50 pipelining clients under SIGTERM see no reset, only whole replies",
	  "[drain]")
{
	for (const char *mode : {"stream", "rpc"}) {
		INFO("mode " << mode);
		Echo echo;
		Proxy proxy({"--server", echo.addr(), "--drain-timeout", "10s",
			     "--idle-timeout", "30s", "--mode", mode});
		REQUIRE(proxy.wait_ready());
		Pipeline load(proxy.port(), 50, 16, 64);
		REQUIRE(load.stats().connected == 50);
		auto t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 700; });
		REQUIRE(load.live() == 50);
		proxy.proc().signal(SIGTERM);
		auto t1 = Clock::now();
		load.run([&] { return ms_since(t1) > 8000; });
		const PipelineStats &st = load.stats();
		INFO("sent " << st.sent << " replied " << st.replied << " eofs " << st.eofs
			     << " resets " << st.resets << " partial " << st.partial
			     << " errors " << st.errors << "\n" << proxy.log_tail());
		CHECK(load.live() == 0);
		CHECK(st.resets == 0);
		CHECK(st.partial == 0);
		CHECK(st.mismatched == 0);
		CHECK(st.errors == 0);
		CHECK(st.eofs == 50);
		CHECK(st.replied > 50 * 16);
		expect_exit(proxy, t1, milliseconds(5000));
	}
}
