// The fault suite (see faults.hpp): upstreams that die, stop reading or
// answer slowly.
#include "tests/proxy/faults.hpp"

using namespace itest;
using namespace itest::fault;

TEST_CASE("fault: an upstream is killed and restarted under load", "[fault]")
{
	std::unique_ptr<Echo> e1(new Echo());
	Echo e2;
	const std::string a1 = e1->addr();
	// Short fail_timeout: the restarted upstream is back in use soon.
	Proxy proxy({"--shards", "2", "--poller", "mixed", "--server", a1, "--server",
		     e2.addr(), "--fail-timeout", "500ms"});
	REQUIRE(proxy.wait_ready());
	warm_up(proxy.port(), 8, 2);
	long rss0 = settled_rss_kib(proxy);

	Ledger ledger;
	VerifierOptions opt;
	opt.port = proxy.port();
	Verifiers clients = start_verifiers(ledger, 16, opt, 200);
	std::this_thread::sleep_for(milliseconds(1500));

	auto wall_ms = [] {
		return (long long)std::chrono::duration_cast<milliseconds>(
			std::chrono::system_clock::now().time_since_epoch()).count();
	};
	long long killed_at = wall_ms();
	e1->proc().signal(SIGKILL);
	REQUIRE(e1->proc().wait_exit(T5));
	PortHolder hold(e1->port());
	CHECK(hold.ok());
	uint64_t frames_at_kill = ledger.frames;
	std::this_thread::sleep_for(milliseconds(3000));
	uint64_t frames_while_down = ledger.frames - frames_at_kill;

	// Back on the same port.
	e1.reset();
	long long restarted_at = wall_ms();
	e1.reset(new Echo({}, a1));
	// New connections reach it again once its ejection ends.
	auto started_ms = [](const LogRecord &r) {
		return log_ms(r) - (long long)atof(r.get("duration_ms").c_str());
	};
	bool back = proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "access") && r.is("upstream", a1) &&
		       started_ms(r) > restarted_at;
	}, milliseconds(20000));
	finish(clients);

	NOTE("frames " << ledger.frames << ", connections " << ledger.conns.size()
	     << ", cuts " << ledger.cuts().size());
	INFO(ledger.problems_text());
	CHECK(ledger.problem_count == 0);
	CHECK(frames_while_down > 0);
	CHECK(back);

	// The connections cut were those on the killed upstream, for its reason.
	auto cuts = ledger.cuts();
	CHECK(!cuts.empty());
	std::set<std::string> reasons = {"upstream_reset", "upstream_eof", "upstream_truncated"};
	std::string bad = unexplained_cuts(proxy, cuts, reasons);
	INFO("cuts without a reason among " << join(reasons) << ":\n" << bad);
	CHECK(bad.empty());
	auto access = proxy.access_by_client();
	std::vector<std::string> cut_clients;
	for (auto &c : cuts) {
		cut_clients.push_back(c.client);
		if (access.count(c.client))
			CHECK(access[c.client].back().get("upstream") == a1);
	}
	NOTE("cut connections by reason: " << reason_counts(access, cut_clients));

	// Passive health: while it was down, every connection went to the live
	// one (a connect to the dead one was refused and retried there), and
	// none failed for want of an upstream.
	size_t while_down = 0, wrong = 0;
	std::string first_wrong;
	for (auto &r : proxy.records("access")) {
		long long s = started_ms(r);
		bool down = s > killed_at + 100 && s < restarted_at;
		while_down += down;
		if (r.is("reason", "connect_failed") || r.is("reason", "no_upstream") ||
		    (down && !r.is("upstream", e2.addr()))) {
			if (!wrong++)
				first_wrong = r.line;
		}
	}
	INFO(first_wrong);
	CHECK(wrong == 0);
	CHECK(while_down > 0);
	CHECK_FALSE(proxy.records("upstream out").empty());

	CHECK(serve_failures(proxy.port(), 20, 9100) == 0);
	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS " << rss0 << " -> " << rss1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib());
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}

TEST_CASE("fault: an upstream that accepts and never reads", "[fault]")
{
	TestUpstream stuck(TestUpstream::Mode::NoRead);
	Echo echo;
	// The stuck listener's idle timeout is what ends its clients. The
	// healthy one's is longer than the case can last: a client thread or
	// a shard that the machine does not run for 2 s (ASan, 2 shared cores)
	// would otherwise be closed as idle, which says nothing about the
	// stuck clients; what would (a shard held up by them) shows as a hang,
	// a slow round trip or a cut for another reason.
	std::string ini = two_listeners("noread.ini", stuck.addr(), echo.addr(),
					"idle_timeout = 2s", "idle_timeout = 60s");
	Proxy proxy({"-c", ini, "--shards", "2", "--poller", "mixed"}, "fault");
	REQUIRE(proxy.wait_ready());
	uint16_t healthy = proxy.listener_port("healthy");
	REQUIRE(healthy != 0);
	warm_up(healthy, 8, 3);
	long rss0 = settled_rss_kib(proxy);

	Ledger ledger;
	VerifierOptions opt;
	opt.port = healthy;
	opt.record_latency = true;
	Verifiers clients = start_verifiers(ledger, 8, opt, 300);

	// Stuck clients: each keeps sending 16 KiB frames, 64 KiB every 10 ms,
	// until the proxy stops taking them, and then waits to be closed. At
	// most 6 MiB each: more than the proxy can pass on before it blocks (a
	// full upstream socket holds at most tcp_wmem's 4 MiB), so the rest
	// waits in the kernel, unread by the proxy.
	const int n = 10;
	const size_t cap = 6u << 20;
	std::vector<Conn> conns;
	std::vector<std::string> addrs;
	std::vector<size_t> sent(n, 0);
	for (int i = 0; i < n; i++) {
		conns.push_back(Conn::connect(proxy.port(), unique_source()));
		REQUIRE(conns.back().valid());
		addrs.push_back(conns.back().local_addr());
	}
	std::mt19937 rng(11);
	std::vector<std::string> frames_out(n);
	long peak = 0;
	std::vector<Io> ended(n, Io::Ok);
	std::vector<std::string> received(n);
	std::vector<long long> ended_ms(n, -1);
	auto pids = proxy.shard_pids();
	auto t0 = Clock::now();
	for (int round = 0; round < 3000 && ms_since(t0) < 30000; round++) {
		int open = 0;
		for (int i = 0; i < n; i++) {
			if (ended[i] != Io::Ok)
				continue;
			open++;
			// Keep sending while it takes bytes (64 KiB a round).
			for (int k = 0; k < 4 && sent[i] < cap; k++) {
				if (frames_out[i].empty())
					frames_out[i] = frame(seq_payload(1000 + i, sent[i], 16 * 1024, rng));
				ssize_t w = conns[i].try_send(frames_out[i].data(), frames_out[i].size());
				if (w <= 0)
					break;
				sent[i] += (size_t)w;
				frames_out[i].erase(0, (size_t)w);
			}
			Io r = conns[i].wait_closed(milliseconds(0), &received[i]);
			if (r != Io::Timeout) {
				ended[i] = r;
				ended_ms[i] = ms_since(t0);
			}
		}
		long rss = 0;
		for (auto &kv : pids)
			rss += std::max(0L, Process::rss_kib_of(kv.second));
		peak = std::max(peak, rss);
		if (open == 0)
			break;
		std::this_thread::sleep_for(milliseconds(10));
	}
	finish(clients);

	INFO(ledger.problems_text());
	CHECK(ledger.problem_count == 0);
	check_no_cuts(proxy, ledger);
	CHECK(ledger.frames > 0);
	// Unaffected: the healthy listener's clients were served as usual
	// while the stuck ones filled every buffer on the way.
	NOTE("healthy round trips: p50 " << ledger.latency_quantile(0.5) << " us, p99 "
	     << ledger.latency_quantile(0.99) << " us, max " << ledger.latency_quantile(1.0)
	     << " us, ending " << ledger.max_latency_at_ms << " ms into the run; stuck clients "
	     << "started at " << ms_since(ledger.t0) - ms_since(t0) << " ms and were closed "
	     << *std::min_element(ended_ms.begin(), ended_ms.end()) << " to "
	     << *std::max_element(ended_ms.begin(), ended_ms.end()) << " ms after that");
	check_latency(ledger);

	std::string text;
	for (int i = 0; i < n; i++)
		text += addrs[i] + ": sent " + std::to_string(sent[i]) + " ended " +
			io_name(ended[i]) + " at " + std::to_string(ended_ms[i]) + " ms\n";
	INFO(text);
	std::map<std::string, std::vector<LogRecord>> access;
	auto missing = proxy.wait_access_all(addrs, T5, &access);
	CHECK(missing.empty());
	for (int i = 0; i < n; i++) {
		INFO(addrs[i]);
		// Closed (it never got a byte back: the upstream sent nothing),
		// for the idle timeout: nothing moved for 2 s.
		CHECK((ended[i] == Io::Eof || ended[i] == Io::Reset));
		CHECK(received[i].empty());
		if (access.count(addrs[i])) {
			auto &r = access[addrs[i]].back();
			INFO(r.line);
			CHECK(r.get("reason") == "idle_timeout");
			// It stopped taking the client's bytes: what it forwarded
			// is less than was sent (the rest sat in the kernel's
			// buffers, not in the proxy's).
			CHECK(r.num("client_bytes") < sent[i]);
			CHECK(r.num("upstream_bytes") == 0);
		}
	}
	CHECK(stuck.wait_accepted((size_t)n, T5));

	// Memory while stuck: each stuck connection holds at most one buffer
	// (the client direction's, parked on the full upstream) and a stack.
	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS " << rss0 << " -> peak " << peak << " -> " << rss1 << " KiB");
	CHECK(peak <= rss0 + rss_slack_kib(n * (64 + 64)));
	CHECK(rss1 <= rss0 + rss_slack_kib(n * 64));
	CHECK(serve_failures(healthy, 10, 9200) == 0);
	// The stuck listener serves too, to the point of its upstream taking a
	// connection: accepted, then closed at the idle timeout.
	Conn late = Conn::connect(proxy.port(), unique_source());
	REQUIRE(late.valid());
	CHECK(stuck.wait_accepted((size_t)n + 1, T5));
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}

TEST_CASE("fault: an upstream that answers one byte per second", "[fault]")
{
	TestUpstream slow(TestUpstream::Mode::Trickle, {}, milliseconds(1000));
	Echo echo;
	// frame_timeout applies to both directions of the relay (dir_wait_rest
	// waits on whichever source is inside a frame), so a reply that takes
	// longer than 2 s from its first byte is cut: reason frame_timeout.
	std::string ini = two_listeners("trickle.ini", slow.addr(), echo.addr(),
					"frame_timeout = 2s", "frame_timeout = 2s");
	Proxy proxy({"-c", ini, "--shards", "2", "--poller", "mixed"}, "fault");
	REQUIRE(proxy.wait_ready());
	uint16_t healthy = proxy.listener_port("healthy");
	REQUIRE(healthy != 0);
	warm_up(healthy, 8, 4);
	long rss0 = settled_rss_kib(proxy);

	Ledger ledger;
	VerifierOptions opt;
	opt.port = healthy;
	opt.record_latency = true;
	Verifiers clients = start_verifiers(ledger, 8, opt, 400);

	const int n = 20;
	std::vector<Conn> conns;
	std::vector<std::string> addrs;
	std::mt19937 rng(12);
	for (int i = 0; i < n; i++) {
		conns.push_back(Conn::connect(proxy.port(), unique_source()));
		REQUIRE(conns.back().valid());
		addrs.push_back(conns.back().local_addr());
		REQUIRE(conns.back().send_frame(seq_payload(2000 + i, 0, 100, rng)) == Io::Ok);
	}
	auto t0 = Clock::now();
	std::vector<Io> ended(n, Io::Timeout);
	std::vector<std::string> received(n);
	std::vector<long long> ended_ms(n, -1);
	for (int round = 0; round < 1000 && ms_since(t0) < 10000; round++) {
		int open = 0;
		for (int i = 0; i < n; i++) {
			if (ended[i] != Io::Timeout)
				continue;
			Io r = conns[i].wait_closed(milliseconds(1), &received[i]);
			if (r == Io::Timeout)
				open++;
			else {
				ended[i] = r;
				ended_ms[i] = ms_since(t0);
			}
		}
		if (open == 0)
			break;
		std::this_thread::sleep_for(milliseconds(20));
	}
	finish(clients);
	INFO(ledger.problems_text());
	CHECK(ledger.problem_count == 0);
	check_no_cuts(proxy, ledger);
	CHECK(ledger.frames > 0);
	NOTE("healthy round trips: p99 " << ledger.latency_quantile(0.99) << " us, max "
	     << ledger.latency_quantile(1.0));
	check_latency(ledger);

	std::map<std::string, std::vector<LogRecord>> access;
	CHECK(proxy.wait_access_all(addrs, T5, &access).empty());
	auto up = slow.conns();
	size_t trickled = 0;
	for (auto &c : up)
		trickled += c.trickled;
	CHECK(up.size() == (size_t)n);
	CHECK(trickled >= (size_t)n); // the first byte of every reply went out
	CHECK(slow.wait_all_ended(T5));
	for (int i = 0; i < n; i++) {
		INFO(addrs[i] << " ended " << io_name(ended[i]) << " at " << ended_ms[i] << " ms");
		// Cut, never given a byte of the reply that could not complete.
		CHECK((ended[i] == Io::Eof || ended[i] == Io::Reset));
		CHECK(received[i].empty());
		// 2 s after the reply's first byte (which left the upstream at
		// once), with room for a slow machine.
		CHECK(ended_ms[i] >= 1800);
		CHECK(ended_ms[i] <= 6000);
		if (access.count(addrs[i])) {
			auto &r = access[addrs[i]].back();
			INFO(r.line);
			CHECK(r.get("reason") == "frame_timeout");
			CHECK(r.get("client_frames") == "1");
			CHECK(r.get("upstream_frames") == "0");
		}
	}
	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS " << rss0 << " -> " << rss1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib(n * 64));
	CHECK(serve_failures(healthy, 10, 9300) == 0);
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}
