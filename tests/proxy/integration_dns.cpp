// Integration tests: servers from DNS names (proxy/resolve.h). A DNS
// server of the tests' own (dns_server.hpp) on loopback answers from a
// table each test rewrites; `resolvers` points the proxy at it. Echo
// servers listen on 127.0.0.1, .2 and .3 with one port, so one A name can
// name several of them.
#include "tests/proxy/dns_server.hpp"
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);
const milliseconds T10(10000);

// A byte echo on ip:port (port 0 picks one) that counts its connections.
class EchoAt {
public:
	EchoAt(const std::string &ip, uint16_t port)
	{
		fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		sockaddr_in sa = inet_addr_port(ip, port);
		socklen_t sl = sizeof(sa);
		REQUIRE(::bind(fd_, (sockaddr *)&sa, sizeof(sa)) == 0);
		REQUIRE(::listen(fd_, 128) == 0);
		REQUIRE(::getsockname(fd_, (sockaddr *)&sa, &sl) == 0);
		port_ = ntohs(sa.sin_port);
		addr_ = ip + ":" + std::to_string(port_);
		thread_ = std::thread([this] { run(); });
	}
	~EchoAt()
	{
		stop_ = true;
		thread_.join();
		for (int fd : conns_)
			::close(fd);
		::close(fd_);
	}
	uint16_t port() const { return port_; }
	const std::string &addr() const { return addr_; }
	size_t accepted() const { return accepted_; }
	size_t open() const { return open_; }

private:
	void run()
	{
		char buf[65536];
		while (!stop_) {
			std::vector<pollfd> p{{fd_, POLLIN, 0}};
			for (int fd : conns_)
				p.push_back({fd, POLLIN, 0});
			if (::poll(p.data(), p.size(), 50) <= 0)
				continue;
			if (p[0].revents & POLLIN) {
				int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
				if (c >= 0) {
					conns_.push_back(c);
					accepted_++;
					open_++;
				}
			}
			for (size_t i = 1; i < p.size(); i++) {
				if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				ssize_t n = ::recv(p[i].fd, buf, sizeof(buf), 0);
				if (n > 0 && send_all(p[i].fd, buf, (size_t)n))
					continue;
				::close(p[i].fd);
				conns_.erase(std::find(conns_.begin(), conns_.end(), p[i].fd));
				open_--;
			}
		}
	}
	static bool send_all(int fd, const char *b, size_t n)
	{
		while (n > 0) {
			ssize_t w = ::send(fd, b, n, MSG_NOSIGNAL);
			if (w <= 0)
				return false;
			b += w;
			n -= (size_t)w;
		}
		return true;
	}

	int fd_ = -1;
	uint16_t port_ = 0;
	std::string addr_;
	std::thread thread_;
	std::atomic<bool> stop_{false};
	std::atomic<size_t> accepted_{0}, open_{0};
	std::vector<int> conns_; // the thread's own
};

// Echo servers on 127.0.0.1, .2, .3, one port.
struct Trio {
	std::unique_ptr<EchoAt> at[3];
	Trio()
	{
		at[0].reset(new EchoAt("127.0.0.1", 0));
		for (int i = 1; i < 3; i++)
			at[i].reset(new EchoAt("127.0.0." + std::to_string(i + 1),
					       at[0]->port()));
	}
	std::string port() const { return std::to_string(at[0]->port()); }
	std::string addr(int i) const { return at[i]->addr(); }
	std::vector<size_t> accepted() const
	{
		return {at[0]->accepted(), at[1]->accepted(), at[2]->accepted()};
	}
};

bool changed(Proxy &proxy, const std::string &added, const std::string &removed,
	     milliseconds timeout)
{
	return proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "servers changed") &&
		       r.get("added").find(added) != std::string::npos &&
		       r.get("removed").find(removed) != std::string::npos;
	}, timeout);
}

// n round trips on new connections; how many worked.
int roundtrips(Proxy &proxy, int n)
{
	int ok = 0;
	for (int i = 0; i < n; i++) {
		Conn c = Conn::connect(proxy.port());
		ok += c.valid() && c.roundtrip("hello " + std::to_string(i));
	}
	return ok;
}

std::string metrics(Proxy &proxy, uint16_t admin)
{
	(void)proxy;
	return http_body(http_get(admin, "/metrics"));
}

std::vector<std::string> bench_args(Proxy &proxy, const char *duration)
{
	return {binary("FRAMEBENCH"), "--target", proxy.addr(), "-c", "8", "-d", "4",
		"--size", "0-2000", "--duration", duration, "--json", "--no-progress"};
}

// The answer goes from .1,.2 to .2,.3 while framebench runs; nothing is
// lost, new work goes to the new set, and .1 is left once its work ends.
void answer_change_under_load(const std::vector<std::string> &mode)
{
	bool rpc = !mode.empty();
	DnsServer dns;
	Trio t;
	dns.set_a("svc.fp.test", {"127.0.0.1", "127.0.0.2"}, 1);
	std::vector<std::string> args = {"--resolvers", dns.addr(), "--admin", "0",
					 "--server", "svc.fp.test:" + t.port()};
	args.insert(args.end(), mode.begin(), mode.end());
	Proxy proxy(args);
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	REQUIRE(changed(proxy, t.addr(1), "-", T5));
	uint16_t admin = proxy.admin_port();

	Process bench(bench_args(proxy, "4s"), "framebench");
	std::this_thread::sleep_for(milliseconds(1000));
	CHECK(roundtrips(proxy, 10) == 10);
	auto before = t.accepted();
	CHECK(before[0] > 0);
	CHECK(before[1] > 0);
	CHECK(before[2] == 0);

	dns.set_a("svc.fp.test", {"127.0.0.2", "127.0.0.3"}, 1);
	REQUIRE(changed(proxy, t.addr(2), t.addr(0), T5));
	auto at_change = t.accepted();
	CHECK(roundtrips(proxy, 10) == 10);
	auto after = t.accepted();
	CHECK(after[0] == at_change[0]); // no new connection to the removed one
	if (rpc) // the pool's connections to .3 opened at the change
		CHECK(after[2] >= 2);
	else
		CHECK(after[2] > at_change[2]);

	REQUIRE(run_to_exit(bench, milliseconds(20000)) == 0);
	std::string json = bench.out();
	INFO(json);
	CHECK(json_number(json, "mismatches") == 0);
	CHECK(json_number(json, "errors") == 0);
	// Its connections (stream: framebench's; rpc: the pool's) end.
	CHECK(wait_until([&] { return t.at[0]->open() == 0; }, T10));
	std::string m = metrics(proxy, admin);
	INFO(m);
	CHECK(metric_sum(m, "frameproxy_dns_servers") == 2);
	CHECK(metric_sum(m, "frameproxy_dns_resolutions_total") >= 2);
	CHECK(m.find(t.addr(2)) != std::string::npos);
	CHECK(m.find("upstream=\"" + t.addr(0)) == std::string::npos);
	if (rpc) // requests went to the new server
		CHECK(metric_sum(m, "frameproxy_rpc_requests_sent_total",
				 "upstream=\"" + t.addr(2)) > 0);
}

} // namespace

TEST_CASE("dns: servers follow the answer without a reload (stream)", "[dns]")
{
	answer_change_under_load({});
}

TEST_CASE("dns: servers follow the answer without a reload (rpc)", "[dns]")
{
	answer_change_under_load({"--mode", "rpc", "--pool-size", "2"});
}

TEST_CASE("dns: SRV records give the servers, ports and weights", "[dns]")
{
	DnsServer dns;
	EchoAt a("127.0.0.1", 0), b("127.0.0.1", 0), c("127.0.0.1", 0);
	dns.set_srv("_fp._tcp.fp.test", {{10, 1, a.port(), "a.fp.test"},
					 {10, 3, b.port(), "b.fp.test"},
					 {20, 5, c.port(), "c.fp.test"}}, 30);
	for (const char *n : {"a.fp.test", "b.fp.test", "c.fp.test"})
		dns.set_a(n, {"127.0.0.1"}, 30);
	Proxy proxy({"--resolvers", dns.addr(), "--balance", "roundrobin",
		     "--server", "_fp._tcp.fp.test srv"});
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	REQUIRE(changed(proxy, b.addr(), "-", T5));
	CHECK(roundtrips(proxy, 40) == 40);
	CHECK(wait_until([&] { return a.accepted() + b.accepted() == 40; }, T5));
	CHECK(a.accepted() == 10);
	CHECK(b.accepted() == 30);
	CHECK(c.accepted() == 0); // a lower priority: not used
}

TEST_CASE("dns: the TTL sets the next query, within resolve_min and resolve_max",
	  "[dns]")
{
	DnsServer dns;
	EchoAt e("127.0.0.1", 0);
	dns.set_a("short.fp.test", {"127.0.0.1"}, 0);   // below resolve_min
	dns.set_a("long.fp.test", {"127.0.0.1"}, 3600); // above resolve_max
	dns.set_a("mid.fp.test", {"127.0.0.1"}, 2);
	std::string port = std::to_string(e.port());
	Proxy proxy({"--resolvers", dns.addr(), "--resolve-min", "500ms",
		     "--resolve-max", "3s", "--server", "short.fp.test:" + port,
		     "--server", "long.fp.test:" + port, "--server", "mid.fp.test:" + port});
	REQUIRE(proxy.wait_ready());
	std::this_thread::sleep_for(milliseconds(6100));
	unsigned s = dns.queries("short.fp.test", "A");
	unsigned l = dns.queries("long.fp.test", "A");
	unsigned m = dns.queries("mid.fp.test", "A");
	INFO("short " << s << " mid " << m << " long " << l << "\n" << proxy.log_tail());
	CHECK(s >= 8);  // every 500 ms: 13 in 6.1 s (fewer on a busy machine)
	CHECK(s <= 14);
	CHECK(m >= 3);  // every 2 s: 4
	CHECK(m <= 4);
	CHECK(l >= 2);  // every 3 s: 3
	CHECK(l <= 3);
	CHECK(dns.queries("long.fp.test", "AAAA") == l);
}

TEST_CASE("dns: a name that does not resolve at start, then does", "[dns]")
{
	DnsServer dns;
	EchoAt e("127.0.0.1", 0);
	Proxy proxy({"--resolvers", dns.addr(), "--resolve-min", "300ms", "--admin", "0",
		     "--server", "late.fp.test:" + std::to_string(e.port())});
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	uint16_t admin = proxy.admin_port();
	const std::string name = "server_name=\"late.fp.test\"";
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "server name lookup failed") &&
		       r.is("name", "late.fp.test");
	}, T5));
	CHECK(wait_until([&] {
		return metric_sum(metrics(proxy, admin), "frameproxy_dns_name_failures_total",
				  name) >= 1;
	}, T5));
	{
		std::string m = metrics(proxy, admin);
		INFO(m);
		CHECK(metric_sum(m, "frameproxy_dns_name_resolved", name) == 0);
		CHECK(metric_sum(m, "frameproxy_dns_name_servers", name) == 0);
	}
	{
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		CHECK(c.wait_closed(T5) == Io::Eof);
		LogRecord r;
		REQUIRE(proxy.wait_access(c.local_addr(), T5, &r));
		CHECK(r.is("reason", "no_upstream"));
	}
	dns.set_a("late.fp.test", {"127.0.0.1"}, 60);
	REQUIRE(changed(proxy, e.addr(), "-", T5));
	CHECK(roundtrips(proxy, 3) == 3);
	CHECK(wait_until([&] {
		return metric_sum(metrics(proxy, admin), "frameproxy_dns_name_resolved",
				  name) == 1;
	}, T5));
	std::string m = metrics(proxy, admin);
	INFO(m);
	CHECK(metric_sum(m, "frameproxy_dns_name_servers", name) == 1);
	CHECK(metric_sum(m, "frameproxy_dns_name_resolutions_total", name) >= 1);
}

TEST_CASE("dns: resolve_required makes an unresolvable name fatal", "[dns]")
{
	DnsServer dns;
	Process proxy({binary("FRAMEPROXY"), "--shards", "1", "--listen", "127.0.0.1:0",
		       "--resolvers", dns.addr(), "--resolve-required", "on",
		       "--server", "nowhere.fp.test:9"}, "frameproxy");
	CHECK(run_to_exit(proxy, T10) == 1);
	INFO(proxy.err());
	CHECK(proxy.err().find("server name did not resolve") != std::string::npos);
	CHECK(proxy.err().find("msg=\"ready\"") == std::string::npos);
}

TEST_CASE("dns: a resolver that goes away leaves the last answer in use", "[dns]")
{
	DnsServer dns;
	EchoAt e("127.0.0.1", 0);
	dns.set_a("kept.fp.test", {"127.0.0.1"}, 1);
	Proxy proxy({"--resolvers", dns.addr(), "--admin", "0",
		     "--server", "kept.fp.test:" + std::to_string(e.port())});
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	REQUIRE(changed(proxy, e.addr(), "-", T5));
	uint16_t admin = proxy.admin_port();
	dns.silent(true);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "server name lookup failed") && r.is("kept", "1");
	}, T10));
	CHECK(roundtrips(proxy, 5) == 5);
	CHECK(wait_until([&] {
		return metric_sum(metrics(proxy, admin), "frameproxy_dns_failures_total") >= 1;
	}, T5));
	std::string m = metrics(proxy, admin);
	INFO(m);
	CHECK(metric_sum(m, "frameproxy_dns_servers") == 1);
	// Each named line's current servers: their series carry the name.
	CHECK(metric_sum(m, "frameproxy_upstream_up",
			 "server_name=\"kept.fp.test\"") == 1);
	// The line's own series: its lookups, failures and servers.
	CHECK(metric_sum(m, "frameproxy_dns_name_servers",
			 "server_name=\"kept.fp.test\"") == 1);
	CHECK(metric_sum(m, "frameproxy_dns_name_resolved",
			 "server_name=\"kept.fp.test\"") == 1);
	CHECK(metric_sum(m, "frameproxy_dns_name_resolutions_total",
			 "server_name=\"kept.fp.test\"") >= 1);
	CHECK(metric_sum(m, "frameproxy_dns_name_failures_total",
			 "server_name=\"kept.fp.test\"") >= 1);
	std::string stats = http_body(http_get(admin, "/stats"));
	CHECK(stats.find("\"name\":\"" + e.addr() + "\",\"server_name\":\"kept.fp.test\"") !=
	      std::string::npos);
}

TEST_CASE("dns: one query per name per interval across shards", "[dns]")
{
	DnsServer dns;
	EchoAt e("127.0.0.1", 0);
	dns.set_a("shared.fp.test", {"127.0.0.1"}, 1);
	Proxy proxy({"--resolvers", dns.addr(), "--shards", "2", "--admin", "0",
		     "--server", "shared.fp.test:" + std::to_string(e.port())});
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	uint16_t admin = proxy.admin_port();
	unsigned start = dns.queries("shared.fp.test", "A");
	std::this_thread::sleep_for(milliseconds(4000));
	unsigned n = dns.queries("shared.fp.test", "A") - start;
	INFO("A queries in 4 s: " << n);
	CHECK(n >= 3);
	CHECK(n <= 5); // one shard asks every second; two would make 8
	std::string m = metrics(proxy, admin);
	INFO(m);
	// Both shards have the server: one resolved it, one took the board's.
	CHECK(wait_until([&] {
		return metric_sum(metrics(proxy, admin), "frameproxy_dns_servers") == 2;
	}, T5));
	CHECK(metric_sum(m, "frameproxy_dns_resolutions_total", "shard=\"1\"") == 0);
	// Per line: the owner counts the lookups, both shards have the server.
	const std::string name = "server_name=\"shared.fp.test\"";
	CHECK(metric_sum(m, "frameproxy_dns_name_resolutions_total", name) >= 3);
	CHECK(metric_sum(m, "frameproxy_dns_name_resolutions_total",
			 "shard=\"1\",listener=\"default\"," + name) == 0);
	CHECK(metric_sum(m, "frameproxy_dns_name_resolved", name) == 2);
	CHECK(roundtrips(proxy, 6) == 6);
}

TEST_CASE("dns: --check takes a name's syntax, no DNS asked", "[dns]")
{
	RefusingPort nobody; // a resolver that would refuse: never asked
	Process check({binary("FRAMEPROXY"), "--check", "--listen", "127.0.0.1:0",
		       "--resolvers", nobody.addr(), "--server", "db.nowhere.invalid:5432",
		       "--server", "_db._tcp.nowhere.invalid srv weight=2"}, "frameproxy");
	CHECK(run_to_exit(check, T5) == 0);
	Process bad({binary("FRAMEPROXY"), "--check", "--listen", "127.0.0.1:0",
		     "--server", "_db._tcp.nowhere.invalid:53 srv"}, "frameproxy");
	CHECK(run_to_exit(bad, T5) == 1);
	CHECK(bad.err().find("an srv name takes no port") != std::string::npos);
}

TEST_CASE("dns: a reload's shards resolve their own names", "[dns]")
{
	DnsServer dns;
	Trio t;
	dns.set_a("one.fp.test", {"127.0.0.1"}, 1);
	dns.set_a("two.fp.test", {"127.0.0.2"}, 1);
	std::string path = tmp().file("dns-reload.ini");
	auto config = [&](const std::string &name) {
		write_file(path, "[frameproxy]\nresolvers = " + dns.addr() +
			   "\n[listener default]\nlisten = 127.0.0.1:0\nserver = " +
			   name + ":" + t.port() + "\n");
	};
	config("one.fp.test");
	Proxy proxy({"-c", path, "--shards", "2"});
	REQUIRE(proxy.wait_ready());
	INFO(proxy.log_tail());
	REQUIRE(changed(proxy, t.addr(0), "-", T5));
	CHECK(roundtrips(proxy, 4) == 4);

	config("two.fp.test");
	proxy.proc().signal(SIGHUP);
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload complete") && r.is("generation", "1");
	}, T10));
	// Both new shards have the new name's server (one resolved it, one
	// took it from the board of the new generation).
	CHECK(wait_until([&] {
		size_t n = 0;
		for (auto &r : proxy.records("servers changed"))
			n += r.is("name", "two.fp.test");
		return n >= 2;
	}, T5));
	auto before = t.accepted();
	CHECK(roundtrips(proxy, 6) == 6);
	auto after = t.accepted();
	CHECK(after[0] == before[0]);
	CHECK(after[1] == before[1] + 6);
	// The old name is not asked for any more.
	unsigned asked = dns.queries("one.fp.test", "A");
	std::this_thread::sleep_for(milliseconds(2500));
	CHECK(dns.queries("one.fp.test", "A") == asked);
}
