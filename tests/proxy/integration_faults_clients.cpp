// The fault suite (see faults.hpp): clients that are slow, send garbage
// or reset their connections.
#include "tests/proxy/faults.hpp"

using namespace itest;
using namespace itest::fault;

TEST_CASE("fault: slowloris clients are cut by the frame timeout", "[fault]")
{
	// Both listener modes: rpc clients are read by rpc_client.c.
	std::string mode = GENERATE(as<std::string>{}, "stream", "rpc");
	INFO("mode " << mode);
	Echo echo;
	Proxy proxy({"--shards", "2", "--poller", "mixed", "--server", echo.addr(),
		     "--frame-timeout", "1s", "--mode", mode});
	REQUIRE(proxy.wait_ready());
	warm_up(proxy.port(), 8, 5);
	long rss0 = settled_rss_kib(proxy);

	Ledger ledger;
	VerifierOptions opt;
	opt.port = proxy.port();
	opt.record_latency = true;
	opt.max_extra = 512;
	Verifiers clients = start_verifiers(ledger, 8, opt, 500);

	// 200 slowloris connections at all times for `run_ms`: each sends a
	// byte of a 20-byte frame every 500 ms; a cut one is replaced.
	struct Slow {
		Conn c;
		std::string addr, data;
		size_t at = 0;
		Clock::time_point first, next;
		long long ended_after = -1; // ms from its first byte
		Io how = Io::Timeout;
	};
	const int n = 200;
	const long long run_ms = sanitized() ? 5000 : 6000;
	std::vector<std::unique_ptr<Slow>> live, done;
	std::mt19937 rng(13);
	auto open_one = [&]() {
		std::unique_ptr<Slow> s(new Slow);
		s->c = Conn::connect(proxy.port(), unique_source());
		if (!s->c.valid())
			return false;
		s->addr = s->c.local_addr();
		s->data = frame(seq_payload(rng(), 0, 0, rng));
		s->first = s->next = Clock::now();
		live.push_back(std::move(s));
		return true;
	};
	auto t0 = Clock::now();
	int connect_failures = 0;
	for (int round = 0; round < 100000; round++) {
		bool opening = ms_since(t0) < run_ms;
		if (!opening && live.empty())
			break;
		if (ms_since(t0) > run_ms + 10000)
			break; // some never closed: reported below
		while (opening && (int)live.size() < n && connect_failures < 100)
			connect_failures += !open_one();
		auto now = Clock::now();
		for (auto &s : live) {
			if (s->at < s->data.size() && now >= s->next) {
				if (s->c.try_send(s->data.data() + s->at, 1) == 1)
					s->at++;
				s->next = now + milliseconds(500);
			}
			Io r = s->c.wait_closed(milliseconds(0));
			if (r != Io::Timeout) {
				s->how = r;
				s->ended_after = std::chrono::duration_cast<milliseconds>(
					Clock::now() - s->first).count();
			}
		}
		for (auto it = live.begin(); it != live.end();) {
			if ((*it)->how != Io::Timeout) {
				(*it)->c.close();
				done.push_back(std::move(*it));
				it = live.erase(it);
			} else {
				++it;
			}
		}
		std::this_thread::sleep_for(milliseconds(10));
	}
	finish(clients);

	INFO(ledger.problems_text());
	CHECK(ledger.problem_count == 0);
	check_no_cuts(proxy, ledger);
	CHECK(connect_failures == 0);
	CHECK(live.empty()); // every slowloris was cut
	// Served with normal latency meanwhile: a loop held up by 200 slow
	// connections would show in the tail.
	NOTE("normal clients: " << ledger.frames << " frames, p50 "
	     << ledger.latency_quantile(0.5) << " us, p99 " << ledger.latency_quantile(0.99)
	     << " us, max " << ledger.latency_quantile(1.0) << " us");
	CHECK(ledger.frames > 1000);
	check_latency(ledger);

	std::vector<std::string> addrs;
	std::string early_late;
	for (auto &s : done) {
		addrs.push_back(s->addr);
		// Cut 1 s after its first byte (the proxy reads it at once), with
		// room for a loaded machine; never before.
		if (s->ended_after < 950 || s->ended_after > 3000 ||
		    (s->how != Io::Eof && s->how != Io::Reset))
			early_late += s->addr + " " + io_name(s->how) + " after " +
				      std::to_string(s->ended_after) + " ms\n";
	}
	INFO("slowloris connections: " << done.size());
	INFO(early_late.substr(0, 2000));
	CHECK(done.size() >= (size_t)n * 2);
	CHECK(early_late.empty());
	std::map<std::string, std::vector<LogRecord>> access;
	CHECK(proxy.wait_access_all(addrs, milliseconds(10000), &access).empty());
	size_t wrong = 0;
	std::string first_wrong;
	for (auto &a : addrs)
		if (access.count(a) && access[a].back().get("reason") != "frame_timeout") {
			if (!wrong++)
				first_wrong = access[a].back().line;
		}
	INFO(first_wrong);
	CHECK(wrong == 0);

	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS " << rss0 << " -> " << rss1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib(n * 64 / 4));
	CHECK(serve_failures(proxy.port(), 20, 9400) == 0);
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}

TEST_CASE("fault: 5000 connections send garbage headers", "[fault]")
{
	std::string mode = GENERATE(as<std::string>{}, "stream", "rpc");
	INFO("mode " << mode);
	Echo echo;
	Proxy proxy({"--shards", "2", "--poller", "mixed", "--server", echo.addr(),
		     "--max-frame", "1KiB", "--frame-timeout", "2s", "--mode", mode});
	REQUIRE(proxy.wait_ready());
	warm_up(proxy.port(), 8, 6);

	// Three kinds, in turn: garbage then wait (the proxy closes:
	// oversize), garbage then FIN (oversize, or client_truncated when it
	// was less than a header), garbage then RST (oversize, or client_reset
	// when the proxy read after the RST). Garbage of 4 bytes or more
	// starts with a non-zero byte: a length of 16 MiB or more, over the
	// 1 KiB limit (random lengths under it have odds of 2^-22).
	enum Kind { HOLD, FIN, RST };
	struct Sent {
		std::string addr;
		Kind kind;
		size_t len;
		Io how = Io::Ok;
		std::string received;
	};
	const int batches = 10, per_batch = 500;
	std::vector<Sent> sent;
	std::mt19937 rng(14);
	long rss0 = 0;
	int connect_failures = 0;
	auto t0 = Clock::now();
	for (int b = 0; b < batches; b++) {
		std::vector<Conn> conns;
		size_t first = sent.size();
		for (int i = 0; i < per_batch; i++) {
			Conn c = Conn::connect(proxy.port(), unique_source());
			if (!c.valid()) {
				connect_failures++;
				continue;
			}
			Sent s;
			s.addr = c.local_addr();
			s.kind = (Kind)(i % 3);
			s.len = s.kind == FIN ? 1 + rng() % 64 : 4 + rng() % 61;
			std::string g = random_bytes(s.len, rng());
			if (s.len >= 4 && g[0] == 0)
				g[0] = (char)(1 + rng() % 255);
			c.send_all(g, milliseconds(1000));
			if (s.kind == FIN)
				c.shutdown_write();
			else if (s.kind == RST)
				c.abort();
			conns.push_back(std::move(c));
			sent.push_back(s);
		}
		// The held ones are closed by the proxy; the FIN ones too.
		for (size_t k = 0; k < conns.size(); k++) {
			Sent &s = sent[first + k];
			if (s.kind == RST)
				continue;
			s.how = conns[k].wait_closed(T5, &s.received);
		}
		conns.clear();
		if (b == 0) {
			// The first batch is the warm-up for memory: from here on,
			// per-connection state that is not given back adds up.
			rss0 = settled_rss_kib(proxy, milliseconds(1000));
		}
	}
	NOTE("10 batches of 500 took " << ms_since(t0) << " ms");
	CHECK(connect_failures == 0);

	std::string wrong;
	size_t nwrong = 0;
	for (auto &s : sent) {
		if (s.kind != RST && (s.how != Io::Eof && s.how != Io::Reset)) {
			if (nwrong++ < 10)
				wrong += s.addr + " kind " + std::to_string(s.kind) + " len " +
					 std::to_string(s.len) + " ended " + io_name(s.how) + "\n";
		} else if (!s.received.empty()) {
			if (nwrong++ < 10)
				wrong += s.addr + " got " + std::to_string(s.received.size()) +
					 " bytes back\n";
		}
	}
	INFO(wrong);
	CHECK(nwrong == 0);

	std::vector<std::string> addrs;
	for (auto &s : sent)
		addrs.push_back(s.addr);
	std::map<std::string, std::vector<LogRecord>> access;
	auto missing = proxy.wait_access_all(addrs, milliseconds(20000), &access);
	CHECK(missing.size() == 0);
	std::map<std::string, size_t> reasons;
	std::string bad;
	size_t nbad = 0;
	for (auto &s : sent) {
		if (!access.count(s.addr))
			continue;
		std::string why = access[s.addr].back().get("reason");
		reasons[why]++;
		bool ok = why == "oversize" ||
			  (s.kind == FIN && s.len < 4 && why == "client_truncated") ||
			  (s.kind == RST && why == "client_reset");
		if (s.kind == FIN && s.len < 4)
			ok = why == "client_truncated";
		if (!ok && nbad++ < 10)
			bad += access[s.addr].back().line + " (kind " + std::to_string(s.kind) +
			       ", " + std::to_string(s.len) + " bytes)\n";
	}
	std::string counts;
	for (auto &kv : reasons)
		counts += kv.first + "=" + std::to_string(kv.second) + " ";
	NOTE("reasons: " << counts);
	INFO(bad);
	CHECK(nbad == 0);
	CHECK(proxy.records("frame too large").size() >= sent.size() / 2);

	CHECK(serve_failures(proxy.port(), 20, 9500) == 0);
	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS after the first batch " << rss0 << " KiB, after all " << rss1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib());
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}

TEST_CASE("fault: clients reset their connections mid-frame", "[fault]")
{
	TestUpstream up(TestUpstream::Mode::EchoFrames);
	Proxy proxy({"--shards", "2", "--poller", "mixed", "--server", up.addr()});
	REQUIRE(proxy.wait_ready());
	warm_up(proxy.port(), 8, 8);
	long rss0 = settled_rss_kib(proxy);
	size_t warm_conns = up.accepted();

	// Each client: k (0..3) verified round trips, then half of the next
	// frame, then a RST (three in four) or a FIN. One cut frame in four is
	// 200 KiB, over the 64 KiB buffer: streamed, so the upstream may get a
	// prefix of it, and then must get nothing more.
	struct Client {
		std::string addr;
		uint64_t uid = 0;
		int whole = 0;
		bool rst = false, big = false;
		std::vector<std::string> payloads; // the whole ones, then the cut one
		std::string problem;
	};
	const int threads = 8, per_thread = 40;
	std::vector<Client> clients(threads * per_thread);
	std::vector<std::thread> t;
	for (int th = 0; th < threads; th++)
		t.emplace_back([&, th] {
			std::mt19937 rng(16 + th);
			for (int i = 0; i < per_thread; i++) {
				Client &c = clients[th * per_thread + i];
				Conn conn = Conn::connect(proxy.port(), unique_source());
				if (!conn.valid()) {
					c.problem = "connect failed";
					continue;
				}
				c.addr = conn.local_addr();
				c.uid = new_uid();
				c.whole = (int)(rng() % 4);
				c.rst = rng() % 4 != 0;
				c.big = rng() % 4 == 0;
				for (int k = 0; k <= c.whole; k++) {
					size_t extra = k == c.whole && c.big ? 200 * 1024 : rng() % 3000;
					c.payloads.push_back(seq_payload(c.uid, (uint64_t)k, extra, rng));
				}
				for (int k = 0; k < c.whole; k++) {
					if (!conn.roundtrip(c.payloads[k])) {
						c.problem = "round trip " + std::to_string(k) + " failed";
						break;
					}
				}
				std::string cut = frame(c.payloads.back());
				conn.send_all(cut.substr(0, cut.size() / 2), milliseconds(2000));
				std::this_thread::sleep_for(milliseconds(rng() % 30));
				if (c.rst)
					conn.abort();
				else
					conn.close();
			}
		});
	for (auto &x : t)
		x.join();

	std::string problems;
	std::vector<std::string> addrs;
	std::map<uint64_t, const Client *> by_uid;
	for (auto &c : clients) {
		if (!c.problem.empty())
			problems += c.addr + ": " + c.problem + "\n";
		addrs.push_back(c.addr);
		by_uid[c.uid] = &c;
	}
	INFO(problems);
	CHECK(problems.empty());

	// The access lines: a reset or a truncated frame, nothing else.
	std::map<std::string, std::vector<LogRecord>> access;
	CHECK(proxy.wait_access_all(addrs, milliseconds(10000), &access).empty());
	std::string bad;
	std::map<std::string, size_t> reasons;
	for (auto &c : clients) {
		if (!access.count(c.addr))
			continue;
		std::string why = access[c.addr].back().get("reason");
		reasons[why]++;
		bool ok = c.rst ? (why == "client_reset" || why == "client_truncated")
				: why == "client_truncated";
		if (!ok && bad.size() < 2000)
			bad += access[c.addr].back().line + (c.rst ? " (RST)\n" : " (FIN)\n");
	}
	std::string counts;
	for (auto &kv : reasons)
		counts += kv.first + "=" + std::to_string(kv.second) + " ";
	NOTE("reasons: " << counts);
	INFO(bad);
	CHECK(bad.empty());

	// The upstream: on every connection, whole frames exactly as the
	// client sent them, in order; of the cut frame nothing (it fitted the
	// buffer, so it was never forwarded) or, for a streamed one, a prefix
	// of it and then the end of the connection.
	REQUIRE(up.wait_accepted(warm_conns + clients.size(), T5));
	CHECK(up.wait_all_ended(milliseconds(10000)));
	auto got = up.conns();
	std::string wrong;
	size_t nwrong = 0;
	std::set<uint64_t> seen;
	auto note = [&](const std::string &what) {
		if (nwrong++ < 10)
			wrong += what + "\n";
	};
	for (size_t i = warm_conns; i < got.size(); i++) {
		const std::string &d = got[i].data;
		size_t at = 0;
		const Client *c = nullptr;
		int k = 0;
		while (d.size() - at >= 4 + 8) {
			uint32_t len = frame_len(d.data() + at);
			uint64_t uid = get_u64(d, at + 4);
			if (!c) {
				auto it = by_uid.find(uid);
				if (it == by_uid.end()) {
					note("upstream connection " + std::to_string(i) + ": unknown sender");
					break;
				}
				c = it->second;
				seen.insert(uid);
			}
			if (uid != c->uid || k > c->whole) {
				note("upstream connection " + std::to_string(i) + ": frames of two clients");
				break;
			}
			if (d.size() - at < 4 + (size_t)len)
				break; // a partial frame: checked below
			if (k == c->whole) {
				note(c->addr + ": the cut frame reached the upstream whole");
				break;
			}
			if (d.compare(at + 4, len, c->payloads[k]) != 0)
				note(c->addr + ": frame " + std::to_string(k) + " differs upstream");
			at += 4 + (size_t)len;
			k++;
		}
		if (c && k < c->whole)
			note(c->addr + ": " + std::to_string(k) + " of " + std::to_string(c->whole) +
			     " whole frames upstream");
		if (at < d.size()) {
			// A partial frame: only of a streamed (big) cut frame, and a
			// prefix of what the client sent.
			std::string cut = c ? frame(c->payloads.back()) : std::string();
			if (!c || !c->big || k != c->whole ||
			    cut.compare(0, d.size() - at, d, at, d.size() - at) != 0)
				note("upstream connection " + std::to_string(i) + ": " +
				     std::to_string(d.size() - at) + " bytes of a cut frame" +
				     (c ? " from " + c->addr + (c->big ? " (big)" : " (small)") : ""));
		}
	}
	for (auto &c : clients)
		if (c.whole > 0 && !seen.count(c.uid))
			note(c.addr + ": its frames never reached the upstream");
	INFO(wrong);
	CHECK(nwrong == 0);

	CHECK(serve_failures(proxy.port(), 20, 9700) == 0);
	long rss1 = settled_rss_kib(proxy);
	NOTE("shard RSS " << rss0 << " -> " << rss1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib(threads * 2 * 64));
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}
