// The PROXY protocol parser and writers (proxy/proxy_header.h): v1 and v2,
// LOCAL, TLVs, every malformed and truncated case, and the property the
// listener relies on: reading at most proxy_header_need() bytes at a time
// never takes a byte past the header.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "proxy/proxy_header.h"
}

namespace {

using bytes = std::vector<uint8_t>;

bytes of(const std::string &s)
{
	return bytes(s.begin(), s.end());
}

const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
			 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

// A v2 header: signature, ver_cmd, family, then body (length from it).
bytes v2(uint8_t ver_cmd, uint8_t family, const bytes &body)
{
	bytes b(sig, sig + 12);
	b.push_back(ver_cmd);
	b.push_back(family);
	b.push_back((uint8_t)(body.size() >> 8));
	b.push_back((uint8_t)body.size());
	b.insert(b.end(), body.begin(), body.end());
	return b;
}

bytes tcp4_block()
{
	return {192, 0, 2, 7, 198, 51, 100, 9, 0xc3, 0x50, 0x01, 0xbb};
}

bytes tcp6_block()
{
	bytes b(36, 0);
	inet_pton(AF_INET6, "2001:db8::7", b.data());
	inet_pton(AF_INET6, "2001:db8::9", b.data() + 16);
	b[32] = 0x12, b[33] = 0x34, b[34] = 0x00, b[35] = 0x50;
	return b;
}

struct outcome {
	proxy_header_status status;
	size_t consumed;
	proxy_header_info info;
};

// In one call.
outcome feed_whole(proxy_header_mode mode, const bytes &in)
{
	proxy_header_parser p;
	size_t used = 0;

	proxy_header_init(&p, mode);
	proxy_header_status st = proxy_header_feed(&p, in.data(), in.size(), &used);
	outcome o{st, used, {}};
	if (st == PROXY_HEADER_DONE)
		o.info = *proxy_header_result(&p);
	return o;
}

// One byte per call; the status must be the same as in one call.
outcome feed_bytewise(proxy_header_mode mode, const bytes &in)
{
	proxy_header_parser p;
	size_t total = 0, used = 0;
	proxy_header_status st = PROXY_HEADER_MORE;

	proxy_header_init(&p, mode);
	for (size_t i = 0; i < in.size() && st == PROXY_HEADER_MORE; i++) {
		st = proxy_header_feed(&p, &in[i], 1, &used);
		total += used;
	}
	outcome o{st, total, {}};
	if (st == PROXY_HEADER_DONE)
		o.info = *proxy_header_result(&p);
	return o;
}

// As the listener reads: at most need() bytes per call.
outcome feed_by_need(proxy_header_mode mode, const bytes &in)
{
	proxy_header_parser p;
	size_t pos = 0, used = 0;
	proxy_header_status st = PROXY_HEADER_MORE;

	proxy_header_init(&p, mode);
	while (st == PROXY_HEADER_MORE && pos < in.size()) {
		size_t need = proxy_header_need(&p);
		REQUIRE(need >= 1);
		size_t n = std::min(need, in.size() - pos);
		st = proxy_header_feed(&p, &in[pos], n, &used);
		if (st == PROXY_HEADER_DONE || st == PROXY_HEADER_MORE)
			REQUIRE(used == n); // never a byte past the header
		pos += used;
	}
	if (st != PROXY_HEADER_MORE)
		CHECK(proxy_header_need(&p) == 0);
	outcome o{st, pos, {}};
	if (st == PROXY_HEADER_DONE)
		o.info = *proxy_header_result(&p);
	return o;
}

std::string ip_port(const sockaddr_storage &ss)
{
	char ip[INET6_ADDRSTRLEN];
	int port;
	if (ss.ss_family == AF_INET) {
		auto *in = (const sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
	} else {
		auto *in6 = (const sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
	}
	return std::string(ip) + "/" + std::to_string(port);
}

// All three ways agree; the header plus `trail` leaves `trail` unconsumed.
outcome check_all_ways(proxy_header_mode mode, const bytes &header)
{
	bytes with_trail = header;
	const bytes trail = {0, 0, 0, 3, 'a', 'b', 'c'};
	with_trail.insert(with_trail.end(), trail.begin(), trail.end());

	outcome whole = feed_whole(mode, with_trail);
	outcome bytewise = feed_bytewise(mode, with_trail);
	outcome need = feed_by_need(mode, with_trail);
	CHECK(bytewise.status == whole.status);
	CHECK(need.status == whole.status);
	if (whole.status == PROXY_HEADER_DONE) {
		CHECK(whole.consumed == header.size());
		CHECK(bytewise.consumed == header.size());
		CHECK(need.consumed == header.size());
	}
	return whole;
}

} // namespace

TEST_CASE("proxy_header: mode names", "[proxy_header]")
{
	proxy_header_mode m;
	REQUIRE(proxy_header_mode_parse("v2", &m) == 0);
	CHECK(m == PROXY_HEADER_V2);
	REQUIRE(proxy_header_mode_parse("any", &m) == 0);
	CHECK(m == PROXY_HEADER_ANY);
	CHECK(proxy_header_mode_parse("V1", &m) < 0);
	CHECK(proxy_header_mode_parse("", &m) < 0);
	CHECK(std::string(proxy_header_mode_name(PROXY_HEADER_OFF)) == "off");
	CHECK(std::string(proxy_header_status_name(PROXY_HEADER_ERR_TLV)) == "tlv");
	CHECK(std::string(proxy_header_status_name(PROXY_HEADER_ERR_TRUNCATED)) ==
	      "truncated");
}

TEST_CASE("proxy_header: v1 TCP4, TCP6, UNKNOWN", "[proxy_header]")
{
	for (auto mode : {PROXY_HEADER_V1, PROXY_HEADER_ANY}) {
		outcome o = check_all_ways(
			mode, of("PROXY TCP4 192.0.2.7 198.51.100.9 50000 443\r\n"));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK(o.info.version == 1);
		CHECK(o.info.has_addr);
		CHECK(ip_port(o.info.src) == "192.0.2.7/50000");
		CHECK(ip_port(o.info.dst) == "198.51.100.9/443");

		o = check_all_ways(mode, of("PROXY TCP6 2001:db8::7 ::1 1 65535\r\n"));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK(o.info.src.ss_family == AF_INET6);
		CHECK(ip_port(o.info.src) == "2001:db8::7/1");
		CHECK(ip_port(o.info.dst) == "::1/65535");

		o = check_all_ways(mode, of("PROXY UNKNOWN\r\n"));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK_FALSE(o.info.has_addr);
		o = check_all_ways(
			mode, of("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK_FALSE(o.info.has_addr);
	}
}

TEST_CASE("proxy_header: v1 at the 107-byte limit and past it", "[proxy_header]")
{
	std::string head = "PROXY UNKNOWN ";
	std::string fits = head + std::string(107 - head.size() - 2, 'x') + "\r\n";
	REQUIRE(fits.size() == 107);
	CHECK(check_all_ways(PROXY_HEADER_V1, of(fits)).status == PROXY_HEADER_DONE);
	std::string over = head + std::string(107 - head.size() - 1, 'x') + "\r\n";
	CHECK(check_all_ways(PROXY_HEADER_V1, of(over)).status ==
	      PROXY_HEADER_ERR_TOO_LONG);
	// No CRLF at all: refused at 108 bytes, not read on forever.
	outcome o = feed_whole(PROXY_HEADER_V1, of("PROXY " + std::string(500, 'y')));
	CHECK(o.status == PROXY_HEADER_ERR_TOO_LONG);
	CHECK(o.consumed == 108);
}

TEST_CASE("proxy_header: malformed v1", "[proxy_header]")
{
	struct {
		const char *text;
		proxy_header_status want;
	} cases[] = {
		{"GET / HTTP/1.0\r\n", PROXY_HEADER_ERR_SIGNATURE},
		{"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_SIGNATURE},
		{"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_FAMILY},
		{"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_FAMILY},
		{"PROXY UNKNOWNX\r\n", PROXY_HEADER_ERR_FAMILY},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PROXY_HEADER_ERR_SYNTAX},
		{"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n", PROXY_HEADER_ERR_ADDRESS},
		{"PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n", PROXY_HEADER_ERR_ADDRESS},
	};
	for (auto &c : cases) {
		INFO(c.text);
		CHECK(check_all_ways(PROXY_HEADER_V1, of(c.text)).status == c.want);
	}
	// A NUL inside the line.
	bytes nul = of("PROXY TCP4 1.2.3.4");
	nul.push_back(0);
	CHECK(feed_whole(PROXY_HEADER_V1, nul).status == PROXY_HEADER_ERR_SYNTAX);
}

TEST_CASE("proxy_header: v2 PROXY over IPv4 and IPv6", "[proxy_header]")
{
	for (auto mode : {PROXY_HEADER_V2, PROXY_HEADER_ANY}) {
		outcome o = check_all_ways(mode, v2(0x21, 0x11, tcp4_block()));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK(o.info.version == 2);
		CHECK_FALSE(o.info.local);
		CHECK(o.info.has_addr);
		CHECK(ip_port(o.info.src) == "192.0.2.7/50000");
		CHECK(ip_port(o.info.dst) == "198.51.100.9/443");

		o = check_all_ways(mode, v2(0x21, 0x21, tcp6_block()));
		REQUIRE(o.status == PROXY_HEADER_DONE);
		CHECK(ip_port(o.info.src) == "2001:db8::7/4660");
		CHECK(ip_port(o.info.dst) == "2001:db8::9/80");
	}
}

TEST_CASE("proxy_header: v2 LOCAL and UNSPEC keep the connection's addresses",
	  "[proxy_header]")
{
	outcome o = check_all_ways(PROXY_HEADER_V2, v2(0x20, 0x00, {}));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK(o.info.local);
	CHECK_FALSE(o.info.has_addr);
	// LOCAL with an address block: ignored, as the spec says.
	o = check_all_ways(PROXY_HEADER_V2, v2(0x20, 0x11, tcp4_block()));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK(o.info.local);
	CHECK_FALSE(o.info.has_addr);
	// LOCAL with an unknown family is still LOCAL.
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x20, 0x77, {1, 2, 3})).status ==
	      PROXY_HEADER_DONE);
	o = check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x00, {9, 9}));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK_FALSE(o.info.local);
	CHECK_FALSE(o.info.has_addr);
}

TEST_CASE("proxy_header: v2 TLVs are walked and skipped", "[proxy_header]")
{
	bytes body = tcp4_block();
	bytes tlvs = {0x01, 0x00, 0x02, 'h', '2',           // ALPN
		      0x04, 0x00, 0x00,                      // NOOP, empty
		      0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0,    // SSL
		      0xea, 0x00, 0x03, 'v', 'p', 'c'};      // custom
	body.insert(body.end(), tlvs.begin(), tlvs.end());
	outcome o = check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x11, body));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK(ip_port(o.info.src) == "192.0.2.7/50000");

	// A TLV whose value runs past the header's length.
	bytes bad = tcp4_block();
	bytes over = {0x01, 0x00, 0x05, 'a', 'b'};
	bad.insert(bad.end(), over.begin(), over.end());
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x11, bad)).status ==
	      PROXY_HEADER_ERR_TLV);
	// A TLV header cut short by the end of the header.
	bytes cut = tcp4_block();
	cut.push_back(0x01);
	cut.push_back(0x00);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x11, cut)).status ==
	      PROXY_HEADER_ERR_TLV);
}

TEST_CASE("proxy_header: malformed v2", "[proxy_header]")
{
	bytes b = v2(0x21, 0x11, tcp4_block());
	bytes bad_sig = b;
	bad_sig[7] = 'X';
	CHECK(check_all_ways(PROXY_HEADER_V2, bad_sig).status ==
	      PROXY_HEADER_ERR_SIGNATURE);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x11, 0x11, tcp4_block())).status ==
	      PROXY_HEADER_ERR_VERSION);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x22, 0x11, tcp4_block())).status ==
	      PROXY_HEADER_ERR_COMMAND);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x12, tcp4_block())).status ==
	      PROXY_HEADER_ERR_FAMILY); // UDP
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x31, bytes(216))).status ==
	      PROXY_HEADER_ERR_FAMILY); // AF_UNIX
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x11, bytes(11))).status ==
	      PROXY_HEADER_ERR_LENGTH);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x21, bytes(35))).status ==
	      PROXY_HEADER_ERR_LENGTH);
	// Longer than PROXY_HEADER_V2_MAX: refused from the fixed part alone.
	bytes big = v2(0x21, 0x11, bytes(PROXY_HEADER_V2_MAX));
	outcome o = feed_whole(PROXY_HEADER_V2, big);
	CHECK(o.status == PROXY_HEADER_ERR_TOO_LONG);
	CHECK(o.consumed == 16);
	bytes at_max = tcp4_block();
	at_max.push_back(0x04);
	at_max.push_back((uint8_t)((PROXY_HEADER_V2_MAX - 16 - 15) >> 8));
	at_max.push_back((uint8_t)(PROXY_HEADER_V2_MAX - 16 - 15));
	at_max.resize(PROXY_HEADER_V2_MAX - 16, 0);
	CHECK(check_all_ways(PROXY_HEADER_V2, v2(0x21, 0x11, at_max)).status ==
	      PROXY_HEADER_DONE);
}

TEST_CASE("proxy_header: the mode decides what is accepted", "[proxy_header]")
{
	CHECK(feed_whole(PROXY_HEADER_V1, v2(0x21, 0x11, tcp4_block())).status ==
	      PROXY_HEADER_ERR_SIGNATURE);
	CHECK(feed_whole(PROXY_HEADER_V2, of("PROXY UNKNOWN\r\n")).status ==
	      PROXY_HEADER_ERR_SIGNATURE);
	// A client that sends frames without a header: refused at once.
	bytes frame = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
	for (auto mode : {PROXY_HEADER_V1, PROXY_HEADER_V2, PROXY_HEADER_ANY}) {
		outcome o = feed_whole(mode, frame);
		CHECK(o.status == PROXY_HEADER_ERR_SIGNATURE);
		CHECK(o.consumed == 1);
	}
}

TEST_CASE("proxy_header: every truncation asks for more", "[proxy_header]")
{
	std::vector<std::pair<proxy_header_mode, bytes>> headers = {
		{PROXY_HEADER_V1, of("PROXY TCP4 192.0.2.7 198.51.100.9 50000 443\r\n")},
		{PROXY_HEADER_ANY, of("PROXY TCP6 2001:db8::7 ::1 1 65535\r\n")},
		{PROXY_HEADER_V2, v2(0x21, 0x21, tcp6_block())},
		{PROXY_HEADER_ANY, v2(0x20, 0x00, {})},
	};
	for (auto &h : headers) {
		for (size_t cut = 0; cut < h.second.size(); cut++) {
			INFO("cut at " << cut);
			bytes part(h.second.begin(), h.second.begin() + (long)cut);
			proxy_header_parser p;
			size_t used;
			proxy_header_init(&p, h.first);
			CHECK(proxy_header_feed(&p, part.data(), part.size(), &used) ==
			      PROXY_HEADER_MORE);
			CHECK(used == part.size());
			// The bound: never more than what is left of this header.
			CHECK(proxy_header_need(&p) >= 1);
			CHECK(proxy_header_need(&p) <= h.second.size() - cut);
		}
	}
}

TEST_CASE("proxy_header: a finished parser takes nothing more", "[proxy_header]")
{
	proxy_header_parser p;
	bytes h = of("PROXY UNKNOWN\r\n");
	size_t used;

	proxy_header_init(&p, PROXY_HEADER_ANY);
	REQUIRE(proxy_header_feed(&p, h.data(), h.size(), &used) == PROXY_HEADER_DONE);
	CHECK(proxy_header_feed(&p, h.data(), h.size(), &used) == PROXY_HEADER_DONE);
	CHECK(used == 0);
	CHECK(proxy_header_need(&p) == 0);
	proxy_header_init(&p, PROXY_HEADER_OFF);
	CHECK(proxy_header_result(&p) == nullptr);
	CHECK(proxy_header_feed(&p, h.data(), h.size(), &used) != PROXY_HEADER_DONE);
}

namespace {

sockaddr_storage addr(const char *ip, int port)
{
	sockaddr_storage ss{};
	if (strchr(ip, ':')) {
		auto *in6 = (sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &in6->sin6_addr);
	} else {
		auto *in = (sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &in->sin_addr);
	}
	return ss;
}

std::string write_v1(const char *sip, int sport, const char *dip, int dport)
{
	sockaddr_storage s = addr(sip, sport), d = addr(dip, dport);
	char buf[PROXY_HEADER_WRITE_MAX];
	int n = proxy_header_write(PROXY_HEADER_V1, (sockaddr *)&s, (sockaddr *)&d,
				   buf, sizeof(buf));
	REQUIRE(n > 0);
	return std::string(buf, (size_t)n);
}

} // namespace

TEST_CASE("proxy_header: v1 writer", "[proxy_header]")
{
	CHECK(write_v1("192.0.2.7", 50000, "198.51.100.9", 443) ==
	      "PROXY TCP4 192.0.2.7 198.51.100.9 50000 443\r\n");
	CHECK(write_v1("2001:db8::7", 1, "::1", 2) == "PROXY TCP6 2001:db8::7 ::1 1 2\r\n");
	// Mapped IPv4 is written as IPv4; a mix is written as IPv6.
	CHECK(write_v1("::ffff:10.1.2.3", 5, "10.0.0.1", 6) ==
	      "PROXY TCP4 10.1.2.3 10.0.0.1 5 6\r\n");
	CHECK(write_v1("10.1.2.3", 5, "::1", 6) == "PROXY TCP6 ::ffff:10.1.2.3 ::1 5 6\r\n");
	sockaddr_storage unix_addr{};
	unix_addr.ss_family = AF_UNIX;
	sockaddr_storage d = addr("10.0.0.1", 1);
	char buf[PROXY_HEADER_WRITE_MAX];
	int n = proxy_header_write(PROXY_HEADER_V1, (sockaddr *)&unix_addr,
				   (sockaddr *)&d, buf, sizeof(buf));
	CHECK(std::string(buf, (size_t)std::max(n, 0)) == "PROXY UNKNOWN\r\n");
	CHECK(proxy_header_write(PROXY_HEADER_V1, (sockaddr *)&d, (sockaddr *)&d,
				 buf, 10) == -ENOSPC);
	CHECK(proxy_header_write(PROXY_HEADER_ANY, (sockaddr *)&d, (sockaddr *)&d,
				 buf, sizeof(buf)) == -EINVAL);
	// The longest line fits the buffer and the 107-byte limit.
	std::string longest = write_v1("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535,
				       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
	CHECK(longest.size() <= PROXY_HEADER_V1_MAX);
}

TEST_CASE("proxy_header: what the writers write, the parser reads",
	  "[proxy_header]")
{
	const char *ips[][2] = {{"192.0.2.7", "198.51.100.9"},
				{"2001:db8::7", "2001:db8::9"},
				{"10.0.0.1", "::1"}};
	for (auto &pair : ips) {
		for (auto version : {PROXY_HEADER_V1, PROXY_HEADER_V2}) {
			sockaddr_storage s = addr(pair[0], 40000), d = addr(pair[1], 9000);
			uint8_t buf[PROXY_HEADER_WRITE_MAX];
			int n = proxy_header_write(version, (sockaddr *)&s,
						   (sockaddr *)&d, buf, sizeof(buf));
			REQUIRE(n > 0);
			outcome o = check_all_ways(PROXY_HEADER_ANY, bytes(buf, buf + n));
			REQUIRE(o.status == PROXY_HEADER_DONE);
			CHECK(o.info.version == (version == PROXY_HEADER_V1 ? 1 : 2));
			CHECK(o.info.has_addr);
			CHECK(ntohs(((sockaddr_in *)&o.info.src)->sin_port) == 40000);
			if (s.ss_family == d.ss_family)
				CHECK(ip_port(o.info.src) == ip_port(s));
		}
	}
}

TEST_CASE("proxy_header: reading by need never passes the end of any v1 line",
	  "[proxy_header]")
{
	// The shortest and longest fields of each kind, mixed: the bound is
	// tightest where every field is at its minimum.
	const char *v4[] = {"0.0.0.0", "1.2.3.4", "10.20.30.40", "255.255.255.255"};
	const char *v6[] = {"::", "::1", "2001:db8::7", "fe80::1:2:3:4",
			    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"};
	const char *ports[] = {"0", "9", "80", "443", "65535"};
	size_t checked = 0;

	for (int six = 0; six < 2; six++) {
		size_t n = six ? 6 : 4;
		for (size_t a = 0; a < n; a++)
			for (size_t b = 0; b < n; b++)
				for (const char *sp : ports)
					for (const char *dp : ports) {
						std::string line = std::string("PROXY ") +
							(six ? "TCP6 " : "TCP4 ") +
							(six ? v6[a] : v4[a]) + " " +
							(six ? v6[b] : v4[b]) + " " + sp + " " +
							dp + "\r\n";
						INFO(line);
						REQUIRE(check_all_ways(PROXY_HEADER_ANY, of(line))
								.status == PROXY_HEADER_DONE);
						checked++;
					}
	}
	CHECK(checked == (16 + 36) * 25);
}

TEST_CASE("proxy_header: the headers naming no client", "[proxy_header]")
{
	uint32_t len = 99;
	CHECK(proxy_header_local(PROXY_HEADER_OFF, &len) == nullptr);
	CHECK(len == 0);
	const uint8_t *h1 = proxy_header_local(PROXY_HEADER_V1, &len);
	REQUIRE(h1);
	CHECK(std::string((const char *)h1, len) == "PROXY UNKNOWN\r\n");
	outcome o = check_all_ways(PROXY_HEADER_ANY, bytes(h1, h1 + len));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK_FALSE(o.info.has_addr);
	const uint8_t *h2 = proxy_header_local(PROXY_HEADER_V2, &len);
	REQUIRE(h2);
	CHECK(bytes(h2, h2 + len) == v2(0x20, 0x00, {}));
	o = check_all_ways(PROXY_HEADER_ANY, bytes(h2, h2 + len));
	REQUIRE(o.status == PROXY_HEADER_DONE);
	CHECK(o.info.local);
}
