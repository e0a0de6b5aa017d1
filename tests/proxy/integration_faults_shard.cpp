// The fault suite (see faults.hpp): shards killed under load.
#include "tests/proxy/faults.hpp"

using namespace itest;
using namespace itest::fault;

TEST_CASE("fault: a random shard is SIGKILLed every second under load", "[fault]")
{
	// rpc mode too, for a third of the time (the suite's budget).
	std::string mode = GENERATE(as<std::string>{}, "stream", "rpc");
	INFO("mode " << mode);
	const long all = env_long("FRAMEPROXY_FAULT_SECONDS", sanitized() ? 15 : 30);
	const long seconds = mode == "rpc" ? (all + 2) / 3 : all;
	const unsigned shards = 4;
	Echo echo;
	// Four shards on two cores: killing one at a time leaves others
	// serving while the supervisor's crash backoff (100 ms doubling to
	// 10 s for repeated crashes within 10 s) keeps a victim down.
	Proxy proxy({"--shards", std::to_string(shards), "--poller", "mixed",
		     "--server", echo.addr(), "--mode", mode});
	REQUIRE(proxy.wait_ready());
	warm_up(proxy.port(), 8, 1);
	long rss0 = settled_rss_kib(proxy);
	long sup0 = proxy.proc().rss_kib();

	Ledger ledger;
	VerifierOptions opt;
	opt.port = proxy.port();
	// A connection queued on a dead shard's socket waits for its
	// replacement: up to the 10 s backoff, plus start-up.
	opt.reply_timeout = milliseconds(20000);
	Verifiers clients = start_verifiers(ledger, 16, opt, 100);

	std::mt19937 rng(7);
	std::set<pid_t> killed;
	std::vector<long long> kill_ms;
	std::map<pid_t, unsigned> index_of;
	int skipped = 0;
	for (long s = 0; s < seconds; s++) {
		std::this_thread::sleep_for(milliseconds(1000));
		std::vector<std::pair<unsigned, pid_t>> live;
		for (auto &kv : proxy.shard_pids())
			if (!killed.count(kv.second) && ::kill(kv.second, 0) == 0)
				live.push_back(kv);
		if (live.empty()) {
			skipped++; // all in backoff: nothing to kill this second
			continue;
		}
		auto victim = live[rng() % live.size()];
		// The time is taken before the kill: its cuts can be seen by
		// the clients before this thread runs again on a busy machine.
		kill_ms.push_back(ledger.now_ms());
		REQUIRE(::kill(victim.second, SIGKILL) == 0);
		killed.insert(victim.second);
		index_of[victim.second] = victim.first;
	}
	uint64_t frames_during = ledger.frames;
	finish(clients);
	NOTE("kills " << killed.size() << ", seconds with every shard down " << skipped
	     << ", frames " << ledger.frames << " (" << frames_during << " during the kills), "
	     << "connections " << ledger.conns.size() << ", cuts " << ledger.cuts().size());
	INFO(ledger.problems_text());
	CHECK(ledger.problem_count == 0);
	CHECK(killed.size() >= (size_t)seconds / 2);
	CHECK(frames_during > 0);
	for (auto &v : clients)
		CHECK(v->frames > 0); // every client reconnected and went on

	// The supervisor logged every death and started a replacement for it:
	// per shard, one start more than its deaths, and the newest one alive.
	std::map<unsigned, size_t> deaths;
	for (pid_t pid : killed)
		deaths[index_of[pid]]++;
	bool replaced = wait_until([&] {
		auto pids = proxy.shard_pids();
		std::map<unsigned, size_t> starts;
		for (auto &r : proxy.records("shard started"))
			starts[(unsigned)atoi(r.get("shard").c_str())]++;
		for (unsigned i = 0; i < shards; i++)
			if (starts[i] != deaths[i] + 1 || !pids.count(i) ||
			    killed.count(pids[i]) || ::kill(pids[i], 0) != 0)
				return false;
		return true;
	}, milliseconds(20000));
	INFO(proxy.log_tail(20));
	REQUIRE(replaced);
	auto died = proxy.records("shard died");
	CHECK(died.size() == killed.size());
	for (pid_t pid : killed) {
		bool logged = false;
		for (auto &r : died)
			logged |= r.is("pid", std::to_string(pid)) && r.is("signal", "KILL") &&
				  r.is("shard", std::to_string(index_of[pid]));
		INFO("killed pid " << pid << " (shard " << index_of[pid] << ")");
		CHECK(logged);
	}

	// Cuts: a killed shard's connections die with it and can have no
	// access line (the process is gone), so each cut must have come right
	// after a kill; a cut that has an access line was the proxy's choice,
	// and nothing here gives it one.
	auto cuts = ledger.cuts();
	CHECK(!cuts.empty());
	auto access = proxy.access_by_client();
	size_t unexplained = 0;
	std::string why;
	for (auto &c : cuts) {
		if (access.count(c.client)) {
			unexplained++;
			why += c.client + ": cut with access line " + access[c.client].back().line + "\n";
			continue;
		}
		bool after_kill = false;
		for (long long k : kill_ms)
			after_kill |= c.ended_ms >= k && c.ended_ms <= k + 3000;
		if (!after_kill) {
			unexplained++;
			why += c.client + ": cut at " + std::to_string(c.ended_ms) +
			       " ms, not within 3 s of a kill\n";
		}
	}
	INFO(why);
	CHECK(unexplained == 0);

	// Every shard serves new clients (80 connections over 4 shards: one
	// left out by the kernel's hash has odds of 4 x 0.75^80, 4e-10).
	std::vector<std::string> fresh;
	CHECK(serve_failures(proxy.port(), 80, 9000, &fresh) == 0);
	std::map<std::string, std::vector<LogRecord>> fresh_access;
	CHECK(proxy.wait_access_all(fresh, T5, &fresh_access).empty());
	std::set<std::string> serving;
	for (auto &a : fresh)
		if (fresh_access.count(a))
			serving.insert(fresh_access[a].back().get("shard"));
	CHECK(serving.size() == shards);

	// Fresh shards: their memory is their start-up's. The supervisor's
	// own must not grow with the restarts it did (a leak per restart of a
	// few KiB would be hidden by this bound, one per restart of a
	// process's worth would not).
	long rss1 = settled_rss_kib(proxy);
	long sup1 = proxy.proc().rss_kib();
	NOTE("shard RSS " << rss0 << " -> " << rss1 << " KiB, supervisor " << sup0 << " -> "
	     << sup1 << " KiB");
	CHECK(rss1 <= rss0 + rss_slack_kib());
	CHECK(sup1 <= sup0 + 2048);
	{
		// Nothing went wrong inside the proxy on the way.
		std::string trouble = proxy_trouble(proxy, true);
		INFO(trouble);
		CHECK(trouble.empty());
		CHECK(proxy.proc().running());
	}
}
