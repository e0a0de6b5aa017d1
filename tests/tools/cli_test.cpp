// Command-line parsing shared by frameecho and framebench.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <netinet/in.h>
#include <string>

#include "poll/poll.h"
#include "tools/lib/cli.h"

TEST_CASE("util durations", "[util]")
{
	int64_t ns = 0;
	CHECK(cli_parse_duration("2", &ns) == 0);
	CHECK(ns == 2000000000);
	CHECK(cli_parse_duration("1.5s", &ns) == 0);
	CHECK(ns == 1500000000);
	CHECK(cli_parse_duration("250ms", &ns) == 0);
	CHECK(ns == 250000000);
	CHECK(cli_parse_duration("100us", &ns) == 0);
	CHECK(ns == 100000);
	CHECK(cli_parse_duration("2m", &ns) == 0);
	CHECK(ns == 120000000000);
	CHECK(cli_parse_duration("0", &ns) == 0);
	CHECK(ns == 0);
	for (const char *bad : {"", "s", "-1s", "5x", "1e400", "ms5"})
		CHECK(cli_parse_duration(bad, &ns) < 0);
}

TEST_CASE("util sizes", "[util]")
{
	uint64_t v = 0;
	CHECK(cli_parse_size("4096", &v) == 0);
	CHECK(v == 4096);
	CHECK(cli_parse_size("64K", &v) == 0);
	CHECK(v == 65536);
	CHECK(cli_parse_size("16MiB", &v) == 0);
	CHECK(v == 16u * 1024 * 1024);
	CHECK(cli_parse_size("1.5k", &v) == 0);
	CHECK(v == 1536);
	for (const char *bad : {"", "K", "-1", "0.5", "12Q"})
		CHECK(cli_parse_size(bad, &v) < 0);
}

TEST_CASE("util addresses", "[util]")
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[80];
	REQUIRE(cli_parse_addr("127.0.0.1:8080", &ss, &len) == 0);
	CHECK(std::string(poll_addr_format((struct sockaddr *)&ss, buf,
					   sizeof(buf))) == "127.0.0.1:8080");
	REQUIRE(cli_parse_addr("[::1]:0", &ss, &len) == 0);
	CHECK(ss.ss_family == AF_INET6);
	CHECK(std::string(poll_addr_format((struct sockaddr *)&ss, buf,
					   sizeof(buf))) == "[::1]:0");
	REQUIRE(cli_parse_addr(":9000", &ss, &len) == 0);
	CHECK(ss.ss_family == AF_INET);
	for (const char *bad : {"", "127.0.0.1", "127.0.0.1:", "1.2.3.4:70000",
				"[::1:5", "host:port"})
		CHECK(cli_parse_addr(bad, &ss, &len) < 0);
}
