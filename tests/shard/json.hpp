// A small strict JSON reader for the tests: enough to check that the stats
// output is well-formed (no trailing commas, raw control characters or
// duplicate keys) and to look values up.
#pragma once

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

struct Json {
	enum Kind { Null, Bool, Num, Str, Arr, Obj } kind = Null;
	bool b = false;
	std::string text; // number as written, or string value
	std::vector<Json> arr;
	std::vector<std::pair<std::string, Json>> obj;

	bool has(const std::string &key) const
	{
		for (const auto &kv : obj)
			if (kv.first == key)
				return true;
		return false;
	}
	const Json &operator[](const std::string &key) const
	{
		if (kind != Obj)
			throw std::runtime_error("not an object, looking up " + key);
		for (const auto &kv : obj)
			if (kv.first == key)
				return kv.second;
		throw std::runtime_error("no key " + key);
	}
	const Json &operator[](size_t i) const
	{
		if (kind != Arr || i >= arr.size())
			throw std::runtime_error("no array element");
		return arr[i];
	}
	uint64_t u64() const
	{
		if (kind != Num || text.find_first_of(".eE-") != std::string::npos)
			throw std::runtime_error("not an unsigned integer: " + text);
		return strtoull(text.c_str(), nullptr, 10);
	}
	double num() const
	{
		if (kind != Num)
			throw std::runtime_error("not a number");
		return strtod(text.c_str(), nullptr);
	}
	const std::string &str() const
	{
		if (kind != Str)
			throw std::runtime_error("not a string");
		return text;
	}
};

class JsonReader {
public:
	static Json parse(const std::string &s)
	{
		JsonReader r(s);
		Json v = r.value();
		r.ws();
		if (r.i != s.size())
			r.fail("trailing bytes");
		return v;
	}

private:
	explicit JsonReader(const std::string &s) : s(s) {}
	const std::string &s;
	size_t i = 0;

	[[noreturn]] void fail(const char *why)
	{
		throw std::runtime_error(std::string(why) + " at " + std::to_string(i));
	}
	void ws()
	{
		while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
			i++;
	}
	void expect(char c)
	{
		ws();
		if (i >= s.size() || s[i] != c)
			fail("unexpected byte");
		i++;
	}
	bool lit(const char *word)
	{
		std::string w(word);
		if (s.compare(i, w.size(), w) != 0)
			return false;
		i += w.size();
		return true;
	}
	Json value()
	{
		ws();
		if (i >= s.size())
			fail("end of input");
		Json v;
		char c = s[i];
		if (c == '{')
			return object();
		if (c == '[')
			return array();
		if (c == '"') {
			v.kind = Json::Str;
			v.text = string();
		} else if (lit("true") || lit("false")) {
			v.kind = Json::Bool;
			v.b = s[i - 1] == 'e' && s[i - 2] == 'u';
		} else if (lit("null")) {
			v.kind = Json::Null;
		} else {
			v.kind = Json::Num;
			v.text = number();
		}
		return v;
	}
	std::string number()
	{
		size_t start = i;
		if (s[i] == '-')
			i++;
		size_t digits = i;
		while (i < s.size() && isdigit((unsigned char)s[i]))
			i++;
		if (i == digits || (s[digits] == '0' && i - digits > 1))
			fail("bad number");
		if (i < s.size() && s[i] == '.') {
			size_t frac = ++i;
			while (i < s.size() && isdigit((unsigned char)s[i]))
				i++;
			if (i == frac)
				fail("bad fraction");
		}
		return s.substr(start, i - start);
	}
	void utf8(std::string &out, unsigned cp)
	{
		if (cp < 0x80) {
			out += (char)cp;
		} else if (cp < 0x800) {
			out += (char)(0xC0 | cp >> 6);
			out += (char)(0x80 | (cp & 0x3F));
		} else {
			out += (char)(0xE0 | cp >> 12);
			out += (char)(0x80 | ((cp >> 6) & 0x3F));
			out += (char)(0x80 | (cp & 0x3F));
		}
	}
	std::string string()
	{
		std::string out;
		i++; // opening quote
		while (true) {
			if (i >= s.size())
				fail("unterminated string");
			unsigned char c = (unsigned char)s[i++];
			if (c == '"')
				return out;
			if (c < 0x20)
				fail("raw control character in string");
			if (c != '\\') {
				out += (char)c;
				continue;
			}
			if (i >= s.size())
				fail("unterminated escape");
			char e = s[i++];
			switch (e) {
			case '"': out += '"'; break;
			case '\\': out += '\\'; break;
			case '/': out += '/'; break;
			case 'b': out += '\b'; break;
			case 'f': out += '\f'; break;
			case 'n': out += '\n'; break;
			case 'r': out += '\r'; break;
			case 't': out += '\t'; break;
			case 'u': {
				if (i + 4 > s.size())
					fail("short \\u");
				utf8(out, (unsigned)strtoul(s.substr(i, 4).c_str(), nullptr, 16));
				i += 4;
				break;
			}
			default:
				fail("bad escape");
			}
		}
	}
	Json array()
	{
		Json v;
		v.kind = Json::Arr;
		expect('[');
		ws();
		if (i < s.size() && s[i] == ']') {
			i++;
			return v;
		}
		while (true) {
			v.arr.push_back(value());
			ws();
			if (i < s.size() && s[i] == ',') {
				i++;
				continue;
			}
			expect(']');
			return v;
		}
	}
	Json object()
	{
		Json v;
		v.kind = Json::Obj;
		expect('{');
		ws();
		if (i < s.size() && s[i] == '}') {
			i++;
			return v;
		}
		while (true) {
			ws();
			if (i >= s.size() || s[i] != '"')
				fail("expected a key");
			std::string key = string();
			if (v.has(key))
				fail("duplicate key");
			expect(':');
			v.obj.emplace_back(key, value());
			ws();
			if (i < s.size() && s[i] == ',') {
				i++;
				continue;
			}
			expect('}');
			return v;
		}
	}
};
