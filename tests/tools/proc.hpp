// A child process for the tools' end-to-end tests: argv[0] is a path, its
// stdin, stdout and stderr are pipes, and it is killed when dropped. Then
// what several of those tests use: a frameecho, a framebench --json run, a
// loopback connection.
#pragma once

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cstdint>
#include <cstdlib>
#include <fcntl.h>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vector>

namespace tooltest {

inline int64_t now_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

inline std::string exe(const char *var)
{
	const char *path = std::getenv(var);
	if (!path || !*path)
		FAIL(std::string("set $") + var + " to the executable (meson test does)");
	return path;
}

// A child with stdin, stdout and stderr on pipes.
class Proc {
public:
	explicit Proc(const std::vector<std::string> &argv)
	{
		int in[2], out[2], err[2];
		REQUIRE(pipe2(in, O_CLOEXEC) == 0);
		REQUIRE(pipe2(out, O_CLOEXEC) == 0);
		REQUIRE(pipe2(err, O_CLOEXEC) == 0);
		pid_ = fork();
		REQUIRE(pid_ >= 0);
		if (pid_ == 0) {
			dup2(in[0], STDIN_FILENO);
			dup2(out[1], STDOUT_FILENO);
			dup2(err[1], STDERR_FILENO);
			std::vector<char *> args;
			for (const auto &a : argv)
				args.push_back(const_cast<char *>(a.c_str()));
			args.push_back(nullptr);
			execv(args[0], args.data());
			_exit(127);
		}
		close(in[0]);
		close(out[1]);
		close(err[1]);
		in_ = in[1];
		out_ = out[0];
		err_ = err[0];
	}
	~Proc()
	{
		close_stdin();
		for (int fd : {out_, err_})
			if (fd >= 0)
				close(fd);
		if (pid_ > 0) {
			kill(pid_, SIGKILL);
			waitpid(pid_, nullptr, 0);
		}
	}
	Proc(const Proc &) = delete;
	Proc &operator=(const Proc &) = delete;

	void close_stdin()
	{
		if (in_ >= 0)
			close(in_);
		in_ = -1;
	}

	// Read stdout and stderr until `stop` is in stdout, both reach EOF,
	// or the deadline passes.
	const std::string &read_until(const char *stop, int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (out_ >= 0 || err_ >= 0) {
			if (stop && out.find(stop) != std::string::npos)
				break;
			int64_t left = deadline - now_ms();
			if (left <= 0)
				break;
			struct pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
			if (poll(p, 2, (int)left) <= 0)
				continue;
			drain(p[0], out_, out);
			drain(p[1], err_, err);
		}
		return out;
	}

	// The same, waiting for `stop` in stderr (frameproxy logs there).
	const std::string &read_err_until(const char *stop, int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (out_ >= 0 || err_ >= 0) {
			if (err.find(stop) != std::string::npos)
				break;
			int64_t left = deadline - now_ms();
			if (left <= 0)
				break;
			struct pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
			if (poll(p, 2, (int)left) <= 0)
				continue;
			drain(p[0], out_, out);
			drain(p[1], err_, err);
		}
		return err;
	}

	// Wait for exit (bounded): the exit code, or -1 on timeout or signal.
	int wait_exit(int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (pid_ > 0) {
			int status;
			if (waitpid(pid_, &status, WNOHANG) == pid_) {
				pid_ = -1;
				return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			}
			if (now_ms() > deadline)
				return -1;
			usleep(10000);
		}
		return -1;
	}

	pid_t pid() const { return pid_; }

	std::string out, err;

private:
	static void drain(const struct pollfd &p, int &fd, std::string &text)
	{
		if (fd < 0 || !p.revents)
			return;
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0) {
			close(fd);
			fd = -1;
			return;
		}
		text.append(buf, (size_t)n);
	}

	pid_t pid_ = -1;
	int in_ = -1, out_ = -1, err_ = -1;
};

// A frameecho ($FRAMEECHO) on 127.0.0.1:0 and the port it reported.
struct Echo {
	std::unique_ptr<Proc> child;
	int port = 0;
};

// false when it did not report a port (e.g. --poller uring without io_uring).
inline bool start_echo(Echo &echo, std::vector<std::string> extra = {})
{
	std::vector<std::string> argv = {exe("FRAMEECHO"), "--listen",
					 "127.0.0.1:0", "--quiet"};
	argv.insert(argv.end(), extra.begin(), extra.end());
	echo.child.reset(new Proc(argv));
	std::string line = echo.child->read_until("\n", 10000);
	const std::string prefix = "listening on 127.0.0.1:";
	if (line.compare(0, prefix.size(), prefix) != 0)
		return false;
	echo.port = std::atoi(line.c_str() + prefix.size());
	return echo.port > 0;
}

// n bytes from fd; false on EOF or error first.
inline bool read_full(int fd, uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, buf, n);
		if (r <= 0)
			return false;
		buf += r;
		n -= (size_t)r;
	}
	return true;
}

// framebench --json against 127.0.0.1:port: its exit code and stdout.
struct BenchResult {
	int exit_code;
	std::string out;
};

inline BenchResult run_bench(int port, std::vector<std::string> extra)
{
	std::vector<std::string> argv = {exe("FRAMEBENCH"), "--target",
					 "127.0.0.1:" + std::to_string(port),
					 "--json"};
	argv.insert(argv.end(), extra.begin(), extra.end());
	Proc bench(argv);
	std::string out = bench.read_until(nullptr, 60000);
	int code = bench.wait_exit(10000);
	INFO("framebench said: " << out);
	return {code, out};
}

// The number after "key": in framebench's one-line JSON object.
inline double json_number(const std::string &json, const std::string &key)
{
	std::string needle = "\"" + key + "\":";
	size_t at = json.find(needle);
	if (at == std::string::npos)
		FAIL("no key " << key << " in: " << json);
	return std::strtod(json.c_str() + at + needle.size(), nullptr);
}

// Whether frameecho starts with --poller uring (io_uring may be disabled).
inline bool uring_usable()
{
	Echo probe;
	return start_echo(probe, {"--poller", "uring"});
}

// The --poller values a test runs on: epoll, and uring where it works here.
inline std::vector<std::string> usable_pollers()
{
	std::vector<std::string> pollers = {"epoll"};
	if (uring_usable())
		pollers.push_back("uring");
	else
		WARN("io_uring is not usable here: uring cases skipped");
	return pollers;
}

// A blocking connection to 127.0.0.1:port that gives up reading after 10 s.
inline int connect_to(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {10, 0};  // a hung server fails the test, not CI
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	REQUIRE(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	return fd;
}

// Closes fd when dropped.
struct Fd {
	int fd;
	~Fd() { close(fd); }
};

} // namespace tooltest
