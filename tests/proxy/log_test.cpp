// log: logfmt formatting, quoting, levels and rate limiting.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/log.h"

namespace {

// 2026-11-22T21:55:01.123Z
const int64_t T0 = 1795384501123000000LL;

int64_t fake_real = T0;
int64_t fake_mono = 1000000000000LL;
int64_t real_now() { return fake_real; }
int64_t mono_now() { return fake_mono; }

// Captures what the log writes, with fake clocks, and restores after.
struct Capture {
	char *buf = nullptr;
	size_t len = 0;
	FILE *f;
	Capture()
	{
		f = open_memstream(&buf, &len);
		REQUIRE(f != nullptr);
		log_set_output(f);
		log_set_level(LOG_LEVEL_DEBUG);
		log_set_clocks(real_now, mono_now);
		fake_real = T0;
		fake_mono = 1000000000000LL;
	}
	~Capture()
	{
		log_set_output(nullptr);
		log_set_level(LOG_LEVEL_INFO);
		log_set_clocks(nullptr, nullptr);
		log_set_context(nullptr);
		fclose(f);
		free(buf);
	}
	std::vector<std::string> lines()
	{
		fflush(f);
		std::vector<std::string> out;
		std::string all(buf, len), cur;
		for (char c : all) {
			if (c == '\n') {
				out.push_back(cur);
				cur.clear();
			} else {
				cur += c;
			}
		}
		CHECK(cur.empty()); // every line ends in a newline
		return out;
	}
};

// What follows msg="m" on a line.
std::string tail(const std::string &line)
{
	std::string head = "msg=\"m\" ";
	size_t at = line.find(head);
	REQUIRE(at != std::string::npos);
	return line.substr(at + head.size());
}

} // namespace

#define LINE(...)                                                        \
	([&]() {                                                         \
		char b_[LOG_LINE_MAX];                                   \
		size_t n_ = log_format(b_, sizeof(b_), T0, __VA_ARGS__); \
		return std::string(b_, n_);                              \
	}())

TEST_CASE("log: timestamp, level, quoted msg, plain values", "[log]")
{
	CHECK(LINE(LOG_LEVEL_INFO, "started", "port=%d name=%s", 9000, "api") ==
	      "ts=2026-11-22T21:55:01.123Z level=info msg=\"started\" port=9000 name=api\n");
	CHECK(LINE(LOG_LEVEL_WARN, "x", nullptr) ==
	      "ts=2026-11-22T21:55:01.123Z level=warn msg=\"x\"\n");
	CHECK(LINE(LOG_LEVEL_DEBUG, "x", "a=1 b=2") ==
	      "ts=2026-11-22T21:55:01.123Z level=debug msg=\"x\" a=1 b=2\n");
}

TEST_CASE("log: a pair whose key comes out empty is left out", "[log]")
{
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "a=1 %s=%s b=2", "", "")) ==
	      "a=1 b=2\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "a=1 %s=%s b=2", "", "dropped too")) ==
	      "a=1 b=2\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "a=1 %s=%s", "cn", "x y")) ==
	      "a=1 cn=\"x y\"\n");
}

TEST_CASE("log: values needing quotes are quoted and escaped", "[log]")
{
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "err=%s", "connection refused")) ==
	      "err=\"connection refused\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "q=%s", "say \"hi\"")) ==
	      "q=\"say \\\"hi\\\"\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "p=%s", "a\\b")) == "p=\"a\\\\b\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "nl=%s", "two\nlines\t\r")) ==
	      "nl=\"two\\nlines\\t\\r\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "c=%s", "\x01")) == "c=\"\\x01\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "eq=%s", "a=b")) == "eq=\"a=b\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "empty=%s", "")) == "empty=\"\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "utf8=%s", "caf\xc3\xa9")) ==
	      "utf8=caf\xc3\xa9\n");
	// msg is escaped the same way.
	std::string l = LINE(LOG_LEVEL_INFO, "bad \"frame\"\n", nullptr);
	CHECK(l.find("msg=\"bad \\\"frame\\\"\\n\"\n") != std::string::npos);
}

// What a crafted config file or client could put in a value must not
// reach a terminal or a log reader raw: no escape sequences, no line of
// its own, no bytes that are not UTF-8.
TEST_CASE("log: control bytes and invalid UTF-8 are escaped", "[log]")
{
	// ESC: a terminal colour sequence is shown, not obeyed.
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "\x1b[31mred")) ==
	      "v=\"\\x1b[31mred\"\n");
	// A newline cannot start a fake line; CR, TAB and DEL are escaped too.
	std::string fake = LINE(LOG_LEVEL_INFO, "m", "v=%s",
				"x\nts=2026 level=error msg=\"forged\"");
	CHECK(fake.find('\n') == fake.size() - 1);
	CHECK(tail(fake) == "v=\"x\\nts=2026 level=error msg=\\\"forged\\\"\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "a\rb\tc\x7f")) ==
	      "v=\"a\\rb\\tc\\x7f\"\n");
	// Invalid UTF-8: a stray continuation byte, a cut sequence, an
	// overlong '/', a surrogate, 0xff. Each bad byte becomes \xNN.
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "\x80")) == "v=\"\\x80\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "caf\xc3")) ==
	      "v=\"caf\\xc3\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "\xc0\xaf")) ==
	      "v=\"\\xc0\\xaf\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "\xed\xa0\x80")) ==
	      "v=\"\\xed\\xa0\\x80\"\n");
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "a\xff" "b")) ==
	      "v=\"a\\xffb\"\n");
	// A C1 control (U+009B, CSI) is valid UTF-8 but a terminal command.
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "v=%s", "\xc2\x9b" "2J")) ==
	      "v=\"\\xc2\\x9b2J\"\n");
	// A key from a conversion is a name: nothing in it splits the pair.
	CHECK(tail(LINE(LOG_LEVEL_INFO, "m", "%s=%s k%s=1", "signal", "KILL",
			"a b=\"\n\xc3\xa9")) == "signal=KILL ka_b_____=1\n");
	// msg is escaped the same way.
	CHECK(LINE(LOG_LEVEL_INFO, "\x1b]0;title\x07", nullptr).find(
		      "msg=\"\\x1b]0;title\\x07\"\n") != std::string::npos);
}

TEST_CASE("log: valid UTF-8 passes through", "[log]")
{
	// 2, 3 and 4 bytes: é, €, U+FFFD, U+1F600.
	const char *text = "caf\xc3\xa9 \xe2\x82\xac \xef\xbf\xbd \xf0\x9f\x98\x80";
	std::string l = LINE(LOG_LEVEL_INFO, text, "v=%s bare=%s", text,
			     "\xc3\xa9t\xc3\xa9");
	CHECK(l.find(std::string("msg=\"") + text + "\" v=\"" + text +
		     "\" bare=\xc3\xa9t\xc3\xa9\n") != std::string::npos);
	// A value cut at its limit is not cut inside a character.
	std::string big;
	while (big.size() < LOG_VALUE_MAX + 10)
		big += "\xe2\x82\xac";
	std::string c = LINE(LOG_LEVEL_INFO, "m", "v=%s", big.c_str());
	INFO(c);
	CHECK(c.find("\\x") == std::string::npos);
	CHECK(c.find("\xe2\x82\xac...\n") != std::string::npos);
}

TEST_CASE("log: conversions of every size keep arguments in step", "[log]")
{
	std::string l = LINE(LOG_LEVEL_INFO, "m",
		"a=%d b=%ld c=%lld d=%zu e=%u f=%" PRIu64 " g=%x h=%.2f i=%c "
		"j=%5s k=%-3d| l=%*d m=%.*s n=%hhu o=%%lit p=%s",
		-1, -2L, -3LL, (size_t)4, 5u, (uint64_t)6, 255, 3.14159, 'z',
		"ab", 7, 4, 8, 3, "abcdef", (unsigned char)200, "end");
	CHECK(l.find(" a=-1 b=-2 c=-3 d=4 e=5 f=6 g=ff h=3.14 i=z "
		     "j=\"   ab\" k=\"7  |\" l=\"   8\" m=abc n=200 o=%lit p=end\n") !=
	      std::string::npos);
	INFO(l);
	// Several conversions and literal text make one value.
	std::string d = LINE(LOG_LEVEL_INFO, "m", "dur=%d.%03ds up=%s/%s", 1, 5,
			     "a b", "c");
	CHECK(d.find(" dur=1.005s up=\"a b/c\"\n") != std::string::npos);
	// A bare word is a key without a value.
	std::string w = LINE(LOG_LEVEL_INFO, "m", "draining n=%d", 3);
	CHECK(w.find(" draining n=3\n") != std::string::npos);
}

TEST_CASE("log: '*' widths and precisions behave as printf's", "[log]")
{
	// A negative width left-aligns; a negative precision is none.
	std::string l = LINE(LOG_LEVEL_INFO, "m", "a=%*d| b=%.*s c=%-*.*f| d=%s",
			     -4, 7, -1, "whole", 6, 2, 1.5, "next");
	INFO(l);
	CHECK(l.find(" a=\"7   |\" b=whole c=\"1.50  |\" d=next\n") !=
	      std::string::npos);
	// Huge ones are bounded, and the arguments after stay in step.
	int huge = 1 << 30;
	std::string h = LINE(LOG_LEVEL_INFO, "m", "w=%*d p=%.*s n=%d", huge, 1,
			     huge, "two", 3);
	CHECK(h.size() < LOG_LINE_MAX);
	CHECK(h.find(" p=two n=3\n") != std::string::npos);
}

// shard/'s lines come through shard_ops.log as a message, a format and a
// va_list, which proxy/main.c hands to log_vline; shard/ quotes nothing.
// This is that path, with the supervisor's own formats.
static void shard_say(log_severity level, const char *msg, const char *fmt, ...)
	LOG_PRINTF(3, 4);
static void shard_say(log_severity level, const char *msg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vline(level, msg, fmt, ap);
	va_end(ap);
}

TEST_CASE("log: shard/ lines are quoted by the writer", "[log]")
{
	Capture cap;
	// A reload error naming a value with a quote and a space.
	shard_say(LOG_LEVEL_ERROR, "reload failed: keeping the running configuration",
		  "reason=%s", "a.ini:7: key 'max_frame': invalid size '16 \"XB'");
	// The same lines as when shard/ quoted by hand.
	shard_say(LOG_LEVEL_ERROR, "cannot listen", "listener=%s address=%s error=%s",
		  "api", "127.0.0.1:80", "Address already in use");
	shard_say(LOG_LEVEL_WARN, "shard died",
		  "shard=%u pid=%d %s=%s respawn_in=%lldms crashes=%u", 1u, 42,
		  "signal", "KILL", 0LL, 1u);
	shard_say(LOG_LEVEL_INFO, "stopped", "exit=%d", 0);
	auto lines = cap.lines();
	REQUIRE(lines.size() == 4);
	const std::string ts = "ts=2026-11-22T21:55:01.123Z ";
	CHECK(lines[0] == ts + "level=error msg=\"reload failed: keeping the running "
	      "configuration\" reason=\"a.ini:7: key 'max_frame': invalid size "
	      "'16 \\\"XB'\"");
	CHECK(lines[1] == ts + "level=error msg=\"cannot listen\" listener=api "
	      "address=127.0.0.1:80 error=\"Address already in use\"");
	CHECK(lines[2] == ts + "level=warn msg=\"shard died\" shard=1 pid=42 "
	      "signal=KILL respawn_in=0ms crashes=1");
	CHECK(lines[3] == ts + "level=info msg=\"stopped\" exit=0");
}

TEST_CASE("log: long values are cut, the line stays bounded", "[log]")
{
	std::string big(5000, 'x');
	std::string l = LINE(LOG_LEVEL_INFO, "m", "v=%s w=%d", big.c_str(), 1);
	CHECK(l.size() < LOG_LINE_MAX);
	CHECK(l.back() == '\n');
	CHECK(l.find("x...") != std::string::npos);
	CHECK(l.find(" w=1\n") != std::string::npos);

	char small[40];
	size_t n = log_format(small, sizeof(small), T0, LOG_LEVEL_INFO, "message",
			      "k=%s", "value");
	CHECK(n < sizeof(small));
	CHECK(small[n - 1] == '\n');
	CHECK(small[n] == '\0');
}

TEST_CASE("log: levels filter, names parse", "[log]")
{
	Capture cap;
	log_set_level(LOG_LEVEL_WARN);
	CHECK_FALSE(log_enabled(LOG_LEVEL_INFO));
	CHECK(log_enabled(LOG_LEVEL_ERROR));
	log_line(LOG_LEVEL_INFO, "hidden", "n=%d", 1);
	log_line(LOG_LEVEL_DEBUG, "hidden", nullptr);
	log_line(LOG_LEVEL_WARN, "shown", "n=%d", 2);
	log_line(LOG_LEVEL_ERROR, "shown too", nullptr);
	auto lines = cap.lines();
	REQUIRE(lines.size() == 2);
	CHECK(lines[0] == "ts=2026-11-22T21:55:01.123Z level=warn msg=\"shown\" n=2");
	CHECK(lines[1] == "ts=2026-11-22T21:55:01.123Z level=error msg=\"shown too\"");

	log_severity lv;
	CHECK(log_level_parse("debug", &lv) == 0);
	CHECK(lv == LOG_LEVEL_DEBUG);
	CHECK(log_level_parse("warning", &lv) == 0);
	CHECK(lv == LOG_LEVEL_WARN);
	CHECK(log_level_parse("verbose", &lv) == -EINVAL);
	CHECK(std::string(log_level_name(LOG_LEVEL_ERROR)) == "error");
}

TEST_CASE("log: context pairs follow msg on every line", "[log]")
{
	Capture cap;
	log_set_context("shard=3");
	log_line(LOG_LEVEL_INFO, "hello", "k=v");
	log_set_context(nullptr);
	log_line(LOG_LEVEL_INFO, "bye", nullptr);
	auto lines = cap.lines();
	REQUIRE(lines.size() == 2);
	CHECK(lines[0] == "ts=2026-11-22T21:55:01.123Z level=info msg=\"hello\" shard=3 k=v");
	CHECK(lines[1] == "ts=2026-11-22T21:55:01.123Z level=info msg=\"bye\"");
}

TEST_CASE("log: rate limiting suppresses and reports the count", "[log]")
{
	Capture cap;
	log_ratelimit rl = LOG_RATELIMIT_INIT(3);
	int written = 0;
	for (int i = 0; i < 100; i++) {
		written += log_ratelimited(&rl, LOG_LEVEL_WARN, "accept failed",
					   "i=%d", i);
		fake_mono += 1000000; // 1ms apart: all within one second
	}
	CHECK(written == 3);
	auto lines = cap.lines();
	REQUIRE(lines.size() == 3);
	CHECK(lines[2].find("msg=\"accept failed\" i=2") != std::string::npos);

	// Next window: first the count, then the line itself.
	fake_mono += 1000000000;
	CHECK(log_ratelimited(&rl, LOG_LEVEL_WARN, "accept failed", "i=%d", 100));
	lines = cap.lines();
	REQUIRE(lines.size() == 5);
	CHECK(lines[3] == "ts=2026-11-22T21:55:01.123Z level=warn msg=\"log lines suppressed\" suppressed=97 of=\"accept failed\"");
	CHECK(lines[4].find("msg=\"accept failed\" i=100") != std::string::npos);

	// A burst that just stops is reported by flush, once.
	for (int i = 0; i < 10; i++)
		log_ratelimited(&rl, LOG_LEVEL_WARN, "accept failed", "i=%d", i);
	log_ratelimit_flush(&rl);
	log_ratelimit_flush(&rl);
	lines = cap.lines();
	REQUIRE(lines.size() == 8);
	CHECK(lines[7].find("suppressed=8 of=\"accept failed\"") != std::string::npos);
}

TEST_CASE("log: separate slots limit separately; quiet windows say nothing", "[log]")
{
	Capture cap;
	log_ratelimit a = LOG_RATELIMIT_INIT(1), b = LOG_RATELIMIT_INIT(1);
	CHECK(log_ratelimited(&a, LOG_LEVEL_ERROR, "a", nullptr));
	CHECK(log_ratelimited(&b, LOG_LEVEL_ERROR, "b", nullptr));
	CHECK_FALSE(log_ratelimited(&a, LOG_LEVEL_ERROR, "a", nullptr));
	fake_mono += 2000000000;
	CHECK(log_ratelimited(&b, LOG_LEVEL_ERROR, "b", nullptr)); // b had none suppressed
	auto lines = cap.lines();
	REQUIRE(lines.size() == 3);
	CHECK(lines[2].find("msg=\"b\"") != std::string::npos);

	// Disabled levels neither print nor count.
	log_set_level(LOG_LEVEL_ERROR);
	log_ratelimit c = LOG_RATELIMIT_INIT(1);
	CHECK_FALSE(log_ratelimited(&c, LOG_LEVEL_INFO, "c", nullptr));
	CHECK(c.suppressed == 0);
}

TEST_CASE("log: real clocks give a current UTC timestamp", "[log]")
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	REQUIRE(f != nullptr);
	log_set_output(f);
	log_line(LOG_LEVEL_ERROR, "now", nullptr);
	log_set_output(nullptr);
	fclose(f);
	std::string l(buf, len);
	free(buf);
	REQUIRE(l.size() > 30);
	CHECK(l.compare(0, 5, "ts=20") == 0);
	CHECK(l[26] == 'Z');
	CHECK(l.find(" level=error msg=\"now\"\n") != std::string::npos);
}

TEST_CASE("log_quote appends a logfmt value and stays in bounds", "[log]")
{
	char buf[16] = "k=";
	size_t n = log_quote(buf, sizeof(buf), 2, "plain", false);
	CHECK(std::string(buf, n) == "k=plain");
	n = log_quote(buf, sizeof(buf), 2, "plain", true);
	CHECK(std::string(buf, n) == "k=\"plain\"");
	n = log_quote(buf, sizeof(buf), 2, "a b c d e f g h i j", false);
	CHECK(n == sizeof(buf) - 1); // cut, NUL-terminated
	CHECK(buf[n] == '\0');
	CHECK(std::string(buf).rfind("k=\"a b", 0) == 0);
}
