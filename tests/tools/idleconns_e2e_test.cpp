// idleconns end to end on loopback: the real executables (paths from
// $IDLECONNS / $FRAMEECHO), started with fork+exec. idleconns gets a pipe on
// stdin (closing it is how it is told to stop) and one on stdout (for the
// `ready N` line); every child is killed by PID in its destructor, so a
// failing assertion never leaves a process behind.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
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

#include "proc.hpp"

namespace {

using tooltest::Proc;
using tooltest::exe;
using tooltest::now_ms;

int start_frameecho(std::unique_ptr<Proc> &echo)
{
	echo.reset(new Proc({exe("FRAMEECHO"), "--listen", "127.0.0.1:0",
			     "--quiet"}));
	echo->read_until("\n", 10000);
	const std::string prefix = "listening on 127.0.0.1:";
	if (echo->out.compare(0, prefix.size(), prefix) != 0)
		return 0;
	return std::atoi(echo->out.c_str() + prefix.size());
}

} // namespace

TEST_CASE("idleconns holds 200 echoed connections until stdin closes",
	  "[idleconns]")
{
	std::unique_ptr<Proc> echo;
	int port = start_frameecho(echo);
	REQUIRE(port > 0);
	Proc idle({exe("IDLECONNS"), "--target",
		   "127.0.0.1:" + std::to_string(port), "-n", "200", "--batch",
		   "64"});
	idle.read_until("ready 200\n", 30000);
	INFO("stdout: " << idle.out << "\nstderr: " << idle.err);
	REQUIRE(idle.out == "ready 200\n");
	// Still holding: it must not exit while stdin stays open.
	usleep(200000);
	CHECK(idle.wait_exit(0) == -1);
	CHECK(idle.pid() > 0);
	idle.close_stdin();
	CHECK(idle.wait_exit(10000) == 0);
	idle.read_until(nullptr, 2000);
	CHECK(idle.err.empty());
}

TEST_CASE("idleconns stops cleanly on SIGTERM", "[idleconns]")
{
	std::unique_ptr<Proc> echo;
	int port = start_frameecho(echo);
	REQUIRE(port > 0);
	Proc idle({exe("IDLECONNS"), "--target",
		   "127.0.0.1:" + std::to_string(port), "-n", "20"});
	idle.read_until("ready 20\n", 30000);
	REQUIRE(idle.out == "ready 20\n");
	REQUIRE(kill(idle.pid(), SIGTERM) == 0);
	CHECK(idle.wait_exit(10000) == 0);
}

TEST_CASE("idleconns fails with one error line when nothing listens",
	  "[idleconns]")
{
	// A port that nothing listens on: bound, never listening.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	socklen_t len = sizeof(sin);
	REQUIRE(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	int port = ntohs(sin.sin_port);

	Proc idle({exe("IDLECONNS"), "--target",
		   "127.0.0.1:" + std::to_string(port), "-n", "5"});
	idle.read_until(nullptr, 10000);
	int code = idle.wait_exit(10000);
	close(fd);
	INFO("stdout: " << idle.out << "\nstderr: " << idle.err);
	CHECK(code == 1);
	CHECK(idle.out.find("ready") == std::string::npos);
	// Exactly one line, naming the connection and the reason.
	REQUIRE(!idle.err.empty());
	CHECK(idle.err.find('\n') == idle.err.size() - 1);
	CHECK(idle.err.find("connection 0") != std::string::npos);
	CHECK(idle.err.find("refused") != std::string::npos);
}

TEST_CASE("idleconns reports a connection the peer closes while idle",
	  "[idleconns]")
{
	std::unique_ptr<Proc> echo;
	int port = start_frameecho(echo);
	REQUIRE(port > 0);
	Proc idle({exe("IDLECONNS"), "--target",
		   "127.0.0.1:" + std::to_string(port), "-n", "3"});
	idle.read_until("ready 3\n", 30000);
	REQUIRE(idle.out == "ready 3\n");
	echo.reset();  // SIGKILL: the kernel closes its connections
	idle.read_until("while idle", 10000);
	idle.close_stdin();
	int code = idle.wait_exit(10000);
	INFO("stderr: " << idle.err);
	CHECK(code == 1);
	CHECK(idle.err.find("closed by the peer while idle") != std::string::npos);
}
