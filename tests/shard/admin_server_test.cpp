// shard/admin: the server over real sockets on 127.0.0.1, driven by a small
// poll loop in the test. Time is the test's own now_ns, so timeouts are
// checked without sleeping.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "json.hpp"
#include "shard/shard.h"
#include "shard/admin.h"
#include "shard/metrics.h"

namespace {

const int64_t S = 1000000000;

struct Server {
	admin_server a;
	uint16_t port = 0;
	int64_t now = 1000 * S;
	int renders = 0;
	int render_error = 0;
	size_t big_body = 0;      // > 0: /metrics is that many bytes of a pattern
	shard_metrics m;
	metrics_view view;

	Server()
	{
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		REQUIRE(admin_open(&a, (struct sockaddr *)&sin, sizeof(sin), 0600) == 0);
		socklen_t len = sizeof(sin);
		REQUIRE(admin_bound(&a, (struct sockaddr *)&sin, &len) == 0);
		port = ntohs(sin.sin_port);
		REQUIRE(port != 0);

		REQUIRE(metrics_map(&m, 4) == 0);
		shard_slot *s = metrics_claim(&m, 0, 1);
		REQUIRE(s != nullptr);
		s->pid = 77;
		snprintf(s->poller, sizeof(s->poller), "epoll");
		shard_slot_set_state(s, SHARD_STATE_READY);
		memset(&view, 0, sizeof(view));
		view.shards = 1;
		view.pid = 12;
	}
	~Server()
	{
		admin_close(&a);
		metrics_unmap(&m);
	}

	std::string last_body;    // the body of the last request rendered
	int post_status = 0;      // what a write returns

	static int render(void *arg, const admin_request *req, strbuf *body,
			  const char **type)
	{
		Server *s = static_cast<Server *>(arg);
		admin_route route = req->route;
		s->renders++;
		s->last_body.assign(req->body ? req->body : "", req->body_len);
		if (admin_route_writes(route)) {
			*type = "text/plain";
			strbuf_puts(body, "done\n");
			return s->post_status;
		}
		if (s->render_error)
			return s->render_error;
		if (route == ADMIN_METRICS && s->big_body) {
			for (size_t i = 0; i < s->big_body; i++) {
				char c = (char)('a' + i % 26);
				if (strbuf_append(body, &c, 1))
					return -ENOMEM;
			}
			return 0;
		}
		(void)type;
		if (route == ADMIN_METRICS)
			return metrics_render_prometheus(&s->m, &s->view, body);
		return metrics_render_json(&s->m, &s->view, body);
	}

	// One round of the supervisor's loop.
	void step(int timeout_ms = 0)
	{
		struct pollfd fds[1 + ADMIN_MAX_CLIENTS];
		size_t n = admin_pollfds(&a, fds, 1 + ADMIN_MAX_CLIENTS);
		REQUIRE(n >= 1);
		REQUIRE(poll(fds, n, timeout_ms) >= 0);
		admin_service(&a, fds, n, now, render, this);
	}

	int connect_client()
	{
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(fd >= 0);
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(port);
		REQUIRE(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
		return fd;
	}

	// Steps until the server has `count` clients (bounded).
	void accept_until(uint32_t count)
	{
		for (int i = 0; i < 200 && a.client_count < count; i++)
			step(10);
		REQUIRE(a.client_count == count);
	}

	// Steps and reads until the server closes the connection (bounded).
	std::string read_all(int fd)
	{
		std::string out;
		char buf[65536];
		for (int i = 0; i < 5000; i++) {
			step(1);
			while (true) {
				ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (r > 0) {
					out.append(buf, (size_t)r);
					continue;
				}
				if (r == 0)
					return out;
				REQUIRE((errno == EAGAIN || errno == EWOULDBLOCK));
				break;
			}
		}
		FAIL("the server never closed the connection");
		return out;
	}
};

void send_str(int fd, const std::string &s)
{
	REQUIRE(send(fd, s.data(), s.size(), MSG_NOSIGNAL) == (ssize_t)s.size());
}

// recv without waiting: true when nothing is there and the peer is open.
bool quiet(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool closed_by_peer(int fd)
{
	char c;
	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

struct Response {
	int status = 0;
	std::map<std::string, std::string> headers; // lower-case names
	std::string body;
};

Response parse_response(const std::string &raw)
{
	Response r;
	size_t end = raw.find("\r\n\r\n");
	INFO(raw.substr(0, 300));
	REQUIRE(end != std::string::npos);
	REQUIRE(raw.compare(0, 9, "HTTP/1.1 ") == 0);
	r.status = atoi(raw.c_str() + 9);
	size_t pos = raw.find("\r\n") + 2;
	while (pos < end) {
		size_t eol = raw.find("\r\n", pos);
		std::string line = raw.substr(pos, eol - pos);
		size_t colon = line.find(": ");
		REQUIRE(colon != std::string::npos);
		std::string name = line.substr(0, colon);
		for (char &c : name)
			c = (char)tolower((unsigned char)c);
		r.headers[name] = line.substr(colon + 2);
		pos = eol + 2;
	}
	r.body = raw.substr(end + 4);
	return r;
}

Response request(Server &s, const std::string &req)
{
	int fd = s.connect_client();
	send_str(fd, req);
	Response r = parse_response(s.read_all(fd));
	close(fd);
	REQUIRE(r.headers["connection"] == "close");
	return r;
}

} // namespace

TEST_CASE("GET /metrics serves the Prometheus text", "[admin_server]")
{
	Server s;
	Response r = request(s, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
	REQUIRE(r.status == 200);
	REQUIRE(r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8");
	REQUIRE(r.headers["content-length"] == std::to_string(r.body.size()));
	REQUIRE(r.body.find("\nframeproxy_shard_up{shard=\"0\"} 1\n") != std::string::npos);
	REQUIRE(r.body.find("frameproxy_shard_info{shard=\"0\",poller=\"epoll\"} 1\n") != std::string::npos);
	REQUIRE(s.renders == 1);
	REQUIRE(s.a.client_count == 0);
}

TEST_CASE("GET /stats serves JSON", "[admin_server]")
{
	Server s;
	Response r = request(s, "GET /stats?pretty=0 HTTP/1.0\r\n\r\n");
	REQUIRE(r.status == 200);
	REQUIRE(r.headers["content-type"] == "application/json");
	REQUIRE(r.headers["content-length"] == std::to_string(r.body.size()));
	Json j;
	REQUIRE_NOTHROW(j = JsonReader::parse(r.body));
	REQUIRE(j["pid"].u64() == 12);
	REQUIRE(j["shards"][0]["pid"].u64() == 77);
	REQUIRE(j["shards"][0]["state"].str() == "ready");
}

TEST_CASE("errors: 404, 405, 400, 500; HEAD has no body", "[admin_server]")
{
	Server s;
	Response r = request(s, "GET /x HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 404);
	REQUIRE(r.body == "not found\n");
	REQUIRE(r.headers["content-length"] == "10");

	r = request(s, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	REQUIRE(r.status == 405);
	REQUIRE(r.headers["allow"] == "GET, HEAD");
	REQUIRE(r.body == "method not allowed\n");

	r = request(s, "hello there\r\n\r\n");
	REQUIRE(r.status == 400);
	REQUIRE(r.body == "bad request\n");
	REQUIRE(s.renders == 0); // none of these rendered anything

	r = request(s, "HEAD /stats HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 200);
	REQUIRE(r.body.empty());
	REQUIRE(std::stoul(r.headers["content-length"]) > 10);

	s.render_error = -ENOMEM;
	r = request(s, "GET /metrics HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 500);
	REQUIRE(r.headers["content-type"] == "text/plain; charset=utf-8");
	REQUIRE(r.body == "internal error\n");
}

TEST_CASE("an oversized request gets 400", "[admin_server]")
{
	Server s;
	int fd = s.connect_client();
	send_str(fd, "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a'));
	Response r = parse_response(s.read_all(fd));
	close(fd);
	REQUIRE(r.status == 400);
}

TEST_CASE("a slow client sends its request in pieces", "[admin_server]")
{
	Server s;
	int fd = s.connect_client();
	s.accept_until(1);
	const std::string req = "GET /metrics HTTP/1.1\r\nHost: slow\r\n\r\n";
	for (size_t i = 0; i + 1 < req.size(); i += 4) {
		send_str(fd, req.substr(i, std::min<size_t>(4, req.size() - 1 - i)));
		s.now += S / 2 / 10; // a while, well within the deadline overall
		for (int k = 0; k < 3; k++)
			s.step(1);
		REQUIRE(quiet(fd));
		REQUIRE(s.renders == 0);
	}
	send_str(fd, req.substr(req.size() - 1));
	Response r = parse_response(s.read_all(fd));
	close(fd);
	REQUIRE(r.status == 200);
	REQUIRE(s.renders == 1);
}

TEST_CASE("a client that sends no whole request is closed after 2 s", "[admin_server]")
{
	Server s;
	int idle = s.connect_client();
	int partial = s.connect_client();
	s.accept_until(2);
	int64_t accepted_at = s.now;
	REQUIRE(ADMIN_HEADER_TIMEOUT_NS == 2 * S);
	REQUIRE(admin_next_deadline(&s.a) == accepted_at + ADMIN_HEADER_TIMEOUT_NS);
	send_str(partial, "GET /metr");

	s.now = accepted_at + ADMIN_HEADER_TIMEOUT_NS - 1;
	s.step(1);
	REQUIRE(quiet(idle));
	REQUIRE(quiet(partial));
	REQUIRE(s.a.client_count == 2);

	s.now = accepted_at + ADMIN_HEADER_TIMEOUT_NS;
	s.step(0);
	REQUIRE(s.a.client_count == 0);
	REQUIRE(closed_by_peer(idle));
	REQUIRE(closed_by_peer(partial));
	REQUIRE(admin_next_deadline(&s.a) == INT64_MAX);
	REQUIRE(s.renders == 0);
	close(idle);
	close(partial);
}

// Reads what the server sent before closing (without stepping it).
static std::string drain_now(int fd)
{
	std::string out;
	char buf[4096];
	ssize_t r;
	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		out.append(buf, (size_t)r);
	return out;
}

TEST_CASE("at the limit, the oldest idle client gives its slot to a new one",
	  "[admin_server]")
{
	Server s;
	std::vector<int> fds;
	for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
		fds.push_back(s.connect_client());
		s.accept_until((uint32_t)fds.size()); // one by one: a known order
	}
	send_str(fds[0], "GET /met"); // a part of a request is still idle

	int extra = s.connect_client();
	for (int i = 0; i < 200 && s.a.evicted == 0; i++)
		s.step(10);
	REQUIRE(s.a.evicted == 1);
	REQUIRE(s.a.refused == 0);
	REQUIRE(s.a.client_count == ADMIN_MAX_CLIENTS);
	Response busy = parse_response(drain_now(fds[0]));
	REQUIRE(busy.status == 503);
	REQUIRE(busy.headers["retry-after"] == "1");
	REQUIRE(closed_by_peer(fds[0]));
	for (size_t i = 1; i < fds.size(); i++)
		REQUIRE(quiet(fds[i]));

	// The newcomer is served; so is one it did not displace.
	send_str(extra, "GET /metrics HTTP/1.1\r\n\r\n");
	REQUIRE(parse_response(s.read_all(extra)).status == 200);
	send_str(fds[10], "GET /x HTTP/1.1\r\n\r\n");
	REQUIRE(parse_response(s.read_all(fds[10])).status == 404);
	REQUIRE(s.a.client_count == ADMIN_MAX_CLIENTS - 2);
	close(extra);
	for (int fd : fds)
		close(fd);
}

TEST_CASE("a request queued before its accept is answered, never evicted",
	  "[admin_server]")
{
	Server s;
	std::vector<int> idle;
	for (int i = 0; i < ADMIN_MAX_CLIENTS; i++)
		idle.push_back(s.connect_client());
	s.accept_until(ADMIN_MAX_CLIENTS);
	// A scrape and more idle sockets behind it, all in one accept round.
	int scrape = s.connect_client();
	send_str(scrape, "GET /metrics HTTP/1.1\r\n\r\n");
	for (int i = 0; i < 2 * ADMIN_MAX_CLIENTS; i++)
		idle.push_back(s.connect_client());
	Response r = parse_response(s.read_all(scrape));
	REQUIRE(r.status == 200);
	REQUIRE(s.a.evicted >= ADMIN_MAX_CLIENTS);
	close(scrape);
	for (int fd : idle)
		close(fd);
}

TEST_CASE("with every slot answering, a new client gets 503, not a reset",
	  "[admin_server]")
{
	Server s;
	s.big_body = 4u << 20; // more than the send buffer can take (tcp_wmem max)
	std::vector<int> fds;
	int small = 4096;
	for (int i = 0; i < ADMIN_MAX_CLIENTS; i++) {
		int fd = s.connect_client();
		REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
		send_str(fd, "GET /metrics HTTP/1.1\r\n\r\n");
		fds.push_back(fd);
	}
	for (int i = 0; i < 200 && s.renders < ADMIN_MAX_CLIENTS; i++)
		s.step(10);
	REQUIRE(s.renders == ADMIN_MAX_CLIENTS); // all 64 are writing, unread

	int extra = s.connect_client();
	send_str(extra, "GET /stats HTTP/1.1\r\n\r\n");
	for (int i = 0; i < 200 && s.a.refused == 0; i++)
		s.step(10);
	REQUIRE(s.a.refused == 1);
	REQUIRE(s.a.evicted == 0);
	std::string raw;
	for (int i = 0; i < 100 && raw.find("busy\n") == std::string::npos; i++) {
		raw += drain_now(extra);
		usleep(1000);
	}
	Response r = parse_response(raw);
	REQUIRE(r.status == 503);
	REQUIRE(r.body == "busy\n");
	REQUIRE(closed_by_peer(extra));
	close(extra);
	for (int fd : fds)
		close(fd);
}

TEST_CASE("a response bigger than the socket buffers takes several rounds",
	  "[admin_server]")
{
	Server s;
	s.big_body = 8u << 20;
	int fd = s.connect_client();
	int small = 64 * 1024;
	REQUIRE(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	send_str(fd, "GET /metrics HTTP/1.1\r\n\r\n");

	// The client does not read yet: the server must not block, and keeps
	// the rest for later rounds.
	s.accept_until(1);
	for (int i = 0; i < 5 && s.renders == 0; i++)
		s.step(10);
	REQUIRE(s.renders == 1);
	const admin_client *c = nullptr;
	for (const admin_client &k : s.a.clients)
		if (k.fd >= 0)
			c = &k;
	REQUIRE(c != nullptr);
	REQUIRE(c->writing);
	REQUIRE(c->out_off > 0);
	REQUIRE(c->out_off < c->out.len);

	Response r = parse_response(s.read_all(fd));
	close(fd);
	REQUIRE(r.status == 200);
	REQUIRE(r.body.size() == s.big_body);
	REQUIRE(r.headers["content-length"] == std::to_string(s.big_body));
	bool pattern = true;
	for (size_t i = 0; i < r.body.size() && pattern; i++)
		pattern = r.body[i] == (char)('a' + i % 26);
	REQUIRE(pattern);
	REQUIRE(s.renders == 1);
}

TEST_CASE("a client that leaves mid-response costs nothing", "[admin_server]")
{
	Server s;
	s.big_body = 8u << 20;
	int fd = s.connect_client();
	send_str(fd, "GET /metrics HTTP/1.1\r\n\r\n");
	s.accept_until(1);
	for (int i = 0; i < 5 && s.renders == 0; i++)
		s.step(10);
	REQUIRE(s.renders == 1);
	REQUIRE(s.a.client_count == 1);
	close(fd); // unread data: the kernel resets the connection

	// Writing to it fails (no SIGPIPE: the test process would die) and
	// the server lets the client go.
	for (int i = 0; i < 100 && s.a.client_count > 0; i++)
		s.step(10);
	REQUIRE(s.a.client_count == 0);

	Response r = request(s, "GET /x HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 404);
}

TEST_CASE("admin_open reports errors; admin_close is safe", "[admin_server]")
{
	Server s;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(s.port);

	admin_server other;
	// Same port, both listening: EADDRINUSE even with SO_REUSEADDR.
	REQUIRE(admin_open(&other, (struct sockaddr *)&sin, sizeof(sin), 0600) == -EADDRINUSE);
	REQUIRE(other.listen_fd == -1);
	admin_close(&other);
	admin_close(&other);

	admin_server never;
	admin_init(&never);
	struct pollfd pfd[2];
	REQUIRE(admin_pollfds(&never, pfd, 2) == 0);
	REQUIRE(admin_next_deadline(&never) == INT64_MAX);
	admin_close(&never);
}

TEST_CASE("writes over TCP: 403 with a reason, unless the bearer token is right",
	  "[admin_server]")
{
	Server s;
	const std::string post = "POST /servers/default/127.0.0.1:9 HTTP/1.1\r\n";
	const std::string body = "state=drain";
	const std::string len = "Content-Length: " + std::to_string(body.size()) + "\r\n";

	Response r = request(s, post + len + "\r\n" + body);
	REQUIRE(r.status == 403);
	REQUIRE(r.body.find("admin_token") != std::string::npos);
	REQUIRE(s.renders == 0);

	REQUIRE(admin_set_token(&s.a, "s3cret-token") == 0);
	r = request(s, post + len + "\r\n" + body);
	REQUIRE(r.status == 403);
	REQUIRE(r.body == "forbidden: no Authorization: Bearer token\n");
	for (const char *bad : { "s3cret-toke", "s3cret-tokenX", "S3cret-token", "" }) {
		r = request(s, post + "Authorization: Bearer " + bad + "\r\n" + len +
				       "\r\n" + body);
		REQUIRE(r.status == 403);
	}
	REQUIRE(s.renders == 0);

	r = request(s, post + "authorization: bearer s3cret-token\r\n" + len + "\r\n" + body);
	REQUIRE(r.status == 200);
	REQUIRE(r.body == "done\n");
	REQUIRE(s.last_body == body);
	// The renderer's own error status goes out with its text.
	s.post_status = 404;
	r = request(s, post + "Authorization: Bearer s3cret-token\r\n" + len + "\r\n" + body);
	REQUIRE(r.status == 404);
	REQUIRE(r.body == "done\n");
	// Reads need no token; GET of a write path is 405 with Allow: POST.
	r = request(s, "GET /metrics HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 200);
	r = request(s, "GET /reload HTTP/1.1\r\n\r\n");
	REQUIRE(r.status == 405);
	REQUIRE(r.headers["allow"] == "POST");
	REQUIRE(admin_set_token(&s.a, std::string(300, 'x').c_str()) == -ENAMETOOLONG);
}

TEST_CASE("a body in pieces is waited for; one too large gets 413", "[admin_server]")
{
	Server s;
	REQUIRE(admin_set_token(&s.a, "t") == 0);
	int fd = s.connect_client();
	send_str(fd, "POST /reload HTTP/1.1\r\nAuthorization: Bearer t\r\n"
		     "Content-Length: 10\r\n\r\n01234");
	for (int i = 0; i < 5; i++)
		s.step(5);
	REQUIRE(quiet(fd));
	REQUIRE(s.renders == 0);
	send_str(fd, "56789");
	Response r = parse_response(s.read_all(fd));
	close(fd);
	REQUIRE(r.status == 200);
	REQUIRE(s.last_body == "0123456789");

	r = request(s, "POST /reload HTTP/1.1\r\nAuthorization: Bearer t\r\n"
		       "Content-Length: 5000\r\n\r\n");
	REQUIRE(r.status == 413);
}

TEST_CASE("a Unix-socket admin listener: its mode, and writes without a token",
	  "[admin_server]")
{
	char dir[] = "/tmp/admin_unix_XXXXXX";
	REQUIRE(mkdtemp(dir) != nullptr);
	std::string path = std::string(dir) + "/admin.sock";
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path.c_str());

	admin_server a;
	REQUIRE(admin_open(&a, (struct sockaddr *)&un, sizeof(un), 0640) == 0);
	struct stat st;
	REQUIRE(stat(path.c_str(), &st) == 0);
	REQUIRE(S_ISSOCK(st.st_mode));
	REQUIRE((st.st_mode & 0777) == 0640);
	admin_close(&a);
	// A stale socket is replaced; a regular file is left alone.
	REQUIRE(admin_open(&a, (struct sockaddr *)&un, sizeof(un), 0600) == 0);
	REQUIRE(stat(path.c_str(), &st) == 0);
	REQUIRE((st.st_mode & 0777) == 0600);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(connect(fd, (struct sockaddr *)&un, sizeof(un)) == 0);
	send_str(fd, "POST /reload HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
	int renders = 0;
	auto render = [](void *arg, const admin_request *req, strbuf *body,
			 const char **) -> int {
		++*static_cast<int *>(arg);
		REQUIRE(req->route == ADMIN_RELOAD);
		return strbuf_puts(body, "ok\n");
	};
	std::string out;
	for (int i = 0; i < 500; i++) {
		struct pollfd fds[1 + ADMIN_MAX_CLIENTS];
		size_t n = admin_pollfds(&a, fds, 1 + ADMIN_MAX_CLIENTS);
		REQUIRE(poll(fds, n, 5) >= 0);
		admin_service(&a, fds, n, 1000 * S, render, &renders);
		char buf[512];
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			out.append(buf, (size_t)r);
		if (r == 0)
			break;
	}
	close(fd);
	REQUIRE(renders == 1);
	REQUIRE(parse_response(out).status == 200);
	admin_close(&a);
	unlink(path.c_str());

	int file = open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	REQUIRE(file >= 0);
	close(file);
	REQUIRE(admin_open(&a, (struct sockaddr *)&un, sizeof(un), 0600) == -EEXIST);
	admin_close(&a);
	unlink(path.c_str());
	rmdir(dir);
}
