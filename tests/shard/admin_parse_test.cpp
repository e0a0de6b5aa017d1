// shard/admin: admin_parse_request, the pure request parser; shard/servers:
// the POST /servers/L/S path and body.
#include <catch2/catch.hpp>

#include <stdint.h>
#include <string.h>

#include <string>
#include <vector>

#include "shard/admin.h"
#include "shard/servers.h"

namespace {

admin_route parse(const std::string &s, size_t *consumed = nullptr)
{
	size_t dummy;
	return admin_parse_request(s.data(), s.size(), consumed ? consumed : &dummy);
}

} // namespace

TEST_CASE("every route", "[admin_parse]")
{
	struct Case {
		const char *req;
		admin_route route;
	} cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", ADMIN_METRICS },
		{ "GET /metrics HTTP/1.0\r\n\r\n", ADMIN_METRICS },
		{ "GET /metrics?name[]=up&x HTTP/1.1\r\n\r\n", ADMIN_METRICS },
		{ "GET /metrics HTTP/1.1\n\n", ADMIN_METRICS },
		{ "GET /metrics HTTP/1.1\r\nA: b\nC: d\r\n\n", ADMIN_METRICS },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", ADMIN_METRICS },
		{ "GET /stats HTTP/1.1\r\nAccept: */*\r\n\r\n", ADMIN_STATS },
		{ "GET /stats? HTTP/1.0\n\n", ADMIN_STATS },
		{ "GET / HTTP/1.1\r\n\r\n", ADMIN_NOT_FOUND },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", ADMIN_NOT_FOUND },
		{ "GET /metrics/ HTTP/1.1\r\n\r\n", ADMIN_NOT_FOUND },
		{ "GET /Stats HTTP/1.1\r\n\r\n", ADMIN_NOT_FOUND },
		{ "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", ADMIN_BAD_METHOD },
		{ "DELETE /stats HTTP/1.1\r\n\r\n", ADMIN_BAD_METHOD },
		{ "POST /upgrade HTTP/1.1\r\nContent-Length: 0\r\n\r\n", ADMIN_UPGRADE },
		{ "GET /upgrade HTTP/1.1\r\n\r\n", ADMIN_BAD_METHOD },
		{ "get /metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_METHOD },
		{ "GET /metrics\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET /metrics HTTP/2.0\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET /metrics HTTP/1.1 \r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET  /metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET http://h/metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ " GET /metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET /met\x01rics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "GET\t/metrics HTTP/1.1\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "\r\n\r\n", ADMIN_BAD_REQUEST },
		{ "\n\n", ADMIN_BAD_REQUEST },
		{ "hello\r\n\r\n", ADMIN_BAD_REQUEST },
	};
	for (const Case &c : cases) {
		std::string req = c.req;
		size_t consumed = 12345;
		INFO(req);
		REQUIRE(parse(req, &consumed) == c.route);
		REQUIRE(consumed == req.size());
	}
}

TEST_CASE("a NUL byte in the request line is refused", "[admin_parse]")
{
	std::string req("GET /me\0trics HTTP/1.1\r\n\r\n", 26);
	REQUIRE(parse(req) == ADMIN_BAD_REQUEST);
}

TEST_CASE("incomplete until the header ends, also split byte by byte",
	  "[admin_parse]")
{
	size_t consumed = 99;
	REQUIRE(admin_parse_request(nullptr, 0, &consumed) == ADMIN_INCOMPLETE);
	REQUIRE(consumed == 0);
	REQUIRE(admin_parse_request("GET", 3, nullptr) == ADMIN_INCOMPLETE);

	const char *reqs[] = {
		"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t\r\n\r\n",
		"GET /stats HTTP/1.0\n\n",
		"POST /x HTTP/1.1\r\n\r\n",
		"GET /nope HTTP/1.1\r\n\r\n",
	};
	admin_route want[] = { ADMIN_METRICS, ADMIN_STATS, ADMIN_BAD_METHOD,
			       ADMIN_NOT_FOUND };
	for (size_t r = 0; r < 4; r++) {
		// Bytes after the header (a body, a pipelined request) are
		// not part of it.
		std::string req = std::string(reqs[r]) + "trailing";
		size_t header = strlen(reqs[r]);
		INFO(req);
		for (size_t n = 0; n < header; n++) {
			INFO("prefix " << n);
			REQUIRE(parse(req.substr(0, n), &consumed) == ADMIN_INCOMPLETE);
			REQUIRE(consumed == 0);
		}
		for (size_t n = header; n <= req.size(); n++) {
			REQUIRE(parse(req.substr(0, n), &consumed) == want[r]);
			REQUIRE(consumed == header);
		}
	}
}

TEST_CASE("a header must end within 8 KiB", "[admin_parse]")
{
	std::string start = "GET /metrics HTTP/1.1\r\nX-Pad: ";
	std::string end = "\r\n\r\n";

	// Ends exactly at the limit: accepted.
	std::string fits = start +
		std::string(ADMIN_MAX_REQUEST - start.size() - end.size(), 'a') + end;
	REQUIRE(fits.size() == ADMIN_MAX_REQUEST);
	size_t consumed = 0;
	REQUIRE(parse(fits, &consumed) == ADMIN_METRICS);
	REQUIRE(consumed == ADMIN_MAX_REQUEST);

	// One byte more: refused, whether the end has arrived or not.
	std::string over = start +
		std::string(ADMIN_MAX_REQUEST + 1 - start.size() - end.size(), 'a') + end;
	REQUIRE(parse(over, &consumed) == ADMIN_BAD_REQUEST);
	REQUIRE(consumed == ADMIN_MAX_REQUEST);
	REQUIRE(parse(over.substr(0, ADMIN_MAX_REQUEST - 1)) == ADMIN_INCOMPLETE);
	REQUIRE(parse(over.substr(0, ADMIN_MAX_REQUEST)) == ADMIN_BAD_REQUEST);

	std::string huge(100000, 'G');
	REQUIRE(parse(huge, &consumed) == ADMIN_BAD_REQUEST);
	REQUIRE(consumed == ADMIN_MAX_REQUEST);
}

TEST_CASE("garbage never crashes and gives a sane answer", "[admin_parse]")
{
	// Deterministic xorshift: the same inputs every run.
	uint64_t x = 0x9E3779B97F4A7C15u;
	auto next = [&x]() {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		return x;
	};
	const char alphabet[] = "GET /metrics HTTP/1.0\r\n\n?\x00\xff";
	int routes[ADMIN_BAD_REQUEST + 1] = { 0 };
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = next() % 64;
		std::vector<char> buf(len);
		bool letters = iter % 2;
		for (size_t i = 0; i < len; i++)
			buf[i] = letters ? alphabet[next() % (sizeof(alphabet) - 1)]
					 : (char)next();
		size_t consumed = SIZE_MAX;
		admin_route r = admin_parse_request(buf.data(), len, &consumed);
		REQUIRE((int)r >= ADMIN_INCOMPLETE);
		REQUIRE((int)r <= ADMIN_BAD_REQUEST);
		REQUIRE(consumed <= len);
		if (r == ADMIN_INCOMPLETE)
			REQUIRE(consumed == 0);
		else
			REQUIRE(consumed > 0);
		routes[r]++;
	}
	// The mix did exercise both outcomes that garbage can produce.
	REQUIRE(routes[ADMIN_INCOMPLETE] > 0);
	REQUIRE(routes[ADMIN_BAD_REQUEST] > 0);
}

namespace {

bool change(const std::string &body, servers_change *ch)
{
	return servers_parse_change(body.data(), body.size(), ch);
}

} // namespace

TEST_CASE("POST /servers bodies: form and flat JSON", "[admin_parse]")
{
	servers_change ch;

	REQUIRE(change("state=drain", &ch));
	CHECK(ch.has_state);
	CHECK_FALSE(ch.has_weight);
	CHECK(ch.state == SHARD_SERVER_DRAIN);
	REQUIRE(change("state=maint&weight=3\r\n", &ch));
	CHECK(ch.state == SHARD_SERVER_MAINT);
	CHECK(ch.has_weight);
	CHECK(ch.weight == 3);
	REQUIRE(change("  {\"weight\": 256, \"state\": \"ready\"}\n", &ch));
	CHECK(ch.state == SHARD_SERVER_READY);
	CHECK(ch.weight == SHARD_SERVER_MAX_WEIGHT);
	REQUIRE(change("{\"weight\":\"0\"}", &ch));
	CHECK(ch.has_weight);
	CHECK(ch.weight == 0);
	CHECK_FALSE(ch.has_state);

	const char *bad[] = {
		"", "   ", "{}", "state=", "state=off", "weight=257", "weight=-1",
		"weight=+3", "weight= 3", "weight=3x", "weight=99999999999999999999",
		"colour=red", "state=drain&&weight=1", "=drain",
		"{\"state\": \"drain\"", "{\"state\": \"dr\\u0061in\"}",
		"{\"state\": \"drain\"} x", "{\"extra\": 1}", "[\"drain\"]",
	};
	for (const char *b : bad) {
		INFO("body '" << b << "'");
		CHECK_FALSE(change(b, &ch));
	}
	CHECK_FALSE(servers_parse_change(nullptr, 0, &ch));
}

TEST_CASE("POST /servers paths: two %XX-decoded names", "[admin_parse]")
{
	char l[SHARD_NAME_MAX], s[SHARD_NAME_MAX];
	auto path = [&](const std::string &p) {
		return servers_parse_path(p.data(), p.size(), l, s);
	};

	REQUIRE(path("/servers/web/127.0.0.1:4001"));
	CHECK(std::string(l) == "web");
	CHECK(std::string(s) == "127.0.0.1:4001");
	REQUIRE(path("/servers/my%20api/%5B%3A%3A1%5D%3a80"));
	CHECK(std::string(l) == "my api");
	CHECK(std::string(s) == "[::1]:80");

	CHECK_FALSE(path("/servers/web"));
	CHECK_FALSE(path("/servers//x"));
	CHECK_FALSE(path("/servers/x/"));
	CHECK_FALSE(path("/servers/a%00b/x"));   // no NUL in a name
	CHECK_FALSE(path("/servers/a%zz/x"));
	CHECK_FALSE(path("/servers/a%4/x"));
	CHECK_FALSE(path("/stats/a/b"));
	CHECK_FALSE(path("/servers/" + std::string(SHARD_NAME_MAX, 'a') + "/x"));
	CHECK(path("/servers/" + std::string(SHARD_NAME_MAX - 1, 'a') + "/x"));
	CHECK_FALSE(servers_parse_path(nullptr, 0, l, s));
}
