// netaddr: host:port text to sockaddr and back.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <string>

#include "proxy/netaddr.h"

static std::string fmt(const netaddr &a)
{
	char buf[NETADDR_STRLEN];
	return netaddr_format((const sockaddr *)&a.ss, buf, sizeof(buf));
}

static netaddr parsed(const char *text, unsigned flags = 0)
{
	netaddr a;
	std::memset(&a, 0xab, sizeof(a));
	INFO("text: " << text);
	REQUIRE(netaddr_parse(&a, text, flags) == 0);
	return a;
}

TEST_CASE("netaddr: numeric IPv4 and IPv6", "[netaddr]")
{
	netaddr a = parsed("127.0.0.1:9000");
	REQUIRE(a.ss.ss_family == AF_INET);
	CHECK(a.len == sizeof(sockaddr_in));
	auto *sin = (sockaddr_in *)&a.ss;
	CHECK(ntohs(sin->sin_port) == 9000);
	CHECK(ntohl(sin->sin_addr.s_addr) == 0x7f000001);
	CHECK(fmt(a) == "127.0.0.1:9000");

	netaddr b = parsed("[::1]:9000");
	REQUIRE(b.ss.ss_family == AF_INET6);
	CHECK(b.len == sizeof(sockaddr_in6));
	CHECK(fmt(b) == "[::1]:9000");
	CHECK(netaddr_port((const sockaddr *)&b.ss) == 9000);

	CHECK(fmt(parsed("[2001:db8::5]:65535")) == "[2001:db8::5]:65535");
	CHECK(fmt(parsed("0.0.0.0:1")) == "0.0.0.0:1");
	CHECK(fmt(parsed("[::ffff:10.1.2.3]:80")) == "[::ffff:10.1.2.3]:80");
}

TEST_CASE("netaddr: names resolve, IPv4 preferred", "[netaddr]")
{
	netaddr a = parsed("localhost:9000");
	// /etc/hosts maps localhost to 127.0.0.1 (and usually ::1 too).
	CHECK(fmt(a) == "127.0.0.1:9000");

	netaddr n;
	CHECK(netaddr_parse(&n, "localhost:9000", NETADDR_NUMERIC) == -ENOENT);
	CHECK(netaddr_parse(&n, "no-such-host.invalid:9000", 0) == -ENOENT);
}

TEST_CASE("netaddr: malformed input and port range", "[netaddr]")
{
	netaddr a;
	const char *bad[] = { "", "127.0.0.1", "127.0.0.1:", ":9000",
			      "::1:9000", "[::1]", "[::1]9000", "[::1:9000",
			      "127.0.0.1:90x0", "127.0.0.1: 9000",
			      "[localhost]:9000", "127.0.0.1:-1", "[]:80" };
	for (const char *t : bad) {
		INFO("text: '" << t << "'");
		CHECK(netaddr_parse(&a, t, 0) == -EINVAL);
	}
	CHECK(netaddr_parse(&a, "127.0.0.1:65536", 0) == -ERANGE);
	CHECK(netaddr_parse(&a, "127.0.0.1:0", 0) == -ERANGE);
	CHECK(netaddr_parse(&a, "127.0.0.1:0", NETADDR_ALLOW_PORT0) == 0);
	CHECK(netaddr_port((const sockaddr *)&a.ss) == 0);
	CHECK(netaddr_parse(&a, "127.0.0.1:99999999999999999999", 0) == -ERANGE);
}

TEST_CASE("netaddr: equality and IP bytes unmap IPv4-mapped", "[netaddr]")
{
	netaddr a = parsed("10.1.2.3:80"), b = parsed("10.1.2.3:80");
	netaddr c = parsed("10.1.2.3:81"), m = parsed("[::ffff:10.1.2.3]:80");
	netaddr v6 = parsed("[2001:db8::1]:80");
	CHECK(netaddr_equal((sockaddr *)&a.ss, (sockaddr *)&b.ss));
	CHECK_FALSE(netaddr_equal((sockaddr *)&a.ss, (sockaddr *)&c.ss));
	CHECK_FALSE(netaddr_equal((sockaddr *)&a.ss, (sockaddr *)&m.ss));

	unsigned char x[16], y[16];
	REQUIRE(netaddr_ip_bytes((sockaddr *)&a.ss, x) == 4);
	REQUIRE(netaddr_ip_bytes((sockaddr *)&m.ss, y) == 4);
	CHECK(std::memcmp(x, y, 4) == 0);
	CHECK(netaddr_ip_bytes((sockaddr *)&v6.ss, x) == 16);
	CHECK(x[0] == 0x20);
	CHECK(x[15] == 0x01);

	char buf[NETADDR_STRLEN];
	CHECK(std::string(netaddr_format_ip((sockaddr *)&v6.ss, buf,
					    sizeof(buf))) == "2001:db8::1");
	sockaddr unix_sa;
	std::memset(&unix_sa, 0, sizeof(unix_sa));
	unix_sa.sa_family = AF_UNIX;
	CHECK(std::string(netaddr_format(&unix_sa, buf, sizeof(buf))) == "?");
	CHECK(netaddr_ip_bytes(&unix_sa, x) == 0);
}
