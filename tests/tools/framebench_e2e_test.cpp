// framebench end to end, the newer options and its failure guarantee:
// --size-dist against frameecho, the progress line (into a pipe and onto a
// pseudo-terminal), and exit status 1 when an upstream flips a byte or
// drops a frame (a forked in-test upstream that damages the stream on
// purpose). Everything listens on 127.0.0.1 port 0, and every child is
// killed by PID when its owner goes out of scope, pass or fail.
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
#include <termios.h>
#include <unistd.h>
#include <vector>

#include "proxy/frame.h"
#include "tools/lib/payload.h"
#include "tools/framebench/sizedist.h"

#include "proc.hpp"

namespace {

using tooltest::Echo;
using tooltest::Proc;
using tooltest::exe;
using tooltest::now_ms;
using tooltest::read_full;
using tooltest::start_echo;

struct Run {
	int code;
	std::string out, err;
};

// framebench against 127.0.0.1:port, stdout and stderr on pipes; bounded.
Run bench(int port, std::vector<std::string> extra)
{
	std::vector<std::string> argv = {exe("FRAMEBENCH"), "--target",
					 "127.0.0.1:" + std::to_string(port)};
	argv.insert(argv.end(), extra.begin(), extra.end());
	Proc p(argv);
	p.read_until(nullptr, 60000);
	int code = p.wait_exit(10000);
	return {code, p.out, p.err};
}

double json_number(const std::string &json, const std::string &key)
{
	std::string needle = "\"" + key + "\": ";
	size_t at = json.find(needle);
	if (at == std::string::npos)
		FAIL("no key " << key << " in: " << json);
	return std::strtod(json.c_str() + at + needle.size(), nullptr);
}

std::string json_string(const std::string &json, const std::string &key)
{
	std::string needle = "\"" + key + "\": \"";
	size_t at = json.find(needle);
	if (at == std::string::npos)
		FAIL("no string key " << key << " in: " << json);
	at += needle.size();
	return json.substr(at, json.find('"', at) - at);
}

size_t count(const std::string &text, const std::string &what)
{
	size_t n = 0;
	for (size_t at = text.find(what); at != std::string::npos;
	     at = text.find(what, at + what.size()))
		n++;
	return n;
}

// --- an upstream that damages frame `target` ---------------------------------

enum class Fault { flip, drop };

bool write_full(int fd, const uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, n);
		if (w <= 0)
			return false;
		buf += w;
		n -= (size_t)w;
	}
	return true;
}

// Echo one connection; frame `target` (0-based) comes back with payload
// byte `at` flipped, or not at all.
void bad_echo_serve(int conn, Fault fault, uint64_t target, uint32_t at)
{
	std::vector<uint8_t> frame;
	for (uint64_t seq = 0;; seq++) {
		uint8_t prefix[4];
		if (!read_full(conn, prefix, 4))
			return;
		uint32_t len = frame_read_length(prefix);
		frame.assign(prefix, prefix + 4);
		frame.resize(4 + (size_t)len);
		if (!read_full(conn, frame.data() + 4, len))
			return;
		if (seq == target && fault == Fault::drop)
			continue;
		if (seq == target && at < len)
			frame[4 + at] ^= 0x01;
		if (!write_full(conn, frame.data(), frame.size()))
			return;
	}
}

// The upstream runs in a forked child (the test process stays single
// threaded); it serves one connection, then exits.
class BadEcho {
public:
	BadEcho(Fault fault, uint64_t target, uint32_t at = 20)
	{
		int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(lfd >= 0);
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		socklen_t len = sizeof(sin);
		REQUIRE(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		REQUIRE(listen(lfd, 4) == 0);
		REQUIRE(getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
		port = ntohs(sin.sin_port);
		pid_ = fork();
		REQUIRE(pid_ >= 0);
		if (pid_ == 0) {
			alarm(60);  // never outlive a hung test
			int conn = accept(lfd, nullptr, nullptr);
			if (conn >= 0)
				bad_echo_serve(conn, fault, target, at);
			_exit(0);
		}
		close(lfd);
	}
	~BadEcho()
	{
		kill(pid_, SIGKILL);
		waitpid(pid_, nullptr, 0);
	}
	BadEcho(const BadEcho &) = delete;
	BadEcho &operator=(const BadEcho &) = delete;

	int port = 0;

private:
	pid_t pid_ = -1;
};

// --- framebench with stderr on a pseudo-terminal -----------------------------

struct TtyRun {
	int code;
	std::string out, tty;
};

// Runs framebench with stderr on a pty (output post-processing off, so
// "\n" stays "\n") and stdout on a pipe; killed by PID if it overstays.
TtyRun bench_on_tty(int port, std::vector<std::string> extra)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	REQUIRE(master >= 0);
	REQUIRE(grantpt(master) == 0);
	REQUIRE(unlockpt(master) == 0);
	int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	REQUIRE(slave >= 0);
	struct termios t;
	REQUIRE(tcgetattr(slave, &t) == 0);
	t.c_oflag &= ~(tcflag_t)OPOST;
	REQUIRE(tcsetattr(slave, TCSANOW, &t) == 0);
	int out[2];
	REQUIRE(pipe2(out, O_CLOEXEC) == 0);
	std::vector<std::string> argv = {exe("FRAMEBENCH"), "--target",
					 "127.0.0.1:" + std::to_string(port)};
	argv.insert(argv.end(), extra.begin(), extra.end());
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(slave, STDERR_FILENO);
		std::vector<char *> args;
		for (const auto &a : argv)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		execv(args[0], args.data());
		_exit(127);
	}
	close(slave);
	close(out[1]);
	TtyRun r{-1, "", ""};
	int fds[2] = {out[0], master};
	std::string *texts[2] = {&r.out, &r.tty};
	int64_t deadline = now_ms() + 30000;
	// The pty master reads EIO once the child (the last slave holder) is
	// gone, the pipe reads EOF: either way that side is finished.
	while ((fds[0] >= 0 || fds[1] >= 0) && now_ms() < deadline) {
		struct pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (fds[i] < 0 || !p[i].revents)
				continue;
			char buf[4096];
			ssize_t n = read(fds[i], buf, sizeof(buf));
			if (n > 0) {
				texts[i]->append(buf, (size_t)n);
			} else {
				close(fds[i]);
				fds[i] = -1;
			}
		}
	}
	for (int fd : fds)
		if (fd >= 0)
			close(fd);
	kill(pid, SIGKILL);  // a no-op when it already exited
	int status;
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		r.code = WEXITSTATUS(status);
	return r;
}

} // namespace

TEST_CASE("framebench --size-dist sends the distribution, intact",
	  "[e2e][sizedist]")
{
	Echo echo;
	REQUIRE(start_echo(echo));
	const std::string spec = "64:90,1KiB-4KiB:9,64KiB:1";
	auto r = bench(echo.port, {"--json", "-c", "3", "-d", "4", "--frames",
				   "3000", "--seed", "9", "--size-dist", spec});
	INFO(r.out << r.err);
	REQUIRE(r.code == 0);
	CHECK(json_number(r.out, "frames") == 3000);
	CHECK(json_number(r.out, "mismatches") == 0);
	CHECK(json_number(r.out, "lost") == 0);
	CHECK(json_number(r.out, "errors") == 0);
	CHECK(json_string(r.out, "size") == "dist 64:90,1024-4096:9,65536:1");
	// The same draws, made here: 1000 frames on each of 3 connections.
	sizedist d;
	char why[128];
	REQUIRE(sizedist_parse(spec.c_str(), &d, why, sizeof(why)) == 0);
	uint64_t payload = 0;
	for (uint32_t conn = 0; conn < 3; conn++)
		for (uint64_t seq = 0; seq < 1000; seq++)
			payload += sizedist_pick(&d, 9, conn, seq);
	CHECK(json_number(r.out, "mean_payload_bytes") ==
	      Approx((double)payload / 3000).margin(0.06));
	CHECK(json_number(r.out, "bytes") == (double)(payload + 3000 * 4));

	// The text summary says so too.
	r = bench(echo.port, {"--frames", "200", "--size-dist", "100:1,200:1"});
	CHECK(r.code == 0);
	CHECK(r.out.find("size dist 100:1,200:1 (mean 1") != std::string::npos);
}

TEST_CASE("framebench --size-dist usage errors", "[e2e][sizedist]")
{
	// Nothing is contacted: these fail before connecting.
	auto r = bench(9, {"--size", "64", "--size-dist", "64:1"});
	CHECK(r.code == 2);
	CHECK(r.err.find("--size and --size-dist cannot be used together") !=
	      std::string::npos);
	r = bench(9, {"--size-dist", "64:90,1KiB:0"});
	CHECK(r.code == 2);
	CHECK(r.err.find("entry 2 '1KiB:0': weight must be a positive integer") !=
	      std::string::npos);
	r = bench(9, {"--size-dist", "64:1,32MiB:1"});
	CHECK(r.code == 2);
	CHECK(r.err.find("entry 2 '32MiB:1'") != std::string::npos);
}

TEST_CASE("framebench --progress prints a line a second into a pipe",
	  "[e2e][progress]")
{
	Echo echo;
	REQUIRE(start_echo(echo));
	auto r = bench(echo.port, {"--json", "--progress", "--duration", "2.5s"});
	INFO(r.out << r.err);
	CHECK(r.code == 0);
	CHECK(count(r.err, " frames/s ") >= 2);
	CHECK(count(r.err, "\n") == count(r.err, " frames/s "));
	CHECK(r.err.find('\r') == std::string::npos);
	CHECK(r.err.compare(0, 1, "[") == 0);
	CHECK(r.err.find("p99 ") != std::string::npos);
	CHECK(r.err.find(" 0 errors\n") != std::string::npos);
	// stdout is still the one JSON object.
	CHECK(count(r.out, "\n") == 1);
	CHECK(json_number(r.out, "frames") > 0);

	// Into a pipe it is off unless asked for; --no-progress wins when last.
	for (auto extra : {std::vector<std::string>{},
			   std::vector<std::string>{"--progress", "--no-progress"}}) {
		extra.insert(extra.end(), {"--duration", "1.5s"});
		r = bench(echo.port, extra);
		INFO(r.out << r.err);
		CHECK(r.code == 0);
		CHECK(r.err.empty());
	}
}

TEST_CASE("framebench redraws progress in place on a terminal",
	  "[e2e][progress]")
{
	Echo echo;
	REQUIRE(start_echo(echo));
	auto r = bench_on_tty(echo.port, {"--duration", "2.5s"});
	INFO(r.out << "tty: " << r.tty);
	CHECK(r.code == 0);
	CHECK(count(r.tty, "\r[") >= 2);
	CHECK(count(r.tty, " frames/s ") == count(r.tty, "\r["));
	CHECK(r.tty.find('\n') == std::string::npos);
	// Cleared before the summary, which goes to stdout.
	CHECK(r.tty.size() >= 4);
	CHECK(r.tty.compare(r.tty.size() - 4, 4, "\r\033[K") == 0);
	CHECK(r.out.find("framebench: ") == 0);
	// Not next to --json, and not with --no-progress.
	for (const char *off : {"--json", "--no-progress"}) {
		r = bench_on_tty(echo.port, {off, "--duration", "1.5s"});
		INFO(off << ": " << r.tty);
		CHECK(r.code == 0);
		CHECK(r.tty.empty());
	}
}

TEST_CASE("framebench exits 1 when the upstream flips a byte",
	  "[e2e][fault]")
{
	BadEcho up(Fault::flip, 10, 20);
	auto r = bench(up.port, {"--json", "-d", "4", "--size", "64", "--frames",
				 "50"});
	INFO(r.out << r.err);
	CHECK(r.code == 1);
	CHECK(json_number(r.out, "frames") == 50);
	CHECK(json_number(r.out, "mismatches") == 1);
	CHECK(json_number(r.out, "lost") == 0);
	CHECK(r.err.find("frame 10 (64 bytes) differs from what was sent at "
			 "payload offset 20") != std::string::npos);
}

TEST_CASE("framebench exits 1 when the upstream drops a frame",
	  "[e2e][fault]")
{
	SECTION("one in flight: the reply never comes")
	{
		BadEcho up(Fault::drop, 10);
		auto r = bench(up.port, {"--json", "--frames", "50", "--grace",
					 "500ms"});
		INFO(r.out << r.err);
		CHECK(r.code == 1);
		CHECK(json_number(r.out, "frames") == 10);
		CHECK(json_number(r.out, "lost") == 1);
		CHECK(json_number(r.out, "errors") == 1);
		CHECK(r.err.find("no reply within --grace") != std::string::npos);
	}
	SECTION("pipelined: the next reply arrives in its place")
	{
		BadEcho up(Fault::drop, 10);
		auto r = bench(up.port, {"--json", "-d", "8", "--size-dist",
					 "64:1,100-200:1", "--frames", "50",
					 "--grace", "500ms"});
		INFO(r.out << r.err);
		CHECK(r.code == 1);
		CHECK(json_number(r.out, "mismatches") >= 1);
		CHECK(json_number(r.out, "mismatches") + json_number(r.out, "lost") >= 2);
	}
}
