// frametop's strict JSON reader (tools/frametop/json.h): what it accepts,
// what it rejects and where, escapes, nesting, numbers.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "tools/frametop/json.h"

namespace {

// A parsed document that frees itself.
struct Doc {
	json_doc d;
	int err;
	explicit Doc(const std::string &text)
	{
		err = json_parse(&d, text.data(), text.size());
	}
	~Doc() { json_free(&d); }
	const json_value *root() const { return json_root(&d); }
	const json_value *get(const json_value *v, const char *key) const
	{
		return json_get(&d, v, key);
	}
};

std::string str_of(const json_value *v)
{
	REQUIRE(v);
	REQUIRE(v->type == JSON_STRING);
	return std::string(v->str, v->str_len);
}

std::string decode(const std::string &json_string)
{
	Doc doc(json_string);
	INFO(json_string << " -> " << (doc.d.error ? doc.d.error : ""));
	REQUIRE(doc.err == 0);
	return str_of(doc.root());
}

} // namespace

TEST_CASE("frametop json: scalars at the root", "[frametop][json]")
{
	{
		Doc d("true");
		REQUIRE(d.err == 0);
		CHECK(d.root()->type == JSON_BOOL);
		CHECK(d.root()->boolean);
	}
	{
		Doc d(" false ");
		REQUIRE(d.err == 0);
		CHECK(d.root()->type == JSON_BOOL);
		CHECK_FALSE(d.root()->boolean);
	}
	{
		Doc d("\r\n\tnull\n");
		REQUIRE(d.err == 0);
		CHECK(d.root()->type == JSON_NULL);
	}
	{
		Doc d("\"hi\"");
		REQUIRE(d.err == 0);
		CHECK(str_of(d.root()) == "hi");
	}
	{
		Doc d("42");
		REQUIRE(d.err == 0);
		CHECK(d.root()->type == JSON_NUMBER);
		CHECK(d.root()->u64 == 42);
	}
}

TEST_CASE("frametop json: objects, arrays and nesting", "[frametop][json]")
{
	Doc d("{\"pid\": 12, \"name\": \"x\", \"list\": [1, [2, 3], {}],"
	      " \"o\": {\"a\": {\"b\": [true, null]}}, \"e\": [],"
	      " \"pid\": 99}");
	REQUIRE(d.err == 0);
	const json_value *root = d.root();
	REQUIRE(root->type == JSON_OBJECT);
	CHECK(root->count == 6);
	CHECK(d.get(root, "pid")->u64 == 12);   // duplicate key: first wins
	CHECK(str_of(d.get(root, "name")) == "x");
	CHECK(d.get(root, "missing") == nullptr);
	CHECK(d.get(d.get(root, "name"), "x") == nullptr);  // not an object

	const json_value *list = d.get(root, "list");
	REQUIRE(list->type == JSON_ARRAY);
	REQUIRE(list->count == 3);
	const json_value *a = json_first(&d.d, list);
	CHECK(a->u64 == 1);
	const json_value *b = json_next(&d.d, a);
	REQUIRE(b->type == JSON_ARRAY);
	CHECK(b->count == 2);
	CHECK(json_next(&d.d, json_first(&d.d, b))->u64 == 3);
	const json_value *c = json_next(&d.d, b);
	CHECK(c->type == JSON_OBJECT);
	CHECK(c->count == 0);
	CHECK(json_first(&d.d, c) == nullptr);
	CHECK(json_next(&d.d, c) == nullptr);

	const json_value *inner = d.get(d.get(d.get(root, "o"), "a"), "b");
	REQUIRE(inner);
	CHECK(inner->count == 2);
	CHECK(json_first(&d.d, inner)->boolean);
	CHECK(json_next(&d.d, json_first(&d.d, inner))->type == JSON_NULL);
	CHECK(d.get(root, "e")->count == 0);
}

TEST_CASE("frametop json: nesting is bounded", "[frametop][json]")
{
	std::string ok = std::string(JSON_MAX_DEPTH, '[') +
			 std::string(JSON_MAX_DEPTH, ']');
	CHECK(Doc(ok).err == 0);
	std::string deep = std::string(JSON_MAX_DEPTH + 1, '[') +
			   std::string(JSON_MAX_DEPTH + 1, ']');
	Doc d(deep);
	CHECK(d.err == -E2BIG);
	CHECK(json_root(&d.d) == nullptr);
	// Deep enough to overflow a stack if the depth were not checked.
	CHECK(Doc(std::string(100000, '[')).err == -E2BIG);
	CHECK(Doc(std::string(100000, '{')).err == -EINVAL);  // key expected
}

TEST_CASE("frametop json: string escapes", "[frametop][json]")
{
	CHECK(decode("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"") == "\"\\/\b\f\n\r\t");
	CHECK(decode("\"\\u0041\\u00e9\\u20AC\"") == "A\xc3\xa9\xe2\x82\xac");
	CHECK(decode("\"\\ud83d\\ude00\"") == "\xf0\x9f\x98\x80");
	CHECK(decode("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"") ==
	      "caf\xc3\xa9 \xf0\x9f\x98\x80");
	CHECK(decode("\"\"").empty());
	std::string nul = decode("\"a\\u0000b\"");
	CHECK(nul.size() == 3);
	CHECK(nul[1] == '\0');
	// Keys are decoded too.
	Doc d("{\"k\\u0065y\": 1}");
	REQUIRE(d.err == 0);
	CHECK(d.get(d.root(), "key"));
}

TEST_CASE("frametop json: numbers", "[frametop][json]")
{
	struct Case {
		const char *text;
		double num;
		bool is_u64;
	};
	const Case cases[] = {
		{"0", 0, true},          {"-0", 0, false},
		{"123", 123, true},      {"-5", -5, false},
		{"1.5", 1.5, false},     {"1e3", 1000, false},
		{"1E-2", 0.01, false},   {"2.5e+2", 250, false},
		{"0.000001", 1e-6, false},
		{"1796074283.2329342", 1796074283.2329342, false},
	};
	for (const Case &c : cases) {
		INFO(c.text);
		Doc d(c.text);
		REQUIRE(d.err == 0);
		CHECK(d.root()->type == JSON_NUMBER);
		CHECK(d.root()->num == Approx(c.num));
		CHECK(d.root()->is_u64 == c.is_u64);
	}
	Doc max("18446744073709551615");
	REQUIRE(max.err == 0);
	CHECK(max.root()->is_u64);
	CHECK(max.root()->u64 == UINT64_MAX);
	Doc over("18446744073709551616");
	REQUIRE(over.err == 0);
	CHECK_FALSE(over.root()->is_u64);
	CHECK(over.root()->num == Approx(1.8446744073709552e19));
	// Above 2^53 an integer is still exact in u64.
	Doc big("9007199254740993");
	REQUIRE(big.err == 0);
	CHECK(big.root()->u64 == 9007199254740993ull);
}

TEST_CASE("frametop json: invalid documents are rejected", "[frametop][json]")
{
	const char *bad[] = {
		"", " ", "[", "]", "{", "[1,]", "{\"a\":1,}", "[,1]", "[1 2]",
		"{a:1}", "{\"a\" 1}", "{\"a\":}", "{\"a\"}", "{1:2}",
		"01", "-", "-a", "1.", ".5", "1e", "1e+", "+1", "0x10", "1e400",
		"NaN", "Infinity", "-Infinity",
		"tru", "nul", "True", "falsey", "[1]x", "1 2", "'a'",
		"\"abc", "\"\t\"", "\"a\nb\"", "\"\\x\"", "\"\\u12\"",
		"\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
		"\"\\ud800x\"", "\"\xc3\x28\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"\xe2\x82\"",
		"/*x*/1", "// x\n1", "[1]//",
	};
	for (const char *text : bad) {
		INFO("input: " << text);
		Doc d(text);
		CHECK(d.err == -EINVAL);
		CHECK(d.d.error != nullptr);
		CHECK(json_root(&d.d) == nullptr);
	}
	// A NUL byte inside the input is not the end of it.
	CHECK(Doc(std::string("[1]\0", 4)).err == -EINVAL);
	CHECK(Doc(std::string("\"a\0\"", 4)).err == -EINVAL);
	// A number longer than JSON_MAX_NUMBER characters.
	CHECK(Doc("1." + std::string(JSON_MAX_NUMBER, '1')).err == -EINVAL);
}

TEST_CASE("frametop json: errors say where", "[frametop][json]")
{
	Doc trailing("[1,]");
	CHECK(trailing.err == -EINVAL);
	CHECK(trailing.d.error_at == 3);
	Doc after("{\"a\": 1} x");
	CHECK(after.d.error_at == 9);
	CHECK(std::string(after.d.error) == "data after the value");
	Doc ctrl("[\"ab\x01\"]");
	CHECK(ctrl.d.error_at == 4);
	CHECK(std::string(ctrl.d.error) == "control character in string");
}

TEST_CASE("frametop json: mangled input never reads out of bounds",
	  "[frametop][json]")
{
	// Run under ASan, this is the test: truncations and byte flips of a
	// document like /stats, each parsed from an exact-size heap copy.
	const std::string base =
		"{\"pid\":12,\"uptime_s\":1.5e0,\"s\":[{\"state\":\"r\\u00e9\","
		"\"n\":[-0.5,true,false,null,\"\\ud83d\\ude00\\n\"]},{}],"
		"\"x\":18446744073709551615}";
	uint32_t seed = 12345;
	auto next = [&seed] {
		seed = seed * 1103515245u + 12345u;
		return seed >> 8;
	};
	const char alphabet[] = "{}[]\":,\\u0123456789.eE+-tfnrl \xc3\xa9\xed";
	for (int i = 0; i < 20000; i++) {
		std::string text = base.substr(0, next() % (base.size() + 1));
		for (unsigned k = next() % 4; k > 0 && !text.empty(); k--)
			text[next() % text.size()] =
				alphabet[next() % (sizeof(alphabet) - 1)];
		std::vector<char> heap(text.begin(), text.end());
		json_doc d;
		int err = json_parse(&d, heap.data(), heap.size());
		CHECK((err == 0 || err == -EINVAL || err == -E2BIG));
		CHECK((err == 0) == (json_root(&d) != nullptr));
		json_free(&d);
	}
}
