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
//
// Declarations here; the definitions are in harness.cpp, compiled once into
// a static library that the integration test executables link.
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

// Polls pred every 50 ms until it holds; false at the timeout.
bool wait_until(const std::function<bool()> &pred, milliseconds timeout);

long long ms_since(Clock::time_point t0);

// --- environment -------------------------------------------------------------

std::string env_or(const char *name, const std::string &fallback);

long env_long(const char *name, long fallback);

// The executable named by an env var; fails the test when it is not set.
std::string binary(const char *env);

// The configuration under test: epoll, uring, uring-batch (io_uring
// with --uring-write-batching on) or uring-completion (--uring-io
// completion).
std::string poller();

// --- files -------------------------------------------------------------------

// Set by the listener in integration_harness.cpp when any assertion failed:
// the temp directory is then kept for inspection.
std::atomic<bool> &any_failure();

class TempDir {
public:
	TempDir();
	~TempDir();
	std::string file(const std::string &stem);
	const std::string &path() const { return path_; }

private:
	std::string path_;
	std::vector<std::string> files_;
	unsigned counter_ = 0;
	std::mutex mu_;
};

TempDir &tmp();

std::string read_file(const std::string &path);

void write_file(const std::string &path, const std::string &text);

std::vector<std::string> split_lines(const std::string &text);

// Complete lines only (a line still being written is left out).
std::vector<std::string> complete_lines(const std::string &text);

std::string tail(const std::string &text, size_t max_lines);

// --- logfmt ------------------------------------------------------------------

// One logfmt line: key=value pairs, values optionally "quoted" with \" and
// \\ escapes.
struct LogRecord {
	std::map<std::string, std::string> kv;
	std::string line;

	bool has(const std::string &k) const { return kv.count(k) != 0; }
	std::string get(const std::string &k) const;
	unsigned long long num(const std::string &k) const;
	bool is(const std::string &k, const std::string &v) const;
};

LogRecord parse_logfmt(const std::string &line);

// A record's ts= (2026-11-30T18:22:33.439Z) in milliseconds since the
// epoch; -1 when it has none.
long long log_ms(const LogRecord &r);

std::vector<LogRecord> parse_log(const std::string &text);

// --- processes ---------------------------------------------------------------

class Process;

// Live processes, for the failure listener to print their output.
std::mutex &registry_mutex();
std::set<Process *> &registry();

void close_fds_from(int first);

class Process {
public:
	enum Stream { OUT, ERR };

	// err_fd >= 0: the child's stderr is that descriptor (a pipe the test
	// reads, say) instead of a file; err() is then empty.
	Process(const std::vector<std::string> &argv, const std::string &name,
		int err_fd = -1);

	~Process();

	Process(const Process &) = delete;
	Process &operator=(const Process &) = delete;

	pid_t pid() const { return pid_; }
	const std::string &name() const { return name_; }
	const std::string &out_path() const { return out_path_; }
	const std::string &err_path() const { return err_path_; }
	std::string out() const { return read_file(out_path_); }
	std::string err() const { return read_file(err_path_); }
	std::string text(Stream s) const { return s == OUT ? out() : err(); }

	std::string command_line() const;

	// Not yet exited (reaps it when it has).
	bool running();

	// Waits up to `timeout` for the exit; true when it exited.
	bool wait_exit(milliseconds timeout);

	bool exited() const { return exited_; }
	int raw_status() const { return status_; }
	// Exit code, or 128+signal, or -1 while running.
	int exit_code() const;

	void signal(int sig);

	// Polls the stream for a complete line for which pred is true (the line
	// goes to *line_out); false on timeout or when the process exits
	// without printing it.
	bool wait_line(Stream s, const std::function<bool(const std::string &)> &pred,
		       milliseconds timeout, std::string *line_out = nullptr);

	// VmRSS in KiB, or -1.
	long rss_kib() const { return rss_kib_of(pid_); }

	static long rss_kib_of(pid_t pid);

	// CPU time (user+system) in clock ticks, or -1.
	long cpu_ticks() const { return cpu_ticks_of(pid_); }

	// The same for any process (a shard, say).
	static long cpu_ticks_of(pid_t pid);

	// Gone, or a zombie nobody reaped yet (orphans go to init, not to us).
	static bool ended_of(pid_t pid);

private:
	std::string name_;
	std::vector<std::string> argv_;
	std::string out_path_, err_path_;
	pid_t pid_ = -1;
	bool exited_ = false;
	int status_ = 0;
};

// --- frames ------------------------------------------------------------------

std::string be32(uint32_t n);

std::string frame(const std::string &payload);

std::string random_bytes(size_t n, uint32_t seed);

// --- sockets -----------------------------------------------------------------

sockaddr_in inet_addr_port(const std::string &ip, uint16_t port);

std::string sockaddr_text(const sockaddr_in &sa);

enum class Io { Ok, Eof, Reset, Timeout, Error, Data };

const char *io_name(Io r);

std::ostream &operator<<(std::ostream &os, Io r);

// A client connection; non-blocking underneath, every call bounded by a
// timeout.
class Conn {
public:
	Conn() = default;
	explicit Conn(int fd) : fd_(fd) {}
	~Conn() { close(); }
	Conn(Conn &&o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
	Conn &operator=(Conn &&o) noexcept;
	Conn(const Conn &) = delete;
	Conn &operator=(const Conn &) = delete;

	// Connects to 127.0.0.1:port from `src` (any 127.x address); an
	// invalid Conn (fd -1) when it fails.
	static Conn connect(uint16_t port, const std::string &src = "",
			    milliseconds timeout = milliseconds(3000),
			    const std::string &dst = "127.0.0.1");

	bool valid() const { return fd_ >= 0; }
	int fd() const { return fd_; }

	std::string local_addr() const;

	void close();

	// Close with RST instead of FIN.
	void abort();

	void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

	Io send_all(const std::string &data, milliseconds timeout = milliseconds(5000));

	Io send_all(const void *data, size_t n, milliseconds timeout);

	// One non-blocking send; bytes sent (0 when the socket is full), -1 on
	// error.
	ssize_t try_send(const void *data, size_t n);

	Io send_frame(const std::string &payload, milliseconds timeout = milliseconds(5000));

	Io read_exact(std::string &out, size_t n, milliseconds timeout);

	Io read_frame(std::string &payload, milliseconds timeout = milliseconds(5000),
		      uint32_t max = 64u << 20);

	// Sends a frame and expects the same frame back.
	bool roundtrip(const std::string &payload, milliseconds timeout = milliseconds(5000));

	// Waits for the peer to end the connection: Eof, Reset, Timeout, or
	// Data when bytes arrive first (they are appended to *data).
	Io wait_closed(milliseconds timeout, std::string *data = nullptr);

private:
	bool wait(short events, Clock::time_point deadline);

	int fd_ = -1;
};

// A port on 127.0.0.1 that refuses connections: bound, never listening, so
// nothing else can take it while the holder lives.
class RefusingPort {
public:
	RefusingPort();
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
	BlackHole();
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
			      milliseconds trickle = milliseconds(1000));

	~TestUpstream();

	TestUpstream(const TestUpstream &) = delete;
	TestUpstream &operator=(const TestUpstream &) = delete;

	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

	size_t accepted();

	// Connections accepted and not ended yet.
	size_t open_count();

	bool wait_accepted(size_t n, milliseconds timeout);

	ConnInfo conn(size_t i);

	// Every connection accepted so far, in order.
	std::vector<ConnInfo> conns();

	// Waits until every accepted connection has ended (false on timeout).
	bool wait_all_ended(milliseconds timeout);

	// Waits until connection i satisfies pred (false on timeout).
	bool wait_conn(size_t i, milliseconds timeout,
		       const std::function<bool(const ConnInfo &)> &pred);

	// Closes every accepted connection that is still open (RST-free FIN).
	void close_all();

private:
	void run();

	void accept_all();

	static void send_blocking(int fd, const std::string &data);

	void read_some(size_t i, std::vector<char> &buf);

	// EchoFrames/Trickle: collect bytes until a frame is whole, then send
	// it back (at once, or queue it for the trickle).
	void echo_whole_frames(size_t i, const char *data, size_t n);

	// Trickle: one byte of each pending echo per interval.
	void trickle_some();

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
milliseconds startup_timeout();

// frameecho on 127.0.0.1:0.
class Echo {
public:
	// `listen` may name a fixed port (one a test held free until now).
	explicit Echo(std::vector<std::string> extra = {},
		      const std::string &listen = "127.0.0.1:0");
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
	// `exe`: the binary to run instead of $FRAMEPROXY (a copy that a
	// binary-upgrade test replaces under the supervisor).
	explicit Proxy(std::vector<std::string> args,
		       const std::string &listener = "default",
		       const std::string &exe = "");

	// The shard processes are the supervisor's children, not ours: when a
	// test ends (or fails) they go too, not only the supervisor. The
	// supervisor goes first: while it lives it can start a shard after the
	// log was read, and that one would be left behind.
	~Proxy();

	uint16_t port() const { return port_; }
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
	Process &proc() { return *proc_; }

	// The pid of the newest process started for shard `index`, 0 if none
	// was logged within `timeout`.
	pid_t shard_pid(unsigned index, milliseconds timeout = milliseconds(5000));

	// The supervisor serving now: the newest one a binary upgrade
	// completed to ("upgrade complete"), else the one started here.
	pid_t supervisor_pid() const;

	// Waits for the supervisor's "ready" line (every shard accepting).
	bool wait_ready(milliseconds timeout = milliseconds(10000));

	std::vector<LogRecord> log() const { return parse_log(proc_->err()); }

	std::vector<LogRecord> records(const std::string &msg) const;

	// Waits for a record matching pred; fills *out. False on timeout.
	bool wait_record(const std::function<bool(const LogRecord &)> &pred,
			 milliseconds timeout, LogRecord *out = nullptr);

	// The access record of the connection whose client address is `client`.
	bool wait_access(const std::string &client, milliseconds timeout,
			 LogRecord *out = nullptr);

	// Waits until at least n access records exist.
	bool wait_access_count(size_t n, milliseconds timeout);

	std::string log_tail(size_t lines = 30) const { return tail(proc_->err(), lines); }

	// The newest pid logged for each shard index ("shard started").
	std::map<unsigned, pid_t> shard_pids() const;

	// The admin endpoint's port, from its "admin listening" line (--admin
	// 127.0.0.1:0); 0 when none is logged within 5 s.
	uint16_t admin_port();

	// The port of a named listener, from the supervisor's "listening"
	// line; 0 when there is none.
	uint16_t listener_port(const std::string &name) const;

	// Every access record by client address (several when a client
	// address was used again), from one parse of the log.
	std::map<std::string, std::vector<LogRecord>> access_by_client() const;

	// Waits until every one of `clients` has an access record; returns
	// those still missing at the timeout (empty: all there). The log is
	// parsed once per round, so thousands of clients are cheap.
	std::vector<std::string> wait_access_all(const std::vector<std::string> &clients,
						 milliseconds timeout,
						 std::map<std::string, std::vector<LogRecord>> *out = nullptr);

private:
	std::unique_ptr<Process> proc_;
	uint16_t port_ = 0;
};

// An HTTP/1.0 request to the admin endpoint: the whole response, "" when
// the connection failed.
std::string http_get(uint16_t port, const std::string &path,
		     const std::string &method = "GET");

std::string http_body(const std::string &response);

// The sum of a Prometheus family's samples in a /metrics body, over the
// sample lines that also contain `having` (e.g. a label value).
uint64_t metric_sum(const std::string &metrics, const std::string &family,
		    const std::string &having = "");
// metric_sum over one scrape of the proxy's admin endpoint.
uint64_t metric(Proxy &proxy, const std::string &family,
		const std::string &having = "");
// Access records closed with `reason`.
size_t count_reason(const Proxy &proxy, const std::string &reason);

// The number of log records whose msg is `msg`.
size_t count_records(const Proxy &proxy, const std::string &msg);

// n connections that each prove themselves alive with one round trip.
std::vector<Conn> idle_conns(uint16_t port, size_t n);

// Round trips one frame ("TAG i") on each of conns; how many came back.
size_t roundtrips_ok(std::vector<Conn> &conns, const std::string &tag);

// Runs a process to completion (bounded); returns its exit code, 124 on
// timeout (then it is killed).
int run_to_exit(Process &p, milliseconds timeout);

// Extracts "key": number from framebench's one-line JSON; -1 when absent.
double json_double(const std::string &json, const std::string &key);

long long json_number(const std::string &json, const std::string &key);

} // namespace itest

#endif
