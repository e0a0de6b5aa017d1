// Shards and supervisor (issue 5): the real frameproxy with several shard
// processes, on loopback. Each test starts its own proxy and upstream;
// shard processes are found through the supervisor's "shard started" lines.
#include "harness.hpp"

#include <sys/un.h>

using namespace itest;

namespace {

const milliseconds T5(5000);

size_t count_records(Proxy &proxy, const std::string &msg,
		     const std::string &key = "", const std::string &value = "")
{
	size_t n = 0;
	for (auto &r : proxy.records(msg))
		if (key.empty() || r.is(key, value))
			n++;
	return n;
}

// A client that keeps one connection busy with verified request/reply
// frames until told to stop; every mismatch or cut is recorded.
struct Talker {
	std::thread thread;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> frames{0};
	std::string error;            // empty while everything matched

	void start(uint16_t port, uint32_t seed, bool pipelined)
	{
		thread = std::thread([this, port, seed, pipelined] { run(port, seed, pipelined); });
	}

	void run(uint16_t port, uint32_t seed, bool pipelined)
	{
		Conn c = Conn::connect(port);
		if (!c.valid()) {
			error = "connect failed";
			return;
		}
		std::mt19937 rng(seed);
		for (int i = 0; i < 1000000 && !stop; i++) {
			int depth = pipelined ? 4 : 1;
			std::vector<std::string> sent;
			for (int k = 0; k < depth; k++) {
				sent.push_back(random_bytes(rng() % 2048, rng()));
				if (c.send_frame(sent.back()) != Io::Ok) {
					error = "send failed at frame " + std::to_string(frames);
					return;
				}
			}
			for (auto &want : sent) {
				std::string got;
				Io r = c.read_frame(got, T5);
				if (r != Io::Ok) {
					error = std::string("read: ") + io_name(r) +
						" after " + std::to_string(frames) + " frames";
					return;
				}
				if (got != want) {
					error = "mismatch after " + std::to_string(frames);
					return;
				}
				frames++;
			}
		}
	}

	void finish()
	{
		stop = true;
		if (thread.joinable())
			thread.join();
	}
};

// Opens short connections one after another (connect, one frame, verify,
// close) until stopped: the accept path during restarts and reloads.
struct Churner {
	std::thread thread;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> done{0};
	std::string error;

	void start(uint16_t port)
	{
		thread = std::thread([this, port] {
			for (int i = 0; i < 100000 && !stop; i++) {
				Conn c = Conn::connect(port);
				if (!c.valid()) {
					error = "connect failed after " + std::to_string(done);
					return;
				}
				if (!c.roundtrip(random_bytes(100, (uint32_t)i), T5)) {
					error = "roundtrip failed after " + std::to_string(done);
					return;
				}
				done++;
			}
		});
	}

	void finish()
	{
		stop = true;
		if (thread.joinable())
			thread.join();
	}
};

std::string write_config(const std::string &name, const std::string &echo_addr,
			 const std::string &extra = "")
{
	std::string path = tmp().file(name);
	write_file(path, "[frameproxy]\nshards = 2\ndrain_timeout = 10s\n" + extra +
		   "\n[listener default]\nlisten = 127.0.0.1:0\nserver = " +
		   echo_addr + "\n");
	return path;
}

} // namespace

TEST_CASE("shards: each shard has its own process and poller; mixed alternates",
	  "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--poller", "mixed", "--admin", "127.0.0.1:0",
		     "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	auto started = proxy.records("shard started");
	REQUIRE(started.size() == 2);
	std::map<std::string, std::string> poller;
	for (auto &r : started)
		poller[r.get("shard")] = r.get("poller");
	CHECK(poller["0"] == "epoll");
	CHECK(poller["1"] == "uring");
	pid_t p0 = proxy.shard_pid(0), p1 = proxy.shard_pid(1);
	CHECK(p0 > 0);
	CHECK(p1 > 0);
	CHECK(p0 != p1);
	CHECK(p0 != proxy.proc().pid());

	// 40 connections from different ports: the kernel spreads them over
	// both shards' sockets (all on one shard: odds 2^-39).
	for (int i = 0; i < 40; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip(random_bytes(64, (uint32_t)i)));
	}
	REQUIRE(proxy.wait_access_count(40, T5));
	std::set<std::string> shards;
	for (auto &r : proxy.records("access"))
		shards.insert(r.get("shard"));
	CHECK(shards == std::set<std::string>{"0", "1"});

	// The supervisor reports each shard's real backend.
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	std::this_thread::sleep_for(milliseconds(300)); // one publish period
	std::string stats = http_body(http_get(admin, "/stats"));
	INFO(stats);
	CHECK(stats.find("\"poller\":\"epoll\"") != std::string::npos);
	CHECK(stats.find("\"poller\":\"uring\"") != std::string::npos);
}

TEST_CASE("shards: a killed shard is replaced on its socket and its accept queue is served",
	  "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	pid_t victim = proxy.shard_pid(0);
	REQUIRE(victim > 0);
	REQUIRE(::kill(victim, SIGSTOP) == 0);

	// Connections that land on the stopped shard complete the handshake
	// in the kernel and wait in its accept queue.
	const int n = 30;
	std::vector<Conn> conns;
	std::vector<std::string> payloads;
	for (int i = 0; i < n; i++) {
		conns.push_back(Conn::connect(proxy.port()));
		REQUIRE(conns.back().valid());
		payloads.push_back(random_bytes(200, (uint32_t)(1000 + i)));
		REQUIRE(conns.back().send_frame(payloads.back()) == Io::Ok);
	}
	std::vector<bool> answered(n, false);
	std::this_thread::sleep_for(milliseconds(300));
	for (int i = 0; i < n; i++) {
		std::string got;
		if (conns[i].read_frame(got, milliseconds(20)) == Io::Ok) {
			CHECK(got == payloads[i]);
			answered[i] = true;
		}
	}
	size_t queued = (size_t)std::count(answered.begin(), answered.end(), false);
	INFO("queued on the stopped shard: " << queued);
	REQUIRE(queued > 0);
	REQUIRE(queued < (size_t)n);

	REQUIRE(::kill(victim, SIGKILL) == 0);
	LogRecord died, again;
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "shard died") && r.is("pid", std::to_string(victim));
	}, T5, &died));
	CHECK(died.get("signal") == "KILL");
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "shard started") && r.is("shard", "0") &&
		       !r.is("pid", std::to_string(victim));
	}, T5, &again));
	// Replaced within 100 ms of the supervisor learning of the death.
	CHECK(log_ms(again) - log_ms(died) <= 100);

	for (int i = 0; i < n; i++) {
		if (answered[i])
			continue;
		std::string got;
		INFO("connection " << i);
		REQUIRE(conns[i].read_frame(got, T5) == Io::Ok);
		CHECK(got == payloads[i]);
	}
	// The other shard never noticed.
	CHECK(count_records(proxy, "shard died") == 1);
}

TEST_CASE("shards: a crash under load cuts only the dead shard's connections",
	  "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	std::vector<std::unique_ptr<Talker>> talkers;
	for (int i = 0; i < 12; i++) {
		talkers.emplace_back(new Talker);
		talkers.back()->start(proxy.port(), (uint32_t)(7 + i), i % 2 == 0);
	}
	std::this_thread::sleep_for(milliseconds(700));
	pid_t victim = proxy.shard_pid(1);
	REQUIRE(victim > 0);
	REQUIRE(::kill(victim, SIGKILL) == 0);
	std::this_thread::sleep_for(milliseconds(700));
	for (auto &t : talkers)
		t->finish();

	size_t cut = 0, whole = 0;
	for (auto &t : talkers) {
		INFO("talker: " << t->error << " frames=" << t->frames);
		CHECK(t->error.find("mismatch") == std::string::npos);
		CHECK(t->frames > 0);
		(t->error.empty() ? whole : cut)++;
	}
	CHECK(cut > 0);    // those on the killed shard
	CHECK(whole > 0);  // those on the other one went on
	// The replacement serves new clients.
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "shard started") && r.is("shard", "1") &&
		       !r.is("pid", std::to_string(victim));
	}, T5));
	for (int i = 0; i < 20; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip(random_bytes(300, (uint32_t)(50 + i))));
	}
}

TEST_CASE("shards: repeated crashes of one shard back off and are logged", "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "1", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	for (int round = 0; round < 3; round++) {
		pid_t victim = proxy.shard_pid(0);
		REQUIRE(victim > 0);
		std::set<std::string> seen;
		for (auto &r : proxy.records("shard started"))
			seen.insert(r.get("pid"));
		REQUIRE(::kill(victim, SIGKILL) == 0);
		REQUIRE(proxy.wait_record([&](const LogRecord &r) {
			return r.is("msg", "shard died") &&
			       r.is("pid", std::to_string(victim));
		}, T5));
		REQUIRE(proxy.wait_record([&](const LogRecord &r) {
			return r.is("msg", "shard started") && !seen.count(r.get("pid"));
		}, T5));
	}
	auto deaths = proxy.records("shard died");
	REQUIRE(deaths.size() == 3);
	CHECK(deaths[0].get("respawn_in") == "0ms");
	CHECK(deaths[1].get("respawn_in") == "100ms");
	CHECK(deaths[2].get("respawn_in") == "200ms");
	CHECK(deaths[2].get("crashes") == "3");
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	CHECK(c.roundtrip("after the crashes"));
}

TEST_CASE("shards: SIGTERM drains every shard with frames in flight", "[shard]")
{
	Echo echo({"--delay", "300ms"});
	Proxy proxy({"--shards", "2", "--server", echo.addr(), "--drain-timeout", "5s"});
	REQUIRE(proxy.wait_ready());
	const int n = 10;
	std::vector<Conn> conns;
	std::vector<std::string> payloads;
	for (int i = 0; i < n; i++) {
		conns.push_back(Conn::connect(proxy.port()));
		REQUIRE(conns.back().valid());
		payloads.push_back(random_bytes(1000, (uint32_t)(300 + i)));
		REQUIRE(conns.back().send_frame(payloads.back()) == Io::Ok);
	}
	std::this_thread::sleep_for(milliseconds(100));
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	for (int i = 0; i < n; i++) {
		std::string got;
		INFO("connection " << i);
		REQUIRE(conns[i].read_frame(got, T5) == Io::Ok);
		CHECK(got == payloads[i]);
		CHECK(conns[i].wait_closed(T5) == Io::Eof);
	}
	REQUIRE(proxy.proc().wait_exit(milliseconds(7000)));
	CHECK(ms_since(t0) < 5000);
	CHECK(run_to_exit(proxy.proc(), milliseconds(100)) == 0);
	CHECK(count_records(proxy, "shard exited") == 2);
	CHECK(count_records(proxy, "stopped") >= 1);
}

TEST_CASE("shards: shards orphaned by a SIGKILLed supervisor drain and exit",
	  "[shard]")
{
	Echo echo({"--delay", "300ms"});
	Proxy proxy({"--shards", "2", "--server", echo.addr(), "--drain-timeout", "3s"});
	REQUIRE(proxy.wait_ready());
	auto pids = proxy.shard_pids();
	REQUIRE(pids.size() == 2);
	const int n = 10;
	std::vector<Conn> conns;
	std::vector<std::string> payloads;
	for (int i = 0; i < n; i++) {
		conns.push_back(Conn::connect(proxy.port()));
		REQUIRE(conns.back().valid());
		payloads.push_back(random_bytes(500, (uint32_t)(900 + i)));
		REQUIRE(conns.back().send_frame(payloads.back()) == Io::Ok);
	}
	std::this_thread::sleep_for(milliseconds(100));
	// No SIGTERM, no cleanup: the shards learn of it from PR_SET_PDEATHSIG.
	auto t0 = Clock::now();
	proxy.proc().signal(SIGKILL);
	REQUIRE(proxy.proc().wait_exit(T5));
	for (int i = 0; i < n; i++) {
		std::string got;
		INFO("connection " << i);
		REQUIRE(conns[i].read_frame(got, T5) == Io::Ok);
		CHECK(got == payloads[i]);
		CHECK(conns[i].wait_closed(T5) == Io::Eof);
	}
	for (auto &kv : pids) {
		INFO("shard " << kv.first << " pid " << kv.second);
		auto deadline = Clock::now() + milliseconds(5000);
		while (!Process::ended_of(kv.second) && Clock::now() < deadline)
			std::this_thread::sleep_for(milliseconds(20));
		CHECK(Process::ended_of(kv.second));
	}
	CHECK(ms_since(t0) < 5000);
	// Nobody holds the listening sockets any more.
	Conn late = Conn::connect(proxy.port(), "", milliseconds(1000));
	CHECK(!late.valid());
}

TEST_CASE("shards: reloads under load drop no connection and cut no frame", "[shard]")
{
	Echo echo;
	std::string path = write_config("reload.ini", echo.addr());
	Proxy proxy({"-c", path, "--shards", "2"});
	REQUIRE(proxy.wait_ready());
	std::vector<std::unique_ptr<Talker>> talkers;
	for (int i = 0; i < 6; i++) {
		talkers.emplace_back(new Talker);
		talkers.back()->start(proxy.port(), (uint32_t)(70 + i), i % 2 == 1);
	}
	Churner churn;
	churn.start(proxy.port());

	const int reloads = 3;
	for (int i = 1; i <= reloads; i++) {
		std::this_thread::sleep_for(milliseconds(600));
		// A real change each time: the shards must pick it up.
		write_config("reload.ini", echo.addr(),
			     "log_level = info\n# reload " + std::to_string(i));
		proxy.proc().signal(SIGHUP);
		REQUIRE(proxy.wait_record([&](const LogRecord &r) {
			return r.is("msg", "reload complete") &&
			       r.is("generation", std::to_string(i));
		}, milliseconds(10000)));
	}
	std::this_thread::sleep_for(milliseconds(600));
	churn.finish();
	for (auto &t : talkers)
		t->finish();
	INFO(proxy.log_tail(40));
	CHECK(churn.error == "");
	CHECK(churn.done > 0);
	for (auto &t : talkers) {
		CHECK(t->error == "");
		CHECK(t->frames > 0);
	}
	// Old shards retired (never died), new ones took over.
	CHECK(count_records(proxy, "shard died") == 0);
	CHECK(count_records(proxy, "shard started") == 2 + 2 * reloads);
	for (auto &r : proxy.records("access"))
		CHECK(r.get("reason") != "shutdown");
}

TEST_CASE("shards: an invalid configuration on reload is reported and changes nothing",
	  "[shard]")
{
	Echo echo;
	std::string path = write_config("bad-reload.ini", echo.addr());
	Proxy proxy({"-c", path, "--shards", "2"});
	REQUIRE(proxy.wait_ready());
	pid_t before = proxy.shard_pid(0);

	write_file(path, "[frameproxy]\nshards = 2\n\n[listener default]\n"
		   "listen = 127.0.0.1:0\nserver = " + echo.addr() +
		   "\nmax_frame = 16XB\n");
	proxy.proc().signal(SIGHUP);
	LogRecord failed;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload failed: keeping the running configuration");
	}, T5, &failed));
	CHECK(failed.get("reason").find("bad-reload.ini:7") != std::string::npos);
	CHECK(failed.get("reason").find("max_frame") != std::string::npos);

	// Sockets cannot change on reload: said so, nothing replaced.
	write_file(path, "[frameproxy]\nshards = 2\n\n[listener default]\n"
		   "listen = 127.0.0.1:1\nserver = " + echo.addr() + "\n");
	proxy.proc().signal(SIGHUP);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload failed: keeping the running configuration") &&
		       r.get("reason").find("listen") != std::string::npos;
	}, T5));

	CHECK(proxy.shard_pid(0) == before);
	CHECK(count_records(proxy, "shard started") == 2);
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	CHECK(c.roundtrip("still serving"));
}

TEST_CASE("shards: the admin endpoint serves metrics and stats, nothing else",
	  "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--admin", "127.0.0.1:0", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	for (int i = 0; i < 10; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip(random_bytes(100, (uint32_t)i)));
	}
	REQUIRE(proxy.wait_access_count(10, T5));
	std::this_thread::sleep_for(milliseconds(300)); // one publish period

	std::string metrics = http_get(admin, "/metrics");
	INFO(metrics.substr(0, 3000));
	REQUIRE(metrics.compare(0, 15, "HTTP/1.1 200 OK") == 0);
	CHECK(metrics.find("text/plain; version=0.0.4") != std::string::npos);
	std::string body = http_body(metrics);
	// Ten connections, each one frame each way, summed over both shards.
	uint64_t accepted = metric_sum(body, "frameproxy_connections_accepted_total");
	uint64_t frames_in = metric_sum(body, "frameproxy_frames_total",
					"client_to_upstream");
	CHECK(accepted == 10);
	CHECK(frames_in == 10);
	CHECK(body.find("shard=\"0\"") != std::string::npos);
	CHECK(body.find("shard=\"1\"") != std::string::npos);
	CHECK(body.find("upstream=\"" + echo.addr() + "\"") != std::string::npos);
	CHECK(body.find("reason=\"client_eof\"") != std::string::npos);

	if (access("/usr/bin/promtool", X_OK) == 0) {
		std::string file = tmp().file("metrics.txt");
		write_file(file, body);
		CHECK(system(("/usr/bin/promtool check metrics < " + file +
			      " >/dev/null 2>&1").c_str()) == 0);
	}

	std::string stats = http_get(admin, "/stats");
	CHECK(stats.find("application/json") != std::string::npos);
	CHECK(http_body(stats).find("\"shards\":[") != std::string::npos);
	CHECK(http_get(admin, "/").compare(0, 12, "HTTP/1.1 404") == 0);
	CHECK(http_get(admin, "/metrics", "POST").compare(0, 12, "HTTP/1.1 405") == 0);
}

TEST_CASE("shards: readiness, reload and stop reach systemd's notify socket", "[shard]")
{
	std::string path = tmp().file("notify.sock");
	unlink(path.c_str());
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	sockaddr_un sa = {};
	sa.sun_family = AF_UNIX;
	REQUIRE(path.size() < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path.c_str(), path.size());
	REQUIRE(bind(fd, (sockaddr *)&sa, sizeof(sa)) == 0);
	auto receive = [&](milliseconds timeout) {
		pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, (int)timeout.count()) != 1)
			return std::string();
		char buf[512];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		return n > 0 ? std::string(buf, (size_t)n) : std::string();
	};

	Echo echo;
	setenv("NOTIFY_SOCKET", path.c_str(), 1);
	Proxy proxy({"--shards", "2", "--server", echo.addr()});
	unsetenv("NOTIFY_SOCKET");
	CHECK(receive(T5).find("READY=1") != std::string::npos);
	proxy.proc().signal(SIGHUP);
	CHECK(receive(T5).find("RELOADING=1") != std::string::npos);
	CHECK(receive(milliseconds(10000)).find("READY=1") != std::string::npos);
	proxy.proc().signal(SIGTERM);
	CHECK(receive(T5).find("STOPPING=1") != std::string::npos);
	CHECK(proxy.proc().wait_exit(milliseconds(10000)));
	close(fd);
}

TEST_CASE("shards: --user drops privileges after binding", "[shard]")
{
	Echo echo;
	if (getuid() != 0) {
		// Not root: dropping must fail loudly, not be ignored.
		Process p({binary("FRAMEPROXY"), "--shards", "1", "--user", "nobody",
			   "--listen", "127.0.0.1:0", "--server", echo.addr()},
			  "frameproxy");
		CHECK(run_to_exit(p, T5) == 1);
		CHECK(p.err().find("cannot drop privileges") != std::string::npos);
		return;
	}
	Proxy proxy({"--shards", "1", "--user", "nobody", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	auto uid_of = [](pid_t pid) {
		std::ifstream in("/proc/" + std::to_string(pid) + "/status");
		std::string line;
		while (std::getline(in, line))
			if (line.compare(0, 4, "Uid:") == 0)
				return line;
		return std::string();
	};
	std::string shard = uid_of(proxy.shard_pid(0));
	std::string supervisor = uid_of(proxy.proc().pid());
	INFO(shard << " / " << supervisor);
	CHECK(shard.find("\t65534\t65534\t65534\t65534") != std::string::npos);
	CHECK(supervisor.find("\t65534\t65534\t65534\t65534") != std::string::npos);
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	CHECK(c.roundtrip("as nobody"));
}

TEST_CASE("shards: start-up errors are one clear line", "[shard]")
{
	Echo echo;
	// The echo's port is taken (without SO_REUSEPORT from the same user
	// the bind fails): the line names the address.
	Process p({binary("FRAMEPROXY"), "--shards", "2", "--listen", echo.addr(),
		   "--server", echo.addr()}, "frameproxy");
	CHECK(run_to_exit(p, T5) == 1);
	std::string err = p.err();
	INFO(err);
	CHECK(err.find("cannot listen") != std::string::npos);
	CHECK(err.find("address=" + echo.addr()) != std::string::npos);
	CHECK(err.find("Address already in use") != std::string::npos);
	CHECK(err.find("shard started") == std::string::npos);
}

TEST_CASE("shards: steer = cpu sends a connection to the shard pinned on its CPU",
	  "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--pin", "--steer", "cpu", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	// On loopback the SYN is received on the CPU the client sends from, so
	// a client pinned on CPU c must always reach shard c.
	std::map<std::string, std::string> shard_of_client;
	int failures = 0;
	for (int cpu = 0; cpu < 2; cpu++) {
		// Catch2's assertions are not for other threads: count failures.
		std::thread client([&, cpu] {
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			if (sched_setaffinity(0, sizeof(one), &one) != 0) {
				failures++;
				return;
			}
			for (int i = 0; i < 10; i++) {
				Conn c = Conn::connect(proxy.port());
				if (!c.valid() || !c.roundtrip(random_bytes(50, (uint32_t)i))) {
					failures++;
					continue;
				}
				shard_of_client[c.local_addr()] = std::to_string(cpu);
			}
		});
		client.join();
	}
	REQUIRE(failures == 0);
	REQUIRE(proxy.wait_access_count(20, T5));
	for (auto &r : proxy.records("access")) {
		INFO(r.line);
		CHECK(r.get("shard") == shard_of_client[r.get("client")]);
	}
	// Each shard runs on its CPU.
	for (int i = 0; i < 2; i++) {
		cpu_set_t set;
		CPU_ZERO(&set);
		REQUIRE(sched_getaffinity(proxy.shard_pid((unsigned)i), sizeof(set), &set) == 0);
		CHECK(CPU_COUNT(&set) == 1);
		CHECK(CPU_ISSET(i, &set));
	}
}

TEST_CASE("shards: a second SIGTERM ends a drain at once", "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "2", "--server", echo.addr(), "--drain-timeout", "30s"});
	REQUIRE(proxy.wait_ready());
	// Half a frame: the drain would wait for it until the 30 s timeout.
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	REQUIRE(c.send_all(frame(random_bytes(100, 5)).substr(0, 50)) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));
	proxy.proc().signal(SIGTERM);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "stopping");
	}, T5));
	std::this_thread::sleep_for(milliseconds(200));
	CHECK(proxy.proc().running());
	auto t0 = Clock::now();
	proxy.proc().signal(SIGTERM);
	REQUIRE(proxy.proc().wait_exit(milliseconds(3000)));
	CHECK(ms_since(t0) < 2000);
	CHECK(run_to_exit(proxy.proc(), milliseconds(100)) == 1);
	CHECK(count_records(proxy, "second signal: exiting now") >= 1);
	// Nothing of the shards is left behind.
	pid_t shard = proxy.shard_pid(0);
	std::this_thread::sleep_for(milliseconds(100));
	CHECK((::kill(shard, 0) != 0 && errno == ESRCH));
}

TEST_CASE("shards: the open-file limit is raised to the hard limit", "[shard]")
{
	Echo echo;
	// Started with a soft limit of 256 (util-linux's prlimit, through the
	// harness's wrapper hook), so raising it is visible.
	REQUIRE(access("/usr/bin/prlimit", X_OK) == 0);
	std::string saved = env_or("FRAMEPROXY_WRAPPER", "");
	setenv("FRAMEPROXY_WRAPPER", ("/usr/bin/prlimit --nofile=256: -- " + saved).c_str(), 1);
	Proxy proxy({"--shards", "1", "--server", echo.addr()});
	setenv("FRAMEPROXY_WRAPPER", saved.c_str(), 1);
	REQUIRE(proxy.wait_ready());
	std::ifstream in("/proc/" + std::to_string(proxy.shard_pid(0)) + "/limits");
	std::string line, found;
	while (std::getline(in, line))
		if (line.compare(0, 14, "Max open files") == 0)
			found = line;
	INFO(found);
	std::istringstream words(found.substr(14));
	std::string soft, hard;
	words >> soft >> hard;
	CHECK(!soft.empty());
	CHECK(soft != "256");
	CHECK(soft == hard);
}

TEST_CASE("shards: frame counters move while connections stay open", "[shard]")
{
	Echo echo;
	Proxy proxy({"--shards", "1", "--admin", "127.0.0.1:0", "--server", echo.addr()});
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	for (int i = 0; i < 7; i++)
		REQUIRE(c.roundtrip(random_bytes(10, (uint32_t)i)));
	auto frames_in = [&] {  // one shard, one listener: one sample
		return metric_sum(http_body(http_get(admin, "/metrics")),
				  "frameproxy_frames_total", "client_to_upstream");
	};
	// Published every 100 ms; the connection is still open.
	auto t0 = Clock::now();
	unsigned long long seen = 0;
	while (ms_since(t0) < 3000 && (seen = frames_in()) < 7)
		std::this_thread::sleep_for(milliseconds(50));
	CHECK(seen == 7);
	CHECK(proxy.records("access").empty());
}

// Figures of a case on stderr (the suite's log), and as INFO.
#define NOTE_CHECKS(x)                                                        \
	do {                                                                  \
		std::ostringstream note_;                                     \
		note_ << x;                                                   \
		fprintf(stderr, "[shard] %s\n", note_.str().c_str());        \
	} while (0)

// Active health with several shards: each server is checked by one shard
// (shard_health_owner: server 0 of the first listener is shard 0's), the
// others take its results from the shared board, and check on their own
// only while the owner publishes nothing.
TEST_CASE("shards: one shard health-checks a server for all, the others fall back when it stops",
	  "[shard][health]")
{
	TestUpstream target(TestUpstream::Mode::Hold);
	Proxy proxy({"--shards", "2", "--server", target.addr(),
		     "--health-interval", "100ms", "--connect-timeout", "200ms"});
	REQUIRE(proxy.wait_ready());
	auto pids = proxy.shard_pids();
	REQUIRE(pids.size() == 2);
	std::this_thread::sleep_for(milliseconds(500));

	// Each check is one connection; 2 s of 100 ms intervals is 20 checks
	// from one shard, 40 if both checked.
	size_t n0 = target.accepted();
	std::this_thread::sleep_for(milliseconds(2000));
	size_t shared = target.accepted() - n0;
	NOTE_CHECKS("both shards running: " << shared << " checks in 2 s");
	CHECK(shared >= 12);
	CHECK(shared <= 28);

	// The owner stops: after its last result ages out (2 intervals + 2
	// connect timeouts), shard 1 checks on its own.
	REQUIRE(::kill(pids[0], SIGSTOP) == 0);
	std::this_thread::sleep_for(milliseconds(1000));
	size_t n1 = target.accepted();
	std::this_thread::sleep_for(milliseconds(2000));
	size_t fallback = target.accepted() - n1;
	::kill(pids[0], SIGCONT);
	NOTE_CHECKS("shard 0 stopped: " << fallback << " checks in 2 s");
	CHECK(fallback >= 12);
	CHECK(fallback <= 28);
}

TEST_CASE("shards: a server the owner finds down is down in every shard",
	  "[shard][health]")
{
	RefusingPort dead;
	Echo live;
	Proxy proxy({"--shards", "2", "--server", dead.addr(), "--server", live.addr(),
		     "--health-interval", "100ms", "--connect-timeout", "200ms",
		     "--retries", "0", "--fail-threshold", "1000"});
	REQUIRE(proxy.wait_ready());
	// Shard 0 owns server 0 (the dead one): it counts the falls and says
	// why; shard 1 takes the verdict from the board.
	LogRecord own, adopted;
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream down") && r.is("upstream", dead.addr()) &&
		       r.is("shard", "0");
	}, T5, &own));
	CHECK(own.get("error") == "Connection refused");
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream down") && r.is("upstream", dead.addr()) &&
		       r.is("shard", "1");
	}, T5, &adopted));
	CHECK(adopted.get("checked_by") == "shard0");
	// Clients of either shard only go to the live server.
	for (int i = 0; i < 10; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip("where to " + std::to_string(i)));
	}
	CHECK(proxy.records("upstream connect failed").empty());
}

TEST_CASE("shards: after a reload the new shards share health checks again",
	  "[shard][health]")
{
	TestUpstream target(TestUpstream::Mode::Hold);
	std::string path = write_config("health-reload.ini", target.addr());
	Proxy proxy({"-c", path, "--health-interval", "100ms", "--connect-timeout",
		     "200ms"});
	REQUIRE(proxy.wait_ready());
	auto count_checks = [&](const char *when) {
		size_t n0 = target.accepted();
		std::this_thread::sleep_for(milliseconds(2000));
		size_t n = target.accepted() - n0;
		NOTE_CHECKS(when << ": " << n << " checks in 2 s");
		return n;
	};
	std::this_thread::sleep_for(milliseconds(500));
	size_t before = count_checks("generation 0");
	CHECK(before >= 12);
	CHECK(before <= 28);

	// A new generation: results of the old one no longer count, and the
	// new owner publishes its own.
	write_config("health-reload.ini", target.addr(), "# generation 1");
	proxy.proc().signal(SIGHUP);
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "reload complete") && r.is("generation", "1");
	}, milliseconds(10000)));
	std::this_thread::sleep_for(milliseconds(1000));
	size_t after = count_checks("generation 1");
	CHECK(after >= 12);
	CHECK(after <= 28);
	INFO(proxy.log_tail(20));
	CHECK(proxy.records("upstream down").empty());
}
