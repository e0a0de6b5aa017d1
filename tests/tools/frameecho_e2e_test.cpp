// frameecho + framebench end to end on loopback: the real executables
// (paths from $FRAMEECHO / $FRAMEBENCH), started with fork+exec on port 0.
// Every child is owned by a Proc whose destructor kills it by PID, so a
// failing assertion never leaves a process behind.
#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "proxy/frame.h"
#include "tools/lib/payload.h"

#include "proc.hpp"

namespace {

using tooltest::BenchResult;
using tooltest::Echo;
using tooltest::Fd;
using tooltest::Proc;
using tooltest::connect_to;
using tooltest::exe;
using tooltest::json_number;
using tooltest::now_ms;
using tooltest::read_full;
using tooltest::run_bench;
using tooltest::start_echo;
using tooltest::usable_pollers;

// Request i of the reorder tests: its index big-endian, then 0..49 bytes
// that depend on it, so every request differs from every other.
std::vector<uint8_t> numbered_request(uint64_t i)
{
	std::vector<uint8_t> p(8 + i % 50);
	for (int b = 0; b < 8; b++)
		p[(size_t)b] = (uint8_t)(i >> (56 - 8 * b));
	for (size_t b = 8; b < p.size(); b++)
		p[b] = (uint8_t)(i * 31 + b);
	return p;
}

void write_all(int fd, const std::vector<uint8_t> &bytes)
{
	size_t off = 0;
	while (off < bytes.size()) {
		ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
		REQUIRE(n > 0);
		off += (size_t)n;
	}
}

// Requests first..first+count-1, framed, in one buffer.
std::vector<uint8_t> framed_requests(uint64_t first, uint64_t count)
{
	std::vector<uint8_t> all;
	for (uint64_t i = first; i < first + count; i++) {
		std::vector<uint8_t> p = numbered_request(i);
		uint8_t prefix[4];
		frame_write_length(prefix, (uint32_t)p.size());
		all.insert(all.end(), prefix, prefix + 4);
		all.insert(all.end(), p.begin(), p.end());
	}
	return all;
}

// One reply frame's payload; fails the test on EOF or a silly length.
std::vector<uint8_t> read_frame(int fd)
{
	uint8_t prefix[4];
	REQUIRE(read_full(fd, prefix, 4));
	uint32_t len = frame_read_length(prefix);
	REQUIRE(len <= 1u << 20);
	std::vector<uint8_t> p(len);
	REQUIRE((len == 0 || read_full(fd, p.data(), len)));
	return p;
}

// Reads `count` echoed numbered requests: each must be one of
// [0, count), byte-identical, and answered once. Their indexes in the
// order the replies came.
std::vector<uint64_t> read_numbered_replies(int fd, uint64_t count)
{
	std::vector<bool> seen(count, false);
	std::vector<uint64_t> order;
	for (uint64_t k = 0; k < count; k++) {
		std::vector<uint8_t> p = read_frame(fd);
		REQUIRE(p.size() >= 8);
		uint64_t i = 0;
		for (int b = 0; b < 8; b++)
			i = i << 8 | p[(size_t)b];
		INFO("reply " << k << " says it answers request " << i);
		REQUIRE(i < count);
		CHECK(!seen[i]);
		seen[i] = true;
		CHECK(p == numbered_request(i));
		order.push_back(i);
	}
	return order;
}

// Pairs of replies that came in the other order than their requests.
size_t inversions(const std::vector<uint64_t> &order)
{
	size_t n = 0;
	for (size_t a = 0; a < order.size(); a++)
		for (size_t b = a + 1; b < order.size(); b++)
			n += order[a] > order[b];
	return n;
}

// Sends SIGUSR1 and waits for frameecho's report line number n (written
// with one write(2), so it is whole once its start is there).
std::string report_line(Echo &echo, int n)
{
	REQUIRE(kill(echo.child->pid(), SIGUSR1) == 0);
	std::string tag = "connections report=" + std::to_string(n) + " ";
	const std::string &out = echo.child->read_until(tag.c_str(), 10000);
	size_t at = out.find(tag);
	INFO("frameecho's stdout: " << out);
	REQUIRE(at != std::string::npos);
	size_t nl = out.find('\n', at);
	REQUIRE(nl != std::string::npos);
	return out.substr(at, nl - at);
}

// The number after " key=" in a report line.
long report_field(const std::string &line, const std::string &key)
{
	std::string needle = " " + key + "=";
	size_t at = line.find(needle);
	if (at == std::string::npos)
		FAIL("no " << key << " in: " << line);
	return std::strtol(line.c_str() + at + needle.size(), nullptr, 10);
}

// One request and its echo on fd.
void round_trip(int fd, uint64_t i)
{
	write_all(fd, framed_requests(i, 1));
	CHECK(read_frame(fd) == numbered_request(i));
}

} // namespace

TEST_CASE("framebench against frameecho verifies every frame", "[e2e]")
{
	for (const auto &poller : usable_pollers()) {
		Echo echo;
		REQUIRE(start_echo(echo, {"--poller", poller}));
		CAPTURE(poller);
		{  // closed loop, mixed sizes
			auto r = run_bench(echo.port, {"-c", "4", "-d", "8", "--size",
						       "0-5000", "--duration", "1s",
						       "--poller", poller});
			INFO(r.out);
			CHECK(r.exit_code == 0);
			CHECK(json_number(r.out, "frames") > 0);
			CHECK(json_number(r.out, "mismatches") == 0);
			CHECK(json_number(r.out, "lost") == 0);
			CHECK(json_number(r.out, "errors") == 0);
			CHECK(json_number(r.out, "connections") == 4);
			CHECK(json_number(r.out, "p50_us") > 0);
			CHECK(json_number(r.out, "p99_us") >= json_number(r.out, "p50_us"));
		}
		{  // frame count, large frames
			auto r = run_bench(echo.port, {"-c", "2", "-d", "2", "--size",
						       "1M-3M", "--frames", "12",
						       "--poller", poller});
			INFO(r.out);
			CHECK(r.exit_code == 0);
			CHECK(json_number(r.out, "frames") == 12);
			CHECK(json_number(r.out, "mismatches") == 0);
		}
		{  // open loop, small frames
			auto r = run_bench(echo.port, {"-c", "3", "--rate", "3000",
						       "--size", "0-15", "--duration",
						       "1s", "--poller", poller});
			INFO(r.out);
			CHECK(r.exit_code == 0);
			// About 3000 scheduled; allow for a slow CI machine.
			CHECK(json_number(r.out, "frames") > 1000);
			CHECK(json_number(r.out, "frames") <= 3001);
			CHECK(json_number(r.out, "mismatches") == 0);
		}
	}
}

TEST_CASE("framebench reports lost frames when frameecho closes early", "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--close-after", "5"}));
	// Eight in flight from the start, so frames 6..8 are surely sent.
	auto r = run_bench(echo.port, {"-c", "1", "-d", "8", "--frames", "100",
				       "--grace", "2s"});
	INFO(r.out);
	CHECK(r.exit_code == 1);  // a lost frame fails the run, by itself
	CHECK(json_number(r.out, "frames") == 5);
	CHECK(json_number(r.out, "lost") >= 3);
	CHECK(json_number(r.out, "errors") >= 1);
	CHECK(json_number(r.out, "mismatches") == 0);
}

TEST_CASE("framebench fails on connect failure", "[e2e]")
{
	// A port that nothing listens on: bound, never listening.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	Fd guard{fd};
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	socklen_t len = sizeof(sin);
	REQUIRE(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	auto r = run_bench(ntohs(sin.sin_port), {"-c", "2", "--frames", "10"});
	INFO(r.out);
	CHECK(r.exit_code == 1);
	CHECK(json_number(r.out, "connect_failures") == 2);
}

TEST_CASE("frameecho closes a connection that announces an oversized frame",
	  "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--max-frame", "1000"}));
	auto r = run_bench(echo.port, {"--size", "2000", "--frames", "3",
				       "--grace", "2s"});
	INFO(r.out);
	CHECK(r.exit_code == 1);
	CHECK(json_number(r.out, "lost") >= 1);
	// It still serves frames within the limit.
	r = run_bench(echo.port, {"--size", "1000", "--frames", "50"});
	CHECK(r.exit_code == 0);
	CHECK(json_number(r.out, "frames") == 50);
}

TEST_CASE("frameecho delays replies", "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--delay", "100ms"}));
	auto r = run_bench(echo.port, {"-c", "2", "-d", "4", "--frames", "16"});
	INFO(r.out);
	CHECK(r.exit_code == 0);
	CHECK(json_number(r.out, "p50_us") >= 100000 * 0.99);
	// Pipelined frames are delayed independently, not one after another
	// (in turn, four in flight would make the median 200-300 ms).
	CHECK(json_number(r.out, "p50_us") < 190000);
	CHECK(json_number(r.out, "max_us") < 1000000);
}

TEST_CASE("framebench detects replies that differ from the request", "[e2e]")
{
	// Same length, other bytes: every frame must count as a mismatch.
	Echo echo;
	REQUIRE(start_echo(echo, {"--reply-size", "64"}));
	auto r = run_bench(echo.port, {"--size", "64", "--frames", "20"});
	INFO(r.out);
	CHECK(r.exit_code == 1);
	CHECK(json_number(r.out, "mismatches") == 20);
	CHECK(json_number(r.out, "lost") == 0);
	// Another length: the stream cannot be trusted after the first one.
	r = run_bench(echo.port, {"--size", "100", "--frames", "20"});
	CHECK(r.exit_code == 1);
	CHECK(json_number(r.out, "mismatches") == 1);
}

TEST_CASE("framebench --reply-size verifies frameecho --reply-size answers",
	  "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--reply-size", "3000"}));
	auto r = run_bench(echo.port, {"-c", "2", "-d", "4", "--size", "0-20000",
				       "--reply-size", "3000", "--frames", "400"});
	INFO(r.out);
	CHECK(r.exit_code == 0);
	CHECK(json_number(r.out, "frames") == 400);
	CHECK(json_number(r.out, "mismatches") == 0);
	CHECK(json_number(r.out, "bytes") == 400 * 3004);
}

TEST_CASE("frameecho reply-size and half-close", "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--reply-size", "300"}));
	Fd s{connect_to(echo.port)};
	const char *requests[] = {"first", "", "a longer third request"};
	for (const char *q : requests) {
		uint8_t prefix[4];
		frame_write_length(prefix, (uint32_t)std::strlen(q));
		REQUIRE(write(s.fd, prefix, 4) == 4);
		REQUIRE(write(s.fd, q, std::strlen(q)) == (ssize_t)std::strlen(q));
	}
	REQUIRE(shutdown(s.fd, SHUT_WR) == 0);
	for (const char *q : requests) {
		uint8_t frame[304], want[300];
		REQUIRE(read_full(s.fd, frame, sizeof(frame)));
		CHECK(frame_read_length(frame) == 300);
		uint64_t d = payload_fnv1a(PAYLOAD_FNV_INIT, (const uint8_t *)q, std::strlen(q));
		payload_reply_fill(want, sizeof(want), d, 0);
		CHECK(std::memcmp(frame + 4, want, sizeof(want)) == 0);
	}
	// Replies finished, then our EOF came back as theirs.
	uint8_t more;
	CHECK(read(s.fd, &more, 1) == 0);
}

TEST_CASE("frameecho stops cleanly on SIGTERM", "[e2e]")
{
	for (int sig : {SIGTERM, SIGINT}) {
		Echo echo;
		REQUIRE(start_echo(echo, {}));
		Fd idle{connect_to(echo.port)};  // an open connection must not hold it
		usleep(50000);
		REQUIRE(kill(echo.child->pid(), sig) == 0);
		CHECK(echo.child->wait_exit(5000) == 0);
	}
}

TEST_CASE("frameecho --reorder answers every request once, byte-identical, out of order",
	  "[e2e]")
{
	for (const auto &poller : usable_pollers()) {
		CAPTURE(poller);
		Echo echo;
		REQUIRE(start_echo(echo, {"--reorder", "20ms", "--seed", "7",
					  "--poller", poller}));
		Fd s{connect_to(echo.port)};
		const uint64_t count = 300;
		write_all(s.fd, framed_requests(0, count));
		// Our half-close comes before most replies are due: they
		// still all come, then frameecho's EOF.
		REQUIRE(shutdown(s.fd, SHUT_WR) == 0);
		std::vector<uint64_t> order = read_numbered_replies(s.fd, count);
		CHECK(inversions(order) > 0);
		CHECK(!std::is_sorted(order.begin(), order.end()));
		uint8_t more;
		CHECK(read(s.fd, &more, 1) == 0);
	}
}

TEST_CASE("frameecho --reorder with --reply-size: every reply matches its request",
	  "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {"--reorder", "10ms", "--reply-size", "100"}));
	Fd s{connect_to(echo.port)};
	const uint64_t count = 100;
	std::unordered_map<uint64_t, uint64_t> by_digest;
	for (uint64_t i = 0; i < count; i++) {
		std::vector<uint8_t> q = numbered_request(i);
		by_digest[payload_fnv1a(PAYLOAD_FNV_INIT, q.data(), q.size())] = i;
	}
	REQUIRE(by_digest.size() == count);
	write_all(s.fd, framed_requests(0, count));
	std::vector<bool> seen(count, false);
	std::vector<uint64_t> order;
	for (uint64_t k = 0; k < count; k++) {
		std::vector<uint8_t> p = read_frame(s.fd);
		REQUIRE(p.size() == 100);
		uint64_t d = 0;
		for (int b = 0; b < 8; b++)
			d = d << 8 | p[(size_t)b];
		auto it = by_digest.find(d);
		REQUIRE(it != by_digest.end());
		CHECK(!seen[it->second]);
		seen[it->second] = true;
		uint8_t want[100];
		payload_reply_fill(want, sizeof(want), d, 0);
		CHECK(std::memcmp(p.data(), want, sizeof(want)) == 0);
		order.push_back(it->second);
	}
	CHECK(inversions(order) > 0);
}

TEST_CASE("frameecho --reorder-held bounds the replies held per connection",
	  "[e2e]")
{
	// Every reply is held 100 ms or a little more; with two held at most,
	// six pipelined requests are read and answered in three waves, so the
	// last reply cannot come before 300 ms.
	Echo echo;
	REQUIRE(start_echo(echo, {"--delay", "100ms", "--reorder", "1ms",
				  "--reorder-held", "2"}));
	Fd s{connect_to(echo.port)};
	int64_t t0 = now_ms();
	write_all(s.fd, framed_requests(0, 6));
	std::vector<uint64_t> order = read_numbered_replies(s.fd, 6);
	int64_t took = now_ms() - t0;
	CHECK(order.size() == 6);
	CHECK(took >= 295);
	CHECK(took < 5000);
	// Stopped while it holds two replies and leaves requests unread: it
	// exits at once and cleanly (under ASan: with nothing leaked).
	report_line(echo, 1);  // "active" counts from here
	write_all(s.fd, framed_requests(6, 5));
	int64_t deadline = now_ms() + 10000;
	for (int n = 2; report_field(report_line(echo, n), "active") == 0; n++) {
		REQUIRE(now_ms() < deadline);  // it takes a request at some point
		usleep(5000);  // between polls of the condition
	}
	REQUIRE(kill(echo.child->pid(), SIGTERM) == 0);
	CHECK(echo.child->wait_exit(5000) == 0);
}

TEST_CASE("frameecho --reorder-held and --reorder reject bad values", "[e2e]")
{
	for (std::vector<std::string> bad : {
		     std::vector<std::string>{"--reorder-held", "0"},
		     std::vector<std::string>{"--reorder", "soon"},
		     std::vector<std::string>{"--seed", "-1"}}) {
		CAPTURE(bad[0], bad[1]);
		std::vector<std::string> argv = {exe("FRAMEECHO"), "--listen",
						 "127.0.0.1:0"};
		argv.insert(argv.end(), bad.begin(), bad.end());
		Proc p(argv);
		p.read_until(nullptr, 5000);
		CHECK(p.wait_exit(5000) == 2);
		CHECK(p.err.find("bad value") != std::string::npos);
	}
}

TEST_CASE("frameecho reports accepted, open and active connections on SIGUSR1",
	  "[e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo, {}));
	// idle connects first: accepted before a and b, whose echoes prove
	// they were.
	std::unique_ptr<Fd> idle(new Fd{connect_to(echo.port)});
	std::unique_ptr<Fd> a(new Fd{connect_to(echo.port)});
	Fd b{connect_to(echo.port)};
	round_trip(a->fd, 1);
	round_trip(b.fd, 2);
	round_trip(b.fd, 3);
	std::string line = report_line(echo, 1);
	INFO(line);
	CHECK(report_field(line, "accepted") == 3);
	CHECK(report_field(line, "open") == 3);
	CHECK(report_field(line, "active") == 2);

	// Two close; "open" follows once frameecho has seen them go. Nobody
	// sends anything meanwhile: "active" stays 0 in every round.
	idle.reset();
	a.reset();
	int n = 2;
	int64_t deadline = now_ms() + 10000;
	for (;; n++) {
		line = report_line(echo, n);
		CHECK(report_field(line, "accepted") == 3);
		CHECK(report_field(line, "active") == 0);
		if (report_field(line, "open") == 1)
			break;
		REQUIRE(now_ms() < deadline);
		usleep(10000);  // between polls of the condition, not a wait for it
	}
	round_trip(b.fd, 4);
	line = report_line(echo, ++n);
	CHECK(report_field(line, "accepted") == 3);
	CHECK(report_field(line, "open") == 1);
	CHECK(report_field(line, "active") == 1);

	Fd c{connect_to(echo.port)};
	round_trip(c.fd, 5);
	line = report_line(echo, ++n);
	CHECK(report_field(line, "accepted") == 4);
	CHECK(report_field(line, "open") == 2);
	CHECK(report_field(line, "active") == 1);
	// Still serving, and still stopping on SIGTERM.
	round_trip(b.fd, 6);
	REQUIRE(kill(echo.child->pid(), SIGTERM) == 0);
	CHECK(echo.child->wait_exit(5000) == 0);
}
