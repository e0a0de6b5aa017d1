// The admin endpoint under the real supervisor (issue 17): it cannot be
// starved by idle or slow connections.
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

using namespace itest;

namespace {

int connect_nb(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

// True when the server closed fd (EOF or reset); reads what is there.
bool closed_by_server(int fd)
{
	char buf[1024];
	while (true) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			continue;
		if (r == 0)
			return true;
		return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
	}
}

// 3,000 connections that never send a byte (opened once: the server may
// close them) and 200 slowloris clients that send a header line every
// 100 ms and never end it, reconnecting whenever they are closed.
struct Flood {
	std::thread thread;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> idle_closed{0}, slow_closed{0}, slow_opened{0};
	std::vector<int> idle, slow;

	void run(uint16_t port)
	{
		for (int i = 0; i < 3000; i++)
			idle.push_back(connect_nb(port));
		for (int i = 0; i < 200; i++)
			slow.push_back(connect_nb(port));
		int round = 0;
		while (!stop) {
			std::this_thread::sleep_for(milliseconds(100));
			round++;
			for (int &fd : idle)
				if (fd >= 0 && closed_by_server(fd)) {
					close(fd);
					fd = -1;
					idle_closed++;
				}
			for (int &fd : slow) {
				if (fd >= 0 && closed_by_server(fd)) {
					close(fd);
					fd = -1;
					slow_closed++;
				}
				if (fd < 0) {
					fd = connect_nb(port);
					slow_opened++;
					continue;
				}
				std::string piece = round == 1 ? "GET /metrics HTTP/1.1\r\n"
							       : "X-Slow: a\r\n";
				(void)!send(fd, piece.data(), piece.size(),
					    MSG_NOSIGNAL | MSG_DONTWAIT);
			}
		}
		for (int fd : idle)
			if (fd >= 0)
				close(fd);
		for (int fd : slow)
			if (fd >= 0)
				close(fd);
	}
};

} // namespace

TEST_CASE("admin: scrapes are answered within 1 s while 3,000 idle and 200 "
	  "slowloris connections hold the port", "[admin]")
{
	// The flood needs about 3,200 fds of the test process.
	struct rlimit rl;
	REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	REQUIRE(rl.rlim_max >= 4000);
	if (rl.rlim_cur < 4000) {
		rl.rlim_cur = 4000;
		REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	Echo echo;
	Proxy proxy({"--shards", "1", "--admin", "127.0.0.1:0", "--server", echo.addr()});
	REQUIRE(proxy.wait_ready());
	uint16_t admin = proxy.admin_port();
	REQUIRE(admin != 0);

	Flood flood;
	flood.thread = std::thread([&] { flood.run(admin); });
	std::this_thread::sleep_for(milliseconds(300)); // the flood is in

	int answered = 0, slow = 0;
	milliseconds worst(0);
	for (int i = 0; i < 12; i++) {
		auto t0 = Clock::now();
		Conn c = Conn::connect(admin);
		REQUIRE(c.valid());
		REQUIRE(c.send_all("GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n") == Io::Ok);
		std::string out;
		c.wait_closed(milliseconds(3000), &out);
		auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
		worst = std::max(worst, took);
		if (out.compare(0, 12, "HTTP/1.1 200") == 0 &&
		    out.find("frameproxy_shard_up") != std::string::npos)
			answered++;
		if (took > milliseconds(1000))
			slow++;
		std::this_thread::sleep_for(milliseconds(150));
	}
	flood.stop = true;
	flood.thread.join();
	INFO("worst scrape " << worst.count() << " ms; idle closed "
	     << flood.idle_closed << ", slowloris closed " << flood.slow_closed);
	CHECK(answered == 12);
	CHECK(slow == 0);
	// The flood was real: the server had to let idle sockets go to answer,
	// and the slowloris clients kept coming back.
	CHECK(flood.idle_closed > 2000);
	CHECK(flood.slow_closed > 200);
	// And the supervisor is still well.
	CHECK(http_get(admin, "/stats").compare(0, 12, "HTTP/1.1 200") == 0);
}
