// Integration tests: outlier ejection (proxy/outlier.h). Servers that
// accept and then reset, or answer far slower than the others, are taken
// out, but never more than max_ejected of them at once.
#include "tests/proxy/harness.hpp"

using namespace itest;

namespace {

const milliseconds T5(5000);

// Accepts every connection and resets it (SO_LINGER 0) once the first
// bytes arrive: connects succeed, connections never carry anything back.
class ResettingServer {
public:
	ResettingServer()
	{
		fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(fd_ >= 0);
		sockaddr_in sa = inet_addr_port("127.0.0.1", 0);
		REQUIRE(::bind(fd_, (sockaddr *)&sa, sizeof(sa)) == 0);
		REQUIRE(::listen(fd_, 128) == 0);
		socklen_t len = sizeof(sa);
		REQUIRE(::getsockname(fd_, (sockaddr *)&sa, &len) == 0);
		port_ = ntohs(sa.sin_port);
		thread_ = std::thread([this] { run(); });
	}
	~ResettingServer()
	{
		stop_ = true;
		thread_.join();
		::close(fd_);
	}
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
	size_t accepted() const { return accepted_; }

private:
	void run()
	{
		while (!stop_) {
			pollfd p = {fd_, POLLIN, 0};
			if (::poll(&p, 1, 20) <= 0)
				continue;
			int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (c < 0)
				continue;
			accepted_++;
			// After the first bytes: the connect has surely completed,
			// so this is a connection the server broke, not a connect
			// that failed.
			pollfd in = {c, POLLIN, 0};
			::poll(&in, 1, 1000);
			linger l = {1, 0};
			::setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			::close(c);
		}
	}
	int fd_ = -1;
	uint16_t port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<size_t> accepted_{0};
	std::thread thread_;
};

size_t count_out(const Proxy &proxy, const std::string &reason)
{
	size_t n = 0;
	for (auto &r : proxy.records("upstream out"))
		n += r.get("reason") == reason;
	return n;
}

} // namespace

TEST_CASE("outlier: a server that resets every connection is taken out after "
	  "outlier_errors; the clients then go to the good one", "[outlier]")
{
	ResettingServer bad;
	Echo good;
	Proxy proxy({"--server", bad.addr(), "--server", good.addr(), "--admin",
		     "127.0.0.1:0", "--set", "outlier_errors=3", "--fail-timeout", "30s"});
	size_t served = 0, cut = 0;
	for (int i = 0; i < 12; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		if (c.roundtrip("try " + std::to_string(i), milliseconds(2000)))
			served++;
		else
			cut++;
	}
	INFO(proxy.log_tail(20));
	// Round robin alternates: three resets, then only the good one.
	CHECK(cut == 3);
	CHECK(served == 9);
	CHECK(count_out(proxy, "resets") == 1);
	// Out: new clients no longer even reach it. (A connect that met a
	// reset before it completed is a failed connect, retried on the
	// good one, so it may have been reached more than three times.)
	const size_t reached = bad.accepted();
	for (int i = 0; i < 6; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		CHECK(c.roundtrip("after " + std::to_string(i), milliseconds(2000)));
	}
	CHECK(bad.accepted() == reached);
	CHECK(wait_until([&] {
		return metric_sum(http_get(proxy.admin_port(), "/metrics"),
				  "frameproxy_upstream_outlier_ejections_total") == 1;
	}, milliseconds(1000)));
	for (auto &r : proxy.records("access"))
		if (r.get("reason") != "client_eof")
			CHECK(r.get("reason") == "upstream_reset");
}

TEST_CASE("outlier: with every server resetting, max_ejected keeps half of them in",
	  "[outlier]")
{
	ResettingServer a, b;
	Proxy proxy({"--server", a.addr(), "--server", b.addr(), "--set", "outlier_errors=2",
		     "--fail-timeout", "30s"});
	for (int i = 0; i < 12; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		CHECK_FALSE(c.roundtrip("doomed", milliseconds(2000)));
	}
	INFO(proxy.log_tail(20));
	CHECK(count_out(proxy, "resets") == 1);
	CHECK(proxy.records("upstream kept in: max_ejected reached").size() >= 1);
	// The one kept in still takes clients (none is turned away as
	// no_upstream).
	for (auto &r : proxy.records("access"))
		CHECK(r.get("reason") == "upstream_reset");
}

TEST_CASE("outlier: rpc, a server answering ten times slower than the others is "
	  "taken out by outlier_latency", "[outlier][rpc]")
{
	Echo fast1, fast2, slow({"--delay", "20ms"});
	Proxy proxy({"--mode", "rpc", "--server", fast1.addr(), "--server", fast2.addr(),
		     "--server", slow.addr(), "--set", "outlier_latency=4",
		     "--fail-timeout", "30s"});
	std::vector<Conn> clients;
	for (int i = 0; i < 4; i++) {
		clients.push_back(Conn::connect(proxy.port()));
		REQUIRE(clients.back().valid());
	}
	for (int round = 0; round < 60; round++)
		for (auto &c : clients)
			REQUIRE(c.roundtrip("r" + std::to_string(round), T5));
	INFO(proxy.log_tail(20));
	std::vector<LogRecord> out = proxy.records("upstream out");
	REQUIRE(out.size() == 1);
	CHECK(out[0].get("reason") == "outlier_latency");
	CHECK(out[0].get("upstream") == slow.addr());
	CHECK(count_out(proxy, "outlier_latency") == 1);
}
