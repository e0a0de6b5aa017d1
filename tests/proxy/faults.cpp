// The fault suite's shared machinery (declared and described in
// faults.hpp).
#include "tests/proxy/faults.hpp"

#include <deque>

namespace itest {
namespace fault {

bool sanitized()
{
	return env_long("FRAMEPROXY_SANITIZED", 0) != 0;
}

std::string unique_source()
{
	static std::atomic<uint32_t> next{0};
	uint32_t n = next++;
	return "127." + std::to_string(64 + (n / (250u * 256u)) % 64) + "." +
	       std::to_string((n / 250u) % 256) + "." + std::to_string(n % 250 + 1);
}

void put_u64(std::string &s, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		s += (char)(v >> (8 * i));
}

uint64_t get_u64(const std::string &s, size_t at)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | (uint8_t)s[at + i];
	return v;
}

std::string seq_payload(uint64_t uid, uint64_t seq, size_t extra, std::mt19937 &rng)
{
	std::string s;
	s.reserve(16 + extra);
	put_u64(s, uid);
	put_u64(s, seq);
	for (size_t i = 0; i < extra; i++)
		s += (char)(rng() & 0xff);
	return s;
}

uint64_t new_uid()
{
	static std::atomic<uint64_t> next{1};
	return next++;
}

uint32_t frame_len(const char *h)
{
	const uint8_t *u = (const uint8_t *)h;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

Io FrameReader::next(int fd, std::string &payload, Clock::time_point deadline,
		     uint32_t max)
{
	char tmp[65536];
	for (;;) {
		if (buf.size() >= 4) {
			uint32_t len = frame_len(buf.data());
			if (len > max)
				return Io::Error;
			if (buf.size() >= 4 + (size_t)len) {
				payload = buf.substr(4, len);
				buf.erase(0, 4 + (size_t)len);
				return Io::Ok;
			}
		}
		ssize_t k = ::recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (k > 0) {
			buf.append(tmp, (size_t)k);
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
		auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
		if (left <= 0)
			return Io::Timeout;
		pollfd p = {fd, POLLIN, 0};
		poll(&p, 1, (int)std::min<long long>(left, 200));
	}
}

void Ledger::add(ConnRecord r)
{
	r.ended_ms = now_ms();
	std::lock_guard<std::mutex> lock(mu);
	conns.push_back(std::move(r));
}

void Ledger::problem(const std::string &what)
{
	std::lock_guard<std::mutex> lock(mu);
	problem_count++;
	if (problems.size() < 20)
		problems.push_back(what);
}

void Ledger::latency(long long us)
{
	std::lock_guard<std::mutex> lock(mu);
	latency_us.push_back(us);
	if (us > max_latency_us) {
		max_latency_us = us;
		max_latency_at_ms = now_ms();
	}
}

std::vector<ConnRecord> Ledger::cuts()
{
	std::lock_guard<std::mutex> lock(mu);
	std::vector<ConnRecord> out;
	for (auto &c : conns)
		if (c.cut())
			out.push_back(c);
	return out;
}

std::string Ledger::problems_text()
{
	std::lock_guard<std::mutex> lock(mu);
	std::string s = std::to_string(problem_count) + " problem(s)";
	for (auto &p : problems)
		s += "\n  " + p;
	return s;
}

size_t Ledger::slower_than(long long us)
{
	std::lock_guard<std::mutex> lock(mu);
	size_t n = 0;
	for (auto x : latency_us)
		n += x > us;
	return n;
}

long long Ledger::latency_quantile(double q)
{
	std::lock_guard<std::mutex> lock(mu);
	if (latency_us.empty())
		return 0;
	std::vector<long long> v = latency_us;
	std::sort(v.begin(), v.end());
	return v[std::min(v.size() - 1, (size_t)(q * (double)v.size()))];
}

Verifier::Verifier(Ledger &ledger, VerifierOptions opt, uint32_t seed)
	: ledger_(ledger), opt_(opt), rng_(seed)
{
	thread_ = std::thread([this] { run(); });
}

void Verifier::finish()
{
	stop_ = true;
	if (thread_.joinable())
		thread_.join();
}

void Verifier::run()
{
	for (int i = 0; i < 100000 && !stop_; i++) {
		Conn c = Conn::connect(opt_.port, unique_source(), milliseconds(3000));
		if (!c.valid()) {
			ledger_.connect_failures++;
			std::this_thread::sleep_for(milliseconds(20));
			continue;
		}
		ConnRecord rec;
		rec.client = c.local_addr();
		one_connection(c, rec);
		// As a client would: FIN when done or told EOF; RST after
		// anything else, so nothing is left half-open.
		if (rec.end == "closed" || rec.end == "eof")
			c.close();
		else
			c.abort();
		ledger_.add(rec);
	}
}

void Verifier::one_connection(Conn &c, ConnRecord &rec)
{
	const uint64_t uid = new_uid();
	const uint64_t limit = opt_.frames_per_conn > 0
				       ? 1 + rng_() % (uint32_t)opt_.frames_per_conn
				       : UINT64_MAX;
	uint64_t seq = 0;
	FrameReader reader;
	std::deque<std::string> outstanding;
	long long sent_ms = ledger_.now_ms(); // the connect, then each batch
	auto fail = [&](const std::string &end, const std::string &detail) {
		rec.end = end;
		if (!rec.cut())
			ledger_.problem(end + " on " + rec.client + " after " +
					std::to_string(rec.frames) + " frames: " + detail);
	};
	while (!stop_ && rec.frames < limit) {
		uint64_t n = std::min<uint64_t>((uint64_t)opt_.depth, limit - rec.frames);
		std::string batch;
		for (uint64_t k = 0; k < n; k++) {
			outstanding.push_back(seq_payload(uid, seq++, rng_() % (opt_.max_extra + 1), rng_));
			batch += frame(outstanding.back());
		}
		auto sent_at = Clock::now();
		rec.batch_ms = ledger_.now_ms();
		rec.silent_ms = rec.batch_ms - sent_ms;
		sent_ms = rec.batch_ms;
		Io s = c.send_all(batch, opt_.reply_timeout);
		if (s != Io::Ok) {
			// Sending into a cut connection: what did the reader get?
			std::string got;
			Io r = reader.next(c.fd(), got, Clock::now() + milliseconds(1000));
			if (r == Io::Ok)
				fail("error", "a reply after the send failed (" + std::string(io_name(s)) + ")");
			else if (!reader.buf.empty())
				fail("partial", "a partial frame then " + std::string(io_name(r)));
			else if (r == Io::Eof || r == Io::Reset)
				fail(io_name(r), "");
			else
				fail(s == Io::Timeout ? "hang" : "error",
				     std::string("send ") + io_name(s) + ", read " + io_name(r));
			return;
		}
		while (!outstanding.empty()) {
			std::string got;
			Io r = reader.next(c.fd(), got, Clock::now() + opt_.reply_timeout);
			if (r == Io::Eof || r == Io::Reset) {
				if (!reader.buf.empty())
					fail("partial", std::to_string(reader.buf.size()) +
							" bytes of a frame, then " + io_name(r));
				else
					fail(io_name(r), "");
				return;
			}
			if (r == Io::Timeout) {
				fail("hang", "no reply within " +
					     std::to_string(opt_.reply_timeout.count()) + " ms");
				return;
			}
			if (r != Io::Ok) {
				fail("corrupt", "unreadable frame header");
				return;
			}
			const std::string &want = outstanding.front();
			if (got != want) {
				fail(classify(got, want), "reply of " + std::to_string(got.size()) +
					 " bytes, expected " + std::to_string(want.size()));
				return;
			}
			outstanding.pop_front();
			rec.frames++;
			frames++;
			ledger_.frames++;
			if (opt_.record_latency && n == 1)
				ledger_.latency(std::chrono::duration_cast<std::chrono::microseconds>(
							Clock::now() - sent_at).count());
		}
	}
	rec.end = "closed";
	rec.batch_ms = rec.silent_ms = -1;
}

std::string Verifier::classify(const std::string &got, const std::string &want)
{
	if (got.size() < 16 || get_u64(got, 0) != get_u64(want, 0))
		return "corrupt";
	uint64_t g = get_u64(got, 8), w = get_u64(want, 8);
	if (g < w)
		return "duplicate";
	if (g > w)
		return "reordered";
	return "corrupt";
}

Verifiers start_verifiers(Ledger &ledger, size_t n, VerifierOptions base, uint32_t seed,
			  bool mix)
{
	Verifiers v;
	for (size_t i = 0; i < n; i++) {
		VerifierOptions o = base;
		if (mix) {
			// Half pipelined (4 in flight), half churning (a new
			// connection every 1..30 frames).
			o.depth = i % 2 ? 4 : 1;
			o.frames_per_conn = i % 4 < 2 ? 0 : 30;
		}
		v.emplace_back(new Verifier(ledger, o, seed + (uint32_t)i));
	}
	return v;
}

void finish(Verifiers &v)
{
	for (auto &x : v)
		x->finish();
}

long shards_rss_kib(const Proxy &proxy)
{
	long sum = 0;
	for (auto &kv : proxy.shard_pids()) {
		long r = Process::rss_kib_of(kv.second);
		if (r > 0)
			sum += r;
	}
	return sum;
}

long settled_rss_kib(const Proxy &proxy, milliseconds window)
{
	long best = -1;
	auto deadline = Clock::now() + window;
	for (int i = 0; i < 100; i++) {
		long r = shards_rss_kib(proxy);
		if (r > 0 && (best < 0 || r < best))
			best = r;
		if (Clock::now() >= deadline)
			break;
		std::this_thread::sleep_for(milliseconds(100));
	}
	return best;
}

long rss_slack_kib(long pooled_kib)
{
	return pooled_kib + (sanitized() ? 24 * 1024 : 3 * 1024);
}

void check_latency(Ledger &ledger)
{
	CHECK(ledger.latency_quantile(0.99) < (sanitized() ? 300 : 100) * 1000);
	CHECK(ledger.slower_than(1000 * 1000) <= 2);
}

int serve_failures(uint16_t port, int n, uint32_t seed,
		   std::vector<std::string> *addrs)
{
	int failures = 0;
	for (int i = 0; i < n; i++) {
		Conn c = Conn::connect(port, unique_source());
		if (c.valid() && addrs)
			addrs->push_back(c.local_addr());
		if (!c.valid() || !c.roundtrip(random_bytes(1 + (seed + i) % 3000, seed + i),
					       milliseconds(10000)))
			failures++;
	}
	return failures;
}

PortHolder::PortHolder(uint16_t port)
{
	fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sockaddr_in sa = inet_addr_port("127.0.0.1", port);
	ok_ = fd_ >= 0 && bind(fd_, (sockaddr *)&sa, sizeof(sa)) == 0;
}

std::string unexplained_cuts(Proxy &proxy, const std::vector<ConnRecord> &cuts,
			     const std::set<std::string> &reasons,
			     milliseconds timeout)
{
	std::vector<std::string> clients;
	for (auto &c : cuts)
		clients.push_back(c.client);
	std::map<std::string, std::vector<LogRecord>> access;
	proxy.wait_access_all(clients, timeout, &access);
	std::string out;
	size_t bad = 0;
	for (auto &c : cuts) {
		auto it = access.find(c.client);
		std::string why;
		if (it == access.end())
			why = "no access line";
		else if (!reasons.count(it->second.back().get("reason")))
			why = "reason=" + it->second.back().get("reason");
		if (why.empty())
			continue;
		if (++bad <= 20)
			out += c.client + " (" + c.end + " after " + std::to_string(c.frames) +
			       " frames): " + why + "\n";
	}
	if (bad > 20)
		out += "... " + std::to_string(bad) + " in all\n";
	return out;
}

std::string describe_cuts(Proxy &proxy, const std::vector<ConnRecord> &cuts,
			  milliseconds timeout)
{
	std::vector<std::string> clients;
	for (auto &c : cuts)
		clients.push_back(c.client);
	std::map<std::string, std::vector<LogRecord>> access;
	proxy.wait_access_all(clients, timeout, &access);
	std::string out;
	size_t shown = 0;
	for (auto &c : cuts) {
		if (++shown > 20) {
			out += "... " + std::to_string(cuts.size()) + " in all\n";
			break;
		}
		out += c.client + ": " + c.end + " after " + std::to_string(c.frames) +
		       " frames at " + std::to_string(c.ended_ms) + " ms";
		if (c.batch_ms >= 0)
			out += ", on a batch sent at " + std::to_string(c.batch_ms) + " ms after " +
			       std::to_string(c.silent_ms) + " ms silent";
		auto it = access.find(c.client);
		out += it == access.end() ? ": no access line\n"
					  : ": " + it->second.back().line + "\n";
	}
	return out;
}

void check_no_cuts(Proxy &proxy, Ledger &ledger)
{
	auto cuts = ledger.cuts();
	INFO("connections cut (ms since the clients started):\n" << describe_cuts(proxy, cuts));
	CHECK(cuts.empty());
}

std::string proxy_trouble(const Proxy &proxy, bool deaths_allowed)
{
	std::string out;
	for (const auto &line : split_lines(proxy.log_tail(1u << 30))) {
		bool bad = line.find("AddressSanitizer") != std::string::npos ||
			   line.find("LeakSanitizer") != std::string::npos ||
			   line.find("runtime error:") != std::string::npos ||
			   (!deaths_allowed && line.find("msg=\"shard died\"") != std::string::npos) ||
			   line.find("level=error") != std::string::npos;
		if (bad && out.size() < 4000)
			out += line + "\n";
	}
	return out;
}

std::string reason_counts(const std::map<std::string, std::vector<LogRecord>> &access,
			  const std::vector<std::string> &clients)
{
	std::map<std::string, size_t> n;
	for (auto &c : clients) {
		auto it = access.find(c);
		n[it == access.end() ? "(none)" : it->second.back().get("reason")]++;
	}
	std::string out;
	for (auto &kv : n)
		out += (out.empty() ? "" : " ") + kv.first + "=" + std::to_string(kv.second);
	return out;
}

std::string join(const std::set<std::string> &s)
{
	std::string out;
	for (auto &x : s)
		out += (out.empty() ? "" : ",") + x;
	return out;
}

void warm_up(uint16_t port, int conns, uint32_t seed)
{
	std::vector<std::thread> t;
	for (int i = 0; i < conns; i++)
		t.emplace_back([=] {
			Conn c = Conn::connect(port, unique_source());
			for (int k = 0; k < 20 && c.valid(); k++)
				if (!c.roundtrip(random_bytes(4000, seed + (uint32_t)(i * 100 + k))))
					break;
		});
	for (auto &x : t)
		x.join();
}

std::string two_listeners(const std::string &name, const std::string &fault_server,
			  const std::string &healthy_server, const std::string &fault_extra,
			  const std::string &healthy_extra)
{
	std::string path = tmp().file(name);
	write_file(path, "[listener fault]\nlisten = 127.0.0.1:0\nserver = " + fault_server +
		   "\n" + fault_extra + "\n[listener healthy]\nlisten = 127.0.0.1:0\nserver = " +
		   healthy_server + "\n" + healthy_extra + "\n");
	return path;
}

} // namespace fault
} // namespace itest
