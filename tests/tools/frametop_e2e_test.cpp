// frametop end to end: against a real `frameproxy --shards 2` with traffic
// through it, against a port where nothing listens, against an endpoint
// that answers garbage, and on a pseudo-terminal (redraw, q, SIGTERM, the
// terminal restored). Executables come from meson through $FRAMETOP,
// $FRAMEPROXY and $FRAMEECHO. Everything is on 127.0.0.1, every wait is
// bounded, and every process started here is stopped by its PID.
#include <catch2/catch.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "proc.hpp"

namespace {

using tooltest::Echo;
using tooltest::Proc;
using tooltest::exe;
using tooltest::now_ms;
using tooltest::start_echo;

// The port after `key` (e.g. "address=127.0.0.1:") on the line holding
// `line_mark`, or 0.
int port_after(const std::string &log, const std::string &line_mark,
	       const std::string &key)
{
	size_t at = log.find(line_mark);
	if (at == std::string::npos)
		return 0;
	size_t eol = log.find('\n', at);
	size_t k = log.find(key, at);
	if (k == std::string::npos || k > eol)
		return 0;
	return std::atoi(log.c_str() + k + key.size());
}

// --- the processes under test -------------------------------------------

// frameproxy --shards 2, its stderr to a file: the shards log a line per
// connection, and a pipe that nobody reads while frametop runs would fill
// and stall them. SIGTERM drains and stops the supervisor and its shards;
// if it has not exited after a few seconds it gets SIGKILL (and the
// shards, PDEATHSIG, a SIGTERM).
struct Proxy {
	pid_t pid = -1;
	int port = 0, admin = 0;
	std::set<long> shard_pids;
	std::string log_path;

	~Proxy()
	{
		if (stop() < 0 && pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, nullptr, 0);
		}
		if (!log_path.empty())
			unlink(log_path.c_str());
	}

	std::string log() const
	{
		std::ifstream in(log_path);
		std::stringstream text;
		text << in.rdbuf();
		return text.str();
	}

	bool start(int upstream_port)
	{
		const char *tmp = std::getenv("TMPDIR");
		std::string path = std::string(tmp && *tmp ? tmp : "/tmp") +
				   "/frametop-test-XXXXXX";
		std::vector<char> name(path.begin(), path.end());
		name.push_back('\0');
		int fd = mkstemp(name.data());
		REQUIRE(fd >= 0);
		log_path = name.data();
		std::string up = "127.0.0.1:" + std::to_string(upstream_port);
		std::string bin = exe("FRAMEPROXY");
		pid = fork();
		REQUIRE(pid >= 0);
		if (pid == 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			execl(bin.c_str(), bin.c_str(), "--shards", "2",
			      "--admin", "127.0.0.1:0", "--listen",
			      "127.0.0.1:0", "--server", up.c_str(),
			      (char *)nullptr);
			_exit(127);
		}
		close(fd);
		return wait_ready(15000);
	}

	bool wait_ready(int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		std::string text;
		while ((text = log()).find("msg=\"ready\"") == std::string::npos) {
			if (now_ms() > deadline || waitpid(pid, nullptr, WNOHANG))
				return false;
			usleep(20000);
		}
		port = port_after(text, "msg=\"listening\"",
				  "address=127.0.0.1:");
		admin = port_after(text, "msg=\"admin listening\"",
				   "address=127.0.0.1:");
		for (size_t at = 0; (at = text.find("msg=\"shard started\"",
						    at)) != std::string::npos;
		     at++)
			shard_pids.insert(std::atol(
				text.c_str() + text.find(" pid=", at) + 5));
		return port > 0 && admin > 0 && shard_pids.size() == 2;
	}

	// SIGTERM and a bounded wait: the exit code, -1 on timeout.
	int stop()
	{
		if (pid <= 0)
			return -1;
		kill(pid, SIGTERM);
		int64_t deadline = now_ms() + 8000;
		int status;
		while (waitpid(pid, &status, WNOHANG) != pid) {
			if (now_ms() > deadline)
				return -1;
			usleep(10000);
		}
		pid = -1;
		return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	}
};

// Short connections through the proxy on a thread, so that its counters
// move while frametop watches: the proxy adds a connection's frames to
// the shard's counters when the connection closes.
class Churn {
public:
	explicit Churn(int port) : port_(port), thread_([this] { run(); }) {}
	~Churn() { stop(); }
	void stop()
	{
		stop_ = true;
		if (thread_.joinable())
			thread_.join();
	}
	long done() const { return done_; }
	long failed() const { return failed_; }

private:
	static constexpr int FRAMES = 20;
	static constexpr int PAYLOAD = 64;

	bool one()
	{
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return false;
		struct timeval tv = {2, 0};  // a stuck proxy fails, not hangs
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port_);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		std::string out;
		for (int i = 0; i < FRAMES; i++) {
			uint32_t len = htonl(PAYLOAD);
			out.append((const char *)&len, 4);
			out.append(PAYLOAD, (char)('a' + i));
		}
		bool ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) ==
				  0 &&
			  write(fd, out.data(), out.size()) ==
				  (ssize_t)out.size();
		size_t got = 0;
		char buf[4096];
		while (ok && got < out.size()) {
			ssize_t n = read(fd, buf, sizeof(buf));
			ok = n > 0;
			got += ok ? (size_t)n : 0;
		}
		close(fd);
		return ok;
	}

	void run()
	{
		int64_t deadline = now_ms() + 60000;  // bounded even if never stopped
		while (!stop_ && now_ms() < deadline) {
			if (one())
				done_++;
			else
				failed_++;
		}
	}

	int port_;
	std::atomic<bool> stop_{false};
	std::atomic<long> done_{0}, failed_{0};
	std::thread thread_;
};

// An endpoint on 127.0.0.1 that answers every connection with `reply`,
// on a thread, until destroyed.
class FakeAdmin {
public:
	explicit FakeAdmin(std::string reply) : reply_(std::move(reply))
	{
		fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(fd_ >= 0);
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		REQUIRE(bind(fd_, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		REQUIRE(listen(fd_, 16) == 0);
		socklen_t len = sizeof(sin);
		REQUIRE(getsockname(fd_, (struct sockaddr *)&sin, &len) == 0);
		port = ntohs(sin.sin_port);
		thread_ = std::thread([this] { run(); });
	}
	~FakeAdmin()
	{
		stop_ = true;
		thread_.join();
		close(fd_);
	}
	std::string addr() const
	{
		return "127.0.0.1:" + std::to_string(port);
	}

	int port = 0;

private:
	void serve(int c)
	{
		struct timeval tv = {2, 0};
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		std::string req;
		char buf[1024];
		while (req.find("\r\n\r\n") == std::string::npos) {
			ssize_t n = read(c, buf, sizeof(buf));
			if (n <= 0)
				break;
			req.append(buf, (size_t)n);
		}
		ssize_t n = write(c, reply_.data(), reply_.size());
		(void)n;
		close(c);
	}

	void run()
	{
		while (!stop_) {
			struct pollfd p = {fd_, POLLIN, 0};
			if (poll(&p, 1, 50) <= 0)
				continue;
			int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (c >= 0)
				serve(c);
		}
	}

	std::string reply_;
	int fd_ = -1;
	std::atomic<bool> stop_{false};
	std::thread thread_;
};

std::string http_ok(const std::string &body)
{
	return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	       "Content-Length: " + std::to_string(body.size()) +
	       "\r\nConnection: close\r\n\r\n" + body;
}

// The body of GET `path` from 127.0.0.1:port ("" when it fails).
std::string admin_get(int port, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return "";
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	std::string req = std::string("GET ") + path +
			  " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	std::string got;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(fd, req.data(), req.size()) == (ssize_t)req.size()) {
		char buf[4096];
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			got.append(buf, (size_t)n);
	}
	close(fd);
	size_t body = got.find("\r\n\r\n");
	return body == std::string::npos ? "" : got.substr(body + 4);
}

// One shard with an rpc server and a stream listener's upstream.
const char *const RPC_STATS_BODY =
	"{\"pid\":7,\"started_unix_s\":1.5,\"uptime_s\":2.5,"
	"\"shards_configured\":1,\"reloads\":0,\"restarts\":0,\"retiring\":0,"
	"\"shards\":[{\"shard\":0,\"pid\":8,\"state\":\"ready\","
	"\"generation\":0,\"poller\":\"epoll\",\"connections_active\":0,"
	"\"accepted\":0,\"frames_in\":0,\"frames_out\":0,\"bytes_in\":0,"
	"\"bytes_out\":0,\"cpu_user_s\":0,\"cpu_system_s\":0,"
	"\"rss_bytes\":4096,\"runq_length\":0,\"upstreams\":["
	"{\"listener\":\"pay\",\"name\":\"127.0.0.1:7001\",\"up\":1,"
	"\"rpc_sent\":900,\"rpc_inflight\":3,\"rpc_pool_open\":2,"
	"\"rpc_latency\":{\"count\":897,\"sum\":0.5,\"buckets\":"
	"[[0.00005,0],[0.0001,800],[10,897]]}},"
	"{\"listener\":\"web\",\"name\":\"127.0.0.1:80\",\"up\":1,"
	"\"rpc_latency\":{\"count\":0,\"sum\":0,\"buckets\":"
	"[[0.00005,0],[0.0001,0],[10,0]]}}]}]}";

const char *const STATS_BODY =
	"{\"pid\":7,\"started_unix_s\":1.5,\"uptime_s\":2.5,"
	"\"shards_configured\":1,\"reloads\":0,\"restarts\":0,\"retiring\":0,"
	"\"shards\":[{\"shard\":0,\"pid\":8,\"state\":\"ready\","
	"\"generation\":0,\"poller\":\"epoll\",\"connections_active\":0,"
	"\"accepted\":0,\"frames_in\":0,\"frames_out\":0,\"bytes_in\":0,"
	"\"bytes_out\":0,\"cpu_user_s\":0,\"cpu_system_s\":0,"
	"\"rss_bytes\":4096,\"runq_length\":0}]}";

// --- reading frametop's plain output -------------------------------------

struct Row {
	char mark;
	std::vector<std::string> cols;  // SHARD PID STATE POLLER GEN CONNS
					// ACC/s FRM_IN/s FRM_OUT/s BYTES/s
					// CPU% RSS RUNQ
};

struct Table {
	std::string header;
	std::vector<Row> shards;
	std::vector<std::string> total;  // "total" CONNS ... RUNQ
};

std::vector<std::string> words(const std::string &line)
{
	std::istringstream in(line);
	std::vector<std::string> w;
	std::string s;
	while (in >> s)
		w.push_back(s);
	return w;
}

// Tables are separated by blank lines: header, column names, rows, total.
std::vector<Table> parse_tables(const std::string &out)
{
	std::vector<Table> tables;
	std::istringstream in(out);
	std::string line;
	int at = 0;   // line within the current table
	while (std::getline(in, line)) {
		if (line.empty()) {
			at = 0;
			continue;
		}
		if (at++ == 0) {
			tables.push_back(Table{line, {}, {}});
			continue;
		}
		if (line.find("SHARD") != std::string::npos)
			continue;
		if (line.compare(0, 7, "  total") == 0)
			tables.back().total = words(line);
		else
			tables.back().shards.push_back(
				Row{line[0], words(line.substr(1))});
	}
	return tables;
}

// "12.3k" -> 12300; "-" (no rate yet) -> -1.
double count_value(const std::string &text)
{
	if (text == "-")
		return -1;
	char *end;
	double v = std::strtod(text.c_str(), &end);
	switch (*end) {
	case 'k': return v * 1e3;
	case 'M': return v * 1e6;
	case 'G': return v * 1e9;
	default: return v;
	}
}

// --- a child on a pseudo-terminal ----------------------------------------

class PtyChild {
public:
	explicit PtyChild(const std::vector<std::string> &argv)
	{
		master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		REQUIRE(master_ >= 0);
		REQUIRE(grantpt(master_) == 0);
		REQUIRE(unlockpt(master_) == 0);
		std::string name = ptsname(master_);
		// Our own view of the terminal's settings.
		slave_ = open(name.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
		REQUIRE(slave_ >= 0);
		// Taken before the child exists: once it runs it may already
		// have switched the terminal to raw mode.
		REQUIRE(tcgetattr(slave_, &before_) == 0);
		pid_ = fork();
		REQUIRE(pid_ >= 0);
		if (pid_ == 0)
			exec_on(name, argv);
	}
	~PtyChild()
	{
		if (pid_ > 0) {
			kill(pid_, SIGKILL);
			waitpid(pid_, nullptr, 0);
		}
		close(master_);
		close(slave_);
	}

	// Read the terminal's output until `stop` shows up (bounded).
	bool read_until(const char *stop, int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (out.find(stop) == std::string::npos) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return false;
			pump((int)left);
		}
		return true;
	}

	// The same, until `stop` has shown up n times.
	bool read_until_count(const char *stop, size_t n, int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (count(stop) < n) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return false;
			pump((int)left);
		}
		return true;
	}

	size_t count(const char *s) const
	{
		size_t n = 0;
		for (size_t at = out.find(s); at != std::string::npos;
		     at = out.find(s, at + 1))
			n++;
		return n;
	}

	// Wait for exit while draining the terminal: the exit code, or -1.
	int wait_exit(int timeout_ms)
	{
		int64_t deadline = now_ms() + timeout_ms;
		while (now_ms() < deadline) {
			int status;
			if (waitpid(pid_, &status, WNOHANG) == pid_) {
				pid_ = -1;
				pump(50);
				return WIFEXITED(status) ? WEXITSTATUS(status)
							 : -1;
			}
			pump(20);
		}
		return -1;
	}

	// The terminal's settings before the child started.
	struct termios termios_before() const { return before_; }

	struct termios termios_now() const
	{
		struct termios t;
		REQUIRE(tcgetattr(slave_, &t) == 0);
		return t;
	}

	void type(const char *keys)
	{
		REQUIRE(write(master_, keys, strlen(keys)) ==
			(ssize_t)strlen(keys));
	}

	pid_t pid() const { return pid_; }
	std::string out;

private:
	[[noreturn]] static void exec_on(const std::string &name,
					 const std::vector<std::string> &argv)
	{
		setsid();   // the terminal becomes the controlling one
		int fd = open(name.c_str(), O_RDWR);
		if (fd < 0)
			_exit(127);
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		std::vector<char *> args;
		for (const auto &a : argv)
			args.push_back(const_cast<char *>(a.c_str()));
		args.push_back(nullptr);
		execv(args[0], args.data());
		_exit(127);
	}

	void pump(int timeout_ms)
	{
		struct pollfd p = {master_, POLLIN, 0};
		if (poll(&p, 1, timeout_ms) <= 0)
			return;
		char buf[4096];
		ssize_t n = read(master_, buf, sizeof(buf));
		if (n > 0)
			out.append(buf, (size_t)n);
	}

	int master_ = -1, slave_ = -1;
	pid_t pid_ = -1;
	struct termios before_ = {};
};

} // namespace

TEST_CASE("frametop: two shards of a live frameproxy", "[frametop][e2e]")
{
	Echo echo;
	REQUIRE(start_echo(echo));
	Proxy proxy;
	bool started = proxy.start(echo.port);
	INFO("frameproxy said: " << proxy.log());
	REQUIRE(started);
	pid_t supervisor = proxy.pid;
	std::string admin = "127.0.0.1:" + std::to_string(proxy.admin);

	Churn churn(proxy.port);
	int64_t deadline = now_ms() + 10000;
	while (churn.done() < 20 && now_ms() < deadline)
		usleep(10000);
	REQUIRE(churn.done() >= 20);

	Proc top({exe("FRAMETOP"), "--admin", admin, "--interval", "200ms",
		  "--count", "3"});
	top.read_until(nullptr, 20000);
	int code = top.wait_exit(5000);
	Proc once({exe("FRAMETOP"), "--admin", admin, "--interval", "200ms",
		   "--once"});
	once.read_until(nullptr, 20000);
	int once_code = once.wait_exit(5000);
	churn.stop();
	INFO("frametop printed:\n" << top.out << "\nand said: " << top.err);
	INFO("frametop --once printed:\n" << once.out << "\nand said: "
					   << once.err);
	CHECK(churn.failed() == 0);
	REQUIRE(code == 0);
	REQUIRE(once_code == 0);
	CHECK(top.err.empty());
	CHECK(top.out.find('\033') == std::string::npos);  // not a terminal
	// A stream listener's upstreams carry the (empty) rpc latency
	// histogram, and the table stays the shards' alone.
	CHECK(top.out.find("rpc per server") == std::string::npos);
	CHECK(admin_get(proxy.admin, "/stats").find("\"rpc_latency\":{\"count\":0,") !=
	      std::string::npos);

	std::vector<Table> tables = parse_tables(top.out);
	REQUIRE(tables.size() == 3);
	std::string sup_pid = "pid " + std::to_string(supervisor) + " ";
	bool moving = false;
	for (size_t t = 0; t < tables.size(); t++) {
		const Table &tb = tables[t];
		INFO("table " << t);
		CHECK(tb.header.find("frameproxy " + admin) == 0);
		CHECK(tb.header.find(sup_pid) != std::string::npos);
		CHECK(tb.header.find("shards 2/2 ready") != std::string::npos);
		CHECK(tb.header.find("reloads 0  restarts 0") !=
		      std::string::npos);
		REQUIRE(tb.shards.size() == 2);
		REQUIRE(tb.total.size() == 9);
		for (size_t i = 0; i < 2; i++) {
			const Row &r = tb.shards[i];
			REQUIRE(r.cols.size() == 13);
			CHECK(r.cols[0] == std::to_string(i));
			CHECK(proxy.shard_pids.count(std::atol(r.cols[1].c_str())));
			CHECK(r.cols[2] == "ready");
			CHECK((r.cols[3] == "epoll" || r.cols[3] == "uring"));
			double in = count_value(r.cols[7]);
			if (t == 0)
				CHECK(in == -1);      // no rates in the first table
			else
				CHECK(in >= 0);
			moving = moving || in > 0;
		}
	}
	CHECK(moving);

	std::vector<Table> one = parse_tables(once.out);
	REQUIRE(one.size() == 1);
	REQUIRE(one[0].shards.size() == 2);
	for (const Row &r : one[0].shards)
		CHECK(count_value(r.cols[7]) >= 0);   // --once has rates

	CHECK(proxy.stop() == 0);
	// The supervisor reaped both shards before it stopped.
	std::string log = proxy.log();
	for (long pid : proxy.shard_pids)
		CHECK(log.find(" pid=" + std::to_string(pid) + " status=0") !=
		      std::string::npos);
	CHECK(log.find("msg=\"stopped\" exit=0") != std::string::npos);
}

TEST_CASE("frametop: nothing listening exits 1 with the reason",
	  "[frametop][e2e]")
{
	// A bound socket that does not listen: the port is ours, and a
	// connect to it is refused.
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	socklen_t len = sizeof(sin);
	REQUIRE(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	std::string addr = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port));

	Proc top({exe("FRAMETOP"), "--admin", addr, "--count", "1"});
	top.read_until(nullptr, 10000);
	int code = top.wait_exit(5000);
	close(fd);
	INFO("stderr: " << top.err);
	CHECK(code == 1);
	CHECK(top.out.empty());
	CHECK(top.err.find("frametop: " + addr + ": ") == 0);
	CHECK(top.err.find("connection refused") != std::string::npos);
	CHECK(std::count(top.err.begin(), top.err.end(), '\n') == 1);
}

TEST_CASE("frametop: an endpoint that answers garbage exits 1",
	  "[frametop][e2e]")
{
	struct Case {
		std::string reply;
		const char *why;
	};
	const Case cases[] = {
		{http_ok("{\"pid\": 1,"), "invalid JSON at byte"},
		{http_ok("<html>hello</html>"), "invalid JSON at byte 0"},
		{http_ok("{\"pid\":1}"), "field uptime_s: missing"},
		{"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		 "HTTP status 404"},
		{"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x response"},
	};
	for (const Case &c : cases) {
		FakeAdmin fake(c.reply);
		Proc top({exe("FRAMETOP"), "--admin", fake.addr()});
		top.read_until(nullptr, 10000);
		int code = top.wait_exit(5000);
		INFO("stderr: " << top.err);
		CHECK(code == 1);
		CHECK(top.out.empty());
		CHECK(top.err.find("frametop: " + fake.addr() +
				   ": GET /stats: ") == 0);
		CHECK(top.err.find(c.why) != std::string::npos);
	}
}

TEST_CASE("frametop: usage errors exit 2", "[frametop][e2e]")
{
	const std::vector<std::vector<std::string>> cases = {
		{"--count", "0"},         {"--count", "x"},
		{"--interval", "0"},      {"--interval", "soon"},
		{"--interval", "2h"},     {"--admin", "nohost"},
		{"--once", "--count", "2"}, {"extra"},
		{"--bogus"},
	};
	for (const auto &args : cases) {
		std::vector<std::string> argv = {exe("FRAMETOP")};
		argv.insert(argv.end(), args.begin(), args.end());
		Proc top(argv);
		top.read_until(nullptr, 10000);
		INFO(args[0] << " -> " << top.err);
		CHECK(top.wait_exit(5000) == 2);
		CHECK(top.err.find("frametop: ") == 0);
	}
	Proc help({exe("FRAMETOP"), "--help"});
	help.read_until(nullptr, 10000);
	CHECK(help.wait_exit(5000) == 0);
	CHECK(help.out.find("busiest") != std::string::npos);
}

TEST_CASE("frametop: an rpc server gets a row of the rpc view",
	  "[frametop][e2e]")
{
	FakeAdmin fake(http_ok(RPC_STATS_BODY));
	Proc top({exe("FRAMETOP"), "--admin", fake.addr(), "--interval",
		  "50ms", "--once"});
	top.read_until(nullptr, 10000);
	int code = top.wait_exit(5000);
	INFO("frametop printed:\n" << top.out << "\nand said: " << top.err);
	REQUIRE(code == 0);
	size_t view = top.out.find("\nrpc per server");
	REQUIRE(view != std::string::npos);
	CHECK(top.out.find("LISTENER", view) != std::string::npos);
	// The same document twice: nothing sent in between, no p99.
	CHECK(top.out.find("  pay          127.0.0.1:7001                   0 "
			   "       3     2         -\n", view) != std::string::npos);
	CHECK(top.out.find("127.0.0.1:80 ") == std::string::npos);

	Proc help({exe("FRAMETOP"), "--help"});
	help.read_until(nullptr, 5000);
	CHECK(help.wait_exit(5000) == 0);
	CHECK(help.out.find("histogram_quantile") != std::string::npos);
}

TEST_CASE("frametop: on a terminal, redraws in place and restores it",
	  "[frametop][e2e]")
{
	int probe = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (probe < 0) {
		WARN("no pseudo-terminals here (" << strerror(errno)
						  << "): skipped");
		return;
	}
	close(probe);
	FakeAdmin fake(http_ok(STATS_BODY));
	for (const char *how : {"q", "SIGTERM", "SIGINT"}) {
		INFO("quit by " << how);
		PtyChild top({exe("FRAMETOP"), "--admin", fake.addr(),
			      "--interval", "100ms"});
		struct termios before = top.termios_before();
		REQUIRE((before.c_lflag & ICANON));
		// Two screens, so that a redraw has happened.
		bool drawn = top.read_until_count("q: quit", 2, 10000);
		INFO("terminal: " << top.out);
		REQUIRE(drawn);
		struct termios raw = top.termios_now();
		CHECK_FALSE((raw.c_lflag & ICANON));
		CHECK_FALSE((raw.c_lflag & ECHO));
		CHECK((raw.c_lflag & ISIG));        // Ctrl-C still signals
		if (std::string(how) == "q")
			top.type("q");
		else
			kill(top.pid(), std::string(how) == "SIGTERM" ? SIGTERM
								      : SIGINT);
		CHECK(top.wait_exit(5000) == 0);
		struct termios after = top.termios_now();
		CHECK((after.c_lflag & ICANON));
		CHECK((after.c_lflag & ECHO));
		CHECK(top.out.find("\033[?25l") != std::string::npos);
		CHECK(top.out.find("\033[H") != std::string::npos);
		CHECK(top.out.find("\033[?25h") != std::string::npos);
		CHECK(top.out.find("  SHARD") != std::string::npos);
	}
}
