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

namespace {

int64_t ms_now()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

std::string exe_path(const char *var)
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
	void read_until(const char *stop, int timeout_ms)
	{
		int64_t deadline = ms_now() + timeout_ms;
		while (out_ >= 0 || err_ >= 0) {
			if (stop && out.find(stop) != std::string::npos)
				break;
			int64_t left = deadline - ms_now();
			if (left <= 0)
				break;
			struct pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
			if (poll(p, 2, (int)left) <= 0)
				continue;
			drain(p[0], out_, out);
			drain(p[1], err_, err);
		}
	}

	// Wait for exit (bounded): the exit code, or -1 on timeout or signal.
	int wait_exit(int timeout_ms)
	{
		int64_t deadline = ms_now() + timeout_ms;
		while (pid_ > 0) {
			int status;
			if (waitpid(pid_, &status, WNOHANG) == pid_) {
				pid_ = -1;
				return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			}
			if (ms_now() > deadline)
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

int start_frameecho(std::unique_ptr<Proc> &echo)
{
	echo.reset(new Proc({exe_path("FRAMEECHO"), "--listen", "127.0.0.1:0",
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
	Proc idle({exe_path("IDLECONNS"), "--target",
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
	Proc idle({exe_path("IDLECONNS"), "--target",
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

	Proc idle({exe_path("IDLECONNS"), "--target",
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
	Proc idle({exe_path("IDLECONNS"), "--target",
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
