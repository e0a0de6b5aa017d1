// The admin endpoint under the real supervisor (issue 17): it cannot be
// starved by idle or slow connections.
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

using namespace itest;

namespace {

int connect_nb(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

// True when the server closed fd (EOF or reset); reads what is there.
bool closed_by_server(int fd)
{
	char buf[1024];
	while (true) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	}
}

// 3,000 connections that never send a byte (opened once: the server may
// close them) and 200 slowloris clients that send a header line every
// 100 ms and never end it, reconnecting whenever they are closed.
struct Flood {
	std::thread thread;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> idle_closed{0}, slow_closed{0}, slow_opened{0};
	std::vector<int> idle, slow;

	void run(uint16_t port)
	{
		for (int i = 0; i < 3000; i++)
			idle.push_back(connect_nb(port));
		for (int i = 0; i < 200; i++)
			slow.push_back(connect_nb(port));
		int round = 0;
		while (!stop) {
			std::this_thread::sleep_for(milliseconds(100));
			round++;
			for (int &fd : idle)
				if (fd >= 0 && closed_by_server(fd)) {
					close(fd);
					fd = -1;
					idle_closed++;
				}
			for (int &fd : slow) {
				if (fd >= 0 && closed_by_server(fd)) {
					close(fd);
					fd = -1;
					slow_closed++;
				}
				if (fd < 0) {
					fd = connect_nb(port);
					slow_opened++;
					continue;
				}
				std::string piece = round == 1 ? "GET /metrics HTTP/1.1\r\n"
							       : "X-Slow: a\r\n";
				(void)!send(fd, piece.data(), piece.size(),
					    MSG_NOSIGNAL | MSG_DONTWAIT);
			}
		}
		for (int fd : idle)
			if (fd >= 0)
				close(fd);
		for (int fd : slow)
			if (fd >= 0)
				close(fd);
	}
};

// One request over the admin Unix socket: the whole response, "" when the
// connection failed.
std::string unix_request(const std::string &path, const std::string &req)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return "";
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path.c_str());
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	std::string out;
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0 &&
	    send(fd, req.data(), req.size(), MSG_NOSIGNAL) == (ssize_t)req.size()) {
		char buf[65536];
		ssize_t r;
		while ((r = recv(fd, buf, sizeof(buf), 0)) > 0)
			out.append(buf, (size_t)r);
	}
	close(fd);
	return out;
}

// One request over TCP with any method, headers and body.
std::string tcp_request(uint16_t port, const std::string &req)
{
	Conn c = Conn::connect(port);
	if (!c.valid() || c.send_all(req) != Io::Ok)
		return "";
	std::string out;
	c.wait_closed(milliseconds(5000), &out);
	return out;
}

std::string post(const std::string &path, const std::string &body,
		 const std::string &headers = "")
{
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + headers +
	       "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool reloaded(Proxy &proxy, const std::string &generation)
{
	return proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "reload complete") && r.is("generation", generation);
	}, milliseconds(10000));
}

} // namespace

TEST_CASE("admin: writes over TCP are refused without the token; the Unix "
	  "socket and the token allow them", "[admin]")
{
	Echo echo;
	std::string token_file = tmp().file("token");
	write_file(token_file, "tok-1234567890\n");
	{
		Proxy proxy({"--shards", "1", "--admin", "127.0.0.1:0", "--server", echo.addr()});
		REQUIRE(proxy.wait_ready());
		uint16_t admin = proxy.admin_port();
		REQUIRE(admin != 0);
		std::string r = tcp_request(admin, post("/reload", ""));
		CHECK(r.compare(0, 12, "HTTP/1.1 403") == 0);
		CHECK(r.find("admin_token") != std::string::npos);
		CHECK(http_get(admin, "/metrics").compare(0, 12, "HTTP/1.1 200") == 0);
	}
	{
		Proxy proxy({"--shards", "1", "--admin", "127.0.0.1:0", "--admin-token",
			     token_file, "--server", echo.addr()});
		REQUIRE(proxy.wait_ready());
		uint16_t admin = proxy.admin_port();
		REQUIRE(admin != 0);
		std::string r = tcp_request(admin, post("/reload", "",
			"Authorization: Bearer tok-123456789\r\n"));
		CHECK(r.compare(0, 12, "HTTP/1.1 403") == 0);
		CHECK(r.find("wrong token") != std::string::npos);
		r = tcp_request(admin, post("/reload", "",
			"Authorization: Bearer tok-1234567890\r\n"));
		CHECK(r.compare(0, 12, "HTTP/1.1 200") == 0);
		CHECK(reloaded(proxy, "1"));
		// A reload reads the token file again: the new token replaces
		// the old one at once.
		write_file(token_file, "tok-rotated-42\n");
		proxy.proc().signal(SIGHUP);
		REQUIRE(reloaded(proxy, "2"));
		r = tcp_request(admin, post("/reload", "",
			"Authorization: Bearer tok-1234567890\r\n"));
		CHECK(r.compare(0, 12, "HTTP/1.1 403") == 0);
		r = tcp_request(admin, post("/reload", "",
			"Authorization: Bearer tok-rotated-42\r\n"));
		CHECK(r.compare(0, 12, "HTTP/1.1 200") == 0);
		CHECK(reloaded(proxy, "3"));
	}
	{
		std::string sock = tmp().path() + "/admin.sock";
		Proxy proxy({"--shards", "1", "--admin", "unix:" + sock, "--admin-mode",
			     "0660", "--server", echo.addr()});
		REQUIRE(proxy.wait_ready());
		struct stat st;
		REQUIRE(stat(sock.c_str(), &st) == 0);
		CHECK(S_ISSOCK(st.st_mode));
		CHECK((st.st_mode & 0777) == 0660);
		std::string r = unix_request(sock, "GET /stats HTTP/1.0\r\n\r\n");
		CHECK(r.compare(0, 12, "HTTP/1.1 200") == 0);
		r = unix_request(sock, post("/reload", ""));
		CHECK(r.compare(0, 12, "HTTP/1.1 200") == 0);
		CHECK(reloaded(proxy, "1"));
		unlink(sock.c_str());
	}
}

TEST_CASE("admin: scrapes are answered within 1 s while 3,000 idle and 200 "
	  "slowloris connections hold the port", "[admin]")
{
	// The flood needs about 3,200 fds of the test process.
	struct rlimit rl;
	REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	REQUIRE(rl.rlim_max >= 4000);
	if (rl.rlim_cur < 4000) {
		rl.rlim_cur = 4000;
		REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	Echo echo;
	Proxy proxy({"--shards", "1", "--admin", "127.0.0.1:0", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);

	Flood flood;
	flood.thread = std::thread([&] { flood.run(admin); });
	std::this_thread::sleep_for(milliseconds(300)); // the flood is in

	int answered = 0, slow = 0;
	milliseconds worst(0);
	for (int i = 0; i < 12; i++) {
		auto t0 = Clock::now();
		Conn c = Conn::connect(admin);
		REQUIRE(c.valid());
		REQUIRE(c.send_all("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n") == Io::Ok);
		std::string out;
		c.wait_closed(milliseconds(3000), &out);
		auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
		worst = std::max(worst, took);
		if (out.compare(0, 12, "HTTP/1.1 200") == 0 &&
		    out.find("frameproxy_shard_up") != std::string::npos)
			answered++;
		if (took > milliseconds(1000))
			slow++;
		std::this_thread::sleep_for(milliseconds(150));
	}
	flood.stop = true;
	flood.thread.join();
	INFO("worst scrape " << worst.count() << " ms; idle closed "
	     << flood.idle_closed << ", slowloris closed " << flood.slow_closed);
	CHECK(answered == 12);
	CHECK(slow == 0);
	// The flood was real: the server had to let idle sockets go to answer,
	// and the slowloris clients kept coming back.
	CHECK(flood.idle_closed > 2000);
	CHECK(flood.slow_closed > 200);
	// And the supervisor is still well.
	CHECK(http_get(admin, "/stats").compare(0, 12, "HTTP/1.1 200") == 0);
}

// --- the runtime server API: POST /servers/L/S under real traffic ----------

namespace {

std::string post_server(uint16_t admin, const std::string &listener,
			const std::string &server, const std::string &body)
{
	return tcp_request(admin, post("/servers/" + listener + "/" + server, body,
				       "Authorization: Bearer tok-servers-1\r\n"));
}

bool ok(const std::string &response)
{
	return response.compare(0, 12, "HTTP/1.1 200") == 0;
}

// The object of GET /servers whose address is `server` ("" when none).
std::string server_json(uint16_t admin, const std::string &server)
{
	std::string body = http_body(http_get(admin, "/servers"));
	size_t at = body.find("\"address\":\"" + server + "\"");
	if (at == std::string::npos)
		return "";
	size_t from = body.rfind('{', at), to = body.find('}', at);
	return body.substr(from, to - from + 1);
}

// A string field of one server object, "" when absent.
std::string field(const std::string &obj, const std::string &key)
{
	std::string k = "\"" + key + "\":\"";
	size_t at = obj.find(k);
	if (at == std::string::npos)
		return "";
	at += k.size();
	return obj.substr(at, obj.find('"', at) - at);
}

// Where n new connections went: one round trip each, then closed; the
// access lines say which upstream and which shard took each.
struct Tally {
	std::map<std::string, int> upstream;
	std::set<std::string> shards;
	int count(const std::string &server) const
	{
		auto it = upstream.find(server);
		return it == upstream.end() ? 0 : it->second;
	}
};

Tally run_clients(Proxy &proxy, uint16_t port, int n)
{
	std::vector<std::string> clients;
	for (int i = 0; i < n; i++) {
		Conn c = Conn::connect(port);
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip("ping-" + std::to_string(i)));
		clients.push_back(c.local_addr());
	}
	std::map<std::string, std::vector<LogRecord>> by_client;
	REQUIRE(proxy.wait_access_all(clients, milliseconds(10000), &by_client).empty());
	Tally t;
	for (const auto &c : clients) {
		const LogRecord &r = by_client[c].back();
		t.upstream[r.get("upstream")]++;
		t.shards.insert(r.get("shard"));
	}
	return t;
}

std::string servers_ini(const std::string &a, const std::string &b)
{
	std::string ini = "[frameproxy]\nshards = 2\nadmin = 127.0.0.1:0\n"
			  "admin_token = " + tmp().path() + "/servers-token\n"
			  "[listener web]\nlisten = 127.0.0.1:0\nhealth_interval = 100ms\n";
	for (const std::string &s : {a, b})
		if (!s.empty())
			ini += "server = " + s + "\n";
	return ini;
}

// Two echoing upstreams behind 2 shards configured from servers_ini, the
// admin on TCP with the token "tok-servers-1".
struct TwoServers {
	TestUpstream a{TestUpstream::Mode::EchoFrames};
	TestUpstream b{TestUpstream::Mode::EchoFrames};
	std::string token = tmp().path() + "/servers-token";
	std::string ini = tmp().file("servers.ini");
	std::unique_ptr<Proxy> proxy;
	uint16_t admin = 0, port = 0;

	TwoServers()
	{
		write_file(token, "tok-servers-1\n");
		write_file(ini, servers_ini(a.addr(), b.addr()));
		proxy = std::make_unique<Proxy>(
			std::vector<std::string>{"-c", ini, "--shards", "2"}, "web");
		REQUIRE(proxy->wait_ready());
		admin = proxy->admin_port();
		port = proxy->port();
		REQUIRE(admin != 0);
		REQUIRE(port != 0);
	}
};

} // namespace

TEST_CASE("admin: drain, maint and weight reach both shards at once; "
	  "existing connections keep working", "[admin]")
{
	TwoServers two;
	TestUpstream &a = two.a, &b = two.b;
	Proxy &proxy = *two.proxy;
	uint16_t admin = two.admin, port = two.port;

	// Both servers take new connections to begin with, on both shards.
	Tally t = run_clients(proxy, port, 40);
	CHECK(t.count(a.addr()) > 5);
	CHECK(t.count(b.addr()) > 5);
	CHECK(t.shards.size() == 2);
	CHECK(field(server_json(admin, a.addr()), "admin_state") == "ready");

	// Connections held open across the drain; at least one is on a.
	std::vector<Conn> held;
	for (int i = 0; i < 6; i++) {
		held.push_back(Conn::connect(port));
		REQUIRE(held.back().roundtrip("held"));
	}
	REQUIRE(a.open_count() >= 1);
	size_t a_open = a.open_count();

	SECTION("drain: no new connection goes to it, the open ones go on")
	{
		auto t0 = Clock::now();
		std::string r = post_server(admin, "web", a.addr(), "state=drain");
		REQUIRE(ok(r));
		CHECK(http_body(r).find("\"admin_state\":\"drain\"") != std::string::npos);
		// The very next connections, on either shard, avoid it: no
		// publish period to wait for.
		CHECK(ms_since(t0) < 100);
		t = run_clients(proxy, port, 40);
		CHECK(t.count(a.addr()) == 0);
		CHECK(t.count(b.addr()) == 40);
		CHECK(t.shards.size() == 2);
		for (Conn &c : held)
			CHECK(c.roundtrip("still here"));
		CHECK(a.open_count() == a_open);
		std::string js = server_json(admin, a.addr());
		CHECK(field(js, "admin_state") == "drain");
		CHECK(wait_until([&] {
			return json_number(server_json(admin, a.addr()), "connections") ==
			       (long long)a_open;
		}, milliseconds(2000)));

		// ready again: it takes connections at once.
		REQUIRE(ok(post_server(admin, "web", a.addr(), "{\"state\": \"ready\"}")));
		t = run_clients(proxy, port, 40);
		CHECK(t.count(a.addr()) > 5);
	}

	SECTION("maint: out of new connections and health checks stop")
	{
		// Checks run every 100 ms: a's accept count grows by itself.
		size_t before = a.accepted();
		REQUIRE(wait_until([&] { return a.accepted() >= before + 3; },
				   milliseconds(3000)));
		REQUIRE(ok(post_server(admin, "web", a.addr(), "state=maint")));
		t = run_clients(proxy, port, 40);
		CHECK(t.count(a.addr()) == 0);
		CHECK(t.shards.size() == 2);
		CHECK(field(server_json(admin, a.addr()), "health") == "unchecked");
		// A check already under way may still land; none after that.
		std::this_thread::sleep_for(milliseconds(300));
		size_t quiet = a.accepted();
		std::this_thread::sleep_for(milliseconds(1000));
		CHECK(a.accepted() == quiet);
		for (Conn &c : held)
			CHECK(c.roundtrip("still here"));

		// ready: the checks come back, and so does traffic.
		REQUIRE(ok(post_server(admin, "web", a.addr(), "state=ready")));
		CHECK(wait_until([&] { return a.accepted() >= quiet + 3; },
				 milliseconds(3000)));
		CHECK(field(server_json(admin, a.addr()), "health") == "up");
		t = run_clients(proxy, port, 40);
		CHECK(t.count(a.addr()) > 5);
	}

	SECTION("weight: the split follows it, 0 goes back to the configured one")
	{
		REQUIRE(ok(post_server(admin, "web", a.addr(), "weight=1")));
		REQUIRE(ok(post_server(admin, "web", b.addr(), "{\"weight\": 7}")));
		CHECK(json_number(server_json(admin, b.addr()), "weight_set") == 7);
		t = run_clients(proxy, port, 80);
		INFO("a " << t.count(a.addr()) << ", b " << t.count(b.addr()));
		CHECK(t.count(a.addr()) + t.count(b.addr()) == 80);
		CHECK(t.count(a.addr()) * 3 < t.count(b.addr()));
		CHECK(t.shards.size() == 2);

		REQUIRE(ok(post_server(admin, "web", a.addr(), "weight=7")));
		REQUIRE(ok(post_server(admin, "web", b.addr(), "weight=1")));
		t = run_clients(proxy, port, 80);
		INFO("a " << t.count(a.addr()) << ", b " << t.count(b.addr()));
		CHECK(t.count(b.addr()) * 3 < t.count(a.addr()));

		REQUIRE(ok(post_server(admin, "web", a.addr(), "weight=0")));
		REQUIRE(ok(post_server(admin, "web", b.addr(), "weight=0")));
		CHECK(json_number(server_json(admin, a.addr()), "weight_set") == 0);
		t = run_clients(proxy, port, 40);
		CHECK(t.count(a.addr()) > 10);
		CHECK(t.count(b.addr()) > 10);
	}

	SECTION("bad requests change nothing")
	{
		std::string r = post_server(admin, "web", a.addr(), "state=gone");
		CHECK(r.compare(0, 12, "HTTP/1.1 400") == 0);
		r = post_server(admin, "web", a.addr(), "weight=257");
		CHECK(r.compare(0, 12, "HTTP/1.1 400") == 0);
		r = post_server(admin, "web", "127.0.0.1:1", "state=drain");
		CHECK(r.compare(0, 12, "HTTP/1.1 404") == 0);
		r = post_server(admin, "nope", a.addr(), "state=drain");
		CHECK(r.compare(0, 12, "HTTP/1.1 404") == 0);
		r = tcp_request(admin, post("/servers/web/" + a.addr(), "state=drain"));
		CHECK(r.compare(0, 12, "HTTP/1.1 403") == 0);
		CHECK(field(server_json(admin, a.addr()), "admin_state") == "ready");
	}
}

TEST_CASE("admin: the admin state survives reloads and shard restarts; a "
	  "server dropped from the config loses it", "[admin]")
{
	TwoServers two;
	TestUpstream &a = two.a, &b = two.b;
	Proxy &proxy = *two.proxy;
	const std::string &ini = two.ini;
	uint16_t admin = two.admin, port = two.port;

	REQUIRE(ok(post_server(admin, "web", a.addr(), "state=drain")));
	REQUIRE(ok(post_server(admin, "web", b.addr(), "weight=5")));

	// A reload replaces both shards; the new ones read the board.
	proxy.proc().signal(SIGHUP);
	REQUIRE(reloaded(proxy, "1"));
	CHECK(field(server_json(admin, a.addr()), "admin_state") == "drain");
	CHECK(json_number(server_json(admin, b.addr()), "weight_set") == 5);
	Tally t = run_clients(proxy, port, 40);
	CHECK(t.count(a.addr()) == 0);
	CHECK(t.shards.size() == 2);

	// So does a shard that crashed and was started again.
	pid_t victim = proxy.shard_pid(0);
	REQUIRE(victim > 0);
	kill(victim, SIGKILL);
	REQUIRE(wait_until([&] {
		pid_t now = proxy.shard_pid(0);
		return now > 0 && now != victim;
	}, milliseconds(5000)));
	// Clients queued on its socket meanwhile wait for it: it inherits it.
	t = run_clients(proxy, port, 40);
	CHECK(t.count(a.addr()) == 0);
	CHECK(t.shards.size() == 2);

	// a leaves the configuration: its row goes with it.
	write_file(ini, servers_ini(b.addr(), ""));
	proxy.proc().signal(SIGHUP);
	REQUIRE(reloaded(proxy, "2"));
	CHECK(server_json(admin, a.addr()).empty());
	CHECK(json_number(server_json(admin, b.addr()), "weight_set") == 5);

	// And comes back as a new server: ready, taking connections.
	write_file(ini, servers_ini(a.addr(), b.addr()));
	proxy.proc().signal(SIGHUP);
	REQUIRE(reloaded(proxy, "3"));
	std::string js = server_json(admin, a.addr());
	CHECK(field(js, "admin_state") == "ready");
	t = run_clients(proxy, port, 60);
	CHECK(t.count(a.addr()) > 0);
}

// --- frameproxy ctl ----------------------------------------------------------

namespace {

struct CtlRun {
	int code;
	std::string out, err;
};

CtlRun ctl(const std::vector<std::string> &args)
{
	std::vector<std::string> argv = {binary("FRAMEPROXY"), "ctl"};
	argv.insert(argv.end(), args.begin(), args.end());
	Process p(argv, "frameproxy-ctl");
	int code = run_to_exit(p, milliseconds(15000));
	return {code, p.out(), p.err()};
}

// The table row of `server` in ctl's output, split on blanks.
std::vector<std::string> ctl_row(const std::string &out, const std::string &server)
{
	for (const std::string &line : split_lines(out)) {
		std::istringstream in(line);
		std::vector<std::string> cells{std::istream_iterator<std::string>(in),
					       std::istream_iterator<std::string>()};
		if (cells.size() >= 2 && cells[1] == server)
			return cells;
	}
	return {};
}

} // namespace

TEST_CASE("admin: frameproxy ctl drains, weighs and lists servers; --json, "
	  "errors and usage", "[admin]")
{
	TwoServers two;
	TestUpstream &a = two.a, &b = two.b;
	Proxy &proxy = *two.proxy;
	const std::string &ini = two.ini, &token = two.token;
	uint16_t admin = two.admin;
	std::string at = "127.0.0.1:" + std::to_string(admin);

	CtlRun r = ctl({"--admin", at, "servers"});
	REQUIRE(r.code == 0);
	CHECK(r.out.find("LISTENER") == 0);
	std::vector<std::string> row = ctl_row(r.out, a.addr());
	REQUIRE(row.size() == 7);
	CHECK(row[0] == "web");
	CHECK(row[2] == "ready");

	// A write over TCP needs the token: without it, the endpoint's 403.
	r = ctl({"--admin", at, "drain", "web", a.addr()});
	CHECK(r.code == 1);
	CHECK(r.err.find("HTTP/1.1 403") != std::string::npos);
	CHECK(r.err.find("Bearer") != std::string::npos);

	r = ctl({"--admin", at, "--token-file", token, "drain", "web", a.addr()});
	CHECK(r.code == 0);
	CHECK(ctl_row(r.out, a.addr()).at(2) == "drain");
	CHECK(field(server_json(admin, a.addr()), "admin_state") == "drain");
	Tally t = run_clients(proxy, proxy.port(), 20);
	CHECK(t.count(a.addr()) == 0);

	r = ctl({"--admin", at, "--token-file", token, "weight", "web", b.addr(), "4"});
	CHECK(r.code == 0);
	r = ctl({"--admin", at, "servers"});
	REQUIRE(r.code == 0);
	CHECK(ctl_row(r.out, a.addr()).at(2) == "drain");
	CHECK(ctl_row(r.out, b.addr()).at(3) == "4*");

	// --json: the endpoint's JSON as it came.
	r = ctl({"--admin", at, "--json", "servers"});
	REQUIRE(r.code == 0);
	CHECK(r.out == http_body(http_get(admin, "/servers")));
	CHECK(r.out.compare(0, 12, "{\"servers\":[") == 0);
	CHECK(r.out.find("\"weight_set\":4") != std::string::npos);
	r = ctl({"--admin", at, "--json", "stats"});
	REQUIRE(r.code == 0);
	CHECK(json_number(r.out, "shards_configured") == 2);
	r = ctl({"--admin", at, "stats"});
	REQUIRE(r.code == 0);
	CHECK(r.out.find("SHARD") != std::string::npos);
	CHECK(r.out.find("ready") != std::string::npos);

	// ready with the token from the config file's admin_token; the
	// address is given, since the file's is port 0.
	r = ctl({"-c", ini, "--admin", at, "ready", "web", a.addr()});
	CHECK(r.code == 0);
	CHECK(field(server_json(admin, a.addr()), "admin_state") == "ready");

	// reload
	r = ctl({"--admin", at, "--token-file", token, "reload"});
	CHECK(r.code == 0);
	CHECK(reloaded(proxy, "1"));

	// The endpoint's errors: exit 1 with the status line and its reason.
	r = ctl({"--admin", at, "--token-file", token, "drain", "web", "127.0.0.1:1"});
	CHECK(r.code == 1);
	CHECK(r.err.find("HTTP/1.1 404 Not Found: no such server") != std::string::npos);
	r = ctl({"--admin", at, "--token-file", token, "weight", "web", a.addr(), "999"});
	CHECK(r.code == 1);
	CHECK(r.err.find("HTTP/1.1 400") != std::string::npos);

	// Nobody there: exit 1, saying where it looked.
	r = ctl({"--admin", "unix:" + tmp().path() + "/none.sock", "servers"});
	CHECK(r.code == 1);
	CHECK(r.err.find("cannot reach the admin endpoint at unix:") != std::string::npos);

	// Usage: exit 2.
	CHECK(ctl({}).code == 2);
	CHECK(ctl({"--admin", at, "frobnicate"}).code == 2);
	CHECK(ctl({"--admin", at, "drain", "web"}).code == 2);
	CHECK(ctl({"--admin", at, "weight", "web", a.addr(), "x"}).code == 2);
	CHECK(ctl({"--bogus", "servers"}).code == 2);
	CHECK(ctl({"--admin", at, "drain", "web", std::string(200, 'x')}).code == 2);
	CHECK(ctl({"--admin", "not an address", "servers"}).code == 2);
	CHECK(ctl({"--token-file", tmp().path() + "/missing", "servers"}).code == 2);
	r = ctl({"--help"});
	CHECK(r.code == 0);
	CHECK(r.out.find("usage: frameproxy ctl") == 0);
}

TEST_CASE("admin: frameproxy ctl over the Unix socket named in the config",
	  "[admin]")
{
	TestUpstream a(TestUpstream::Mode::EchoFrames), b(TestUpstream::Mode::EchoFrames);
	std::string sock = tmp().path() + "/ctl-admin.sock";
	std::string ini = tmp().file("unix.ini");
	write_file(ini, "[frameproxy]\nadmin = unix:" + sock + "\n"
		   "[listener web]\nlisten = 127.0.0.1:0\nserver = " + a.addr() +
		   "\nserver = " + b.addr() + "\n");
	Proxy proxy({"-c", ini, "--shards", "2"}, "web");
	REQUIRE(proxy.wait_ready());

	// No --admin, no token: the socket's mode is the access control.
	CtlRun r = ctl({"-c", ini, "maint", "web", b.addr()});
	CHECK(r.code == 0);
	r = ctl({"-c", ini, "servers"});
	REQUIRE(r.code == 0);
	std::vector<std::string> row = ctl_row(r.out, b.addr());
	REQUIRE(row.size() == 7);
	CHECK(row[2] == "maint");
	CHECK(row[4] == "unchecked");
	r = ctl({"-c", ini, "weight", "web", b.addr(), "4"});
	CHECK(r.code == 0);
	Tally t = run_clients(proxy, proxy.port(), 20);
	CHECK(t.count(b.addr()) == 0);
	CHECK(t.count(a.addr()) == 20);

	// Back to the configured weight and ready, with no client coming:
	// the shards still publish it within a period (no check runs here).
	CHECK(ctl_row(ctl({"-c", ini, "servers"}).out, b.addr()).at(3) == "4*");
	CHECK(ctl({"-c", ini, "weight", "web", b.addr(), "0"}).code == 0);
	CHECK(ctl({"-c", ini, "ready", "web", b.addr()}).code == 0);
	CHECK(wait_until([&] {
		r = ctl({"-c", ini, "servers"});
		row = ctl_row(r.out, b.addr());
		return row.size() == 7 && row[2] == "ready" && row[3] == "1" &&
		       row[4] == "up";
	}, milliseconds(1000)));
	unlink(sock.c_str());
}

TEST_CASE("admin: in rpc mode a drained server gets no new request, on a "
	  "client connection already open too", "[admin]")
{
	TestUpstream a(TestUpstream::Mode::EchoFrames), b(TestUpstream::Mode::EchoFrames);
	std::string sock = tmp().path() + "/rpc-admin.sock";
	std::string ini = tmp().file("rpc.ini");
	write_file(ini, "[frameproxy]\nadmin = unix:" + sock + "\n"
		   "[listener web]\nlisten = 127.0.0.1:0\nmode = rpc\n"
		   "server = " + a.addr() + "\nserver = " + b.addr() + "\n");
	Proxy proxy({"-c", ini, "--shards", "2"}, "web");
	REQUIRE(proxy.wait_ready());
	auto bytes_to = [](TestUpstream &u) {
		size_t n = 0;
		for (const auto &c : u.conns())
			n += c.data.size();
		return n;
	};

	Conn client = Conn::connect(proxy.port());
	REQUIRE(client.valid());
	for (int i = 0; i < 20; i++)
		REQUIRE(client.roundtrip("request-" + std::to_string(i)));
	CHECK(bytes_to(a) > 0);
	CHECK(bytes_to(b) > 0);

	REQUIRE(ctl({"-c", ini, "drain", "web", a.addr()}).code == 0);
	size_t a_before = bytes_to(a), b_before = bytes_to(b);
	for (int i = 0; i < 40; i++)
		REQUIRE(client.roundtrip("after-" + std::to_string(i)));
	Conn other = Conn::connect(proxy.port());
	for (int i = 0; i < 20; i++)
		REQUIRE(other.roundtrip("other-" + std::to_string(i)));
	CHECK(bytes_to(a) == a_before);
	CHECK(bytes_to(b) > b_before);
	// Its pooled connections stay: drain is no new requests, not a cut.
	CHECK(a.open_count() > 0);

	REQUIRE(ctl({"-c", ini, "ready", "web", a.addr()}).code == 0);
	for (int i = 0; i < 20; i++)
		REQUIRE(client.roundtrip("back-" + std::to_string(i)));
	CHECK(bytes_to(a) > a_before);
	unlink(sock.c_str());
}
