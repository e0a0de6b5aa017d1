// Integration tests (issue 13): listeners with mode = rpc, through the
// real frameproxy, frameecho and framebench. Every request is balanced on
// its own over a pool of shared upstream connections; each client gets
// its replies in request order.
#include <atomic>
#include "tests/proxy/harness.hpp"

#include <deque>

using namespace itest;

namespace {

const milliseconds T5(5000);
const milliseconds T10(10000);

uint64_t metric(uint16_t admin, const std::string &family,
		const std::string &having = "")
{
	return metric_sum(http_body(http_get(admin, "/metrics")), family, having);
}

// Waits until metric(...) == want; false on timeout.
bool wait_metric(uint16_t admin, const std::string &family, uint64_t want,
		 milliseconds timeout, const std::string &having = "")
{
	auto deadline = Clock::now() + timeout;
	while (Clock::now() < deadline) {
		if (metric(admin, family, having) == want)
			return true;
		std::this_thread::sleep_for(milliseconds(20));
	}
	return false;
}

// Established TCP connections whose local port is `port` (the server side
// of connections to it), from /proc/net/tcp.
size_t established_to(uint16_t port)
{
	size_t n = 0;
	for (const char *path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
		std::ifstream in(path);
		std::string line;
		std::getline(in, line);
		while (std::getline(in, line)) {
			std::istringstream ss(line);
			std::string sl, local, remote, state;
			ss >> sl >> local >> remote >> state;
			auto colon = local.rfind(':');
			if (colon == std::string::npos || state != "01")
				continue;
			if (strtoul(local.c_str() + colon + 1, nullptr, 16) == port)
				n++;
		}
	}
	return n;
}

bool wait_established(const std::vector<uint16_t> &ports, size_t want,
		      milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	while (Clock::now() < deadline) {
		size_t n = 0;
		for (auto p : ports)
			n += established_to(p);
		if (n == want)
			return true;
		std::this_thread::sleep_for(milliseconds(20));
	}
	return false;
}

// frameproxy's arguments for an rpc listener over `servers`, then `extra`.
std::vector<std::string> rpc_args(const std::vector<std::string> &servers,
				  std::vector<std::string> extra = {})
{
	std::vector<std::string> args = {"--mode", "rpc"};
	for (auto &a : servers) {
		args.push_back("--server");
		args.push_back(a);
	}
	args.insert(args.end(), extra.begin(), extra.end());
	return args;
}

// The payload of request `seq` of client `seed`: its 8-byte number, then
// bytes of its own, so every reply tells which request it belongs to.
std::string request_payload(uint32_t seed, uint64_t seq, size_t size)
{
	std::string p(8, '\0');
	for (int i = 0; i < 8; i++)
		p[i] = (char)(seq >> (56 - 8 * i));
	uint32_t s = seed * 2654435761u + (uint32_t)seq;
	for (size_t i = 8; i < size; i++) {
		s = s * 1103515245u + 12345u;
		p.push_back((char)(s >> 16));
	}
	return p;
}

// One client: `count` requests with `depth` in flight, each reply checked
// byte for byte against its request (an echo upstream), in order.
struct Pipeliner {
	uint32_t seed = 1;
	size_t count = 100;
	size_t depth = 1;
	size_t size_min = 8, size_max = 200;
	std::string src;          // source address, "" = any
	// results
	size_t sent = 0, replied = 0, mismatches = 0;
	Io end = Io::Ok;          // how reading stopped (Ok: all replied)
	std::string local;
	// Counted up once, at this client's first reply (shared by a test's
	// clients, read by the test's thread while they run).
	std::atomic<size_t> *first_replies = nullptr;

	size_t size_of(uint64_t seq) const
	{
		return size_min + (size_t)((seq * 7919u + seed) %
					   (size_max - size_min + 1));
	}

	void run(uint16_t port)
	{
		Conn c = Conn::connect(port, src);
		if (!c.valid()) {
			end = Io::Error;
			return;
		}
		local = c.local_addr();
		std::deque<std::string> expect;
		while (replied < count) {
			while (sent < count && sent - replied < depth) {
				std::string p = request_payload(seed, sent, size_of(sent));
				if (c.send_frame(p) != Io::Ok) {
					end = Io::Error;
					break;
				}
				expect.push_back(p);
				sent++;
			}
			std::string got;
			Io r = c.read_frame(got, T10);
			if (r != Io::Ok) {
				end = r;
				return;
			}
			if (expect.empty() || got != expect.front())
				mismatches++;
			if (!expect.empty())
				expect.pop_front();
			if (++replied == 1 && first_replies)
				first_replies->fetch_add(1);
		}
	}
};

// An upstream that answers every request with its own bytes but the
// 4-byte tag at offset 0 inverted: a reply that matches no request, on
// every connection, while accepting connections as a healthy server does.
class BogusTagUpstream {
public:
	BogusTagUpstream()
	{
		sockaddr_in sa{};
		socklen_t len = sizeof(sa);
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(fd_ >= 0);
		REQUIRE(bind(fd_, (sockaddr *)&sa, sizeof(sa)) == 0);
		REQUIRE(listen(fd_, 64) == 0);
		REQUIRE(getsockname(fd_, (sockaddr *)&sa, &len) == 0);
		port_ = ntohs(sa.sin_port);
		thread_ = std::thread([this] { run(); });
	}
	~BogusTagUpstream()
	{
		stop_ = true;
		thread_.join();
		::close(fd_);
	}
	BogusTagUpstream(const BogusTagUpstream &) = delete;
	BogusTagUpstream &operator=(const BogusTagUpstream &) = delete;
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
	size_t accepted() const { return accepted_; }

private:
	// One thread: accepts, and answers every whole frame on every
	// connection, polling so that the destructor's stop is seen.
	void run()
	{
		struct Peer {
			int fd;
			std::string in;
		};
		std::vector<Peer> peers;
		while (!stop_) {
			std::vector<pollfd> pfds = {{fd_, POLLIN, 0}};
			for (auto &p : peers)
				pfds.push_back({p.fd, POLLIN, 0});
			if (poll(pfds.data(), pfds.size(), 50) <= 0)
				continue;
			if (pfds[0].revents & POLLIN) {
				int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
				if (c >= 0) {
					peers.push_back({c, ""});
					accepted_++;
				}
			}
			for (size_t i = 1; i < pfds.size(); i++) {
				if (!pfds[i].revents)
					continue;
				Peer &p = peers[i - 1];
				char buf[4096];
				ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
				if (n <= 0) {
					::close(p.fd);
					p.fd = -1;
					continue;
				}
				p.in.append(buf, (size_t)n);
				answer(p.fd, p.in);
			}
			std::vector<Peer> open;
			for (auto &p : peers)
				if (p.fd >= 0)
					open.push_back(p);
			peers.swap(open);
		}
		for (auto &p : peers)
			::close(p.fd);
	}
	static void answer(int fd, std::string &in)
	{
		while (in.size() >= 4) {
			uint32_t len = (uint8_t)in[0] << 24 | (uint8_t)in[1] << 16 |
				       (uint8_t)in[2] << 8 | (uint8_t)in[3];
			if (in.size() < 4 + (size_t)len)
				return;
			std::string reply = in.substr(0, 4 + len);
			in.erase(0, 4 + len);
			for (size_t i = 4; i < 8 && i < reply.size(); i++)
				reply[i] = (char)~reply[i];
			(void)!send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
		}
	}

	int fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<size_t> accepted_{0};
	std::thread thread_;
};

} // namespace

namespace {

// 2 shards x 3 frameecho x pool_size 3, 1000 clients sending `frames`
// requests in all through framebench, which checks every reply byte for
// byte and in order.
void many_clients(long frames)
{
	Echo e1, e2, e3;
	Proxy proxy(rpc_args({e1.addr(), e2.addr(), e3.addr()},
			     {"--shards", "2", "--pool-size", "3"}));
	REQUIRE(proxy.wait_ready());
	std::vector<uint16_t> ports = {e1.port(), e2.port(), e3.port()};
	INFO(proxy.log_tail());
	REQUIRE(wait_established(ports, 2 * 3 * 3, T5));

	Process bench({binary("FRAMEBENCH"), "--target", proxy.addr(), "-c", "1000",
		       "-d", "2", "--frames", std::to_string(frames), "--size",
		       "0-600", "--json", "--no-progress"}, "framebench");
	REQUIRE(run_to_exit(bench, milliseconds(60000)) == 0);
	std::string json = bench.out();
	INFO(json);
	CHECK(json_number(json, "mismatches") == 0);
	CHECK(json_number(json, "lost") == 0);
	CHECK(json_number(json, "frames") == frames);
	// The clients came and went; the pool is what it was.
	CHECK(wait_established(ports, 2 * 3 * 3, T5));
	REQUIRE(proxy.wait_access_count(1000, T10));
	for (auto &r : proxy.records("access")) {
		CHECK(r.get("upstream") == "-");
		CHECK(r.get("reason") == "client_eof");
		CHECK(r.get("client_frames") == r.get("replied"));
	}
}

} // namespace

TEST_CASE("rpc: shards x servers x pool_size upstream connections carry "
	  "many clients, every reply verified in order", "[rpc]")
{
	many_clients(env_long("FRAMEPROXY_RPC_FRAMES", 200000));
}

// The million requests from 1000 clients: in the volume suite
// (proxy_volume_*), whose length does not hide the others' results.
TEST_CASE("rpc: a million requests from 1000 clients", "[rpc][volume]")
{
	many_clients(env_long("FRAMEPROXY_RPC_VOLUME_REQUESTS", 1000000));
}

TEST_CASE("rpc: one client's requests are spread over the servers by weight",
	  "[rpc]")
{
	std::vector<std::unique_ptr<TestUpstream>> ups;
	for (int i = 0; i < 3; i++)
		ups.emplace_back(new TestUpstream(TestUpstream::Mode::EchoFrames));
	Proxy proxy(rpc_args({ups[0]->addr() + " weight=1", ups[1]->addr() + " weight=2",
			      ups[2]->addr() + " weight=3"},
			     {"--pool-size", "1"}));
	REQUIRE(proxy.wait_ready());
	for (auto &u : ups)
		REQUIRE(u->wait_accepted(1, T5));
	Pipeliner p;
	p.count = 6000;
	p.depth = 16;
	p.run(proxy.port());
	CHECK(p.mismatches == 0);
	REQUIRE(p.replied == p.count);
	size_t total = 0;
	std::vector<size_t> got;
	for (auto &u : ups) {
		size_t n = 0;
		for (auto &c : u->conns()) {
			for (size_t at = 0; at + 4 <= c.data.size();) {
				uint32_t len = (uint8_t)c.data[at] << 24 | (uint8_t)c.data[at + 1] << 16 |
					       (uint8_t)c.data[at + 2] << 8 | (uint8_t)c.data[at + 3];
				at += 4 + len;
				n++;
			}
		}
		got.push_back(n);
		total += n;
	}
	REQUIRE(total == p.count);
	for (size_t i = 0; i < 3; i++) {
		double share = (double)got[i] / (double)total;
		double want = (double)(i + 1) / 6.0;
		INFO("server " << i << " took " << got[i]);
		CHECK(share > want * 0.9);
		CHECK(share < want * 1.1);
	}
	// One connection per server: the client never had one of its own.
	for (auto &u : ups)
		CHECK(u->accepted() == 1);
}

TEST_CASE("rpc: an out-of-order upstream is matched by rpc_tag; without it the "
	  "checker sees mismatches", "[rpc]")
{
	// frameecho --reorder: each reply held a random 0..5 ms, so replies
	// leave a connection in another order than their requests came.
	Echo s1({"--reorder", "5ms", "--seed", "3"}), s2({"--reorder", "5ms", "--seed", "4"});
	SECTION("rpc_tag") {
		Proxy proxy(rpc_args({s1.addr(), s2.addr()},
				     {"--rpc-tag", "0:4", "--pool-size", "1"}));
		REQUIRE(proxy.wait_ready());
		std::vector<Pipeliner> ps(8);
		std::vector<std::thread> ts;
		for (size_t i = 0; i < ps.size(); i++) {
			ps[i].seed = (uint32_t)(i + 1);
			ps[i].count = 1000;
			ps[i].depth = 16;
			ts.emplace_back([&, i] { ps[i].run(proxy.port()); });
		}
		for (auto &t : ts)
			t.join();
		for (auto &p : ps) {
			CHECK(p.mismatches == 0);
			CHECK(p.replied == p.count);
		}
	}
	SECTION("FIFO matching") {
		// The same traffic: the proxy takes each reply for the oldest
		// request, and the checker sees other requests' bytes.
		Proxy proxy(rpc_args({s1.addr(), s2.addr()}, {"--pool-size", "1"}));
		REQUIRE(proxy.wait_ready());
		Pipeliner p;
		p.count = 1000;
		p.depth = 16;
		p.run(proxy.port());
		CHECK(p.mismatches > 0);
	}
}

TEST_CASE("rpc: an upstream killed with requests in flight", "[rpc]")
{
	bool retry = GENERATE(true, false);
	INFO("retry " << retry);
	std::vector<std::unique_ptr<Echo>> echoes;
	for (int i = 0; i < 3; i++)
		echoes.emplace_back(new Echo({"--delay", "50ms"}));
	// hash on the client address: each client's requests go to one
	// server, so only some clients are on the one that dies.
	Proxy proxy(rpc_args({echoes[0]->addr(), echoes[1]->addr(), echoes[2]->addr()},
			     {"--balance", "hash", "--retry", retry ? "on" : "off",
			      "--pool-size", "2"}));
	REQUIRE(proxy.wait_ready());
	std::vector<Pipeliner> ps(24);
	std::vector<std::thread> ts;
	std::atomic<size_t> first_replies{0};
	for (size_t i = 0; i < ps.size(); i++) {
		ps[i].seed = (uint32_t)(i + 1);
		ps[i].count = 150;
		ps[i].depth = 8;
		ps[i].src = "127.0.0." + std::to_string(10 + i);
		ps[i].first_replies = &first_replies;
		ts.emplace_back([&, i] { ps[i].run(proxy.port()); });
	}
	// Every client is mid-stream (each takes >= 150 / 8 x 50 ms) when the
	// server dies: a client that had not started yet on a loaded machine
	// would only ever see the two live servers.
	bool all_started = wait_until([&] { return first_replies.load() == ps.size(); }, T10);
	echoes[1]->proc().signal(SIGKILL);
	REQUIRE(all_started);
	for (auto &t : ts)
		t.join();
	REQUIRE(proxy.wait_access_count(ps.size(), T10));
	auto access = proxy.access_by_client();
	size_t lost_clients = 0;
	for (auto &p : ps) {
		INFO("client " << p.local << " replied " << p.replied << " end " << p.end);
		CHECK(p.mismatches == 0);
		REQUIRE(access.count(p.local) == 1);
		auto &r = access[p.local][0];
		if (retry) {
			CHECK(p.replied == p.count);
			CHECK(r.get("reason") == "client_eof");
			continue;
		}
		if (p.replied == p.count) {
			CHECK(r.get("reason") == "client_eof");
		} else {
			lost_clients++;
			CHECK(r.get("reason") == "upstream_lost");
			CHECK(p.end == Io::Eof);
			CHECK(r.num("replied") == p.replied);
		}
	}
	if (!retry) {
		CHECK(lost_clients > 0);
		CHECK(lost_clients < ps.size());
	}
}

TEST_CASE("rpc: max_inflight stops reading a client whose upstream does not "
	  "read", "[rpc]")
{
	TestUpstream up(TestUpstream::Mode::NoRead);
	Proxy proxy(rpc_args({up.addr()}, {"--max-inflight", "8", "--pool-size", "1",
					   "--admin", "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	REQUIRE(up.wait_accepted(1, T5));
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string req = frame(std::string(1000, 'x'));
	for (int i = 0; i < 100; i++)
		REQUIRE(c.send_all(req) == Io::Ok);
	INFO(proxy.log_tail());
	CHECK(wait_metric(admin, "frameproxy_rpc_requests_total", 8, T5));
	std::this_thread::sleep_for(milliseconds(300));
	CHECK(metric(admin, "frameproxy_rpc_requests_total") == 8);
	CHECK(metric(admin, "frameproxy_rpc_inflight") == 8);
}

TEST_CASE("rpc: request_timeout closes a client whose reply does not come",
	  "[rpc]")
{
	TestUpstream up(TestUpstream::Mode::Hold);
	Proxy proxy(rpc_args({up.addr()}, {"--request-timeout", "300ms"}));
	REQUIRE(proxy.wait_ready());
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	auto t0 = Clock::now();
	REQUIRE(c.send_frame("anybody there?") == Io::Ok);
	CHECK(c.wait_closed(T5) == Io::Eof);
	CHECK(ms_since(t0) >= 250);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.get("reason") == "request_timeout");
	CHECK(r.num("dropped") == 1);
}

TEST_CASE("rpc: a client that leaves with requests in flight leaves the pool "
	  "as it was", "[rpc]")
{
	Echo echo({"--delay", "200ms"});
	Proxy proxy(rpc_args({echo.addr()}, {"--pool-size", "2", "--admin",
					     "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(wait_established({echo.port()}, 2, T5));
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		for (int i = 0; i < 5; i++)
			REQUIRE(c.send_frame("request " + std::to_string(i)) == Io::Ok);
		CHECK(wait_metric(admin, "frameproxy_rpc_requests_total", 5, T5));
		c.abort();
	}
	CHECK(wait_metric(admin, "frameproxy_rpc_replies_dropped_total", 5, T5));
	// Read, matched and timed all the same: at least the echo's 200 ms.
	CHECK(metric(admin, "frameproxy_rpc_replies_received_total") == 5);
	CHECK(metric(admin, "frameproxy_rpc_request_duration_seconds_count") == 5);
	std::string body = http_body(http_get(admin, "/metrics"));
	CHECK(body.find("le=\"0.1\"") != std::string::npos);
	CHECK(metric_sum(body, "frameproxy_rpc_request_duration_seconds_bucket",
			 "le=\"0.1\"") == 0);
	CHECK(metric_sum(body, "frameproxy_rpc_request_duration_seconds_bucket",
			 "le=\"+Inf\"") == 5);
	CHECK(established_to(echo.port()) == 2);
	CHECK(metric(admin, "frameproxy_upstream_connects_total") == 2);
	Conn c = Conn::connect(proxy.port());
	CHECK(c.roundtrip("still here"));
}

TEST_CASE("rpc: with every server down a request is refused at once", "[rpc]")
{
	RefusingPort a, b;
	Proxy proxy(rpc_args({a.addr(), b.addr()}));
	REQUIRE(proxy.wait_ready());
	// Let the first connects fail.
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "upstream connect failed");
	}, T5));
	std::this_thread::sleep_for(milliseconds(100));
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	auto t0 = Clock::now();
	REQUIRE(c.send_frame("hello") == Io::Ok);
	CHECK(c.wait_closed(T5) == Io::Eof);
	CHECK(ms_since(t0) < 1000);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.get("reason") == "no_upstream");
	CHECK(r.num("lost") == 1);
}

TEST_CASE("rpc: SIGTERM answers the requests in flight, then closes", "[rpc]")
{
	Echo echo({"--delay", "300ms"});
	Proxy proxy(rpc_args({echo.addr()}));
	REQUIRE(proxy.wait_ready());
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	for (int i = 0; i < 3; i++)
		REQUIRE(c.send_frame("drain " + std::to_string(i)) == Io::Ok);
	std::this_thread::sleep_for(milliseconds(100));
	proxy.proc().signal(SIGTERM);
	for (int i = 0; i < 3; i++) {
		std::string got;
		REQUIRE(c.read_frame(got, T5) == Io::Ok);
		CHECK(got == "drain " + std::to_string(i));
	}
	CHECK(c.wait_closed(T5) == Io::Eof);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.get("reason") == "drain");
	CHECK(r.num("replied") == 3);
	CHECK(proxy.proc().wait_exit(T10));
}

TEST_CASE("rpc: a reload under load loses no request", "[rpc]")
{
	Echo e1, e2;
	std::string path = tmp().file("rpc-reload.ini");
	auto write = [&](int n) {
		write_file(path, "[frameproxy]\nshards = 2\ndrain_timeout = 10s\n# " +
				 std::to_string(n) +
				 "\n[listener default]\nlisten = 127.0.0.1:0\nmode = rpc\n"
				 "server = " + e1.addr() + "\nserver = " + e2.addr() + "\n");
	};
	write(0);
	Proxy proxy({"-c", path, "--shards", "2"});
	REQUIRE(proxy.wait_ready());
	Process bench({binary("FRAMEBENCH"), "--target", proxy.addr(), "-c", "20",
		       "-d", "8", "--duration", "2s", "--json", "--no-progress"},
		      "framebench");
	std::this_thread::sleep_for(milliseconds(500));
	write(1);
	proxy.proc().signal(SIGHUP);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload complete");
	}, T10));
	REQUIRE(run_to_exit(bench, milliseconds(30000)) == 0);
	std::string json = bench.out();
	INFO(json);
	CHECK(json_number(json, "mismatches") == 0);
	CHECK(json_number(json, "lost") == 0);
	CHECK(json_number(json, "errors") == 0);
	CHECK(json_number(json, "frames") > 0);
}

TEST_CASE("rpc: a frame too short for rpc_tag closes its client after the "
	  "replies before it", "[rpc]")
{
	Echo echo;
	Proxy proxy(rpc_args({echo.addr()}, {"--rpc-tag", "2:4"}));
	REQUIRE(proxy.wait_ready());
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	REQUIRE(c.send_frame("long enough") == Io::Ok);
	REQUIRE(c.send_frame("short") == Io::Ok);
	std::string got;
	REQUIRE(c.read_frame(got, T5) == Io::Ok);
	CHECK(got == "long enough");
	CHECK(c.wait_closed(T5) == Io::Eof);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.get("reason") == "bad_request");
	CHECK(r.num("replied") == 1);
}

TEST_CASE("rpc: an oversize request closes its client after the replies "
	  "before it", "[rpc]")
{
	Echo echo;
	Proxy proxy(rpc_args({echo.addr()}, {"--max-frame", "100"}));
	REQUIRE(proxy.wait_ready());
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	REQUIRE(c.send_frame("fine") == Io::Ok);
	REQUIRE(c.send_all(be32(1000)) == Io::Ok);
	std::string got;
	REQUIRE(c.read_frame(got, T5) == Io::Ok);
	CHECK(got == "fine");
	CHECK(c.wait_closed(T5) == Io::Eof);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.get("reason") == "oversize");
}

TEST_CASE("rpc: frames larger than the buffer go through whole", "[rpc]")
{
	Echo echo;
	Proxy proxy(rpc_args({echo.addr()}, {"--buffer", "4KiB"}));
	REQUIRE(proxy.wait_ready());
	Pipeliner p;
	p.count = 200;
	p.depth = 4;
	p.size_min = 8;
	p.size_max = 50000;
	p.run(proxy.port());
	CHECK(p.mismatches == 0);
	CHECK(p.replied == p.count);
}

TEST_CASE("rpc: rpc keys are refused in stream mode and checked in rpc mode",
	  "[rpc]")
{
	struct Case {
		std::vector<std::string> args;
		std::string want;
	};
	std::vector<Case> cases = {
		{{"--pool-size", "2"}, "--pool-size: only for mode = rpc"},
		{{"--mode", "rpc", "--pool-size", "0"}, "--pool-size: '0' must be between 1 and 64"},
		{{"--mode", "rpc", "--max-inflight", "0"}, "--max-inflight: '0' must be between"},
		{{"--mode", "rpc", "--max-held", "lots"}, "--max-held: invalid size"},
		{{"--mode", "rpc", "--upstream-max-inflight", "0"},
		 "--upstream-max-inflight: '0' must be between"},
		{{"--mode", "rpc", "--request-timeout", "5"}, "--request-timeout: invalid duration"},
		{{"--mode", "rpc", "--retry", "maybe"}, "--retry: invalid retry"},
		{{"--mode", "rpc", "--rpc-tag", "4:9"}, "--rpc-tag: invalid field"},
		{{"--mode", "rpc", "--hash-key", "0:4"}, "hash_key needs balance = hash"},
		{{"--mode", "rpc", "--rpc-tag", "100:4", "--max-frame", "50"},
		 "rpc_tag ends at byte 104, past max_frame"},
		{{"--mode", "sideways"}, "--mode: invalid mode"},
	};
	for (auto &k : cases) {
		std::vector<std::string> argv = {binary("FRAMEPROXY"), "--listen",
						 "127.0.0.1:0", "--server", "127.0.0.1:1"};
		argv.insert(argv.end(), k.args.begin(), k.args.end());
		Process p(argv, "frameproxy");
		INFO(p.command_line());
		REQUIRE(run_to_exit(p, T5) == 1);
		INFO(p.err());
		CHECK(p.err().find(k.want) != std::string::npos);
	}
	std::string path = tmp().file("rpc-stream.ini");
	write_file(path, "[listener a]\nlisten = 127.0.0.1:0\nserver = 127.0.0.1:1\n"
			 "retry = on\n");
	Process p({binary("FRAMEPROXY"), "-c", path}, "frameproxy");
	REQUIRE(run_to_exit(p, T5) == 1);
	CHECK(p.err().find(path + ":4: key 'retry': only for mode = rpc") !=
	      std::string::npos);
}

TEST_CASE("rpc: a reply that matches no request closes its connection, which "
	  "is opened again", "[rpc]")
{
	// Sends a frame nobody asked for on every connection it accepts.
	TestUpstream up(TestUpstream::Mode::SendThenShutWr, {"unsolicited"});
	Proxy proxy(rpc_args({up.addr()}, {"--pool-size", "1", "--admin", "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	LogRecord r;
	REQUIRE(proxy.wait_record([](const LogRecord &l) {
		return l.is("msg", "rpc reply matches no request");
	}, T5, &r));
	CHECK(r.get("upstream") == up.addr());
	CHECK(r.num("len") == 4 + std::string("unsolicited").size());
	REQUIRE(proxy.wait_record([](const LogRecord &l) {
		return l.is("msg", "rpc upstream connection lost") &&
		       l.is("why", "unmatched_reply");
	}, T5));
	CHECK(up.wait_accepted(2, T5)); // reconnected after the backoff
	CHECK(metric(admin, "frameproxy_rpc_unmatched_replies_total") >= 1);
}

TEST_CASE("rpc: idle_timeout closes a quiet client, never one that waits "
	  "for a reply", "[rpc]")
{
	TestUpstream hold(TestUpstream::Mode::Hold);
	Echo echo;
	SECTION("quiet") {
		Proxy proxy(rpc_args({echo.addr()}, {"--idle-timeout", "300ms"}));
		REQUIRE(proxy.wait_ready());
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		std::string local = c.local_addr();
		REQUIRE(c.roundtrip("one"));
		auto t0 = Clock::now();
		CHECK(c.wait_closed(T5) == Io::Eof);
		CHECK(ms_since(t0) >= 250);
		LogRecord r;
		REQUIRE(proxy.wait_access(local, T5, &r));
		CHECK(r.get("reason") == "idle_timeout");
		CHECK(r.num("replied") == 1);
	}
	SECTION("waiting") {
		Proxy proxy(rpc_args({hold.addr()}, {"--idle-timeout", "200ms",
						     "--request-timeout", "0"}));
		REQUIRE(proxy.wait_ready());
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_frame("no reply will come") == Io::Ok);
		CHECK(c.wait_closed(milliseconds(1000)) == Io::Timeout);
	}
}

TEST_CASE("rpc: hash_key sends every request with the same key to the same "
	  "server", "[rpc]")
{
	std::vector<std::unique_ptr<TestUpstream>> ups;
	for (int i = 0; i < 3; i++)
		ups.emplace_back(new TestUpstream(TestUpstream::Mode::EchoFrames));
	Proxy proxy(rpc_args({ups[0]->addr(), ups[1]->addr(), ups[2]->addr()},
			     {"--balance", "hash", "--hash-key", "2:16", "--pool-size", "1"}));
	REQUIRE(proxy.wait_ready());
	for (auto &u : ups)
		REQUIRE(u->wait_accepted(1, T5));
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	const int keys = 40, rounds = 5;
	for (int r = 0; r < rounds; r++)
		for (int k = 0; k < keys; k++) {
			// 16 bytes, the first 10 the same for every key: only
			// a key hashed past its 8th byte spreads over servers.
			char key[17];
			snprintf(key, sizeof(key), "tenant-aaak%05d", k);
			// Bytes before and after the key differ every time.
			std::string p = std::to_string(r % 10) + std::to_string(k % 10) +
					key + random_bytes(10, (uint32_t)(r * keys + k));
			REQUIRE(c.roundtrip(p));
		}
	std::map<std::string, std::set<size_t>> servers_of;
	size_t total = 0;
	for (size_t i = 0; i < ups.size(); i++)
		for (auto &conn : ups[i]->conns())
			for (size_t at = 0; at + 4 <= conn.data.size();) {
				uint32_t len = (uint8_t)conn.data[at] << 24 | (uint8_t)conn.data[at + 1] << 16 |
					       (uint8_t)conn.data[at + 2] << 8 | (uint8_t)conn.data[at + 3];
				servers_of[conn.data.substr(at + 4 + 2, 16)].insert(i);
				at += 4 + len;
				total++;
			}
	CHECK(total == (size_t)(keys * rounds));
	CHECK(servers_of.size() == (size_t)keys);
	std::set<size_t> used;
	for (auto &kv : servers_of) {
		INFO("key " << kv.first);
		CHECK(kv.second.size() == 1);
		used.insert(*kv.second.begin());
	}
	CHECK(used.size() == 3);
}

TEST_CASE("rpc: with retry on, a request lost while every other connection "
	  "is full waits for room and is answered", "[rpc]")
{
	// Two servers, one connection each with room for 2: with 16 requests
	// in flight both connections are full and the rest wait. The server
	// killed takes 2 written requests with it; the survivor is full when
	// they come back, so they wait with the others and go to it.
	std::vector<std::unique_ptr<Echo>> echoes;
	for (int i = 0; i < 2; i++)
		echoes.emplace_back(new Echo({"--delay", "10ms"}));
	Proxy proxy(rpc_args({echoes[0]->addr(), echoes[1]->addr()},
			     {"--retry", "on", "--pool-size", "1",
			      "--upstream-max-inflight", "2", "--admin", "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	REQUIRE(wait_established({echoes[0]->port(), echoes[1]->port()}, 2, T5));
	std::vector<Pipeliner> ps(4);
	std::vector<std::thread> ts;
	std::atomic<size_t> first_replies{0};
	for (size_t i = 0; i < ps.size(); i++) {
		ps[i].seed = (uint32_t)(i + 1);
		ps[i].count = 150;
		ps[i].depth = 4;
		ps[i].first_replies = &first_replies;
		ts.emplace_back([&, i] { ps[i].run(proxy.port()); });
	}
	bool all_started = wait_until([&] { return first_replies.load() == ps.size(); }, T10);
	echoes[0]->proc().signal(SIGKILL);
	REQUIRE(all_started);
	for (auto &t : ts)
		t.join();
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_access_count(ps.size(), T10));
	auto access = proxy.access_by_client();
	for (auto &p : ps) {
		INFO("client " << p.local << " replied " << p.replied << " end " << p.end);
		CHECK(p.mismatches == 0);
		CHECK(p.replied == p.count);
		REQUIRE(access.count(p.local) == 1);
		CHECK(access[p.local][0].get("reason") == "client_eof");
		CHECK(access[p.local][0].num("lost") == 0);
	}
	// The lost requests were sent again, not failed.
	CHECK(metric(admin, "frameproxy_rpc_retries_total") >= 1);
	CHECK(metric(admin, "frameproxy_rpc_requests_lost_total") == 0);
}

TEST_CASE("rpc: a server that answers every request with a tag nobody sent "
	  "is ejected after fail_threshold, though it accepts every reconnect",
	  "[rpc]")
{
	BogusTagUpstream bad;
	Echo good;
	Proxy proxy(rpc_args({bad.addr(), good.addr()},
			     {"--rpc-tag", "0:4", "--retry", "on", "--pool-size", "1",
			      "--fail-threshold", "3", "--fail-timeout", "30s",
			      "--admin", "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	std::string bad_label = "upstream=\"" + bad.addr() + "\"";
	// One request at a time: each that goes to the bad server kills its
	// connection and is answered by the good one (retry on); the bad
	// server's connection comes back after each backoff.
	uint64_t seq = 0;
	auto deadline = Clock::now() + T10;
	while (metric(admin, "frameproxy_upstream_ejections_total", bad_label) == 0 &&
	       Clock::now() < deadline)
		REQUIRE(c.roundtrip(request_payload(1, seq++, 32)));
	INFO(proxy.log_tail());
	REQUIRE(metric(admin, "frameproxy_upstream_ejections_total", bad_label) == 1);
	// Reconnected in between: the streak was not reset by a connect.
	CHECK(bad.accepted() >= 3);
	CHECK(metric(admin, "frameproxy_rpc_unmatched_replies_total", bad_label) == 3);
	auto outs = proxy.records("upstream out");
	REQUIRE(outs.size() == 1);
	CHECK(outs[0].get("upstream") == bad.addr());
	CHECK(outs[0].get("reason") == "protocol_errors");
	// Out: the good server answers everything, and the bad one sees no
	// further request.
	uint64_t unmatched = metric(admin, "frameproxy_rpc_unmatched_replies_total");
	for (int i = 0; i < 50; i++)
		REQUIRE(c.roundtrip(request_payload(1, seq++, 32)));
	CHECK(metric(admin, "frameproxy_rpc_unmatched_replies_total") == unmatched);
	CHECK(metric(admin, "frameproxy_rpc_requests_lost_total") == 0);
}

TEST_CASE("rpc: a lost request waiting for room is still bounded by "
	  "request_timeout, and fails when no server is left", "[rpc]")
{
	// Two servers that hold every reply, one connection each with room
	// for one request: the request on the server killed comes back to
	// find the other full, and waits.
	bool timeout = GENERATE(true, false);
	INFO("timeout " << timeout);
	std::vector<std::unique_ptr<Echo>> echoes;
	for (int i = 0; i < 2; i++)
		echoes.emplace_back(new Echo({"--delay", "60s"}));
	Proxy proxy(rpc_args({echoes[0]->addr(), echoes[1]->addr()},
			     {"--retry", "on", "--pool-size", "1",
			      "--upstream-max-inflight", "1", "--request-timeout",
			      timeout ? "800ms" : "20s", "--admin", "127.0.0.1:0"}));
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);
	REQUIRE(wait_established({echoes[0]->port(), echoes[1]->port()}, 2, T5));
	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	std::string local = c.local_addr();
	auto t0 = Clock::now();
	REQUIRE(c.send_frame("first") == Io::Ok);
	REQUIRE(c.send_frame("second") == Io::Ok);
	REQUIRE(wait_metric(admin, "frameproxy_rpc_inflight", 2, T5));
	echoes[0]->proc().signal(SIGKILL);
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_record([](const LogRecord &l) {
		return l.is("msg", "rpc upstream connection lost");
	}, T5));
	// Not failed at the death: it waits.
	CHECK(c.wait_closed(milliseconds(300)) == Io::Timeout);
	if (!timeout) {
		// The last server dies too: nothing left to wait for.
		echoes[1]->proc().signal(SIGKILL);
	}
	CHECK(c.wait_closed(T5) == Io::Eof);
	LogRecord r;
	REQUIRE(proxy.wait_access(local, T5, &r));
	CHECK(r.num("replied") == 0);
	if (timeout) {
		CHECK(ms_since(t0) >= 750);
		CHECK(r.get("reason") == "request_timeout");
	} else {
		CHECK(ms_since(t0) < 5000);
		CHECK(r.get("reason") == "upstream_lost");
		CHECK(r.num("lost") >= 1);
	}
}

TEST_CASE("rpc: maxconn bounds a server's requests in flight; the rest wait and are "
	  "answered in turn", "[rpc][maxconn]")
{
	// Replies trickle back a byte every 20 ms: a request stays in flight
	// for about 200 ms, long enough to see what else was sent meanwhile.
	TestUpstream slow(TestUpstream::Mode::Trickle, {}, milliseconds(20));
	Proxy proxy({"--mode", "rpc", "--server", slow.addr() + " maxconn=1"});
	auto upstream_bytes = [&] {
		size_t n = 0;
		for (auto &c : slow.conns())
			n += c.data.size();
		return n;
	};
	std::vector<Conn> clients;
	for (int i = 0; i < 3; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_frame("req" + std::to_string(i)) == Io::Ok);
		clients.push_back(std::move(c));
	}
	const size_t one = 4 + 4; // header + "reqN"
	std::this_thread::sleep_for(milliseconds(100));
	// One request reached the server; without the limit all three would.
	CHECK(upstream_bytes() == one);
	for (int i = 0; i < 3; i++) {
		std::string back;
		REQUIRE(clients[i].read_frame(back, T5) == Io::Ok);
		CHECK(back == "req" + std::to_string(i));
	}
	CHECK(upstream_bytes() == 3 * one);
}

TEST_CASE("rpc: a request that waits for a full server longer than queue_timeout "
	  "closes its client with queue_timeout", "[rpc][maxconn]")
{
	// About 200 ms per reply, one at a time; the second waits past 80 ms.
	TestUpstream slow(TestUpstream::Mode::Trickle, {}, milliseconds(25));
	Proxy proxy({"--mode", "rpc", "--server", slow.addr() + " maxconn=1",
		     "--queue-timeout", "80ms"});
	Conn first = Conn::connect(proxy.port()), second = Conn::connect(proxy.port());
	REQUIRE(first.valid());
	REQUIRE(second.valid());
	REQUIRE(first.send_frame("one") == Io::Ok);
	std::this_thread::sleep_for(milliseconds(20));
	const std::string second_addr = second.local_addr();
	auto t0 = Clock::now();
	REQUIRE(second.send_frame("two") == Io::Ok);
	Io r = second.wait_closed(T5);
	CHECK((r == Io::Eof || r == Io::Reset));
	CHECK(ms_since(t0) >= 60);
	CHECK(ms_since(t0) < 1000);
	LogRecord access;
	REQUIRE(proxy.wait_access(second_addr, T5, &access));
	CHECK(access.get("reason") == "queue_timeout");
	// The first is answered; its request never waited.
	std::string back;
	REQUIRE(first.read_frame(back, T5) == Io::Ok);
	CHECK(back == "one");
}
