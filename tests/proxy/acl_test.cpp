// acl: allow/deny CIDR lists for IPv4 and IPv6 clients.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <string>

#include "proxy/acl.h"
#include "proxy/netaddr.h"

namespace {

struct Acl {
	acl_set a;
	Acl() { acl_init(&a); }
	~Acl() { acl_free(&a); }
	void allow(const char *list) { add(ACL_ALLOW, list); }
	void deny(const char *list) { add(ACL_DENY, list); }
	void add(acl_action act, const char *list)
	{
		char bad[64];
		INFO("list: " << list);
		REQUIRE(acl_add_list(&a, act, list, bad, sizeof(bad)) == 0);
	}
	bool ok(const char *addr_port)
	{
		netaddr n;
		REQUIRE(netaddr_parse(&n, addr_port, NETADDR_NUMERIC) == 0);
		return acl_check(&a, (const sockaddr *)&n.ss);
	}
};

} // namespace

TEST_CASE("acl: empty lists accept everyone", "[acl]")
{
	Acl acl;
	CHECK(acl.ok("1.2.3.4:5"));
	CHECK(acl.ok("[2001:db8::1]:5"));
}

TEST_CASE("acl: IPv4 allow list, prefix edges", "[acl]")
{
	Acl acl;
	acl.allow("10.0.0.0/8, 192.168.1.128/25");
	CHECK(acl.ok("10.0.0.1:1"));
	CHECK(acl.ok("10.255.255.255:1"));
	CHECK_FALSE(acl.ok("11.0.0.0:1"));
	CHECK_FALSE(acl.ok("9.255.255.255:1"));
	CHECK(acl.ok("192.168.1.128:1"));
	CHECK(acl.ok("192.168.1.255:1"));
	CHECK_FALSE(acl.ok("192.168.1.127:1"));
	CHECK_FALSE(acl.ok("[2001:db8::1]:1")); // allow list exists, no v6 rule
}

TEST_CASE("acl: IPv6 rules and /0, /128", "[acl]")
{
	Acl acl;
	acl.allow("2001:db8::/32,::1");
	CHECK(acl.ok("[2001:db8:ffff::1]:1"));
	CHECK_FALSE(acl.ok("[2001:db9::1]:1"));
	CHECK(acl.ok("[::1]:1"));
	CHECK_FALSE(acl.ok("[::2]:1"));
	CHECK_FALSE(acl.ok("127.0.0.1:1"));

	Acl all6;
	all6.allow("::/0");
	CHECK(all6.ok("[fe80::1]:1"));
	CHECK_FALSE(all6.ok("10.0.0.1:1")); // ::/0 is IPv6 only
	CHECK_FALSE(all6.ok("[::ffff:10.0.0.1]:1"));
}

TEST_CASE("acl: IPv4-mapped clients match IPv4 rules", "[acl]")
{
	Acl acl;
	acl.allow("10.0.0.0/8");
	CHECK(acl.ok("[::ffff:10.1.2.3]:1"));
	CHECK_FALSE(acl.ok("[::ffff:11.1.2.3]:1"));

	Acl deny;
	deny.deny("10.1.0.0/16");
	CHECK_FALSE(deny.ok("[::ffff:10.1.9.9]:1"));
	CHECK(deny.ok("[::ffff:10.2.9.9]:1"));

	// A rule written in mapped form is the IPv4 rule it means.
	Acl mapped;
	mapped.allow("::ffff:192.168.0.0/112");
	CHECK(mapped.ok("192.168.3.4:1"));
	CHECK(mapped.ok("[::ffff:192.168.3.4]:1"));
	CHECK_FALSE(mapped.ok("192.169.0.1:1"));
}

TEST_CASE("acl: deny wins over allow", "[acl]")
{
	Acl acl;
	acl.allow("10.0.0.0/8");
	acl.deny("10.6.6.0/24");
	acl.deny("2001:db8::bad/128");
	CHECK(acl.ok("10.6.5.1:1"));
	CHECK_FALSE(acl.ok("10.6.6.1:1"));
	CHECK_FALSE(acl.ok("172.16.0.1:1"));

	Acl only_deny;
	only_deny.deny("0.0.0.0/0");
	CHECK_FALSE(only_deny.ok("8.8.8.8:1"));
	CHECK(only_deny.ok("[2001:db8::1]:1"));
	CHECK_FALSE(only_deny.ok("[::ffff:8.8.8.8]:1"));
}

TEST_CASE("acl: bad CIDRs are rejected and named", "[acl]")
{
	acl_rule r;
	const char *bad[] = { "", "10.0.0.0/33", "10.0.0.1/8", "10.0.0/8",
			      "10.0.0.0/", "10.0.0.0/8x", "2001:db8::/129",
			      "2001:db8::1/32", "banana", "10.0.0.0/-1",
			      "10.0.0.0 /8" };
	for (const char *t : bad) {
		INFO("cidr: '" << t << "'");
		CHECK(acl_parse_cidr(t, &r) == -EINVAL);
	}
	REQUIRE(acl_parse_cidr("10.0.0.0/8", &r) == 0);
	CHECK(r.family == AF_INET);
	CHECK(r.prefix == 8);
	REQUIRE(acl_parse_cidr("2001:db8::1", &r) == 0);
	CHECK(r.prefix == 128);

	acl_set a;
	acl_init(&a);
	char bad_tok[64] = "";
	CHECK(acl_add_list(&a, ACL_ALLOW, "10.0.0.0/8,  1.2.3.4/33 ,5.0.0.0/8",
			   bad_tok, sizeof(bad_tok)) == -EINVAL);
	CHECK(std::string(bad_tok) == "1.2.3.4/33");
	CHECK(a.allow.count == 1); // entries before the bad one were added
	CHECK(acl_add_list(&a, ACL_DENY, "10.0.0.0/8, ", bad_tok,
			   sizeof(bad_tok)) == 0); // trailing comma is fine
	CHECK(a.deny.count == 1);
	std::strcpy(bad_tok, "junk");
	CHECK(acl_add_list(&a, ACL_DENY, " , ,", bad_tok,
			   sizeof(bad_tok)) == -EINVAL);
	CHECK(std::string(bad_tok) == "");
	CHECK(acl_add_list(&a, ACL_DENY, "", bad_tok, sizeof(bad_tok)) == -EINVAL);
	CHECK(a.deny.count == 1);
	acl_free(&a);
}
