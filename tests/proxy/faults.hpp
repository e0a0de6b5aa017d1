// The fault suite (reliability issue): the real frameproxy under faults,
// with clients that verify every frame. Each case starts its proxy and
// upstreams on loopback, drives verifying clients, injects one fault, and
// then checks that
//   (a) new clients are served afterwards,
//   (b) the shards' memory (VmRSS summed over the current shard pids) is
//       back near where it started,
//   (c) no client saw a corrupted, reordered or duplicated frame, or a
//       partial frame (every frame here fits the relay's buffer, so the
//       proxy forwards only whole frames),
//   (d) every connection a client saw cut has an access line whose reason
//       names the fault (matched by the client's address: every connection
//       here comes from its own 127.x.y.z source address, so an address
//       names one connection).
// Tag [fault]; meson runs them once (suite 'fault'), not per poller: most
// cases run `--poller mixed` (shard 0 epoll, shard 1 io_uring) instead.
// Every wait is bounded in time and every loop in count.
//
// The cases are in integration_faults_<family>.cpp (shard, upstream,
// clients, resources), one executable; what they share is here: verifying
// clients (Verifier) and what they saw (Ledger), and the checks on the
// proxy's side (memory, access lines, stderr). Definitions in faults.cpp.
#ifndef FRAMEPROXY_TESTS_PROXY_FAULTS_HPP
#define FRAMEPROXY_TESTS_PROXY_FAULTS_HPP

#include "tests/proxy/harness.hpp"

namespace itest {
namespace fault {

const milliseconds T5(5000);

// meson sets FRAMEPROXY_SANITIZED=1 in the ASan/UBSan build.
bool sanitized();

// A source address of its own for every connection of the run: 127/8 is
// all on lo, and an access line's client= then names exactly one of our
// connections (ports alone get reused on loopback within seconds).
std::string unique_source();

// Figures of a case (counts, reasons, memory): on stderr, so the suite's log
// shows what each fault did, and as INFO for a failing assertion. Only at
// statement level (it is two statements: INFO lasts until the scope ends).
#define NOTE(x)                                                               \
	do {                                                                  \
		std::ostringstream note_;                                     \
		note_ << x;                                                   \
		fprintf(stderr, "[fault] %s\n", note_.str().c_str());         \
	} while (0);                                                          \
	INFO(x)

// --- frames that say who sent them -------------------------------------------

void put_u64(std::string &s, uint64_t v);

uint64_t get_u64(const std::string &s, size_t at);

// Payload: connection id, sequence number, then `extra` random bytes.
std::string seq_payload(uint64_t uid, uint64_t seq, size_t extra, std::mt19937 &rng);

uint64_t new_uid();

uint32_t frame_len(const char *h);

// Reads frames off a byte stream, keeping what arrived of a frame that is
// not whole yet (so a cut can tell "between frames" from "inside one").
struct FrameReader {
	std::string buf;

	Io next(int fd, std::string &payload, Clock::time_point deadline,
		uint32_t max = 1u << 24);
};

// --- what the clients saw ------------------------------------------------------

// One client connection, as it ended.
struct ConnRecord {
	std::string client;    // its local address (client= in the access line)
	std::string end;       // closed (by us) | eof | reset (cut) | a problem
	uint64_t frames = 0;   // replies verified on it
	long long ended_ms = 0; // steady ms since the ledger's t0
	// The batch that met the end: when its send began, and how long the
	// client had sent nothing before it (since the previous batch's send,
	// or the connect). -1 when the end met no batch.
	long long batch_ms = -1;
	long long silent_ms = -1;
	bool cut() const { return end == "eof" || end == "reset"; }
};

// Shared by every client thread of a case (Catch2's macros stay on the
// main thread: threads only count and record).
struct Ledger {
	Clock::time_point t0 = Clock::now();
	std::atomic<uint64_t> frames{0};
	std::atomic<uint64_t> connect_failures{0};
	std::mutex mu;
	std::vector<ConnRecord> conns;
	std::vector<std::string> problems; // corrupt, duplicate, partial, hang...
	size_t problem_count = 0;
	std::vector<long long> latency_us; // depth-1 round trips, when asked

	long long now_ms() const { return ms_since(t0); }

	void add(ConnRecord r);

	void problem(const std::string &what);

	void latency(long long us);
	long long max_latency_us = 0, max_latency_at_ms = 0; // when the slowest ended

	std::vector<ConnRecord> cuts();

	std::string problems_text();

	// Round trips slower than `us`.
	size_t slower_than(long long us);

	// The q-quantile of the recorded latencies, in microseconds.
	long long latency_quantile(double q);
};

struct VerifierOptions {
	uint16_t port = 0;
	int depth = 1;              // frames in flight
	size_t max_extra = 2048;    // random bytes after the 16-byte id
	int frames_per_conn = 0;    // 0: until stopped or cut; N: 1..N, then close
	milliseconds reply_timeout{5000};
	bool record_latency = false;
};

// A client thread: connects, sends frames carrying its connection id and a
// sequence number, checks that every reply is the echo of the next request
// (whole, in order, byte for byte, never twice), and reconnects whenever its
// connection ends, until stopped. Bounded: at most 100,000 connections.
class Verifier {
public:
	Verifier(Ledger &ledger, VerifierOptions opt, uint32_t seed);
	~Verifier() { finish(); }

	void finish();

	std::atomic<uint64_t> frames{0};

private:
	void run();

	void one_connection(Conn &c, ConnRecord &rec);

	// A wrong reply: the echo of an earlier request (twice), of a later one
	// (one skipped), or anything else (corrupt).
	static std::string classify(const std::string &got, const std::string &want);

	Ledger &ledger_;
	VerifierOptions opt_;
	std::mt19937 rng_;
	std::atomic<bool> stop_{false};
	std::thread thread_;
};

using Verifiers = std::vector<std::unique_ptr<Verifier>>;

Verifiers start_verifiers(Ledger &ledger, size_t n, VerifierOptions base, uint32_t seed,
			  bool mix = true);

void finish(Verifiers &v);

// --- the proxy's side ----------------------------------------------------------

// VmRSS summed over the newest process of every shard, in KiB.
long shards_rss_kib(const Proxy &proxy);

// The shards' RSS once settled: the lowest of samples over `window`. RSS
// only falls while shards settle (the stack pool is scavenged within
// 100-200 ms, freed pages go back), so the minimum is the settled value and
// one sample taken during a hiccup does not count.
long settled_rss_kib(const Proxy &proxy, milliseconds window = milliseconds(1500));

// The slack allowed over the starting RSS (summed over the shards), in KiB.
// The start is taken after a warm-up, so the relay's buffer pool, the stack
// pool and the allocator's caches are already in it. What may still grow
// is what the fault itself makes the shards keep, `pooled_kib` (buffers
// returned to the per-listener pool, which keeps up to 256; a case passes
// what its fault can leave there), plus 3 MiB of allocator and kernel noise
// (mimalloc pages, page tables, io_uring): on a loaded 2-core machine the
// growth measured 0.1 to 2.5 MiB per case. So a leak of per-connection
// state is caught where the case opens thousands of connections: 5,000
// garbage connections (4,500 after the warm-up batch) leaking 1 KiB each
// (session + relay + pollDescs) is 4.4 MiB; one stack (8+ KiB resident) or
// one buffer (64 KiB) per connection is far more, in every case. Under ASan
// freed memory sits in quarantine and shadow pages come and go (growth of
// 2 to 13 MiB measured): 24 MiB there, which still catches stacks and
// buffers.
long rss_slack_kib(long pooled_kib = 0);

// "Served with normal latency" on a shared 2-core machine: the 99th
// percentile stays small, and at most two round trips took over a second.
// A shard held up by the fault would stall every client it serves at once
// (and one stuck for good shows as a hang: no reply within 5 s); a single
// slow round trip is the machine (another job, a loopback retransmission
// after 200 ms, 400 ms...), not the proxy.
void check_latency(Ledger &ledger);

// Opens `n` new connections, one verified round trip each; failures.
// Their client addresses go to *addrs.
int serve_failures(uint16_t port, int n, uint32_t seed,
		   std::vector<std::string> *addrs = nullptr);


// Keeps 127.0.0.1:port bound (SO_REUSEADDR, not listening: connects are
// refused) so that no ephemeral connect takes it while its server is down;
// a server with SO_REUSEADDR (frameecho) can still bind and listen on it.
class PortHolder {
public:
	explicit PortHolder(uint16_t port);
	~PortHolder() { ::close(fd_); }
	PortHolder(const PortHolder &) = delete;
	PortHolder &operator=(const PortHolder &) = delete;
	bool ok() const { return ok_; }

private:
	int fd_ = -1;
	bool ok_ = false;
};

// Checks that every cut has an access line with one of `reasons`; the
// failures, one per line (empty: all good).
std::string unexplained_cuts(Proxy &proxy, const std::vector<ConnRecord> &cuts,
			     const std::set<std::string> &reasons,
			     milliseconds timeout = milliseconds(10000));

// Every cut, one per line: the client, when it ended (ms since the
// ledger's t0), the batch it met the end on and the silence before it, and
// the proxy's access line for it (waited for up to `timeout`).
std::string describe_cuts(Proxy &proxy, const std::vector<ConnRecord> &cuts,
			  milliseconds timeout = milliseconds(5000));

// No client of the ledger was cut; when one was, each cut is named.
void check_no_cuts(Proxy &proxy, Ledger &ledger);

// What the proxy's stderr says that it must not: a sanitizer report (UBSan
// goes on after one unless told to halt) or a shard that died on its own.
// Empty when clean; `deaths_allowed` for the case that kills shards itself.
std::string proxy_trouble(const Proxy &proxy, bool deaths_allowed = false);

// "reason=count ..." over the access lines of `clients`.
std::string reason_counts(const std::map<std::string, std::vector<LogRecord>> &access,
			  const std::vector<std::string> &clients);

std::string join(const std::set<std::string> &s);

// Runs `n` verified round trips through the proxy to warm it (buffers,
// stacks, allocator) before the starting RSS is taken.
void warm_up(uint16_t port, int conns, uint32_t seed);

// A config with two listeners on 127.0.0.1:0: `fault` (its upstream is
// the faulty one, with `fault_extra` settings) and `healthy` (frameecho,
// with `healthy_extra`).
std::string two_listeners(const std::string &name, const std::string &fault_server,
			  const std::string &healthy_server, const std::string &fault_extra,
			  const std::string &healthy_extra);

} // namespace fault
} // namespace itest

#endif
