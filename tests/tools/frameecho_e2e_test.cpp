// frameecho + framebench end to end on loopback: the real executables
// (paths from $FRAMEECHO / $FRAMEBENCH), started with fork+exec on port 0.
// Every child is owned by a Proc whose destructor kills it by PID, so a
// failing assertion never leaves a process behind.
#include <catch2/catch.hpp>

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
using tooltest::uring_usable;

} // namespace

TEST_CASE("framebench against frameecho verifies every frame", "[e2e]")
{
	std::vector<std::string> pollers = {"epoll"};
	if (uring_usable())
		pollers.push_back("uring");
	else
		WARN("io_uring is not usable here: uring cases skipped");
	for (const auto &poller : pollers) {
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

// floorrelay (tools/compare's floor): both pollers carry every byte of
// mixed-size frames unchanged, pass a half-close on so replies still in
// flight arrive, and stop on SIGTERM.
