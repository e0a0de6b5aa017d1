// The integration-test harness's definitions (declared and described in
// harness.hpp).
#include "tests/proxy/harness.hpp"

namespace itest {

bool wait_until(const std::function<bool()> &pred, milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	for (;;) {
		if (pred())
			return true;
		if (Clock::now() >= deadline)
			return false;
		std::this_thread::sleep_for(milliseconds(50));
	}
}

long long ms_since(Clock::time_point t0)
{
	return std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
}

std::string env_or(const char *name, const std::string &fallback)
{
	const char *v = getenv(name);
	return v && *v ? std::string(v) : fallback;
}

long env_long(const char *name, long fallback)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return fallback;
	char *end = nullptr;
	long n = strtol(v, &end, 10);
	return end && *end == '\0' ? n : fallback;
}

std::string binary(const char *env)
{
	const char *v = getenv(env);
	INFO("environment variable " << env
	     << " must name the executable (meson's test() env sets it)");
	REQUIRE(v != nullptr);
	REQUIRE(access(v, X_OK) == 0);
	return v;
}

std::string poller()
{
	return env_or("FRAMEPROXY_POLLER", "epoll");
}

std::atomic<bool> &any_failure()
{
	static std::atomic<bool> failed{false};
	return failed;
}

TempDir::TempDir()
{
	std::string base = env_or("TMPDIR", "/tmp");
	std::vector<char> tmpl(base.begin(), base.end());
	const char suffix[] = "/frameproxy-itest.XXXXXX";
	tmpl.insert(tmpl.end(), suffix, suffix + sizeof(suffix));
	if (!mkdtemp(tmpl.data()))
		throw std::runtime_error("mkdtemp failed");
	path_ = tmpl.data();
}

TempDir::~TempDir()
{
	if (any_failure() || getenv("FRAMEPROXY_KEEP_TMP")) {
		fprintf(stderr, "integration logs kept in %s\n", path_.c_str());
		return;
	}
	for (const auto &f : files_)
		unlink(f.c_str());
	rmdir(path_.c_str());
}

std::string TempDir::file(const std::string &stem)
{
	std::lock_guard<std::mutex> lock(mu_);
	std::string p = path_ + "/" + std::to_string(++counter_) + "-" + stem;
	files_.push_back(p);
	return p;
}

TempDir &tmp()
{
	static TempDir dir;
	return dir;
}

std::string read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	std::stringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

void write_file(const std::string &path, const std::string &text)
{
	std::ofstream out(path, std::ios::binary | std::ios::trunc);
	out << text;
}

std::vector<std::string> split_lines(const std::string &text)
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

std::vector<std::string> complete_lines(const std::string &text)
{
	auto lines = split_lines(text);
	if (!text.empty() && text.back() != '\n' && !lines.empty())
		lines.pop_back();
	return lines;
}

std::string tail(const std::string &text, size_t max_lines)
{
	auto lines = split_lines(text);
	size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
	std::string out;
	for (size_t i = from; i < lines.size(); i++)
		out += lines[i] + "\n";
	return out;
}

std::string LogRecord::get(const std::string &k) const
{
	auto it = kv.find(k);
	return it == kv.end() ? std::string() : it->second;
}

unsigned long long LogRecord::num(const std::string &k) const
{
	return strtoull(get(k).c_str(), nullptr, 10);
}

bool LogRecord::is(const std::string &k, const std::string &v) const
{
	auto it = kv.find(k);
	return it != kv.end() && it->second == v;
}

LogRecord parse_logfmt(const std::string &line)
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

long long log_ms(const LogRecord &r)
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

std::vector<LogRecord> parse_log(const std::string &text)
{
	std::vector<LogRecord> out;
	for (const auto &line : complete_lines(text))
		out.push_back(parse_logfmt(line));
	return out;
}

std::mutex &registry_mutex()
{
	static std::mutex mu;
	return mu;
}

std::set<Process *> &registry()
{
	static std::set<Process *> live;
	return live;
}

void close_fds_from(int first)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned)first, ~0u, 0u) == 0)
		return;
#endif
	for (int fd = first; fd < 65536; fd++)
		close(fd);
}

Process::Process(const std::vector<std::string> &argv, const std::string &name,
		 int err_fd)
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

Process::~Process()
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

std::string Process::command_line() const
{
	std::string s;
	for (const auto &a : argv_)
		s += (s.empty() ? "" : " ") +
		     (a.find(' ') != std::string::npos ? "'" + a + "'" : a);
	return s;
}

bool Process::running()
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

bool Process::wait_exit(milliseconds timeout)
{
	auto deadline = Clock::now() + timeout;
	while (running()) {
		if (Clock::now() >= deadline)
			return false;
		std::this_thread::sleep_for(milliseconds(5));
	}
	return true;
}

int Process::exit_code() const
{
	if (!exited_)
		return -1;
	if (WIFEXITED(status_))
		return WEXITSTATUS(status_);
	if (WIFSIGNALED(status_))
		return 128 + WTERMSIG(status_);
	return -1;
}

void Process::signal(int sig)
{
	if (!exited_)
		kill(pid_, sig);
}

bool Process::wait_line(Stream s, const std::function<bool(const std::string &)> &pred,
			milliseconds timeout, std::string *line_out)
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

long Process::rss_kib_of(pid_t pid)
{
	std::ifstream in("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(in, line)) {
		if (line.compare(0, 6, "VmRSS:") == 0)
			return strtol(line.c_str() + 6, nullptr, 10);
	}
	return -1;
}

long Process::cpu_ticks_of(pid_t pid)
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

bool Process::ended_of(pid_t pid)
{
	std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
	size_t rp = stat.rfind(')');
	return rp == std::string::npos || rp + 2 >= stat.size() ||
	       stat[rp + 2] == 'Z' || stat[rp + 2] == 'X';
}

std::string be32(uint32_t n)
{
	std::string s(4, '\0');
	s[0] = (char)(n >> 24);
	s[1] = (char)(n >> 16);
	s[2] = (char)(n >> 8);
	s[3] = (char)n;
	return s;
}

std::string frame(const std::string &payload)
{
	return be32((uint32_t)payload.size()) + payload;
}

std::string random_bytes(size_t n, uint32_t seed)
{
	std::mt19937 rng(seed);
	std::string s(n, '\0');
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(rng() & 0xff);
	return s;
}

sockaddr_in inet_addr_port(const std::string &ip, uint16_t port)
{
	sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1)
		throw std::runtime_error("bad IPv4 address " + ip);
	return sa;
}

std::string sockaddr_text(const sockaddr_in &sa)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	return std::string(ip) + ":" + std::to_string(ntohs(sa.sin_port));
}

const char *io_name(Io r)
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

std::ostream &operator<<(std::ostream &os, Io r)
{
	return os << io_name(r);
}

Conn &Conn::operator=(Conn &&o) noexcept
{
	if (this != &o) {
		close();
		fd_ = o.fd_;
		o.fd_ = -1;
	}
	return *this;
}

Conn Conn::connect(uint16_t port, const std::string &src,
		   milliseconds timeout,
		   const std::string &dst)
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

std::string Conn::local_addr() const
{
	sockaddr_in sa;
	socklen_t len = sizeof(sa);
	getsockname(fd_, (sockaddr *)&sa, &len);
	return sockaddr_text(sa);
}

void Conn::close()
{
	if (fd_ >= 0)
		::close(fd_);
	fd_ = -1;
}

void Conn::abort()
{
	if (fd_ < 0)
		return;
	linger lg = {1, 0};
	setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close();
}

Io Conn::send_all(const std::string &data, milliseconds timeout)
{
	return send_all(data.data(), data.size(), timeout);
}

Io Conn::send_all(const void *data, size_t n, milliseconds timeout)
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

ssize_t Conn::try_send(const void *data, size_t n)
{
	ssize_t k = ::send(fd_, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	return k;
}

Io Conn::send_frame(const std::string &payload, milliseconds timeout)
{
	return send_all(frame(payload), timeout);
}

Io Conn::read_exact(std::string &out, size_t n, milliseconds timeout)
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

Io Conn::read_frame(std::string &payload, milliseconds timeout,
		    uint32_t max)
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

bool Conn::roundtrip(const std::string &payload, milliseconds timeout)
{
	if (send_frame(payload, timeout) != Io::Ok)
		return false;
	std::string back;
	return read_frame(back, timeout) == Io::Ok && back == payload;
}

Io Conn::wait_closed(milliseconds timeout, std::string *data)
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

bool Conn::wait(short events, Clock::time_point deadline)
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

RefusingPort::RefusingPort()
{
	fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
	if (fd_ < 0 || bind(fd_, (sockaddr *)&sa, sizeof(sa)) < 0)
		throw std::runtime_error("bind for refusing port failed");
	socklen_t len = sizeof(sa);
	getsockname(fd_, (sockaddr *)&sa, &len);
	port_ = ntohs(sa.sin_port);
}

BlackHole::BlackHole()
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

TestUpstream::TestUpstream(Mode mode,
			   std::vector<std::string> frames,
			   milliseconds trickle)
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

TestUpstream::~TestUpstream()
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

size_t TestUpstream::accepted()
{
	std::lock_guard<std::mutex> lock(mu_);
	return conns_.size();
}

size_t TestUpstream::open_count()
{
	std::lock_guard<std::mutex> lock(mu_);
	size_t n = 0;
	for (const auto &c : conns_)
		n += !c.ended();
	return n;
}

bool TestUpstream::wait_accepted(size_t n, milliseconds timeout)
{
	std::unique_lock<std::mutex> lock(mu_);
	return cv_.wait_for(lock, timeout, [&] { return conns_.size() >= n; });
}

TestUpstream::ConnInfo TestUpstream::conn(size_t i)
{
	std::lock_guard<std::mutex> lock(mu_);
	return i < conns_.size() ? conns_[i] : ConnInfo();
}

std::vector<TestUpstream::ConnInfo> TestUpstream::conns()
{
	std::lock_guard<std::mutex> lock(mu_);
	return conns_;
}

bool TestUpstream::wait_all_ended(milliseconds timeout)
{
	std::unique_lock<std::mutex> lock(mu_);
	return cv_.wait_for(lock, timeout, [&] {
		for (const auto &c : conns_)
			if (!c.ended())
				return false;
		return true;
	});
}

bool TestUpstream::wait_conn(size_t i, milliseconds timeout,
			     const std::function<bool(const ConnInfo &)> &pred)
{
	std::unique_lock<std::mutex> lock(mu_);
	return cv_.wait_for(lock, timeout, [&] {
		return i < conns_.size() && pred(conns_[i]);
	});
}

void TestUpstream::close_all()
{
	std::lock_guard<std::mutex> lock(mu_);
	close_requested_ = true;
	char c = 1;
	(void)!write(wake_[1], &c, 1);
}

void TestUpstream::run()
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

void TestUpstream::accept_all()
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

void TestUpstream::send_blocking(int fd, const std::string &data)
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

void TestUpstream::read_some(size_t i, std::vector<char> &buf)
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

void TestUpstream::echo_whole_frames(size_t i, const char *data, size_t n)
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

void TestUpstream::trickle_some()
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

milliseconds startup_timeout()
{
	return milliseconds(env_long("FRAMEPROXY_STARTUP_MS", 15000));
}

Echo::Echo(std::vector<std::string> extra,
	   const std::string &listen)
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

Proxy::Proxy(std::vector<std::string> args,
	     const std::string &listener, const std::string &exe)
{
	std::vector<std::string> argv = {exe.empty() ? binary("FRAMEPROXY") : exe};
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
	} else if (poller() == "uring-completion") {
		argv.push_back("uring");
		argv.push_back("--uring-io");
		argv.push_back("completion");
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
	// --error-exitcode=9" (docs/TESTING.md: valgrind over the integration tests).
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

Proxy::~Proxy()
{
	if (!proc_)
		return;
	proc_->signal(SIGKILL);
	proc_->wait_exit(milliseconds(5000));
	std::vector<LogRecord> records = log();
	// Supervisors a binary upgrade started (not our children: they
	// outlive the one we started) go before any shard, as above.
	std::vector<pid_t> later;
	for (auto &r : records)
		if (r.is("msg", "upgrading: new supervisor started") ||
		    r.is("msg", "upgrading: checking the new binary"))
			later.push_back((pid_t)atoi(r.get("pid").c_str()));
	for (pid_t pid : later)
		if (pid > 0)
			::kill(pid, SIGKILL);
	for (pid_t pid : later)
		wait_until([&] { return pid <= 0 || Process::ended_of(pid); },
			   milliseconds(5000));
	for (auto &r : records)
		if (r.is("msg", "shard started"))
			::kill((pid_t)atoi(r.get("pid").c_str()), SIGKILL);
}

pid_t Proxy::supervisor_pid() const
{
	pid_t pid = proc_->pid();
	for (auto &r : log())
		if (r.is("msg", "upgrade complete"))
			pid = (pid_t)atoi(r.get("pid").c_str());
	return pid;
}

pid_t Proxy::shard_pid(unsigned index, milliseconds timeout)
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

bool Proxy::wait_ready(milliseconds timeout)
{
	return wait_record([](const LogRecord &r) {
		return r.is("msg", "ready");
	}, timeout);
}

std::vector<LogRecord> Proxy::records(const std::string &msg) const
{
	std::vector<LogRecord> out;
	for (auto &r : log())
		if (r.is("msg", msg))
			out.push_back(r);
	return out;
}

bool Proxy::wait_record(const std::function<bool(const LogRecord &)> &pred,
			milliseconds timeout, LogRecord *out)
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

bool Proxy::wait_access(const std::string &client, milliseconds timeout,
			LogRecord *out)
{
	return wait_record([&](const LogRecord &r) {
		return r.is("msg", "access") && r.is("client", client);
	}, timeout, out);
}

uint16_t Proxy::admin_port()
{
	LogRecord r;
	if (!wait_record([](const LogRecord &l) { return l.is("msg", "admin listening"); },
			 milliseconds(5000), &r))
		return 0;
	std::string a = r.get("address");
	return (uint16_t)atoi(a.substr(a.rfind(':') + 1).c_str());
}

bool Proxy::wait_access_count(size_t n, milliseconds timeout)
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

std::map<unsigned, pid_t> Proxy::shard_pids() const
{
	std::map<unsigned, pid_t> pids;
	for (auto &r : log())
		if (r.is("msg", "shard started"))
			pids[(unsigned)atoi(r.get("shard").c_str())] =
				(pid_t)atoi(r.get("pid").c_str());
	return pids;
}

uint16_t Proxy::listener_port(const std::string &name) const
{
	for (auto &r : records("listening")) {
		if (!r.is("listener", name))
			continue;
		std::string a = r.get("address");
		return (uint16_t)atoi(a.substr(a.rfind(':') + 1).c_str());
	}
	return 0;
}

std::map<std::string, std::vector<LogRecord>> Proxy::access_by_client() const
{
	std::map<std::string, std::vector<LogRecord>> out;
	for (auto &r : log())
		if (r.is("msg", "access"))
			out[r.get("client")].push_back(r);
	return out;
}

std::vector<std::string> Proxy::wait_access_all(const std::vector<std::string> &clients,
						milliseconds timeout,
						std::map<std::string, std::vector<LogRecord>> *out)
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

std::string http_get(uint16_t port, const std::string &path,
		     const std::string &method)
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

std::string http_body(const std::string &response)
{
	auto at = response.find("\r\n\r\n");
	return at == std::string::npos ? "" : response.substr(at + 4);
}

uint64_t metric_sum(const std::string &metrics, const std::string &family,
		    const std::string &having)
{
	uint64_t sum = 0;
	for (const auto &line : split_lines(metrics))
		if (line.compare(0, family.size() + 1, family + "{") == 0 &&
		    line.find(having) != std::string::npos)
			sum += strtoull(line.substr(line.rfind(' ') + 1).c_str(),
					nullptr, 10);
	return sum;
}

int run_to_exit(Process &p, milliseconds timeout)
{
	if (!p.wait_exit(timeout))
		return 124;
	return p.exit_code();
}

double json_double(const std::string &json, const std::string &key)
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

long long json_number(const std::string &json, const std::string &key)
{
	return (long long)json_double(json, key);
}

uint64_t metric(Proxy &proxy, const std::string &family, const std::string &having)
{
	return metric_sum(http_body(http_get(proxy.admin_port(), "/metrics")), family,
			  having);
}

size_t count_reason(const Proxy &proxy, const std::string &reason)
{
	size_t n = 0;
	for (const auto &r : proxy.records("access"))
		n += r.is("reason", reason);
	return n;
}

size_t count_records(const Proxy &proxy, const std::string &msg)
{
	return proxy.records(msg).size();
}

std::vector<Conn> idle_conns(uint16_t port, size_t n)
{
	std::vector<Conn> conns;
	for (size_t i = 0; i < n; i++) {
		Conn c = Conn::connect(port);
		REQUIRE(c.valid());
		REQUIRE(c.roundtrip("idle " + std::to_string(i)));
		conns.push_back(std::move(c));
	}
	return conns;
}

size_t roundtrips_ok(std::vector<Conn> &conns, const std::string &tag)
{
	size_t ok = 0;
	for (size_t i = 0; i < conns.size(); i++)
		ok += conns[i].roundtrip(tag + " " + std::to_string(i), milliseconds(5000));
	return ok;
}

} // namespace itest
