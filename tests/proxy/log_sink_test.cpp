// log_sink: the non-blocking stderr sink (proxy/log_sink.c, in
// proxy_relay because it uses sockets).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proxy/log.h"

// stderr as a socket nobody reads: lines that find no room are dropped and
// counted, a line the socket took in part is finished before anything
// else, and the count goes out once there is room. Every line read is
// whole. (The pipe case runs in the fault suite, against frameproxy.)
TEST_CASE("log: a full stderr socket drops whole lines and says how many", "[log]")
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	REQUIRE(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	REQUIRE(saved >= 0);
	REQUIRE(dup2(sv[0], STDERR_FILENO) == STDERR_FILENO);
	REQUIRE(log_use_nonblocking_stderr() == 0);

	const uint64_t before = log_dropped_lines();
	const std::string pad(300, 'x');
	for (int i = 0; i < 2000; i++)
		log_line(LOG_LEVEL_INFO, "filler", "i=%d pad=%s", i, pad.c_str());
	const uint64_t dropped = log_dropped_lines() - before;

	std::string text;
	char buf[65536];
	ssize_t n;
	while ((n = read(sv[1], buf, sizeof(buf))) > 0)
		text.append(buf, (size_t)n);
	log_line(LOG_LEVEL_INFO, "after", "k=v");
	while ((n = read(sv[1], buf, sizeof(buf))) > 0)
		text.append(buf, (size_t)n);

	log_use_blocking_stderr();
	REQUIRE(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	close(sv[0]);
	close(sv[1]);

	CHECK(dropped > 0);
	CHECK(dropped < 2000);
	REQUIRE(!text.empty());
	REQUIRE(text.back() == '\n');
	size_t fillers = 0, start = 0;
	uint64_t reported = 0;
	bool after = false;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		std::string line = text.substr(start, end - start);
		start = end + 1;
		INFO(line);
		CHECK(line.compare(0, 3, "ts=") == 0);
		if (line.find("msg=\"filler\"") != std::string::npos) {
			CHECK(line.find("pad=" + pad) != std::string::npos);
			fillers++;
		} else if (line.find("msg=\"log lines dropped\"") != std::string::npos) {
			size_t at = line.find("dropped=");
			REQUIRE(at != std::string::npos);
			reported = std::strtoull(line.c_str() + at + 8, nullptr, 10);
			CHECK(!after);
		} else if (line.find("msg=\"after\"") != std::string::npos) {
			after = true;
		}
	}
	CHECK(after);
	CHECK(reported == dropped);
	CHECK(fillers + dropped == 2000);
}
