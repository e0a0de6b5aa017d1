// Integration-test harness for frameproxy (issue 4): starts the real
// binaries (paths from $FRAMEPROXY, $FRAMEECHO, $FRAMEBENCH, set by meson)
// on loopback, with ephemeral ports read back from their output.
//
//   Process      fork/exec, stdout/stderr to temp files, SIGKILL + reap in
//                the destructor (so a failing REQUIRE never leaks a child),
//                wait for a line matching a predicate, VmRSS from /proc.
//                (No std::regex: GCC 12 warns inside it under ASan -O2,
//                and the build uses --werror.)
//   Proxy/Echo   frameproxy / frameecho started on 127.0.0.1:0 (or a given
//                port, for frameecho).
//   Conn         a blocking-style client with poll() timeouts, optionally
//                bound to a 127.0.0.X source address (all of 127/8 is on lo).
//   TestUpstream an in-test upstream server on a thread: counts accepted
//                connections, records what it receives, can refuse to read
//                (backpressure) or send frames then shutdown(SHUT_WR), echo
//                whole frames back, or trickle them back a byte at a time.
//   RefusingPort a port that refuses connects; BlackHole, one where they hang.
//   LogRecord    logfmt lines of the proxy's stderr, parsed into key=value
//                (log_ms reads a line's ts=).
//
// Every wait is bounded in time; every loop is bounded in count. The poller
// under test comes from $FRAMEPROXY_POLLER (epoll by default).
#ifndef FRAMEPROXY_TESTS_PROXY_HARNESS_HPP
#define FRAMEPROXY_TESTS_PROXY_HARNESS_HPP

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace itest {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

inline long long ms_since(Clock::time_point t0)
{
	return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

// --- environment -------------------------------------------------------------

inline std::string env_or(const char *name, const std::string &fallback)
{
	const char *v = getenv(name);
	return v && *v ? std::string(v) : fallback;
}

inline long env_long(const char *name, long fallback)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return fallback;
	char *end = nullptr;
	long n = strtol(v, &end, 10);
	return end && *end == '\0' ? n : fallback;
}

// The executable named by an env var; fails the test when it is not set.
inline std::string binary(const char *env)
{
	const char *v = getenv(env);
	INFO("environment variable " << env
	     << " must name the executable (meson's test() env sets it)");
	REQUIRE(v != nullptr);
	REQUIRE(access(v, X_OK) == 0);
	return v;
}

// The configuration under test: epoll, uring, or uring-batch (io_uring
// with --uring-write-batching on).
inline std::string poller()
{
	return env_or("FRAMEPROXY_POLLER", "epoll");
}

// --- files -------------------------------------------------------------------

// Set by the listener in integration_harness.cpp when any assertion failed:
// the temp directory is then kept for inspection.
inline std::atomic<bool> &any_failure()
{
	static std::atomic<bool> failed{false};
	return failed;
}

class TempDir {
public:
	TempDir()
	{
		std::string base = env_or("TMPDIR", "/tmp");
		std::vector<char> tmpl(base.begin(), base.end());
		const char suffix[] = "/frameproxy-itest.XXXXXX";
		tmpl.insert(tmpl.end(), suffix, suffix + sizeof(suffix));
		if (!mkdtemp(tmpl.data()))
			throw std::runtime_error("mkdtemp failed");
		path_ = tmpl.data();
	}
	~TempDir()
	{
		if (any_failure() || getenv("FRAMEPROXY_KEEP_TMP")) {
			fprintf(stderr, "integration logs kept in %s\n", path_.c_str());
			return;
		}
		for (const auto &f : files_)
			unlink(f.c_str());
		rmdir(path_.c_str());
	}
	std::string file(const std::string &stem)
	{
		std::lock_guard<std::mutex> lock(mu_);
		std::string p = path_ + "/" + std::to_string(++counter_) + "-" + stem;
		files_.push_back(p);
		return p;
	}
	const std::string &path() const { return path_; }

private:
	std::string path_;
	std::vector<std::string> files_;
	unsigned counter_ = 0;
	std::mutex mu_;
};

inline TempDir &tmp()
{
	static TempDir dir;
	return dir;
}

inline std::string read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

inline void write_file(const std::string &path, const std::string &text)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out << text;
}

inline std::vector<std::string> split_lines(const std::string &text)
{
	std::vector<std::string> lines;
	std::string::size_type at = 0;
	while (at < text.size()) {
		auto nl = text.find('\n', at);
		if (nl == std::string::npos) {
			lines.push_back(text.substr(at)); // possibly a partial line
			break;
		}
		lines.push_back(text.substr(at, nl - at));
		at = nl + 1;
	}
	return lines;
}

// Complete lines only (a line still being written is left out).
inline std::vector<std::string> complete_lines(const std::string &text)
{
	auto lines = split_lines(text);
	if (!text.empty() && text.back() != '\n' && !lines.empty())
		lines.pop_back();
	return lines;
}

inline std::string tail(const std::string &text, size_t max_lines)
{
	auto lines = split_lines(text);
	size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
	std::string out;
	for (size_t i = from; i < lines.size(); i++)
		out += lines[i] + "\n";
	return out;
}

// --- logfmt ------------------------------------------------------------------

// One logfmt line: key=value pairs, values optionally "quoted" with \" and
// \\ escapes.
struct LogRecord {
	std::map<std::string, std::string> kv;
	std::string line;

	bool has(const std::string &k) const { return kv.count(k) != 0; }
	std::string get(const std::string &k) const
	{
		auto it = kv.find(k);
		return it == kv.end() ? std::string() : it->second;
	}
	unsigned long long num(const std::string &k) const
	{
		return strtoull(get(k).c_str(), nullptr, 10);
	}
	bool is(const std::string &k, const std::string &v) const
	{
		auto it = kv.find(k);
		return it != kv.end() && it->second == v;
	}
};

inline LogRecord parse_logfmt(const std::string &line)
{
	LogRecord r;
	r.line = line;
	size_t i = 0, n = line.size();
	while (i < n) {
		while (i < n && line[i] == ' ')
			i++;
		size_t k0 = i;
		while (i < n && line[i] != '=' && line[i] != ' ')
			i++;
		std::string key = line.substr(k0, i - k0);
		std::string value;
		if (i < n && line[i] == '=') {
			i++;
			if (i < n && line[i] == '"') {
				i++;
				while (i < n && line[i] != '"') {
					if (line[i] == '\\' && i + 1 < n)
						i++;
					value += line[i++];
				}
				if (i < n)
					i++; // closing quote
			} else {
				size_t v0 = i;
				while (i < n && line[i] != ' ')
					i++;
				value = line.substr(v0, i - v0);
			}
		}
		if (!key.empty())
			r.kv[key] = value;
	}
	return r;
}

// A record's ts= (2026-11-30T18:22:33.439Z) in milliseconds since the
// epoch; -1 when it has none.
inline long long log_ms(const LogRecord &r)
{
	const std::string ts = r.get("ts");
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int ms = 0;
	if (sscanf(ts.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

inline std::vector<LogRecord> parse_log(const std::string &text)
{
	std::vector<LogRecord> out;
	for (const auto &line : complete_lines(text))
		out.push_back(parse_logfmt(line));
	return out;
}

// --- processes ---------------------------------------------------------------

class Process;

// Live processes, for the failure listener to print their output.
inline std::mutex &registry_mutex()
{
	static std::mutex mu;
	return mu;
}
inline std::set<Process *> &registry()
{
	static std::set<Process *> live;
	return live;
}

inline void close_fds_from(int first)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first, ~0u, 0u) == 0)
		return;
#endif
	for (int fd = first; fd < 65536; fd++)
		close(fd);
}

class Process {
public:
	enum Stream { OUT, ERR };

	// err_fd >= 0: the child's stderr is that descriptor (a pipe the test
	// reads, say) instead of a file; err() is then empty.
	Process(const std::vector<std::string> &argv, const std::string &name,
		int err_fd = -1)
		: name_(name), argv_(argv)
	{
		out_path_ = tmp().file(name + ".out");
		err_path_ = tmp().file(name + ".err");
		std::vector<char *> args;
		for (const auto &a : argv_)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		pid_t parent = getpid();
		pid_ = fork();
		if (pid_ < 0)
			throw std::runtime_error("fork failed");
		if (pid_ == 0) {
			// Die with the test process, whatever kills it.
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
			int in = open("/dev/null", O_RDONLY);
			int out = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
			int err = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (in < 0 || out < 0 || err < 0)
				_exit(127);
			dup2(in, 0);
			dup2(out, 1);
			dup2(err_fd >= 0 ? err_fd : err, 2);
			// Never let a child inherit a test socket: closing it in the
			// test must really close it.
			close_fds_from(3);
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, nullptr);
			::signal(SIGPIPE, SIG_DFL);
			execv(args[0], args.data());
			_exit(127);
		}
		std::lock_guard<std::mutex> lock(registry_mutex());
		registry().insert(this);
	}

	~Process()
	{
		{
			std::lock_guard<std::mutex> lock(registry_mutex());
			registry().erase(this);
		}
		if (!exited_) {
			kill(pid_, SIGKILL);
			int status;
			while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
			}
		}
	}

	Process(const Process &) = delete;
	Process &operator=(const Process &) = delete;

	pid_t pid() const { return pid_; }
	const std::string &name() const { return name_; }
	const std::string &out_path() const { return out_path_; }
	const std::string &err_path() const { return err_path_; }
	std::string out() const { return read_file(out_path_); }
	std::string err() const { return read_file(err_path_); }
	std::string text(Stream s) const { return s == OUT ? out() : err(); }

	std::string command_line() const
	{
		std::string s;
		for (const auto &a : argv_)
			s += (s.empty() ? "" : " ") +
			     (a.find(' ') != std::string::npos ? "'" + a + "'" : a);
		return s;
	}

	// Not yet exited (reaps it when it has).
	bool running()
	{
		if (exited_)
			return false;
		int status;
		pid_t r = waitpid(pid_, &status, WNOHANG);
		if (r == pid_) {
			exited_ = true;
			status_ = status;
			return false;
		}
		return true;
	}

	// Waits up to `timeout` for the exit; true when it exited.
	bool wait_exit(milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		while (running()) {
			if (Clock::now() >= deadline)
				return false;
			std::this_thread::sleep_for(milliseconds(5));
		}
		return true;
	}

	bool exited() const { return exited_; }
	int raw_status() const { return status_; }
	// Exit code, or 128+signal, or -1 while running.
	int exit_code() const
	{
		if (!exited_)
			return -1;
		if (WIFEXITED(status_))
			return WEXITSTATUS(status_);
		if (WIFSIGNALED(status_))
			return 128 + WTERMSIG(status_);
		return -1;
	}

	void signal(int sig)
	{
		if (!exited_)
			kill(pid_, sig);
	}

	// Polls the stream for a complete line for which pred is true (the line
	// goes to *line_out); false on timeout or when the process exits
	// without printing it.
	bool wait_line(Stream s, const std::function<bool(const std::string &)> &pred,
		       milliseconds timeout, std::string *line_out = nullptr)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			bool alive = running();
			for (const auto &line : complete_lines(text(s))) {
				if (pred(line)) {
					if (line_out)
						*line_out = line;
					return true;
				}
			}
			if (!alive || Clock::now() >= deadline)
				return false;
			std::this_thread::sleep_for(milliseconds(10));
		}
	}

	// VmRSS in KiB, or -1.
	long rss_kib() const { return rss_kib_of(pid_); }

	static long rss_kib_of(pid_t pid)
	{
		std::ifstream in("/proc/" + std::to_string(pid) + "/status");
		std::string line;
		while (std::getline(in, line)) {
			if (line.compare(0, 6, "VmRSS:") == 0)
				return strtol(line.c_str() + 6, nullptr, 10);
		}
		return -1;
	}

	// CPU time (user+system) in clock ticks, or -1.
	long cpu_ticks() const { return cpu_ticks_of(pid_); }

	// The same for any process (a shard, say).
	static long cpu_ticks_of(pid_t pid)
	{
		std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
		auto rp = stat.rfind(')');
		if (rp == std::string::npos)
			return -1;
		std::istringstream ss(stat.substr(rp + 2));
		std::string field;
		long utime = -1, stime = -1;
		for (int i = 3; i <= 15 && ss >> field; i++) {
			if (i == 14)
				utime = std::stol(field);
			if (i == 15)
				stime = std::stol(field);
		}
		return utime < 0 || stime < 0 ? -1 : utime + stime;
	}

	// Gone, or a zombie nobody reaped yet (orphans go to init, not to us).
	static bool ended_of(pid_t pid)
	{
		std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
		size_t rp = stat.rfind(')');
		return rp == std::string::npos || rp + 2 >= stat.size() ||
		       stat[rp + 2] == 'Z' || stat[rp + 2] == 'X';
	}

private:
	std::string name_;
	std::vector<std::string> argv_;
	std::string out_path_, err_path_;
	pid_t pid_ = -1;
	bool exited_ = false;
	int status_ = 0;
};

// --- frames ------------------------------------------------------------------

inline std::string be32(uint32_t n)
{
	std::string s(4, '\0');
	s[0] = (char)(n >> 24);
	s[1] = (char)(n >> 16);
	s[2] = (char)(n >> 8);
	s[3] = (char)n;
	return s;
}

inline std::string frame(const std::string &payload)
{
	return be32((uint32_t)payload.size()) + payload;
}

inline std::string random_bytes(size_t n, uint32_t seed)
{
	std::mt19937 rng(seed);
	std::string s(n, '\0');
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(rng() & 0xff);
	return s;
}

// --- sockets -----------------------------------------------------------------

inline sockaddr_in inet_addr_port(const std::string &ip, uint16_t port)
{
	sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1)
		throw std::runtime_error("bad IPv4 address " + ip);
	return sa;
}

inline std::string sockaddr_text(const sockaddr_in &sa)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	return std::string(ip) + ":" + std::to_string(ntohs(sa.sin_port));
}

enum class Io { Ok, Eof, Reset, Timeout, Error, Data };

inline const char *io_name(Io r)
{
	switch (r) {
	case Io::Ok: return "ok";
	case Io::Eof: return "eof";
	case Io::Reset: return "reset";
	case Io::Timeout: return "timeout";
	case Io::Error: return "error";
	case Io::Data: return "data";
	}
	return "?";
}

inline std::ostream &operator<<(std::ostream &os, Io r)
{
	return os << io_name(r);
}

// A client connection; non-blocking underneath, every call bounded by a
// timeout.
class Conn {
public:
	Conn() = default;
	explicit Conn(int fd) : fd_(fd) {}
	~Conn() { close(); }
	Conn(Conn &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
	Conn &operator=(Conn &&o) noexcept
	{
		if (this != &o) {
			close();
			fd_ = o.fd_;
			o.fd_ = -1;
		}
		return *this;
	}
	Conn(const Conn &) = delete;
	Conn &operator=(const Conn &) = delete;

	// Connects to 127.0.0.1:port from `src` (any 127.x address); an
	// invalid Conn (fd -1) when it fails.
	static Conn connect(uint16_t port, const std::string &src = "",
			    milliseconds timeout = milliseconds(3000),
			    const std::string &dst = "127.0.0.1")
	{
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return Conn();
		Conn c(fd);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!src.empty()) {
			sockaddr_in local = inet_addr_port(src, 0);
			if (bind(fd, (sockaddr *)&local, sizeof(local)) < 0)
				return Conn();
		}
		sockaddr_in sa = inet_addr_port(dst, port);
		if (::connect(fd, (sockaddr *)&sa, sizeof(sa)) < 0) {
			if (errno != EINPROGRESS)
				return Conn();
			pollfd p = {fd, POLLOUT, 0};
			if (poll(&p, 1, (int)timeout.count()) != 1)
				return Conn();
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err != 0)
				return Conn();
		}
		return c;
	}

	bool valid() const { return fd_ >= 0; }
	int fd() const { return fd_; }

	std::string local_addr() const
	{
		sockaddr_in sa;
		socklen_t len = sizeof(sa);
		getsockname(fd_, (sockaddr *)&sa, &len);
		return sockaddr_text(sa);
	}

	void close()
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = -1;
	}

	// Close with RST instead of FIN.
	void abort()
	{
		if (fd_ < 0)
			return;
		linger lg = {1, 0};
		setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close();
	}

	void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

	Io send_all(const std::string &data, milliseconds timeout = milliseconds(5000))
	{
		return send_all(data.data(), data.size(), timeout);
	}

	Io send_all(const void *data, size_t n, milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		const char *p = (const char *)data;
		while (n > 0) {
			ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0) {
				p += k;
				n -= (size_t)k;
				continue;
			}
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && errno != EAGAIN)
				return errno == ECONNRESET || errno == EPIPE ? Io::Reset : Io::Error;
			if (!wait(POLLOUT, deadline))
				return Io::Timeout;
		}
		return Io::Ok;
	}

	// One non-blocking send; bytes sent (0 when the socket is full), -1 on
	// error.
	ssize_t try_send(const void *data, size_t n)
	{
		ssize_t k = ::send(fd_, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		return k;
	}

	Io send_frame(const std::string &payload, milliseconds timeout = milliseconds(5000))
	{
		return send_all(frame(payload), timeout);
	}

	Io read_exact(std::string &out, size_t n, milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		out.clear();
		out.reserve(n);
		char buf[65536];
		while (out.size() < n) {
			size_t want = std::min(sizeof(buf), n - out.size());
			ssize_t k = ::recv(fd_, buf, want, MSG_DONTWAIT);
			if (k > 0) {
				out.append(buf, (size_t)k);
				continue;
			}
			if (k == 0)
				return Io::Eof;
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return Io::Reset;
			if (errno != EAGAIN)
				return Io::Error;
			if (!wait(POLLIN, deadline))
				return Io::Timeout;
		}
		return Io::Ok;
	}

	Io read_frame(std::string &payload, milliseconds timeout = milliseconds(5000),
		      uint32_t max = 64u << 20)
	{
		auto deadline = Clock::now() + timeout;
		std::string head;
		Io r = read_exact(head, 4, timeout);
		if (r != Io::Ok)
			return r;
		uint32_t len = (uint32_t)(uint8_t)head[0] << 24 |
			       (uint32_t)(uint8_t)head[1] << 16 |
			       (uint32_t)(uint8_t)head[2] << 8 | (uint8_t)head[3];
		if (len > max)
			return Io::Error;
		auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
		return read_exact(payload, len, std::max(left, milliseconds(0)));
	}

	// Sends a frame and expects the same frame back.
	bool roundtrip(const std::string &payload, milliseconds timeout = milliseconds(5000))
	{
		if (send_frame(payload, timeout) != Io::Ok)
			return false;
		std::string back;
		return read_frame(back, timeout) == Io::Ok && back == payload;
	}

	// Waits for the peer to end the connection: Eof, Reset, Timeout, or
	// Data when bytes arrive first (they are appended to *data).
	Io wait_closed(milliseconds timeout, std::string *data = nullptr)
	{
		auto deadline = Clock::now() + timeout;
		char buf[4096];
		bool got_data = false;
		for (;;) {
			ssize_t k = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
			if (k > 0) {
				got_data = true;
				if (data)
					data->append(buf, (size_t)k);
				continue;
			}
			if (k == 0)
				return got_data ? Io::Data : Io::Eof;
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return got_data ? Io::Data : Io::Reset;
			if (errno != EAGAIN)
				return Io::Error;
			if (!wait(POLLIN, deadline))
				return got_data ? Io::Data : Io::Timeout;
		}
	}

private:
	bool wait(short events, Clock::time_point deadline)
	{
		for (;;) {
			auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
			if (left <= 0)
				return false;
			pollfd p = {fd_, events, 0};
			int r = poll(&p, 1, (int)std::min<long long>(left, 1000));
			if (r > 0)
				return true;
			if (r < 0 && errno != EINTR)
				return false;
		}
	}

	int fd_ = -1;
};

// A port on 127.0.0.1 that refuses connections: bound, never listening, so
// nothing else can take it while the holder lives.
class RefusingPort {
public:
	RefusingPort()
	{
		fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
		if (fd_ < 0 || bind(fd_, (sockaddr *)&sa, sizeof(sa)) < 0)
			throw std::runtime_error("bind for refusing port failed");
		socklen_t len = sizeof(sa);
		getsockname(fd_, (sockaddr *)&sa, &len);
		port_ = ntohs(sa.sin_port);
	}
	~RefusingPort() { ::close(fd_); }
	RefusingPort(const RefusingPort &) = delete;
	RefusingPort &operator=(const RefusingPort &) = delete;
	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

private:
	int fd_ = -1;
	uint16_t port_ = 0;
};

// A port on 127.0.0.1 where connects hang: a listener with backlog 0 whose
// accept queue is already full (one connection from here, never accepted),
// so the kernel drops further SYNs and a connect only ends at its timeout.
class BlackHole {
public:
	BlackHole()
	{
		fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
		if (fd_ < 0 || bind(fd_, (sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(fd_, 0) < 0)
			throw std::runtime_error("black hole: bind/listen failed");
		socklen_t len = sizeof(sa);
		getsockname(fd_, (sockaddr *)&sa, &len);
		port_ = ntohs(sa.sin_port);
		filler_ = Conn::connect(port_);
		if (!filler_.valid())
			throw std::runtime_error("black hole: filling the queue failed");
		// The queue is full now: a probe must not complete.
		Conn probe = Conn::connect(port_, "", milliseconds(200));
		if (probe.valid())
			throw std::runtime_error("black hole: a connect still completes");
	}
	~BlackHole() { ::close(fd_); }
	BlackHole(const BlackHole &) = delete;
	BlackHole &operator=(const BlackHole &) = delete;
	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

private:
	int fd_ = -1;
	uint16_t port_ = 0;
	Conn filler_;
};

// --- the in-test upstream ----------------------------------------------------

class TestUpstream {
public:
	enum class Mode {
		Hold,           // read and record everything; close on EOF
		NoRead,         // accept, never read (backpressure)
		SendThenShutWr, // send `frames`, shutdown(SHUT_WR), then as Hold
		EchoFrames,     // as Hold, and send every whole frame back at once
		Trickle,        // as EchoFrames, but one byte per `trickle` interval
	};
	struct ConnInfo {
		std::string data;   // bytes received
		std::string peer;   // the proxy's address as seen here
		bool eof = false;   // orderly EOF seen
		bool reset = false; // ECONNRESET seen
		size_t trickled = 0; // Trickle: bytes sent back so far
		bool ended() const { return eof || reset; }
	};

	explicit TestUpstream(Mode mode = Mode::Hold,
			      std::vector<std::string> frames = {},
			      milliseconds trickle = milliseconds(1000))
		: mode_(mode), frames_(std::move(frames)), trickle_(trickle)
	{
		listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (mode_ == Mode::NoRead) {
			// Small receive buffer: backpressure reaches the proxy sooner.
			int rcv = 64 * 1024;
			setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
		}
		sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
		if (bind(listen_fd_, (sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(listen_fd_, 1024) < 0)
			throw std::runtime_error("test upstream: bind/listen failed");
		socklen_t len = sizeof(sa);
		getsockname(listen_fd_, (sockaddr *)&sa, &len);
		port_ = ntohs(sa.sin_port);
		if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) < 0)
			throw std::runtime_error("pipe2 failed");
		thread_ = std::thread([this] { run(); });
	}

	~TestUpstream()
	{
		stop_ = true;
		char c = 1;
		(void)!write(wake_[1], &c, 1);
		thread_.join();
		for (auto &c2 : fds_)
			if (c2 >= 0)
				::close(c2);
		::close(listen_fd_);
		::close(wake_[0]);
		::close(wake_[1]);
	}

	TestUpstream(const TestUpstream &) = delete;
	TestUpstream &operator=(const TestUpstream &) = delete;

	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

	size_t accepted()
	{
		std::lock_guard<std::mutex> lock(mu_);
		return conns_.size();
	}

	// Connections accepted and not ended yet.
	size_t open_count()
	{
		std::lock_guard<std::mutex> lock(mu_);
		size_t n = 0;
		for (const auto &c : conns_)
			n += !c.ended();
		return n;
	}

	bool wait_accepted(size_t n, milliseconds timeout)
	{
		std::unique_lock<std::mutex> lock(mu_);
		return cv_.wait_for(lock, timeout, [&] { return conns_.size() >= n; });
	}

	ConnInfo conn(size_t i)
	{
		std::lock_guard<std::mutex> lock(mu_);
		return i < conns_.size() ? conns_[i] : ConnInfo();
	}

	// Every connection accepted so far, in order.
	std::vector<ConnInfo> conns()
	{
		std::lock_guard<std::mutex> lock(mu_);
		return conns_;
	}

	// Waits until every accepted connection has ended (false on timeout).
	bool wait_all_ended(milliseconds timeout)
	{
		std::unique_lock<std::mutex> lock(mu_);
		return cv_.wait_for(lock, timeout, [&] {
			for (const auto &c : conns_)
				if (!c.ended())
					return false;
			return true;
		});
	}

	// Waits until connection i satisfies pred (false on timeout).
	bool wait_conn(size_t i, milliseconds timeout,
		       const std::function<bool(const ConnInfo &)> &pred)
	{
		std::unique_lock<std::mutex> lock(mu_);
		return cv_.wait_for(lock, timeout, [&] {
			return i < conns_.size() && pred(conns_[i]);
		});
	}

	// Closes every accepted connection that is still open (RST-free FIN).
	void close_all()
	{
		std::lock_guard<std::mutex> lock(mu_);
		close_requested_ = true;
		char c = 1;
		(void)!write(wake_[1], &c, 1);
	}

private:
	void run()
	{
		std::vector<char> buf(1 << 16);
		while (!stop_) {
			std::vector<pollfd> pfds;
			pfds.push_back({wake_[0], POLLIN, 0});
			pfds.push_back({listen_fd_, POLLIN, 0});
			std::vector<size_t> index;
			for (size_t i = 0; i < fds_.size(); i++) {
				if (fds_[i] < 0)
					continue;
				short ev = mode_ == Mode::NoRead ? 0 : POLLIN;
				pfds.push_back({fds_[i], ev, 0});
				index.push_back(i);
			}
			if (poll(pfds.data(), pfds.size(), mode_ == Mode::Trickle ? 20 : 100) < 0 &&
			    errno != EINTR)
				break;
			if (pfds[0].revents & POLLIN) {
				char drain[64];
				while (read(wake_[0], drain, sizeof(drain)) > 0) {
				}
			}
			{
				std::lock_guard<std::mutex> lock(mu_);
				if (close_requested_) {
					close_requested_ = false;
					for (size_t i = 0; i < fds_.size(); i++) {
						if (fds_[i] < 0)
							continue;
						::close(fds_[i]);
						fds_[i] = -1;
					}
				}
			}
			if (pfds[1].revents & POLLIN)
				accept_all();
			for (size_t k = 0; k < index.size(); k++) {
				size_t i = index[k];
				if (fds_[i] < 0 || !(pfds[k + 2].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				if (mode_ == Mode::NoRead)
					continue;
				read_some(i, buf);
			}
			if (mode_ == Mode::Trickle)
				trickle_some();
		}
	}

	void accept_all()
	{
		for (int guard = 0; guard < 1024; guard++) {
			sockaddr_in peer;
			socklen_t len = sizeof(peer);
			int fd = accept4(listen_fd_, (sockaddr *)&peer, &len,
					 SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (fd < 0)
				return;
			ConnInfo info;
			info.peer = sockaddr_text(peer);
			if (mode_ == Mode::SendThenShutWr) {
				std::string out;
				for (const auto &f : frames_)
					out += frame(f);
				send_blocking(fd, out);
				::shutdown(fd, SHUT_WR);
			}
			std::lock_guard<std::mutex> lock(mu_);
			fds_.push_back(fd);
			conns_.push_back(info);
			echo_.emplace_back();
			cv_.notify_all();
		}
	}

	static void send_blocking(int fd, const std::string &data)
	{
		size_t at = 0;
		auto deadline = Clock::now() + milliseconds(5000);
		while (at < data.size() && Clock::now() < deadline) {
			ssize_t k = ::send(fd, data.data() + at, data.size() - at,
					   MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0) {
				at += (size_t)k;
				continue;
			}
			if (k < 0 && errno != EAGAIN && errno != EINTR)
				return;
			pollfd p = {fd, POLLOUT, 0};
			poll(&p, 1, 100);
		}
	}

	void read_some(size_t i, std::vector<char> &buf)
	{
		for (int guard = 0; guard < 64; guard++) {
			ssize_t k = ::recv(fds_[i], buf.data(), buf.size(), MSG_DONTWAIT);
			int err = errno;
			if (k > 0) {
				{
					std::lock_guard<std::mutex> lock(mu_);
					conns_[i].data.append(buf.data(), (size_t)k);
					cv_.notify_all();
				}
				if (mode_ == Mode::EchoFrames || mode_ == Mode::Trickle)
					echo_whole_frames(i, buf.data(), (size_t)k);
				continue;
			}
			std::lock_guard<std::mutex> lock(mu_);
			if (k < 0 && (err == EAGAIN || err == EINTR))
				return;
			if (k == 0)
				conns_[i].eof = true;
			else
				conns_[i].reset = true;
			::close(fds_[i]);
			fds_[i] = -1;
			cv_.notify_all();
			return;
		}
	}

	// EchoFrames/Trickle: collect bytes until a frame is whole, then send
	// it back (at once, or queue it for the trickle).
	void echo_whole_frames(size_t i, const char *data, size_t n)
	{
		EchoState &e = echo_[i];
		e.in.append(data, n);
		size_t at = 0;
		for (;;) {
			if (e.in.size() - at < 4)
				break;
			const unsigned char *h = (const unsigned char *)e.in.data() + at;
			size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 |
				     (size_t)h[2] << 8 | h[3];
			if (e.in.size() - at < 4 + len)
				break;
			if (mode_ == Mode::EchoFrames) {
				send_blocking(fds_[i], e.in.substr(at, 4 + len));
			} else {
				if (e.out.empty())
					e.next = Clock::now();
				e.out += e.in.substr(at, 4 + len);
			}
			at += 4 + len;
		}
		e.in.erase(0, at);
	}

	// Trickle: one byte of each pending echo per interval.
	void trickle_some()
	{
		auto now = Clock::now();
		for (size_t i = 0; i < fds_.size(); i++) {
			EchoState &e = echo_[i];
			if (fds_[i] < 0 || e.out.empty() || now < e.next)
				continue;
			ssize_t k = ::send(fds_[i], e.out.data(), 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k == 1) {
				e.out.erase(0, 1);
				e.next = now + trickle_;
				std::lock_guard<std::mutex> lock(mu_);
				conns_[i].trickled++;
				cv_.notify_all();
			} else if (k < 0 && errno != EAGAIN && errno != EINTR) {
				e.out.clear(); // the reader finds out how it ended
			}
		}
	}

	struct EchoState {
		std::string in;  // bytes of a frame not yet whole
		std::string out; // Trickle: still to send
		Clock::time_point next;
	};

	Mode mode_;
	std::vector<std::string> frames_;
	milliseconds trickle_;
	std::vector<EchoState> echo_; // the thread's own, parallel to fds_
	int listen_fd_ = -1;
	int wake_[2] = {-1, -1};
	uint16_t port_ = 0;
	std::thread thread_;
	std::atomic<bool> stop_{false};
	std::mutex mu_;
	std::condition_variable cv_;
	std::vector<ConnInfo> conns_; // guarded by mu_
	std::vector<int> fds_;        // the thread's own (close_all under mu_)
	bool close_requested_ = false;
};

// --- the binaries ------------------------------------------------------------

// How long to wait for a binary to come up (sanitizer builds are slow).
inline milliseconds startup_timeout()
{
	return milliseconds(env_long("FRAMEPROXY_STARTUP_MS", 15000));
}

// frameecho on 127.0.0.1:0.
class Echo {
public:
	// `listen` may name a fixed port (one a test held free until now).
	explicit Echo(std::vector<std::string> extra = {},
		      const std::string &listen = "127.0.0.1:0")
	{
		std::vector<std::string> argv = {binary("FRAMEECHO"), "--listen",
						 listen, "--poller",
						 env_or("FRAMEPROXY_TOOLS_POLLER", "epoll"),
						 "--quiet"};
		argv.insert(argv.end(), extra.begin(), extra.end());
		proc_.reset(new Process(argv, "frameecho"));
		const std::string prefix = "listening on 127.0.0.1:";
		std::string line;
		bool up = proc_->wait_line(Process::OUT, [&](const std::string &l) {
			return l.compare(0, prefix.size(), prefix) == 0;
		}, startup_timeout(), &line);
		INFO("frameecho did not come up: " << proc_->command_line() << "\n"
		     << proc_->err());
		REQUIRE(up);
		port_ = (uint16_t)atoi(line.c_str() + prefix.size());
		REQUIRE(port_ != 0);
	}
	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
	Process &proc() { return *proc_; }

private:
	std::unique_ptr<Process> proc_;
	uint16_t port_ = 0;
};

// frameproxy. Unless args contain -c or --listen, it listens on
// 127.0.0.1:0; --poller comes from FRAMEPROXY_POLLER and --log-level
// defaults to info. The port is read from the "listening" log line.
class Proxy {
public:
	explicit Proxy(std::vector<std::string> args,
		       const std::string &listener = "default")
	{
		std::vector<std::string> argv = {binary("FRAMEPROXY")};
		bool has_listen = false, has_config = false, has_level = false;
		bool has_shards = false;
		for (const auto &a : args) {
			has_listen |= a == "--listen";
			has_config |= a == "-c" || a == "--config";
			has_level |= a == "--log-level";
			has_shards |= a == "--shards";
		}
		// One shard unless a test asks for more: per-listener limits
		// and counters are per shard.
		if (!has_shards) {
			argv.push_back("--shards");
			argv.push_back("1");
		}
		argv.push_back("--poller");
		if (poller() == "uring-batch") {
			argv.push_back("uring");
			argv.push_back("--uring-write-batching");
			argv.push_back("on");
		} else {
			argv.push_back(poller());
		}
		if (!has_level) {
			argv.push_back("--log-level");
			argv.push_back("info");
		}
		if (!has_listen && !has_config) {
			argv.push_back("--listen");
			argv.push_back("127.0.0.1:0");
		}
		argv.insert(argv.end(), args.begin(), args.end());
		// $FRAMEPROXY_WRAPPER: words put before the proxy's command line,
		// the first an absolute path, e.g. "/usr/bin/valgrind -q
		// --error-exitcode=9" (README: valgrind over the integration tests).
		std::istringstream wrapper(env_or("FRAMEPROXY_WRAPPER", ""));
		std::vector<std::string> words{std::istream_iterator<std::string>(wrapper),
					       std::istream_iterator<std::string>()};
		argv.insert(argv.begin(), words.begin(), words.end());
		proc_.reset(new Process(argv, "frameproxy"));
		const std::string prefix = "127.0.0.1:";
		std::string line;
		bool up = proc_->wait_line(Process::ERR, [&](const std::string &l) {
			LogRecord r = parse_logfmt(l);
			return r.is("msg", "listening") && r.is("listener", listener) &&
			       r.get("address").compare(0, prefix.size(), prefix) == 0;
		}, startup_timeout(), &line);
		INFO("frameproxy did not come up: " << proc_->command_line() << "\n"
		     << tail(proc_->err(), 40));
		REQUIRE(up);
		port_ = (uint16_t)atoi(parse_logfmt(line).get("address").c_str() +
				       prefix.size());
		REQUIRE(port_ != 0);
		// "listening" is the supervisor's; a signal sent before the
		// shards accept would find no connection to drain.
		INFO("frameproxy shards not ready: " << tail(proc_->err(), 40));
		REQUIRE(wait_ready(startup_timeout()));
	}

	// The shard processes are the supervisor's children, not ours: when a
	// test ends (or fails) they go too, not only the supervisor. The
	// supervisor goes first: while it lives it can start a shard after the
	// log was read, and that one would be left behind.
	~Proxy()
	{
		if (!proc_)
			return;
		proc_->signal(SIGKILL);
		proc_->wait_exit(milliseconds(5000));
		for (auto &r : log())
			if (r.is("msg", "shard started"))
				::kill((pid_t)atoi(r.get("pid").c_str()), SIGKILL);
	}

	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
	Process &proc() { return *proc_; }

	// The pid of the newest process started for shard `index`, 0 if none
	// was logged within `timeout`.
	pid_t shard_pid(unsigned index, milliseconds timeout = milliseconds(5000))
	{
		pid_t pid = 0;
		wait_record([&](const LogRecord &r) {
			return r.is("msg", "shard started") &&
			       r.is("shard", std::to_string(index));
		}, timeout);
		for (auto &r : log())
			if (r.is("msg", "shard started") &&
			    r.is("shard", std::to_string(index)))
				pid = (pid_t)atoi(r.get("pid").c_str());
		return pid;
	}

	// Waits for the supervisor's "ready" line (every shard accepting).
	bool wait_ready(milliseconds timeout = milliseconds(10000))
	{
		return wait_record([](const LogRecord &r) {
			return r.is("msg", "ready");
		}, timeout);
	}

	std::vector<LogRecord> log() const { return parse_log(proc_->err()); }

	std::vector<LogRecord> records(const std::string &msg) const
	{
		std::vector<LogRecord> out;
		for (auto &r : log())
			if (r.is("msg", msg))
				out.push_back(r);
		return out;
	}

	// Waits for a record matching pred; fills *out. False on timeout.
	bool wait_record(const std::function<bool(const LogRecord &)> &pred,
			 milliseconds timeout, LogRecord *out = nullptr)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			for (auto &r : log()) {
				if (pred(r)) {
					if (out)
						*out = r;
					return true;
				}
			}
			if (Clock::now() >= deadline)
				return false;
			std::this_thread::sleep_for(milliseconds(10));
		}
	}

	// The access record of the connection whose client address is `client`.
	bool wait_access(const std::string &client, milliseconds timeout,
			 LogRecord *out = nullptr)
	{
		return wait_record([&](const LogRecord &r) {
			return r.is("msg", "access") && r.is("client", client);
		}, timeout, out);
	}

	// Waits until at least n access records exist.
	bool wait_access_count(size_t n, milliseconds timeout)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			if (records("access").size() >= n)
				return true;
			if (Clock::now() >= deadline)
				return false;
			std::this_thread::sleep_for(milliseconds(10));
		}
	}

	std::string log_tail(size_t lines = 30) const { return tail(proc_->err(), lines); }

	// The newest pid logged for each shard index ("shard started").
	std::map<unsigned, pid_t> shard_pids() const
	{
		std::map<unsigned, pid_t> pids;
		for (auto &r : log())
			if (r.is("msg", "shard started"))
				pids[(unsigned)atoi(r.get("shard").c_str())] =
					(pid_t)atoi(r.get("pid").c_str());
		return pids;
	}

	// The port of a named listener, from the supervisor's "listening"
	// line; 0 when there is none.
	uint16_t listener_port(const std::string &name) const
	{
		for (auto &r : records("listening")) {
			if (!r.is("listener", name))
				continue;
			std::string a = r.get("address");
			return (uint16_t)atoi(a.substr(a.rfind(':') + 1).c_str());
		}
		return 0;
	}

	// Every access record by client address (several when a client
	// address was used again), from one parse of the log.
	std::map<std::string, std::vector<LogRecord>> access_by_client() const
	{
		std::map<std::string, std::vector<LogRecord>> out;
		for (auto &r : log())
			if (r.is("msg", "access"))
				out[r.get("client")].push_back(r);
		return out;
	}

	// Waits until every one of `clients` has an access record; returns
	// those still missing at the timeout (empty: all there). The log is
	// parsed once per round, so thousands of clients are cheap.
	std::vector<std::string> wait_access_all(const std::vector<std::string> &clients,
						 milliseconds timeout,
						 std::map<std::string, std::vector<LogRecord>> *out = nullptr)
	{
		auto deadline = Clock::now() + timeout;
		for (;;) {
			auto by_client = access_by_client();
			std::vector<std::string> missing;
			for (const auto &c : clients)
				if (!by_client.count(c))
					missing.push_back(c);
			if (missing.empty() || Clock::now() >= deadline) {
				if (out)
					*out = std::move(by_client);
				return missing;
			}
			std::this_thread::sleep_for(milliseconds(50));
		}
	}

private:
	std::unique_ptr<Process> proc_;
	uint16_t port_ = 0;
};

// Runs a process to completion (bounded); returns its exit code, 124 on
// timeout (then it is killed).
// An HTTP/1.0 request to the admin endpoint: the whole response, "" when
// the connection failed.
inline std::string http_get(uint16_t port, const std::string &path,
			    const std::string &method = "GET")
{
	Conn c = Conn::connect(port);
	if (!c.valid())
		return "";
	if (c.send_all(method + " " + path + " HTTP/1.0\r\nHost: x\r\n\r\n") != Io::Ok)
		return "";
	std::string out;
	c.wait_closed(milliseconds(5000), &out);
	return out;
}

inline std::string http_body(const std::string &response)
{
	auto at = response.find("\r\n\r\n");
	return at == std::string::npos ? "" : response.substr(at + 4);
}

// The sum of a Prometheus family's samples in a /metrics body, over the
// sample lines that also contain `having` (e.g. a label value).
inline uint64_t metric_sum(const std::string &metrics, const std::string &family,
			   const std::string &having = "")
{
	uint64_t sum = 0;
	for (const auto &line : split_lines(metrics))
		if (line.compare(0, family.size() + 1, family + "{") == 0 &&
		    line.find(having) != std::string::npos)
			sum += strtoull(line.substr(line.rfind(' ') + 1).c_str(),
					nullptr, 10);
	return sum;
}

inline int run_to_exit(Process &p, milliseconds timeout)
{
	if (!p.wait_exit(timeout))
		return 124;
	return p.exit_code();
}

// Extracts "key": number from framebench's one-line JSON; -1 when absent.
inline double json_double(const std::string &json, const std::string &key)
{
	const std::string needle = "\"" + key + "\":";
	auto at = json.find(needle);
	if (at == std::string::npos)
		return -1;
	const char *p = json.c_str() + at + needle.size();
	char *end = nullptr;
	double v = strtod(p, &end);
	return end == p ? -1 : v;
}

inline long long json_number(const std::string &json, const std::string &key)
{
	return (long long)json_double(json, key);
}

} // namespace itest

#endif
