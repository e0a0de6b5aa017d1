// Integration tests (issue 16): the PROXY protocol through the real
// frameproxy. In: v1 and v2 headers naming a client that ACLs,
// max_per_client, hash balancing and the access log then see; v2 LOCAL;
// malformed, truncated, missing and slow headers closed as
// bad_proxy_header; accept_proxy_from; rpc mode. Out: send_proxy v1 and
// v2, read back by an in-test upstream. Interop: HAProxy's send-proxy-v2
// in front, when /usr/sbin/haproxy is installed. Run once per poller.
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

std::string v1(const std::string &src_ip, int src_port, const std::string &dst_ip,
	       int dst_port)
{
	bool six = src_ip.find(':') != std::string::npos;
	return "PROXY " + std::string(six ? "TCP6 " : "TCP4 ") + src_ip + " " +
	       dst_ip + " " + std::to_string(src_port) + " " +
	       std::to_string(dst_port) + "\r\n";
}

const std::string v2_sig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2_raw(uint8_t ver_cmd, uint8_t family, const std::string &body)
{
	std::string h = v2_sig;
	h += (char)ver_cmd;
	h += (char)family;
	h += (char)(body.size() >> 8);
	h += (char)(body.size() & 0xff);
	return h + body;
}

// v2 PROXY over TCP4, with `tlvs` (raw) after the addresses.
std::string v2(const std::string &src_ip, int src_port, const std::string &dst_ip,
	       int dst_port, const std::string &tlvs = "")
{
	std::string body(12, '\0');
	inet_pton(AF_INET, src_ip.c_str(), &body[0]);
	inet_pton(AF_INET, dst_ip.c_str(), &body[4]);
	body[8] = (char)(src_port >> 8), body[9] = (char)(src_port & 0xff);
	body[10] = (char)(dst_port >> 8), body[11] = (char)(dst_port & 0xff);
	return v2_raw(0x21, 0x11, body + tlvs);
}

const std::string v2_local = v2_raw(0x20, 0x00, "");

int port_of(const std::string &addr)
{
	return std::stoi(addr.substr(addr.rfind(':') + 1));
}

// Connects, sends the header and a frame in one write (the proxy must not
// eat the frame with the header), and expects the echo.
bool header_roundtrip(uint16_t port, const std::string &header,
		      const std::string &payload, Conn *keep = nullptr,
		      const std::string &src = "")
{
	Conn c = Conn::connect(port, src);
	if (!c.valid() || c.send_all(header + frame(payload)) != Io::Ok)
		return false;
	std::string got;
	if (c.read_frame(got) != Io::Ok || got != payload)
		return false;
	if (keep)
		*keep = std::move(c);
	return true;
}

// Sends bytes and expects the proxy to close the connection.
bool closed_after(uint16_t port, const std::string &bytes, bool shut = false,
		  milliseconds timeout = milliseconds(3000))
{
	Conn c = Conn::connect(port);
	if (!c.valid() || (!bytes.empty() && c.send_all(bytes) != Io::Ok))
		return false;
	if (shut)
		c.shutdown_write();
	Io r = c.wait_closed(timeout);
	return r == Io::Eof || r == Io::Reset;
}

} // namespace

TEST_CASE("accept_proxy v1: the header's client is the client, the frame after "
	  "it is relayed", "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "v1", "--deny",
		     "192.0.2.66/32", "--admin", "127.0.0.1:0"});

	Conn kept;
	REQUIRE(header_roundtrip(proxy.port(), v1("192.0.2.10", 40000, "198.51.100.1", 9000),
				 "hello", &kept));
	const std::string peer = kept.local_addr();
	REQUIRE(kept.roundtrip("and more"));
	kept.close();
	LogRecord access;
	REQUIRE(proxy.wait_access("192.0.2.10:40000", T5, &access));
	CHECK(access.get("peer") == peer);
	CHECK(access.get("reason") == "client_eof");
	CHECK(access.num("client_frames") == 2);

	// TCP6 too.
	REQUIRE(header_roundtrip(proxy.port(), v1("2001:db8::5", 1234, "2001:db8::1", 80),
				 "six"));
	REQUIRE(proxy.wait_access("[2001:db8::5]:1234", T5));

	// The ACL sees the header's address, not 127.0.0.1.
	Conn bad = Conn::connect(proxy.port());
	REQUIRE(bad.valid());
	REQUIRE(bad.send_all(v1("192.0.2.66", 5000, "198.51.100.1", 9000) +
			     frame("x")) == Io::Ok);
	Io r = bad.wait_closed(milliseconds(3000));
	CHECK((r == Io::Eof || r == Io::Reset));
	REQUIRE(proxy.wait_access("192.0.2.66:5000", T5, &access));
	CHECK(access.get("reason") == "denied");
	CHECK(access.get("upstream") == "-");

	// Counters are published a few times a second.
	CHECK(wait_until([&] {
		return metric(proxy, "frameproxy_proxy_headers_accepted_total") == 3;
	}, T5));
	CHECK(metric(proxy, "frameproxy_proxy_headers_rejected_total") == 0);
}

TEST_CASE("accept_proxy v2: TLVs skipped, max_per_client counts the header's "
	  "client", "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "v2",
		     "--max-per-client", "1"});
	// ALPN, an AWS-style custom TLV and a NOOP.
	const std::string tlvs = std::string("\x01\x00\x02h2", 5) +
				 std::string("\xea\x00\x04vpc1", 7) +
				 std::string("\x04\x00\x00", 3);

	Conn first;
	REQUIRE(header_roundtrip(proxy.port(), v2("203.0.113.5", 1111, "10.0.0.1", 9000, tlvs),
				 "first", &first));
	// The same client from another port: over its limit, though the TCP
	// peer (127.0.0.1) is new to nobody.
	Conn second = Conn::connect(proxy.port());
	REQUIRE(second.valid());
	REQUIRE(second.send_all(v2("203.0.113.5", 2222, "10.0.0.1", 9000)) == Io::Ok);
	Io r = second.wait_closed(milliseconds(3000));
	CHECK((r == Io::Eof || r == Io::Reset));
	LogRecord access;
	REQUIRE(proxy.wait_access("203.0.113.5:2222", T5, &access));
	CHECK(access.get("reason") == "client_limit");
	// Another client through the same balancer address is served.
	Conn other;
	REQUIRE(header_roundtrip(proxy.port(), v2("203.0.113.6", 1111, "10.0.0.1", 9000),
				 "other", &other));
	REQUIRE(first.roundtrip("still here"));
}

TEST_CASE("accept_proxy any: v1 and v2 detected; v2 LOCAL uses the peer's "
	  "address", "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "any"});

	REQUIRE(header_roundtrip(proxy.port(), v1("192.0.2.1", 1, "192.0.2.2", 2), "one"));
	REQUIRE(proxy.wait_access("192.0.2.1:1", T5));
	REQUIRE(header_roundtrip(proxy.port(), v2("192.0.2.3", 3, "192.0.2.2", 2), "two"));
	REQUIRE(proxy.wait_access("192.0.2.3:3", T5));

	Conn local;
	REQUIRE(header_roundtrip(proxy.port(), v2_local, "health", &local, "127.0.0.44"));
	const std::string self = local.local_addr();
	local.close();
	LogRecord access;
	REQUIRE(proxy.wait_access(self, T5, &access));
	CHECK(access.get("peer") == self);
	CHECK(access.get("reason") == "client_eof");
	// v1 UNKNOWN: the same.
	Conn unknown;
	REQUIRE(header_roundtrip(proxy.port(), "PROXY UNKNOWN\r\n", "u", &unknown,
				 "127.0.0.45"));
	const std::string self2 = unknown.local_addr();
	unknown.close();
	REQUIRE(proxy.wait_access(self2, T5));
}

TEST_CASE("balance = hash follows the header's client", "[proxyproto]")
{
	Echo a, b;
	Proxy proxy({"--server", a.addr(), "--server", b.addr(), "--balance", "hash",
		     "--accept-proxy", "v2"});
	// 16 clients, 3 connections each: each client always lands on one
	// server, and the clients spread over both (every TCP peer is
	// 127.0.0.1, which alone would pick one server for all).
	for (int c = 0; c < 16; c++) {
		for (int k = 0; k < 3; k++) {
			std::string ip = "198.18.0." + std::to_string(10 + c);
			REQUIRE(header_roundtrip(proxy.port(), v2(ip, 1000 + k, "10.0.0.1", 9),
						 "h"));
		}
	}
	REQUIRE(proxy.wait_access_count(48, T5));
	std::map<std::string, std::set<std::string>> by_ip;
	std::set<std::string> used;
	for (const auto &r : proxy.records("access")) {
		std::string client = r.get("client");
		by_ip[client.substr(0, client.rfind(':'))].insert(r.get("upstream"));
		used.insert(r.get("upstream"));
	}
	REQUIRE(by_ip.size() == 16);
	for (const auto &kv : by_ip) {
		INFO(kv.first);
		CHECK(kv.second.size() == 1);
	}
	CHECK(used.size() == 2);
}

TEST_CASE("bad, truncated, missing and slow headers close with bad_proxy_header",
	  "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "any",
		     "--connect-timeout", "400ms", "--admin", "127.0.0.1:0"});
	const uint16_t port = proxy.port();
	size_t bad = 0;

	// Malformed.
	CHECK(closed_after(port, "PROXY TCP4 300.1.1.1 1.1.1.1 1 2\r\n" + frame("x")));
	CHECK(closed_after(port, "PROXY TCP9 1.1.1.1 1.1.1.1 1 2\r\n"));
	CHECK(closed_after(port, v2_raw(0x21, 0x12, std::string(12, '\0')))); // UDP
	CHECK(closed_after(port, v2_raw(0x31, 0x11, std::string(12, '\0')))); // version 3
	CHECK(closed_after(port, v2("1.1.1.1", 1, "2.2.2.2", 2,
				    std::string("\x01\x00\x09zz", 5))));       // TLV overrun
	bad += 5;
	// Oversized: a v1 line without CRLF, a v2 length past the bound.
	CHECK(closed_after(port, "PROXY UNKNOWN " + std::string(200, 'x')));
	CHECK(closed_after(port, v2_raw(0x21, 0x11, std::string(5000, '\0'))));
	bad += 2;
	// Missing: a client that speaks frames at once.
	CHECK(closed_after(port, frame("no header here")));
	bad += 1;
	// Truncated: part of a header, then EOF.
	CHECK(closed_after(port, "PROXY TCP4 1.2.3.4", true));
	CHECK(closed_after(port, v2("1.1.1.1", 1, "2.2.2.2", 2).substr(0, 20), true));
	bad += 2;
	// Slow: part of a header, then nothing until connect_timeout.
	auto t0 = Clock::now();
	CHECK(closed_after(port, v2_sig.substr(0, 8), false, milliseconds(3000)));
	long long slow_ms = ms_since(t0);
	CHECK(slow_ms >= 300);
	CHECK(slow_ms < 2500);
	// Nothing at all.
	CHECK(closed_after(port, "", false, milliseconds(3000)));
	bad += 2;

	REQUIRE(wait_until([&] { return count_reason(proxy, "bad_proxy_header") == bad; },
			   T5));
	CHECK(count_reason(proxy, "bad_proxy_header") == bad);
	CHECK(proxy.records("bad proxy header").size() >= 1);
	// The warning is rate limited (a burst of 5): the first ones name
	// their cause, the first of all a bad address.
	auto warnings = proxy.records("bad proxy header");
	REQUIRE(!warnings.empty());
	CHECK(warnings[0].get("error") == "address");
	for (const auto &r : warnings) {
		CHECK(r.get("peer").compare(0, 10, "127.0.0.1:") == 0);
		CHECK(r.get("listener") == "default");
	}
	CHECK(wait_until([&] {
		return metric(proxy, "frameproxy_proxy_headers_rejected_total") == bad;
	}, T5));
	CHECK(metric(proxy, "frameproxy_connections_closed_total", "bad_proxy_header") == bad);
	// Nothing reached the upstream, and good clients are still served.
	REQUIRE(header_roundtrip(port, v1("192.0.2.9", 9, "192.0.2.2", 2), "fine"));
}

TEST_CASE("accept_proxy_from: only those peers may send a header", "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "v1",
		     "--accept-proxy-from", "127.0.0.50/31, 10.0.0.0/8"});

	REQUIRE(header_roundtrip(proxy.port(), v1("192.0.2.20", 20, "192.0.2.2", 2), "ok",
				 nullptr, "127.0.0.51"));
	REQUIRE(proxy.wait_access("192.0.2.20:20", T5));

	Conn forged = Conn::connect(proxy.port(), "127.0.0.52");
	REQUIRE(forged.valid());
	const std::string self = forged.local_addr();
	REQUIRE(forged.send_all(v1("192.0.2.21", 21, "192.0.2.2", 2) + frame("x")) == Io::Ok);
	Io r = forged.wait_closed(milliseconds(3000));
	CHECK((r == Io::Eof || r == Io::Reset));
	LogRecord access;
	REQUIRE(proxy.wait_access(self, T5, &access));
	CHECK(access.get("reason") == "denied");
	CHECK(count_reason(proxy, "bad_proxy_header") == 0);
}

TEST_CASE("accept_proxy in rpc mode: the header's client in the access line",
	  "[proxyproto]")
{
	Echo echo;
	Proxy proxy({"--mode", "rpc", "--server", echo.addr(), "--accept-proxy", "v2",
		     "--deny", "192.0.2.99"});
	Conn c;
	REQUIRE(header_roundtrip(proxy.port(), v2("192.0.2.30", 30, "10.0.0.1", 9), "rpc",
				 &c));
	REQUIRE(c.roundtrip("rpc again"));
	const std::string peer = c.local_addr();
	c.close();
	LogRecord access;
	REQUIRE(proxy.wait_access("192.0.2.30:30", T5, &access));
	CHECK(access.get("peer") == peer);
	CHECK(access.num("replied") == 2);
	CHECK(closed_after(proxy.port(), v2("192.0.2.99", 1, "10.0.0.1", 9) + frame("x")));
	REQUIRE(proxy.wait_access("192.0.2.99:1", T5, &access));
	CHECK(access.get("reason") == "denied");
	CHECK(closed_after(proxy.port(), "garbage\r\n"));
	REQUIRE(wait_until([&] { return count_reason(proxy, "bad_proxy_header") == 1; }, T5));
}

TEST_CASE("send_proxy v1 and v2: each upstream connection starts with the client's "
	  "header", "[proxyproto]")
{
	SECTION("v1, the TCP client")
	{
		TestUpstream up(TestUpstream::Mode::Hold);
		Proxy proxy({"--server", up.addr(), "--send-proxy", "v1"});
		Conn c = Conn::connect(proxy.port(), "127.0.0.61");
		REQUIRE(c.valid());
		REQUIRE(c.send_frame("payload") == Io::Ok);
		const std::string header = v1("127.0.0.61", port_of(c.local_addr()),
					      "127.0.0.1", proxy.port());
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= header.size() + 11;
		}));
		CHECK(up.conn(0).data == header + frame("payload"));
	}
	SECTION("v2, the client an inbound v1 header named")
	{
		TestUpstream up(TestUpstream::Mode::Hold);
		Proxy proxy({"--server", up.addr(), "--accept-proxy", "v1", "--send-proxy",
			     "v2"});
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_all(v1("192.0.2.70", 7070, "198.51.100.7", 443) +
				   frame("p2")) == Io::Ok);
		const std::string header = v2("192.0.2.70", 7070, "198.51.100.7", 443);
		REQUIRE(header.size() == 28);
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= header.size() + 6;
		}));
		CHECK(up.conn(0).data == header + frame("p2"));
	}
	SECTION("v2 from a LOCAL inbound header names the TCP peer")
	{
		TestUpstream up(TestUpstream::Mode::Hold);
		Proxy proxy({"--server", up.addr(), "--accept-proxy", "v2", "--send-proxy",
			     "v2"});
		Conn c = Conn::connect(proxy.port(), "127.0.0.62");
		REQUIRE(c.valid());
		REQUIRE(c.send_all(v2_local + frame("l")) == Io::Ok);
		int cport = port_of(c.local_addr());
		const std::string header = v2("127.0.0.62", cport, "127.0.0.1", proxy.port());
		REQUIRE(up.wait_conn(0, T5, [&](const TestUpstream::ConnInfo &i) {
			return i.data.size() >= header.size() + 5;
		}));
		CHECK(up.conn(0).data == header + frame("l"));
	}
}

namespace {

// An upstream that expects a PROXY header: it reads one (v1 up to its
// CRLF, v2 by its length, a byte at a time so nothing after it is taken),
// keeps it, then echoes every byte until EOF. One connection at a time.
class HeaderEcho {
public:
	HeaderEcho()
	{
		listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
		socklen_t len = sizeof(sa);
		REQUIRE(bind(listen_fd_, (sockaddr *)&sa, sizeof(sa)) == 0);
		REQUIRE(listen(listen_fd_, 16) == 0);
		REQUIRE(getsockname(listen_fd_, (sockaddr *)&sa, &len) == 0);
		port_ = ntohs(sa.sin_port);
		thread_ = std::thread([this] { run(); });
	}
	~HeaderEcho()
	{
		stop_ = true;
		thread_.join();
		::close(listen_fd_);
	}
	HeaderEcho(const HeaderEcho &) = delete;
	HeaderEcho &operator=(const HeaderEcho &) = delete;

	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

	std::vector<std::string> headers()
	{
		std::lock_guard<std::mutex> lock(mu_);
		return headers_;
	}

private:
	bool readable(int fd)
	{
		pollfd p{fd, POLLIN, 0};
		return ::poll(&p, 1, 100) > 0;
	}

	// One byte, waiting in 100 ms steps while the test runs; false at EOF.
	bool read_byte(int fd, char *c)
	{
		while (!stop_) {
			if (!readable(fd))
				continue;
			return ::read(fd, c, 1) == 1;
		}
		return false;
	}

	bool read_header(int fd, std::string &h)
	{
		char c;
		while (read_byte(fd, &c)) {
			h += c;
			if (h[0] != '\r' && h.size() >= 2 &&
			    h.compare(h.size() - 2, 2, "\r\n") == 0)
				return true;
			if (h[0] == '\r' && h.size() >= 16 &&
			    h.size() == 16 + ((size_t)(uint8_t)h[14] << 8 | (uint8_t)h[15]))
				return true;
			if (h.size() > 4096)
				return false;
		}
		return false;
	}

	void serve(int fd)
	{
		std::string h;
		if (!read_header(fd, h))
			return;
		{
			std::lock_guard<std::mutex> lock(mu_);
			headers_.push_back(h);
		}
		char buf[4096];
		while (!stop_) {
			if (!readable(fd))
				continue;
			ssize_t n = ::read(fd, buf, sizeof(buf));
			if (n <= 0 || ::send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
				return;
		}
	}

	void run()
	{
		while (!stop_) {
			if (!readable(listen_fd_))
				continue;
			int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			serve(fd);
			::close(fd);
		}
	}

	int listen_fd_ = -1;
	uint16_t port_ = 0;
	std::thread thread_;
	std::atomic<bool> stop_{false};
	std::mutex mu_;
	std::vector<std::string> headers_;
};

} // namespace

TEST_CASE("send_proxy: an upstream that reads the header first then serves the "
	  "client", "[proxyproto]")
{
	for (const char *version : {"v1", "v2"}) {
		INFO(version);
		HeaderEcho up;
		Proxy proxy({"--server", up.addr(), "--send-proxy", version});
		for (int i = 0; i < 3; i++) {
			std::string src = "127.0.0." + std::to_string(90 + i);
			Conn c = Conn::connect(proxy.port(), src);
			REQUIRE(c.valid());
			REQUIRE(c.roundtrip("first frame " + std::to_string(i)));
			REQUIRE(c.roundtrip(std::string(70000, 'q')));
			int cport = port_of(c.local_addr());
			c.close();
			REQUIRE(wait_until([&] { return up.headers().size() == (size_t)i + 1; },
					   T5));
			std::string want = version[1] == '1'
				? v1(src, cport, "127.0.0.1", proxy.port())
				: v2(src, cport, "127.0.0.1", proxy.port());
			CHECK(up.headers()[(size_t)i] == want);
		}
	}
}

TEST_CASE("send_proxy: health checks with check_frame start with a header naming "
	  "no client", "[proxyproto]")
{
	for (const char *version : {"v1", "v2"}) {
		INFO(version);
		HeaderEcho up;
		Proxy proxy({"--server", up.addr(), "--send-proxy", version,
			     "--health-interval", "100ms", "--check-frame", "70696e67"});
		// An upstream that insists on a header answers the checks, so
		// the server stays up and serves.
		const std::string local = version[1] == '1' ? "PROXY UNKNOWN\r\n" : v2_local;
		REQUIRE(wait_until([&] {
			auto h = up.headers();
			return std::count(h.begin(), h.end(), local) >= 3;
		}, T5));
		Conn c = Conn::connect(proxy.port(), "127.0.0.95");
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip("after the checks"));
		CHECK(proxy.records("upstream down").empty());
	}
}

TEST_CASE("send_proxy in rpc mode is refused at start", "[proxyproto]")
{
	Process p({binary("FRAMEPROXY"), "--check", "--listen", "127.0.0.1:0",
		   "--server", "127.0.0.1:1", "--mode", "rpc", "--send-proxy", "v1"},
		  "frameproxy-check");
	CHECK(run_to_exit(p, milliseconds(10000)) != 0);
	CHECK(p.err().find("--send-proxy: not available in mode = rpc") !=
	      std::string::npos);
}

namespace {

uint16_t free_port()
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
	socklen_t len = sizeof(sa);
	if (fd < 0 || bind(fd, (sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			::close(fd);
		return 0;
	}
	::close(fd);
	return ntohs(sa.sin_port);
}

} // namespace

TEST_CASE("HAProxy with send-proxy-v2 in front: the real client reaches the log",
	  "[proxyproto][haproxy]")
{
	const std::string haproxy = "/usr/sbin/haproxy";
	if (access(haproxy.c_str(), X_OK) != 0) {
		WARN("skipped: " << haproxy << " is not installed");
		return;
	}
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--accept-proxy", "v2",
		     "--accept-proxy-from", "127.0.0.1", "--deny", "127.0.0.77"});
	uint16_t front = free_port();
	REQUIRE(front != 0);
	const std::string cfg = tmp().file("haproxy.cfg");
	write_file(cfg, "global\n  log stderr format short local0 info\n"
			"defaults\n  mode tcp\n  timeout connect 2s\n"
			"  timeout client 10s\n  timeout server 10s\n"
			"frontend fe\n  bind 127.0.0.1:" + std::to_string(front) + "\n"
			"  default_backend be\n"
			"backend be\n  server fp 127.0.0.1:" + std::to_string(proxy.port()) +
			" send-proxy-v2 source 127.0.0.1\n");
	Process hap({haproxy, "-db", "-f", cfg}, "haproxy");
	Conn c;
	REQUIRE(wait_until([&] {
		c = Conn::connect(front, "127.0.0.78", milliseconds(500));
		return c.valid();
	}, T5));
	const std::string client = c.local_addr();
	REQUIRE(c.roundtrip("through haproxy"));
	REQUIRE(c.roundtrip(std::string(100000, 'z')));
	c.close();
	LogRecord access;
	REQUIRE(proxy.wait_access(client, T5, &access));
	CHECK(access.get("peer").compare(0, 10, "127.0.0.1:") == 0);
	CHECK(access.num("client_frames") == 2);
	// A client the ACL denies, known only from HAProxy's header.
	Conn denied = Conn::connect(front, "127.0.0.77");
	REQUIRE(denied.valid());
	const std::string denied_addr = denied.local_addr();
	denied.send_frame("x");
	Io r = denied.wait_closed(milliseconds(3000));
	CHECK((r == Io::Eof || r == Io::Reset));
	REQUIRE(proxy.wait_access(denied_addr, T5, &access));
	CHECK(access.get("reason") == "denied");
}
