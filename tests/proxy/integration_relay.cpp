// Integration tests (issue 4): relay semantics through the real frameproxy,
// with frameecho or an in-test upstream behind it. See harness.hpp.
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

// Reads `count` frames, expecting exactly `want[i]`.
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

} // namespace

// Regression (fixed 2026-11-30): the proxy once closed both sides at the
// oversize header, so the echoes of the frames it forwarded were lost.
TEST_CASE("oversize frame closes only its client, after the earlier frames",
	  "[relay][oversize]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--max-frame", "1KiB"});

	Conn other = Conn::connect(proxy.port());
	REQUIRE(other.valid());
	REQUIRE(other.roundtrip("before"));

	Conn bad = Conn::connect(proxy.port());
	REQUIRE(bad.valid());
	const std::string client = bad.local_addr();
	std::vector<std::string> good = {"first", random_bytes(1024, 7), ""};
	std::string burst;
	for (const auto &g : good)
		burst += frame(g);
	burst += be32(1025); // max_frame + 1, and no payload follows
	REQUIRE(bad.send_all(burst) == Io::Ok);

	// All three echoes, then the end of the connection.
	expect_frames(bad, good);
	std::string extra;
	Io end = bad.wait_closed(T5, &extra);
	CHECK((end == Io::Eof || end == Io::Reset));
	CHECK(extra.empty());

	LogRecord access, big;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "oversize");
	CHECK(access.get("listener") == "default");
	CHECK(access.num("client_frames") == 3);
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "frame too large") && r.is("client", client);
	}, T5, &big));
	CHECK(big.get("listener") == "default");
	CHECK(big.get("side") == "client");
	CHECK(big.get("length") == "1025");
	CHECK(big.get("max_frame") == "1024");

	// The other client, connected all along, keeps working.
	REQUIRE(other.roundtrip("after"));
	REQUIRE(other.roundtrip(random_bytes(1000, 8)));
	// And new clients are still served.
	Conn fresh = Conn::connect(proxy.port());
	REQUIRE(fresh.valid());
	REQUIRE(fresh.roundtrip("fresh"));
}

TEST_CASE("client half-close: all echoes arrive, then EOF", "[relay][halfclose]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr()});

	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	std::vector<std::string> sent;
	for (int i = 0; i < 20; i++) {
		// Includes a zero-length frame and frames larger than the 64 KiB
		// buffer (streamed); ~650 KB in all, sent before reading, which
		// loopback socket buffers hold.
		size_t size = i == 3 ? 0 : (size_t)(i * 9973) % 70000;
		sent.push_back(random_bytes(size, 100 + i));
		REQUIRE(c.send_frame(sent.back()) == Io::Ok);
	}
	c.shutdown_write();
	expect_frames(c, sent);
	std::string extra;
	CHECK(c.wait_closed(T5, &extra) == Io::Eof);
	CHECK(extra.empty());

	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "client_eof");
	CHECK(access.num("client_frames") == 20);
	CHECK(access.num("upstream_frames") == 20);
}

TEST_CASE("upstream half-close: client gets its frames then EOF, and can still send",
	  "[relay][halfclose]")
{
	std::vector<std::string> hello = {"one", random_bytes(70000, 3), ""};
	TestUpstream up(TestUpstream::Mode::SendThenShutWr, hello);
	Proxy proxy({"--server", up.addr()});

	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	expect_frames(c, hello);
	std::string extra;
	REQUIRE(c.wait_closed(T5, &extra) == Io::Eof);
	CHECK(extra.empty());

	// The other direction still flows.
	std::string more = frame("still") + frame(random_bytes(100000, 4)) + frame("");
	REQUIRE(c.send_all(more) == Io::Ok);
	REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
		return i.data.size() >= more.size() || i.ended();
	}));
	auto info = up.conn(0);
	CHECK(info.data.size() == more.size());
	CHECK(info.data == more);
	CHECK_FALSE(info.ended());

	// Then the client ends too: the upstream sees EOF, the log says why.
	c.shutdown_write();
	REQUIRE(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
	CHECK(up.conn(0).eof);
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "upstream_eof");
}

TEST_CASE("client vanishes mid-frame", "[relay][truncated]")
{
	TestUpstream up(TestUpstream::Mode::Hold);
	Proxy proxy({"--server", up.addr(), "--buffer", "16KiB"});
	const std::string first = frame(random_bytes(100, 11));

	SECTION("small frame, FIN: upstream gets none of it, then EOF")
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		REQUIRE(c.send_all(first) == Io::Ok);
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= first.size();
		}));
		// 1000-byte frame (fits the 16 KiB buffer), only 500 bytes sent.
		REQUIRE(c.send_all(be32(1000) + random_bytes(500, 12)) == Io::Ok);
		std::this_thread::sleep_for(milliseconds(100));
		c.close();
		REQUIRE(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
		auto info = up.conn(0);
		CHECK(info.data.size() == first.size());
		CHECK(info.data == first);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "client_truncated");
	}

	SECTION("small frame, RST: upstream gets none of it, connection ends")
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		REQUIRE(c.send_all(first) == Io::Ok);
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= first.size();
		}));
		REQUIRE(c.send_all(be32(1000) + random_bytes(500, 12)) == Io::Ok);
		std::this_thread::sleep_for(milliseconds(100));
		c.abort();
		REQUIRE(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
		auto info = up.conn(0);
		CHECK(info.data == first);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK((access.get("reason") == "client_reset" ||
		       access.get("reason") == "client_truncated"));
	}

	SECTION("streamed frame larger than the buffer: upstream closed, nothing after the cut")
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		REQUIRE(c.send_all(first) == Io::Ok);
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= first.size();
		}));
		// 1 MiB announced, 200 KiB sent: streamed (buffer is 16 KiB).
		const std::string cut = be32(1u << 20) + random_bytes(200 * 1024, 13);
		REQUIRE(c.send_all(cut) == Io::Ok);
		// Let the streamed part through before vanishing.
		up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= first.size() + cut.size();
		});
		c.close();
		REQUIRE(up.wait_conn(0, T5, [](const TestUpstream::ConnInfo &i) { return i.ended(); }));
		// Give a wrong "more data" a chance to show up (it must not).
		std::this_thread::sleep_for(milliseconds(200));
		auto info = up.conn(0);
		REQUIRE(info.data.size() >= first.size());
		CHECK(info.data.compare(0, first.size(), first) == 0);
		std::string rest = info.data.substr(first.size());
		// Whatever arrived after the first frame is a prefix of the cut
		// frame: nothing else, nothing after it.
		CHECK(rest.size() <= cut.size());
		CHECK(rest == cut.substr(0, rest.size()));
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "client_truncated");
	}
}

TEST_CASE("idle timeout closes a silent connection", "[relay][timeout]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--idle-timeout", "500ms",
		     "--frame-timeout", "10s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	REQUIRE(c.roundtrip("wake"));
	auto t0 = Clock::now();
	Io r = c.wait_closed(milliseconds(3000));
	long long waited = ms_since(t0);
	CHECK((r == Io::Eof || r == Io::Reset));
	// Not before the timeout (some slack for timer granularity), and
	// within 1.5 s after it.
	CHECK(waited >= 400);
	CHECK(waited <= 2000);
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "idle_timeout");
}

TEST_CASE("idle timeout: input that waited out a stalled shard is no idleness",
	  "[relay][timeout]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--idle-timeout", "1s", "--shards", "1"});
	REQUIRE(proxy.wait_ready());
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const std::string client = c.local_addr();
	REQUIRE(c.roundtrip("before"));
	auto pids = proxy.shard_pids();
	REQUIRE(pids.size() == 1);
	const pid_t shard = pids.begin()->second;
	// The shard is stopped while the client speaks and stays stopped past
	// the idle timeout; once it runs again, its idle timer fires before
	// the pump the client's frame woke. The frame is still traffic.
	struct Resume {
		pid_t pid;
		~Resume() { kill(pid, SIGCONT); }
	} resume{shard};
	REQUIRE(kill(shard, SIGSTOP) == 0);
	REQUIRE(c.send_frame("during the stall") == Io::Ok);
	std::this_thread::sleep_for(milliseconds(1600));
	REQUIRE(kill(shard, SIGCONT) == 0);
	std::string reply;
	Io r = c.read_frame(reply);
	INFO("access: " << proxy.log_tail(5));
	REQUIRE(r == Io::Ok);
	CHECK(reply == "during the stall");
	// And the timeout still holds once it is really idle.
	CHECK(c.wait_closed(milliseconds(3000)) != Io::Timeout);
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("reason") == "idle_timeout");
	CHECK(access.get("client_frames") == "2");
}

TEST_CASE("idle timeout is reset by traffic", "[relay][timeout]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--idle-timeout", "600ms"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	// 8 round trips 200 ms apart: 1.6 s, well over the timeout in total.
	for (int i = 0; i < 8; i++) {
		REQUIRE(c.roundtrip("tick" + std::to_string(i)));
		std::this_thread::sleep_for(milliseconds(200));
	}
	REQUIRE(c.roundtrip("still here"));
}

TEST_CASE("frame timeout closes a slowloris client", "[relay][timeout]")
{
	TestUpstream up(TestUpstream::Mode::Hold);
	Proxy proxy({"--server", up.addr(), "--idle-timeout", "30s",
		     "--frame-timeout", "700ms"});

	SECTION("header and one byte, then silence")
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		auto t0 = Clock::now();
		REQUIRE(c.send_all(be32(100) + "x") == Io::Ok);
		Io r = c.wait_closed(milliseconds(4000));
		long long waited = ms_since(t0);
		CHECK((r == Io::Eof || r == Io::Reset));
		CHECK(waited >= 550);
		CHECK(waited <= 2200);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "frame_timeout");
	}

	SECTION("a trickle that keeps the connection busy but never ends the frame")
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		const std::string client = c.local_addr();
		auto t0 = Clock::now();
		REQUIRE(c.send_all(be32(1000)) == Io::Ok);
		Io r = Io::Timeout;
		// One byte every 100 ms for at most 4 s (40 bytes < 1000).
		for (int i = 0; i < 40; i++) {
			if (c.send_all("y", milliseconds(500)) != Io::Ok)
				break;
			std::string extra;
			r = c.wait_closed(milliseconds(100), &extra);
			if (r != Io::Timeout)
				break;
		}
		long long waited = ms_since(t0);
		CHECK((r == Io::Eof || r == Io::Reset || r == Io::Timeout));
		CHECK(waited >= 550);
		CHECK(waited <= 2200);
		LogRecord access;
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("reason") == "frame_timeout");
	}
}

TEST_CASE("an upstream that stops reading stops the proxy reading the client",
	  "[relay][backpressure]")
{
	TestUpstream up(TestUpstream::Mode::NoRead);
	Proxy proxy({"--server", up.addr(), "--buffer", "64KiB",
		     "--idle-timeout", "60s", "--frame-timeout", "60s"});
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	REQUIRE(up.wait_accepted(1, T5));
	// Warm up (first buffers, stacks), then take the baseline.
	std::this_thread::sleep_for(milliseconds(200));
	// The connection lives in the shard process, not the supervisor.
	pid_t shard = proxy.shard_pid(0);
	REQUIRE(shard > 0);
	long rss0 = Process::rss_kib_of(shard);
	REQUIRE(rss0 > 0);

	// 64 KiB frames, complete, sent without blocking for up to 5 s or
	// 256 MiB, whichever comes first.
	const std::string f = frame(random_bytes(64 * 1024 - 4, 21));
	const size_t cap = 256u << 20;
	size_t sent = 0, at = 0;
	auto t0 = Clock::now();
	long rss_max = rss0;
	int stalls = 0;
	while (sent < cap && ms_since(t0) < 5000) {
		ssize_t k = c.try_send(f.data() + at, f.size() - at);
		REQUIRE(k >= 0);
		if (k == 0) {
			stalls++;
			pollfd p = {c.fd(), POLLOUT, 0};
			poll(&p, 1, 50);
			rss_max = std::max(rss_max, Process::rss_kib_of(shard));
			continue;
		}
		sent += (size_t)k;
		at = (at + (size_t)k) % f.size();
	}
	rss_max = std::max(rss_max, Process::rss_kib_of(shard));
	INFO("sent " << sent << " bytes in " << ms_since(t0) << " ms; proxy VmRSS "
	     << rss0 << " KiB -> max " << rss_max << " KiB");
	// The client was stopped: kernel buffers (client send + upstream
	// receive) and the proxy's bounded buffer hold far less than 256 MiB.
	CHECK(sent < (64u << 20));
	CHECK(stalls > 0);
	CHECK(rss_max - rss0 < 16 * 1024);
	// The connection is still alive (not closed for being slow).
	CHECK(proxy.proc().running());
}
