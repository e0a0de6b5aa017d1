// shard/strbuf: growth, formatting, failure leaves contents alone and sticks,
// escaping for the renderers.
#include <catch2/catch.hpp>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <string>

#include "shard/strbuf.h"

namespace {

struct Buf {
	strbuf sb;
	Buf() { strbuf_init(&sb); }
	~Buf() { strbuf_free(&sb); }
	std::string str() const { return std::string(sb.data ? sb.data : "", sb.len); }
};

} // namespace

TEST_CASE("strbuf starts empty and appends bytes", "[strbuf]")
{
	Buf b;
	REQUIRE(b.sb.data == nullptr);
	REQUIRE(b.sb.len == 0);

	REQUIRE(strbuf_append(&b.sb, "ab", 2) == 0);
	REQUIRE(strbuf_append(&b.sb, "", 0) == 0);
	REQUIRE(strbuf_append(&b.sb, "c\0d", 3) == 0);
	REQUIRE(b.sb.len == 5);
	REQUIRE(memcmp(b.sb.data, "abc\0d", 5) == 0);
	REQUIRE(b.sb.data[5] == '\0');
}

TEST_CASE("strbuf grows across many appends and keeps every byte", "[strbuf]")
{
	Buf b;
	std::string expect;
	for (int i = 0; i < 5000; i++) {
		char c = (char)('a' + i % 26);
		REQUIRE(strbuf_append(&b.sb, &c, 1) == 0);
		expect += c;
	}
	REQUIRE(b.str() == expect);
	REQUIRE(b.sb.cap > b.sb.len);
	REQUIRE(b.sb.data[b.sb.len] == '\0');
}

TEST_CASE("strbuf_printf formats, also past the current capacity", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_printf(&b.sb, "%d-%s", 42, "x") == 0);
	REQUIRE(b.str() == "42-x");

	std::string big(10000, 'q');
	REQUIRE(strbuf_printf(&b.sb, "[%s]", big.c_str()) == 0);
	REQUIRE(b.str() == "42-x[" + big + "]");
	REQUIRE(strlen(b.sb.data) == b.sb.len);
}

TEST_CASE("strbuf_printf at the exact edge of the capacity", "[strbuf]")
{
	// Fill so that the room left is exactly n, n+1 and n-1 bytes for an
	// n-byte output: the terminator needs the one extra byte.
	for (int slack = -1; slack <= 1; slack++) {
		Buf b;
		REQUIRE(strbuf_reserve(&b.sb, 100) == 0);
		size_t room = b.sb.cap - 1;
		std::string fill(room - 10 - (size_t)slack, 'f');
		REQUIRE(strbuf_puts(&b.sb, fill.c_str()) == 0);
		REQUIRE(strbuf_printf(&b.sb, "%s", "0123456789") == 0);
		REQUIRE(b.str() == fill + "0123456789");
		REQUIRE(b.sb.data[b.sb.len] == '\0');
	}
}

TEST_CASE("strbuf reset keeps storage, free releases it", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_puts(&b.sb, "hello") == 0);
	size_t cap = b.sb.cap;
	strbuf_reset(&b.sb);
	REQUIRE(b.sb.len == 0);
	REQUIRE(b.sb.cap == cap);
	REQUIRE(b.sb.data[0] == '\0');
	REQUIRE(strbuf_puts(&b.sb, "again") == 0);
	REQUIRE(b.str() == "again");

	strbuf_free(&b.sb);
	REQUIRE(b.sb.data == nullptr);
	REQUIRE(b.sb.len == 0);
	REQUIRE(b.sb.cap == 0);
}

TEST_CASE("strbuf refuses impossible sizes and keeps its contents", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_puts(&b.sb, "keep") == 0);
	REQUIRE(strbuf_reserve(&b.sb, SIZE_MAX) == -ENOMEM);
	REQUIRE(strbuf_reserve(&b.sb, SIZE_MAX - 4) == -ENOMEM);
	REQUIRE(strbuf_append(&b.sb, "x", SIZE_MAX) == -ENOMEM);
	REQUIRE(b.str() == "keep");
	REQUIRE(b.sb.data[4] == '\0');
}

TEST_CASE("strbuf keeps its first failure until reset", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_puts(&b.sb, "keep") == 0);
	REQUIRE(b.sb.err == 0);
	REQUIRE(strbuf_reserve(&b.sb, SIZE_MAX) == -ENOMEM);
	REQUIRE(b.sb.err == -ENOMEM);
	// Later calls that would fit do nothing and report the first failure.
	REQUIRE(strbuf_puts(&b.sb, "x") == -ENOMEM);
	REQUIRE(strbuf_printf(&b.sb, "%d", 1) == -ENOMEM);
	REQUIRE(strbuf_seconds(&b.sb, 1) == -ENOMEM);
	REQUIRE(strbuf_json_string(&b.sb, "y") == -ENOMEM);
	REQUIRE(b.str() == "keep");
	strbuf_reset(&b.sb);
	REQUIRE(b.sb.err == 0);
	REQUIRE(strbuf_puts(&b.sb, "again") == 0);
	REQUIRE(b.str() == "again");
}

TEST_CASE("strbuf escapes label values and JSON strings", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_escaped(&b.sb, "a\"b\\c\nd\te\x01", STRBUF_PROM_LABEL) == 0);
	REQUIRE(b.str() == "a\\\"b\\\\c\\nd\te\x01");
	strbuf_reset(&b.sb);
	REQUIRE(strbuf_escaped(&b.sb, "a\"b\\c\nd\te\x01", STRBUF_JSON) == 0);
	REQUIRE(b.str() == "a\\\"b\\\\c\\nd\\u0009e\\u0001");
	strbuf_reset(&b.sb);
	REQUIRE(strbuf_json_string(&b.sb, "caf\xC3\xA9") == 0);
	REQUIRE(b.str() == "\"caf\xC3\xA9\"");
	strbuf_reset(&b.sb);
	REQUIRE(strbuf_escaped(&b.sb, "", STRBUF_JSON) == 0);
	REQUIRE(b.str() == "");
}

TEST_CASE("strbuf replaces bytes that are not UTF-8", "[strbuf]")
{
	const std::string fffd = "\xEF\xBF\xBD";
	const struct { const char *in; std::string out; } cases[] = {
		{ "ok \xE2\x82\xAC", "ok \xE2\x82\xAC" },     // whole euro sign
		{ "\xFF!", fffd + "!" },                       // never a lead byte
		{ "\xC0\xAF", fffd + fffd },                   // overlong '/'
		{ "\xE0\x80\xAF", fffd + fffd + fffd },        // overlong, 3 bytes
		{ "\xED\xA0\x80", fffd + fffd + fffd },        // a surrogate
		{ "\xF4\x90\x80\x80", fffd + fffd + fffd + fffd }, // above U+10FFFF
		{ "\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80" },   // 4 bytes, valid
		{ "cut \xE2\x82", "cut " + fffd + fffd },      // ends mid-character
	};
	for (const auto &c : cases) {
		Buf b;
		INFO(c.in);
		REQUIRE(strbuf_escaped(&b.sb, c.in, STRBUF_PROM_LABEL) == 0);
		REQUIRE(b.str() == c.out);
	}
}

TEST_CASE("strbuf writes nanoseconds as exact seconds", "[strbuf]")
{
	Buf b;
	REQUIRE(strbuf_seconds(&b.sb, 1700000000123456789) == 0);
	REQUIRE(strbuf_puts(&b.sb, " ") == 0);
	REQUIRE(strbuf_seconds(&b.sb, 5) == 0);
	REQUIRE(strbuf_puts(&b.sb, " ") == 0);
	REQUIRE(strbuf_seconds(&b.sb, -3) == 0);
	REQUIRE(b.str() == "1700000000.123456789 0.000000005 0.000000000");
}
