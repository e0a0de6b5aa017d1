// Integration tests (issue 4): ACLs, per-client limits, configuration errors
// and SIGTERM draining, through the real frameproxy.
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

bool starts_with(const std::string &s, const std::string &prefix)
{
	return s.compare(0, prefix.size(), prefix) == 0;
}

// A line of `text` that contains every one of `parts`.
bool has_line_with(const std::string &text, const std::vector<std::string> &parts)
{
	for (const auto &line : split_lines(text)) {
		bool all = true;
		for (const auto &p : parts)
			all = all && line.find(p) != std::string::npos;
		if (all)
			return true;
	}
	return false;
}

// Runs frameproxy with args to completion (10 s at most).
struct Run {
	int code;
	std::string out, err;
};

Run run_proxy(const std::vector<std::string> &args)
{
	std::vector<std::string> argv = {binary("FRAMEPROXY")};
	argv.insert(argv.end(), args.begin(), args.end());
	Process p(argv, "frameproxy-check");
	int code = run_to_exit(p, milliseconds(10000));
	return Run{code, p.out(), p.err()};
}

} // namespace

TEST_CASE("ACL: a denied source is closed at once, others are served", "[limits][acl]")
{
	Echo echo;

	SECTION("deny list")
	{
		Proxy proxy({"--server", echo.addr(), "--deny", "127.0.0.9/32,10.0.0.0/8"});
		Conn bad = Conn::connect(proxy.port(), "127.0.0.9");
		REQUIRE(bad.valid());
		const std::string client = bad.local_addr();
		REQUIRE(starts_with(client, "127.0.0.9:"));
		auto t0 = Clock::now();
		Io r = bad.wait_closed(milliseconds(2000));
		CHECK((r == Io::Eof || r == Io::Reset));
		CHECK(ms_since(t0) < 1000);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "denied");
		CHECK(access.get("upstream") == "-");

		Conn good = Conn::connect(proxy.port(), "127.0.0.10");
		REQUIRE(good.valid());
		REQUIRE(good.roundtrip("let me in"));
		// Nothing reached the upstream from the denied client: the echo
		// served exactly one connection (the good one).
		good.close();
		REQUIRE(proxy.wait_access_count(2, T5));
		size_t with_upstream = 0;
		for (const auto &rec : proxy.records("access"))
			with_upstream += rec.get("upstream") != "-";
		CHECK(with_upstream == 1);
	}

	SECTION("allow list")
	{
		Proxy proxy({"--server", echo.addr(), "--allow", "127.0.0.16/30"});
		Conn in = Conn::connect(proxy.port(), "127.0.0.17");
		REQUIRE(in.valid());
		REQUIRE(in.roundtrip("inside"));
		Conn out = Conn::connect(proxy.port(), "127.0.0.20");
		REQUIRE(out.valid());
		const std::string client = out.local_addr();
		Io r = out.wait_closed(milliseconds(2000));
		CHECK((r == Io::Eof || r == Io::Reset));
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "denied");
	}
}

TEST_CASE("--max-per-client 2: the third connection from one address is refused",
	  "[limits][per-client]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--max-per-client", "2"});
	Conn a = Conn::connect(proxy.port(), "127.0.0.20");
	Conn b = Conn::connect(proxy.port(), "127.0.0.20");
	REQUIRE(a.valid());
	REQUIRE(b.valid());
	REQUIRE(a.roundtrip("a"));
	REQUIRE(b.roundtrip("b"));

	Conn c = Conn::connect(proxy.port(), "127.0.0.20");
	REQUIRE(c.valid());
	const std::string third = c.local_addr();
	auto t0 = Clock::now();
	Io r = c.wait_closed(milliseconds(2000));
	CHECK((r == Io::Eof || r == Io::Reset));
	CHECK(ms_since(t0) < 1000);
	LogRecord access;
	REQUIRE(proxy.wait_access(third, T5, &access));
	CHECK(access.get("reason") == "client_limit");

	// Another address is still accepted, and the first two still work.
	Conn d = Conn::connect(proxy.port(), "127.0.0.21");
	REQUIRE(d.valid());
	REQUIRE(d.roundtrip("d"));
	REQUIRE(a.roundtrip("a again"));

	// Closing one frees its slot.
	const std::string first = a.local_addr();
	a.close();
	REQUIRE(proxy.wait_access(first, T5));
	Conn e = Conn::connect(proxy.port(), "127.0.0.20");
	REQUIRE(e.valid());
	REQUIRE(e.roundtrip("e"));
}

TEST_CASE("config errors name the file, the line and the key", "[config]")
{
	const std::string bad = tmp().file("bad.ini");
	write_file(bad,
		   "; a broken configuration\n"         // 1
		   "[frameproxy]\n"                      // 2
		   "log_level = info\n"                  // 3
		   "\n"                                  // 4
		   "[listener api]\n"                    // 5
		   "listen = 127.0.0.1:0\n"              // 6
		   "max_frame = 16XB\n"                  // 7
		   "server = 127.0.0.1:9001\n"           // 8
		   "idle_timeout = forever\n"            // 9
		   "no_such_key = 1\n");                 // 10
	Run r = run_proxy({"--check", "-c", bad});
	INFO("stderr:\n" << r.err);
	CHECK(r.code == 1);
	CHECK(has_line_with(r.err, {bad + ":7", "max_frame"}));
	CHECK(has_line_with(r.err, {bad + ":9", "idle_timeout"}));
	CHECK(has_line_with(r.err, {bad + ":10", "no_such_key"}));
}

TEST_CASE("a valid config file checks out", "[config]")
{
	const std::string good = tmp().file("good.ini");
	write_file(good,
		   "[frameproxy]\n"
		   "log_level = warn\n"
		   "drain_timeout = 5s\n"
		   "[listener api]\n"
		   "listen = 127.0.0.1:0\n"
		   "max_frame = 1MiB\n"
		   "buffer = 16KiB\n"
		   "idle_timeout = 1m30s\n"
		   "frame_timeout = 250ms\n"
		   "balance = leastconn\n"
		   "server = 127.0.0.1:9001 weight=3\n"
		   "server = 127.0.0.1:9002\n");
	Run r = run_proxy({"--check", "-c", good});
	INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
	CHECK(r.code == 0);

	const char *example = getenv("FRAMEPROXY_EXAMPLE_INI");
	if (example && *example) {
		Run e = run_proxy({"--check", "-c", example});
		INFO("example " << example << ": " << e.out << e.err);
		CHECK(e.code == 0);
	}
}

TEST_CASE("a bad flag value names the flag", "[config]")
{
	struct Case {
		std::string flag, value;
	};
	std::vector<Case> cases = {{"--max-frame", "16XB"},
				   {"--idle-timeout", "forever"},
				   {"--balance", "fastest"},
				   {"--max-per-client", "-3"},
				   {"--deny", "300.1.2.3/8"}};
	for (const auto &c : cases) {
		Run r = run_proxy({"--check", "--listen", "127.0.0.1:0", "--server",
				   "127.0.0.1:9001", c.flag, c.value});
		INFO(c.flag << " " << c.value << " -> exit " << r.code << ", stderr:\n" << r.err);
		CHECK(r.code == 1);
		CHECK(has_line_with(r.err, {c.flag}));
	}
}

TEST_CASE("a config file serves, and flags override it", "[config]")
{
	Echo echo;
	const std::string ini = tmp().file("serve.ini");
	write_file(ini,
		   "[listener api]\n"
		   "listen = 127.0.0.1:0\n"
		   "max_frame = 1KiB\n"
		   "server = " + echo.addr() + "\n");
	// The file says 1 KiB; the flag raises it to 4 KiB.
	Proxy proxy({"-c", ini, "--max-frame", "4KiB"}, "api");
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	REQUIRE(c.roundtrip(random_bytes(3000, 5)));
	// Over the flag's limit: closed.
	const std::string client = c.local_addr();
	REQUIRE(c.send_all(be32(5000)) == Io::Ok);
	Io r = c.wait_closed(T5);
	CHECK((r == Io::Eof || r == Io::Reset));
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("listener") == "api");
	CHECK(access.get("reason") == "oversize");
}

TEST_CASE("SIGTERM with idle connections: exit 0 within the drain timeout",
	  "[drain]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "3s"});
	std::vector<Conn> idle;
	for (int i = 0; i < 5; i++) {
		idle.push_back(Conn::connect(proxy.port()));
		REQUIRE(idle.back().valid());
		REQUIRE(idle.back().roundtrip("idle " + std::to_string(i)));
	}
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	REQUIRE(proxy.proc().wait_exit(milliseconds(3500)));
	long long took = ms_since(t0);
	INFO("exited after " << took << " ms");
	CHECK(proxy.proc().exit_code() == 0);
	for (auto &c : idle) {
		Io r = c.wait_closed(milliseconds(1000));
		CHECK((r == Io::Eof || r == Io::Reset));
	}
	size_t drained = 0;
	for (const auto &rec : proxy.records("access"))
		drained += rec.is("reason", "drain");
	CHECK(drained == 5);
}

// The upstream echoes: a frame finished during the drain is a request, and
// the relay waits for its reply too (integration_drain.cpp).
TEST_CASE("SIGTERM lets a started frame finish, then closes", "[drain]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "5s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	REQUIRE(c.roundtrip("relayed")); // accepted and connected upstream
	const std::string payload = random_bytes(1000, 31);
	const std::string whole = frame(payload);
	REQUIRE(c.send_all(whole.substr(0, 504)) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));

	proxy.proc().signal(SIGTERM);
	// Still there, waiting for the frame; nothing came back.
	std::string early;
	CHECK(c.wait_closed(milliseconds(300), &early) == Io::Timeout);
	CHECK(early.empty());
	CHECK(proxy.proc().running());

	auto t0 = Clock::now();
	REQUIRE(c.send_all(whole.substr(504)) == Io::Ok);
	std::string back;
	REQUIRE(c.read_frame(back, T5) == Io::Ok);
	CHECK(back == payload);
	Io r = c.wait_closed(milliseconds(3000));
	CHECK(r == Io::Eof);
	REQUIRE(proxy.proc().wait_exit(milliseconds(3000)));
	INFO("exited " << ms_since(t0) << " ms after the frame completed");
	CHECK(ms_since(t0) < 3000);
	CHECK(proxy.proc().exit_code() == 0);
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "drain");
	CHECK(access.num("client_frames") == 2);
	CHECK(access.num("upstream_frames") == 2);
}

// Regression (fixed 2026-11-30): sched_stop() from the drain-check timer
// once left the loop parked in the poller after the last relay closed.
TEST_CASE("SIGTERM with a frame that never finishes: closed at the drain timeout",
	  "[drain]")
{
	TestUpstream up(TestUpstream::Mode::Hold);
	Proxy proxy({"--server", up.addr(), "--drain-timeout", "1s",
		     "--frame-timeout", "30s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	REQUIRE(c.send_all(be32(1000) + std::string(10, 'z')) == Io::Ok);
	REQUIRE(up.wait_accepted(1, T5));
	std::this_thread::sleep_for(milliseconds(100));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	REQUIRE(proxy.proc().wait_exit(milliseconds(3000)));
	long long took = ms_since(t0);
	INFO("exited after " << took << " ms");
	CHECK(took >= 900);
	CHECK(took <= 2000);
	Io r = c.wait_closed(milliseconds(1000));
	CHECK((r == Io::Eof || r == Io::Reset));
	CHECK(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
	CHECK(up.conn(0).data.empty());
	LogRecord access;
	REQUIRE(proxy.wait_record([](const LogRecord &x) { return x.is("msg", "access"); },
				  T5, &access));
	CHECK(access.get("reason") == "shutdown");
}

TEST_CASE("--max-connections 3: a fourth client waits in the backlog until one of the three closes",
	  "[limits][max-connections]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--max-connections", "3"});
	std::vector<Conn> three(3);
	for (int i = 0; i < 3; i++) {
		three[i] = Conn::connect(proxy.port());
		REQUIRE(three[i].valid());
		REQUIRE(three[i].roundtrip("one of three " + std::to_string(i)));
	}

	// The kernel completes the handshake (backlog), but the proxy does not
	// take the connection: its frame is not answered, it is not closed,
	// and nothing is logged for it.
	Conn fourth = Conn::connect(proxy.port());
	REQUIRE(fourth.valid());
	const std::string client = fourth.local_addr();
	REQUIRE(fourth.send_frame("fourth") == Io::Ok);
	std::string early;
	CHECK(fourth.wait_closed(milliseconds(700), &early) == Io::Timeout);
	CHECK(early.empty());
	CHECK_FALSE(proxy.wait_access(client, milliseconds(10)));
	CHECK(proxy.records("access").empty());
	// The three are still served meanwhile.
	for (int i = 0; i < 3; i++)
		REQUIRE(three[i].roundtrip("still here " + std::to_string(i)));

	// One closes: its slot goes to the waiting client, whose frame is
	// answered now.
	const std::string first = three[0].local_addr();
	three[0].close();
	auto t0 = Clock::now();
	std::string back;
	INFO(proxy.log_tail());
	REQUIRE(fourth.read_frame(back, T5) == Io::Ok);
	CHECK(back == "fourth");
	INFO("served " << ms_since(t0) << " ms after a slot freed");
	REQUIRE(proxy.wait_access(first, T5));
	REQUIRE(fourth.roundtrip("fourth again"));

	// Full again (three open: two old and the fourth): a fifth waits too.
	Conn fifth = Conn::connect(proxy.port());
	REQUIRE(fifth.valid());
	REQUIRE(fifth.send_frame("fifth") == Io::Ok);
	CHECK(fifth.wait_closed(milliseconds(500)) == Io::Timeout);
	fourth.close();
	REQUIRE(fifth.read_frame(back, T5) == Io::Ok);
	CHECK(back == "fifth");

	// Nobody was turned away: every connection that ended did so normally.
	fifth.close();
	three[1].close();
	three[2].close();
	REQUIRE(proxy.wait_access_count(5, T5));
	for (const auto &r : proxy.records("access")) {
		INFO(r.line);
		CHECK(r.get("reason") == "client_eof");
	}
	// The operator is told why clients wait (rate-limited, so at least once).
	auto paused = proxy.records("connection limit reached, accepting paused");
	REQUIRE_FALSE(paused.empty());
	CHECK(paused[0].get("max_connections") == "3");
}

TEST_CASE("logs: access_log = off silences one listener's access lines only",
	  "[limits][log]")
{
	Echo echo;
	const std::string path = tmp().file("access.ini");
	write_file(path, "[listener quiet]\nlisten = 127.0.0.1:0\naccess_log = off\n"
			 "server = " + echo.addr() + "\n"
			 "[listener loud]\nlisten = 127.0.0.1:0\n"
			 "server = " + echo.addr() + "\n");
	Proxy proxy({"-c", path}, "quiet");
	const uint16_t quiet = proxy.listener_port("quiet");
	const uint16_t loud = proxy.listener_port("loud");
	REQUIRE(quiet != 0);
	REQUIRE(loud != 0);

	Conn q = Conn::connect(quiet);
	REQUIRE(q.valid());
	const std::string quiet_client = q.local_addr();
	REQUIRE(q.roundtrip("not logged"));
	q.close();
	Conn l = Conn::connect(loud);
	REQUIRE(l.valid());
	const std::string loud_client = l.local_addr();
	REQUIRE(l.roundtrip("logged"));
	l.close();

	// The loud listener's line shows the shard has logged what it closed.
	LogRecord access;
	REQUIRE(proxy.wait_access(loud_client, T5, &access));
	CHECK(access.get("listener") == "loud");
	std::this_thread::sleep_for(milliseconds(200));
	for (const auto &r : proxy.records("access")) {
		INFO("access line for " << r.get("client"));
		CHECK(r.get("listener") != "quiet");
	}
	CHECK(proxy.records("access").size() == 1);
}

TEST_CASE("maxconn: a server never gets more than its maxconn; the next client waits "
	  "its turn, then queue_timeout closes it", "[limits][maxconn]")
{
	TestUpstream a(TestUpstream::Mode::EchoFrames), b(TestUpstream::Mode::EchoFrames);
	Proxy proxy({"--server", a.addr() + " maxconn=2", "--server", b.addr() + " maxconn=1",
		     "--queue-timeout", "600ms", "--admin", "127.0.0.1:0"});
	std::vector<Conn> held;
	for (int i = 0; i < 3; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip("held " + std::to_string(i)));
		held.push_back(std::move(c));
	}
	CHECK(a.open_count() == 2);
	CHECK(b.open_count() == 1);

	// Both full: a fourth waits for a slot instead of a fourth upstream
	// connection, and gets the first one that frees.
	Conn waiting = Conn::connect(proxy.port());
	REQUIRE(waiting.valid());
	REQUIRE(waiting.send_frame("queued") == Io::Ok);
	std::string back;
	CHECK(waiting.read_frame(back, milliseconds(300)) == Io::Timeout);
	CHECK(a.accepted() + b.accepted() == 3);
	// Published every 100 ms.
	CHECK(wait_until([&] {
		return metric_sum(http_get(proxy.admin_port(), "/metrics"),
				  "frameproxy_upstream_queue") == 1;
	}, milliseconds(1000)));
	held[2].close();
	REQUIRE(waiting.read_frame(back, T5) == Io::Ok);
	CHECK(back == "queued");
	CHECK(a.open_count() <= 2);
	CHECK(b.open_count() <= 1);

	// Full again; this one waits out queue_timeout and is closed with
	// its reason, never having reached a server.
	Conn late = Conn::connect(proxy.port());
	REQUIRE(late.valid());
	const std::string late_addr = late.local_addr();
	auto t0 = Clock::now();
	Io r = late.wait_closed(T5);
	CHECK((r == Io::Eof || r == Io::Reset));
	CHECK(ms_since(t0) >= 500);
	CHECK(ms_since(t0) < 2000);
	LogRecord access;
	REQUIRE(proxy.wait_access(late_addr, T5, &access));
	CHECK(access.get("reason") == "queue_timeout");
	CHECK(a.accepted() + b.accepted() == 4);
	// Published every 100 ms.
	CHECK(wait_until([&] {
		return metric_sum(http_get(proxy.admin_port(), "/metrics"),
				  "frameproxy_upstream_queue") == 0;
	}, milliseconds(1000)));
	for (auto &c : held)
		if (c.valid())
			CHECK(c.roundtrip("still served"));
}

TEST_CASE("maxconn: under 40 concurrent clients a server with maxconn=3 never has more "
	  "than 3, and every client is served in turn", "[limits][maxconn]")
{
	TestUpstream up(TestUpstream::Mode::EchoFrames);
	Proxy proxy({"--server", up.addr() + " maxconn=3", "--queue-timeout", "10s"});
	std::atomic<size_t> peak{0};
	std::atomic<bool> done{false};
	std::thread watch([&] {
		while (!done) {
			size_t n = up.open_count();
			if (n > peak)
				peak = n;
			std::this_thread::sleep_for(milliseconds(2));
		}
	});
	std::vector<Conn> clients;
	for (int i = 0; i < 40; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_frame("client " + std::to_string(i)) == Io::Ok);
		clients.push_back(std::move(c));
	}
	// Served three at a time: each one answered closes, letting the next in.
	size_t served = 0;
	for (int round = 0; round < 400 && served < clients.size(); round++) {
		for (size_t i = 0; i < clients.size(); i++) {
			if (!clients[i].valid())
				continue;
			std::string back;
			if (clients[i].read_frame(back, milliseconds(5)) != Io::Ok)
				continue;
			CHECK(back == "client " + std::to_string(i));
			clients[i].close();
			served++;
		}
	}
	done = true;
	watch.join();
	CHECK(served == clients.size());
	// Without the limit all 40 would be open upstream at once: each stays
	// open until its client has read its answer and closed.
	CHECK(peak <= 3);
	CHECK(up.accepted() == clients.size());
}
