// Integration tests: live handoff on reload (proxy/handoff.h). A retiring
// shard hands each connection at a frame boundary to the new shard with
// the same index, so reloads cut nothing however long a connection lives.
// Registered per poller (tests/proxy/meson.build, proxy_handoff_*); with
// io_uring completion I/O a connection's receives are paused and ended
// before it goes (pd_recv_pause), so the same cases hold there.
#include <cstdlib>

#include "tests/proxy/harness.hpp"
#include "tests/proxy/pipeline.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

bool wait_generation(Proxy &proxy, int generation)
{
	return proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "reload complete") &&
		       r.is("generation", std::to_string(generation));
	}, milliseconds(10000));
}




} // namespace

TEST_CASE("handoff: a SIGHUP every second under pipelining load cuts nothing",
	  "[handoff]")
{
	Echo echo;
	// The default drain_timeout (10 s): without handoff the old shards
	// would cut every connection still open 10 s after its reload.
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--admin", "127.0.0.1:0",
		     "--idle-timeout", "60s"});
	REQUIRE(proxy.wait_ready());
	Pipeline load(proxy.port(), 100, 8, 512);
	REQUIRE(load.stats().connected == 100);
	std::vector<Conn> idle = idle_conns(proxy.port(), 1000);

	const int reloads = 25;
	for (int i = 1; i <= reloads; i++) {
		auto t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 500; });
		proxy.proc().signal(SIGHUP);
		t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 500; });
		REQUIRE(wait_generation(proxy, i));
		INFO("reload " << i << "\n" << proxy.log_tail(20));
		REQUIRE(roundtrips_ok(idle, "after reload " + std::to_string(i)) == idle.size());
	}
	load.finish(milliseconds(10000));
	const PipelineStats &st = load.stats();
	INFO(load.summary() << "\n" << proxy.log_tail(30));
	CHECK(load.live() == 100);
	CHECK(st.resets == 0);
	CHECK(st.eofs == 0);
	CHECK(st.errors == 0);
	CHECK(st.mismatched == 0);
	CHECK(st.replied == st.sent);
	CHECK(st.sent > 100 * 8 * reloads);
	// Every old shard handed over and exited; none died.
	CHECK(count_records(proxy, "shard died") == 0);
	CHECK(proxy.wait_record([&](const LogRecord &) {
		return count_records(proxy, "shard exited") == size_t(2 * reloads);
	}, T5));
	std::string metrics = http_get(proxy.admin_port(), "/metrics");
	CHECK(metric_sum(metrics, "frameproxy_connections_handed_off_total") >=
	      uint64_t(1100 * reloads));
	// Counted once each, when they really end: no access line yet...
	CHECK(count_records(proxy, "access") == 0);
	load.close_all();
	idle.clear();
	// ...and one per connection after.
	CHECK(proxy.wait_access_count(1100, milliseconds(10000)));
	std::this_thread::sleep_for(milliseconds(300));
	CHECK(count_records(proxy, "access") == 1100);
	for (auto &r : proxy.records("access"))
		CHECK(r.get("reason") == "client_eof");
	metrics = http_get(proxy.admin_port(), "/metrics");
	CHECK(metric_sum(metrics, "frameproxy_connections_accepted_total") == 1100);
	CHECK(metric_sum(metrics, "frameproxy_connections_closed_total") == 1100);
}

TEST_CASE("handoff: a connection stuck mid-frame closes at frame_timeout, the others move",
	  "[handoff]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "1", "--frame-timeout", "1s",
		     "--admin", "127.0.0.1:0"});
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> idle = idle_conns(proxy.port(), 5);
	Conn stuck = Conn::connect(proxy.port());
	REQUIRE(stuck.valid());
	REQUIRE(stuck.roundtrip("before"));
	const std::string stuck_addr = stuck.local_addr();
	// A header announcing 100 bytes and only 10 of them.
	REQUIRE(stuck.send_all(be32(100) + std::string(10, 'x')) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));

	auto t0 = Clock::now();
	proxy.proc().signal(SIGHUP);
	REQUIRE(wait_generation(proxy, 1));
	CHECK(roundtrips_ok(idle, "moved") == idle.size());
	Io r = stuck.wait_closed(milliseconds(4000));
	CHECK((r == Io::Eof || r == Io::Reset));
	LogRecord access;
	REQUIRE(proxy.wait_access(stuck_addr, T5, &access));
	CHECK(access.get("reason") == "frame_timeout");
	CHECK(ms_since(t0) < 3000);
	// The old shard had nothing left after it and exited.
	CHECK(proxy.wait_record([](const LogRecord &rec) {
		return rec.is("msg", "shard exited");
	}, T5));
	CHECK(metric_sum(http_get(proxy.admin_port(), "/metrics"),
			 "frameproxy_connections_handed_off_total") == 5);
	CHECK(roundtrips_ok(idle, "still") == idle.size());
	CHECK(count_records(proxy, "access") == 1);
}

TEST_CASE("handoff: a new shard that dies while adopting leaves the rest with the old one",
	  "[handoff]")
{
	Echo echo;
	// Every shard started from here on dies after adopting 3 connections;
	// only the reload's new shard adopts any.
	setenv("FRAMEPROXY_FAULT_ADOPT_EXIT", "3", 1);
	Proxy proxy({"--server", echo.addr(), "--shards", "1"});
	unsetenv("FRAMEPROXY_FAULT_ADOPT_EXIT");
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> conns = idle_conns(proxy.port(), 40);

	proxy.proc().signal(SIGHUP);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "shard died");
	}, milliseconds(10000)));
	LogRecord stopped;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "handoff stopped: the new shard is gone, keeping the rest");
	}, T5, &stopped));
	// At most a window's worth went with the dead shard; the rest are
	// served by the old one, which keeps running.
	size_t ok = roundtrips_ok(conns, "after the crash");
	INFO(proxy.log_tail(30));
	CHECK(ok >= conns.size() - 16 - 3); // a window and the 3 it adopted
	CHECK(ok < conns.size());
	// The seat is refilled and new connections are served.
	Conn fresh;
	REQUIRE(wait_until([&] {
		fresh = Conn::connect(proxy.port());
		return fresh.valid() && fresh.roundtrip("fresh");
	}, T5));
}

TEST_CASE("handoff: rpc clients with nothing in flight move on every reload",
	  "[handoff]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--mode", "rpc",
		     "--admin", "127.0.0.1:0"});
	REQUIRE(proxy.wait_ready());
	// Pipelining clients (8 requests in flight each): a client moves in
	// the moment between its last reply written and its next request.
	Pipeline load(proxy.port(), 100, 8, 512);
	REQUIRE(load.stats().connected == 100);
	std::vector<Conn> idle = idle_conns(proxy.port(), 50);
	const int reloads = 25;
	for (int i = 1; i <= reloads; i++) {
		auto t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 500; });
		proxy.proc().signal(SIGHUP);
		t0 = Clock::now();
		load.run([&] { return ms_since(t0) > 500; });
		REQUIRE(wait_generation(proxy, i));
		REQUIRE(roundtrips_ok(idle, "rpc after " + std::to_string(i)) == idle.size());
	}
	load.finish(milliseconds(10000));
	const PipelineStats &st = load.stats();
	INFO(load.summary() << "\n" << proxy.log_tail(30));
	CHECK(load.live() == 100);
	CHECK(st.resets == 0);
	CHECK(st.eofs == 0);
	CHECK(st.mismatched == 0);
	CHECK(st.replied == st.sent);
	CHECK(count_records(proxy, "shard died") == 0);
	CHECK(proxy.wait_record([&](const LogRecord &) {
		return count_records(proxy, "shard exited") == size_t(2 * reloads);
	}, T5));
	CHECK(metric_sum(http_get(proxy.admin_port(), "/metrics"),
			 "frameproxy_connections_handed_off_total") >= uint64_t(150 * reloads));
	CHECK(count_records(proxy, "access") == 0);
	load.close_all();
	idle.clear();
	CHECK(proxy.wait_access_count(150, milliseconds(10000)));
	std::this_thread::sleep_for(milliseconds(300));
	auto lines = proxy.records("access");
	CHECK(lines.size() == 150);
	uint64_t replied = 0;
	for (auto &r : lines)
		replied += uint64_t(r.num("replied"));
	// Each line counts the whole life of its client, over every shard.
	CHECK(replied == st.replied + 50 + 50 * reloads);
}

TEST_CASE("handoff: a client named by a PROXY header keeps its address and peer= across reloads",
	  "[handoff]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--accept-proxy", "v1",
		     "--deny", "192.0.2.66/32", "--admin", "127.0.0.1:0"});
	REQUIRE(proxy.wait_ready());
	std::vector<Conn> conns;
	for (int i = 0; i < 8; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_all("PROXY TCP4 192.0.2." + std::to_string(10 + i) +
				   " 198.51.100.1 " + std::to_string(40000 + i) +
				   " 9000\r\n") == Io::Ok);
		REQUIRE(c.roundtrip("before " + std::to_string(i), T5));
		conns.push_back(std::move(c));
	}
	const std::string peer = conns[0].local_addr().substr(0, 10); // "127.0.0.1:"
	for (int reload = 1; reload <= 2; reload++) {
		proxy.proc().signal(SIGHUP);
		REQUIRE(wait_generation(proxy, reload));
		REQUIRE(roundtrips_ok(conns, "after " + std::to_string(reload)) == conns.size());
	}
	// Counters reach /metrics at the shards' next publish (100 ms).
	CHECK(wait_until([&] {
		return metric_sum(http_get(proxy.admin_port(), "/metrics"),
				  "frameproxy_connections_handed_off_total") >= 16;
	}, milliseconds(2000)));
	for (auto &c : conns)
		c.close();
	for (int i = 0; i < 8; i++) {
		LogRecord access;
		const std::string client = "192.0.2." + std::to_string(10 + i) + ":" +
					   std::to_string(40000 + i);
		INFO(client << "\n" << proxy.log_tail(20));
		REQUIRE(proxy.wait_access(client, T5, &access));
		CHECK(access.get("peer").rfind(peer, 0) == 0);
		CHECK(access.num("client_frames") == 3);
	}
}
