// rpc_field: OFFSET:LEN parsing, finding the field in a frame, big-endian
// values and hash_key balancing.
#include "rpc_fixture.hpp"

#include <cerrno>
#include <map>

using namespace rpctest;

namespace {

std::string parse_error(const char *text, uint32_t max_len = RPC_TAG_MAX_LEN)
{
	rpc_field f = { 99, 99 };
	char why[160] = "";
	REQUIRE(rpc_field_parse(text, max_len, &f, why, sizeof(why)) == -EINVAL);
	CHECK(f.offset == 99); // untouched on error
	return why;
}

} // namespace

TEST_CASE("rpc field: parse OFFSET:LEN", "[rpc]")
{
	rpc_field f;
	char why[160];
	REQUIRE(rpc_field_parse("0:4", RPC_TAG_MAX_LEN, &f, why, sizeof(why)) == 0);
	CHECK(f.offset == 0);
	CHECK(f.len == 4);
	REQUIRE(rpc_field_parse("12:8", RPC_TAG_MAX_LEN, &f, why, sizeof(why)) == 0);
	CHECK(f.offset == 12);
	CHECK(f.len == 8);
	REQUIRE(rpc_field_parse("4294967294:1", RPC_TAG_MAX_LEN, &f, why, sizeof(why)) == 0);
	CHECK(f.offset == 4294967294u);
	// A hash key may be longer than a tag: its bytes are hashed, not read
	// as an integer.
	REQUIRE(rpc_field_parse("2:256", RPC_HASH_KEY_MAX_LEN, &f, why, sizeof(why)) == 0);
	CHECK(f.len == 256);
	CHECK(parse_error("2:257", RPC_HASH_KEY_MAX_LEN) ==
	      "invalid field '2:257' (OFFSET:LEN, LEN 1..256)");
	CHECK(parse_error("2:16") == "invalid field '2:16' (OFFSET:LEN, LEN 1..8)");
}

TEST_CASE("rpc field: parse errors say what is expected", "[rpc]")
{
	CHECK(parse_error("4") == "invalid field '4' (OFFSET:LEN, LEN 1..8)");
	for (const char *bad :
	     { "", ":", "4:", ":4", "4:0", "4:9", "4:16", "-1:4", "+1:4",
	       " 1:4", "1:4 ", "1:4:2", "0x10:4", "a:b", "4294967295:1",
	       "99999999999999999999:1", "1:99999999999999999999" })
		CHECK(parse_error(bad) == std::string("invalid field '") + bad +
						  "' (OFFSET:LEN, LEN 1..8)");
}

TEST_CASE("rpc field: found only inside the payload and the bytes given",
	  "[rpc]")
{
	rpc_field f = { 2, 4 };
	size_t at = 0;
	Bytes six = frame("abcdef");
	REQUIRE(rpc_field_find(&f, six.data(), six.size(), &at) == 0);
	CHECK(at == FRAME_HEADER_SIZE + 2);
	CHECK(std::string((char *)six.data() + at, 4) == "cdef");

	Bytes five = frame("abcde");
	CHECK(rpc_field_find(&f, five.data(), five.size(), &at) == -EBADMSG);
	Bytes empty = frame("");
	CHECK(rpc_field_find(&f, empty.data(), empty.size(), &at) == -EBADMSG);
	CHECK(rpc_field_find(&f, six.data(), 3, &at) == -EBADMSG);
	// The header announces less than the bytes given: the payload ends
	// where the header says.
	Bytes lying = six;
	frame_write_length(lying.data(), 5);
	CHECK(rpc_field_find(&f, lying.data(), lying.size(), &at) ==
	      -EBADMSG);
	// ... and bytes given end before the payload does.
	CHECK(rpc_field_find(&f, six.data(), six.size() - 1, &at) ==
	      -EBADMSG);
	rpc_field far = { UINT32_MAX - 1, 1 };
	CHECK(rpc_field_find(&far, six.data(), six.size(), &at) == -EBADMSG);
}

TEST_CASE("rpc field: big-endian get and put round-trip for every length",
	  "[rpc]")
{
	uint8_t buf[10];
	for (uint32_t len = 1; len <= 8; len++) {
		uint64_t mask = len == 8 ? UINT64_MAX
					 : (UINT64_C(1) << (8 * len)) - 1;
		uint64_t v = UINT64_C(0x0102030405060708) & mask;
		memset(buf, 0xee, sizeof(buf));
		rpc_field_put(buf + 1, len, v);
		CHECK(buf[0] == 0xee);
		CHECK(buf[1 + len] == 0xee);
		CHECK(rpc_field_get(buf + 1, len) == v);
		CHECK(buf[len] == 0x08); // last byte is the least significant
	}
	rpc_field_put(buf, 2, 0x12345);
	CHECK(buf[0] == 0x23);
	CHECK(buf[1] == 0x45);
}

namespace {

struct Balancer {
	balance_state b;
	explicit Balancer(size_t n, balance_kind kind = BALANCE_HASH)
	{
		std::vector<upstream_spec> specs(n);
		for (size_t i = 0; i < n; i++) {
			std::string addr = "10.0.0." + std::to_string(i + 1) + ":9";
			REQUIRE(netaddr_parse(&specs[i].addr, addr.c_str(),
					      NETADDR_NUMERIC) == 0);
			specs[i].weight = 1;
		}
		REQUIRE(balance_init(&b, kind, specs.data(), n, 7) == 0);
	}
	~Balancer() { balance_free(&b); }
	int pick(const rpc_field &f, const Bytes &fr,
		 const balance_tried *tried = nullptr)
	{
		int server = -2;
		REQUIRE(rpc_field_pick(&b, &f, fr.data(), fr.size(), tried,
				       &server) == 0);
		return server;
	}
};

Bytes keyed(uint32_t key, const std::string &rest)
{
	Bytes p(4);
	rpc_field_put(p.data(), 4, key);
	p.insert(p.end(), rest.begin(), rest.end());
	return frame(p);
}

} // namespace

TEST_CASE("rpc field pick: the key alone decides the server", "[rpc]")
{
	Balancer bal(5);
	rpc_field f = { 0, 4 };
	std::map<int, int> per_server;
	for (uint32_t key = 0; key < 2000; key++) {
		int s = bal.pick(f, keyed(key, "one"));
		REQUIRE(s >= 0);
		CHECK(bal.pick(f, keyed(key, "other payload")) == s);
		per_server[s]++;
	}
	REQUIRE(per_server.size() == 5);
	for (auto &kv : per_server) // about 400 each
		CHECK((kv.second > 300 && kv.second < 500));
}

TEST_CASE("rpc field pick: down and tried servers are skipped, and only the "
	  "keys of a removed server move", "[rpc]")
{
	Balancer bal(4);
	rpc_field f = { 0, 4 };
	std::vector<int> before;
	for (uint32_t key = 0; key < 500; key++)
		before.push_back(bal.pick(f, keyed(key, "")));

	balance_set_up(&bal.b, 2, false);
	for (uint32_t key = 0; key < 500; key++) {
		int s = bal.pick(f, keyed(key, ""));
		CHECK(s != 2);
		if (before[key] != 2)
			CHECK(s == before[key]);
	}
	balance_set_up(&bal.b, 2, true);

	balance_tried tried;
	balance_tried_clear(&tried);
	balance_tried_add(&tried, (size_t)before[0]);
	CHECK(bal.pick(f, keyed(0, ""), &tried) != before[0]);
	for (size_t i = 0; i < 4; i++)
		balance_tried_add(&tried, i);
	CHECK(bal.pick(f, keyed(0, ""), &tried) == -1);
}

TEST_CASE("rpc field pick: only the bytes at the offset count", "[rpc]")
{
	Balancer bal(8);
	rpc_field f = { 3, 2 };
	std::map<int, int> per_server;
	for (uint32_t key = 0; key < 800; key++) {
		Bytes a = { 'a', 'b', 'c', 0, 0, 'z' };
		rpc_field_put(&a[3], 2, key);
		Bytes b = a;
		b[0] = b[1] = b[2] = b[5] = (uint8_t)(key * 7);
		int s = bal.pick(f, frame(a));
		CHECK(bal.pick(f, frame(b)) == s);
		per_server[s]++;
	}
	CHECK(per_server.size() == 8);
}

TEST_CASE("rpc field pick: a frame too short for the key is refused",
	  "[rpc]")
{
	Balancer bal(3);
	rpc_field f = { 4, 4 };
	Bytes fr = frame("1234567");
	int server = -2;
	CHECK(rpc_field_pick(&bal.b, &f, fr.data(), fr.size(), nullptr,
			     &server) == -EBADMSG);
	CHECK(server == -2);
}
