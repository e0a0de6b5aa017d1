// poll_addr_parse / poll_addr_format: the one "HOST:PORT" reader and writer
// (the proxy's netaddr and the tools' options are both over it; the strict
// forms are also covered by tests/proxy/netaddr_test.cpp).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <string>
#include <sys/un.h>

#include "poll/poll.h"

namespace {

std::string formatted(const sockaddr_storage &ss)
{
	char buf[POLL_ADDR_STRLEN];
	return poll_addr_format((const sockaddr *)&ss, buf, sizeof(buf));
}

int parse(const char *text, unsigned flags, sockaddr_storage &ss)
{
	socklen_t len = 0;
	int rc = poll_addr_parse(text, flags, &ss, &len);
	if (rc == 0)
		CHECK(len == (ss.ss_family == AF_INET ? sizeof(sockaddr_in)
						      : sizeof(sockaddr_in6)));
	return rc;
}

} // namespace

TEST_CASE("poll_addr: numeric forms round-trip", "[addr]")
{
	sockaddr_storage ss;
	for (const char *text : {"127.0.0.1:9000", "[::1]:9000", "0.0.0.0:1",
				 "[2001:db8::5]:65535", "[::ffff:10.1.2.3]:80"}) {
		INFO(text);
		REQUIRE(parse(text, 0, ss) == 0);
		CHECK(formatted(ss) == text);
	}
	// A bracketed IPv4 literal is read as IPv4.
	REQUIRE(parse("[1.2.3.4]:80", 0, ss) == 0);
	CHECK(formatted(ss) == "1.2.3.4:80");
}

TEST_CASE("poll_addr: port 0 and the empty host need their flags", "[addr]")
{
	sockaddr_storage ss;
	CHECK(parse("127.0.0.1:0", 0, ss) == -ERANGE);
	REQUIRE(parse("127.0.0.1:0", POLL_ADDR_PORT0, ss) == 0);
	CHECK(formatted(ss) == "127.0.0.1:0");

	CHECK(parse(":9000", 0, ss) == -EINVAL);
	REQUIRE(parse(":9000", POLL_ADDR_ANY_HOST, ss) == 0);
	CHECK(formatted(ss) == "0.0.0.0:9000");
	REQUIRE(parse(":0", POLL_ADDR_ANY_HOST | POLL_ADDR_PORT0, ss) == 0);
	CHECK(formatted(ss) == "0.0.0.0:0");
	// Brackets never mean "any", and a port is still required.
	CHECK(parse("[]:80", POLL_ADDR_ANY_HOST, ss) == -EINVAL);
	CHECK(parse(":", POLL_ADDR_ANY_HOST, ss) == -EINVAL);
}

TEST_CASE("poll_addr: malformed text and names", "[addr]")
{
	sockaddr_storage ss;
	socklen_t len;
	CHECK(poll_addr_parse(nullptr, 0, &ss, &len) == -EINVAL);
	for (const char *bad : {"", "127.0.0.1", "::1:9000", "[::1]", "[::1:9000",
				"[localhost]:9000", "127.0.0.1:x", "1.2.3.4: 80"}) {
		INFO("'" << bad << "'");
		CHECK(parse(bad, POLL_ADDR_ANY_HOST | POLL_ADDR_PORT0, ss) == -EINVAL);
	}
	CHECK(parse("1.2.3.4:65536", 0, ss) == -ERANGE);
	CHECK(parse("localhost:80", POLL_ADDR_NUMERIC, ss) == -ENOENT);
	CHECK(parse("no-such-host.invalid:80", 0, ss) == -ENOENT);
	REQUIRE(parse("localhost:80", 0, ss) == 0);
	CHECK(formatted(ss) == "127.0.0.1:80");  // IPv4 first
}

TEST_CASE("poll_addr: other families format as ?", "[addr]")
{
	sockaddr_un un = {};
	un.sun_family = AF_UNIX;
	char buf[POLL_ADDR_STRLEN];
	CHECK(std::string(poll_addr_format((const sockaddr *)&un, buf,
					   sizeof(buf))) == "?");
}
