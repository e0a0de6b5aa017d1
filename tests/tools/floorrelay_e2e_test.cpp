// floorrelay end to end on loopback: framebench through it to a frameecho
// (paths from $FLOORRELAY / $FRAMEBENCH / $FRAMEECHO), started with
// fork+exec on port 0; every child is killed by PID when dropped.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "proxy/frame.h"

#include "proc.hpp"

namespace {

using tooltest::Echo;
using tooltest::Fd;
using tooltest::Proc;
using tooltest::connect_to;
using tooltest::exe;
using tooltest::json_number;
using tooltest::read_full;
using tooltest::run_bench;
using tooltest::start_echo;
using tooltest::usable_pollers;

} // namespace

TEST_CASE("floorrelay relays frames intact and passes half-close on",
	  "[e2e][floor]")
{
	for (const auto &poller : usable_pollers()) {
		CAPTURE(poller);
		Echo echo;
		REQUIRE(start_echo(echo, {}));
		Proc relay({exe("FLOORRELAY"), "--listen", "127.0.0.1:0",
			    "--server", "127.0.0.1:" + std::to_string(echo.port),
			    "--poller", poller, "--buffer", "16KiB"});
		std::string line = relay.read_until("\n", 10000);
		const std::string prefix = "listening on 127.0.0.1:";
		REQUIRE(line.compare(0, prefix.size(), prefix) == 0);
		int port = std::atoi(line.c_str() + prefix.size());

		// Frames up to 12x the relay's buffer, 4 in flight per
		// connection; framebench half-closes at the end and waits.
		auto r = run_bench(port, {"-c", "6", "-d", "4", "--size",
					  "0-200K", "--frames", "600"});
		CHECK(r.exit_code == 0);
		CHECK(json_number(r.out, "frames") == 600);
		CHECK(json_number(r.out, "mismatches") == 0);
		CHECK(json_number(r.out, "lost") == 0);

		Fd s{connect_to(port)};
		uint8_t frame[4 + 5];
		frame_write_length(frame, 5);
		std::memcpy(frame + 4, "hello", 5);
		REQUIRE(write(s.fd, frame, sizeof(frame)) == (ssize_t)sizeof(frame));
		REQUIRE(shutdown(s.fd, SHUT_WR) == 0);
		uint8_t back[sizeof(frame)];
		REQUIRE(read_full(s.fd, back, sizeof(back)));
		CHECK(std::memcmp(back, frame, sizeof(frame)) == 0);
		uint8_t more;
		CHECK(read(s.fd, &more, 1) == 0);  // the echo's EOF, passed back

		REQUIRE(kill(relay.pid(), SIGTERM) == 0);
		CHECK(relay.wait_exit(5000) == 0);
	}
}
