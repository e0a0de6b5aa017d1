// Integration tests (issue 18): TLS termination through the real
// frameproxy. A CA and certificates are made by each run with the openssl
// command line in the test's temp directory (nothing is committed).
// Verified frames (framebench --tls); SNI picking the certificate; a
// client that sends nothing and one that stops halfway
// (tls_handshake_timeout); plaintext to a TLS port; openssl s_client; the
// config errors and the key-mode warning; certificates re-read on SIGHUP
// under load. Run once per poller (epoll, uring completion:
// tests/proxy/meson.build). The volume run through TLS is tagged
// [tls-volume] and registered apart, sized by FRAMEPROXY_VOLUME_FRAMES as
// the plain one (see its case).
#include "tests/proxy/dns_server.hpp"
#include "tests/proxy/harness.hpp"
#include "tests/proxy/volume.hpp"

#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

using namespace itest;

namespace {

const milliseconds T5(5000);

struct Pki {
	std::string dir, ca, cert, key, other_cert, other_key;
	std::string next_cert, next_key; // "localhost" too, CN localhost-next
	std::string self_cert, self_key; // "localhost", signed by itself
};

bool sh(const std::string &cmd)
{
	return std::system(cmd.c_str()) == 0;
}

// A CA, "localhost" (and 127.0.0.1) and "other.test", a second
// certificate for localhost with another subject, and a self-signed one
// for localhost; each key mode 600.
const Pki &pki()
{
	static Pki p;
	if (!p.dir.empty())
		return p;
	std::string d = tmp().path() + "/pki";
	std::string q = " 2>/dev/null";
	REQUIRE(sh("mkdir -p " + d));
	REQUIRE(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
		   "/CN=frameproxy-test-ca -keyout " + d + "/ca.key -out " + d +
		   "/ca.pem" + q));
	auto leaf = [&](const std::string &name, const std::string &san) {
		std::string b = d + "/" + name;
		write_file(b + ".ext", "subjectAltName=" + san + "\n");
		REQUIRE(sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name +
			   " -keyout " + b + ".key -out " + b + ".csr" + q));
		REQUIRE(sh("openssl x509 -req -days 2 -in " + b + ".csr -CA " + d +
			   "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -out " +
			   b + ".pem -extfile " + b + ".ext" + q));
		REQUIRE(chmod((b + ".key").c_str(), 0600) == 0);
	};
	leaf("localhost", "DNS:localhost,IP:127.0.0.1");
	leaf("other.test", "DNS:other.test");
	leaf("localhost-next", "DNS:localhost,IP:127.0.0.1");
	REQUIRE(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
		   "/CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
		   " -keyout " + d + "/self.key -out " + d + "/self.pem" + q));
	REQUIRE(chmod((d + "/self.key").c_str(), 0600) == 0);
	p = {d, d + "/ca.pem", d + "/localhost.pem", d + "/localhost.key",
	     d + "/other.test.pem", d + "/other.test.key",
	     d + "/localhost-next.pem", d + "/localhost-next.key",
	     d + "/self.pem", d + "/self.key"};
	return p;
}

// mTLS: client certificates, made the first time a case asks. "a" is
// signed by the test CA; "stranger" by a CA of its own, which the proxy
// does not know.
struct ClientPki {
	std::string cert, key, stranger_cert, stranger_key;
	std::string subject; // a's, as the access line writes it (RFC 2253)
};

const ClientPki &client_pki()
{
	static ClientPki c;
	if (!c.cert.empty())
		return c;
	const Pki &p = pki();
	std::string d = p.dir, q = " 2>/dev/null";
	REQUIRE(sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
		   "/CN=stranger-ca -keyout " + d + "/stranger-ca.key -out " + d +
		   "/stranger-ca.pem" + q));
	auto client = [&](const std::string &name, const std::string &subj,
			  const std::string &ca) {
		std::string b = d + "/" + name;
		write_file(b + ".ext", "extendedKeyUsage=clientAuth\n");
		REQUIRE(sh("openssl req -newkey rsa:2048 -nodes -subj '" + subj +
			   "' -keyout " + b + ".key -out " + b + ".csr" + q));
		REQUIRE(sh("openssl x509 -req -days 2 -in " + b + ".csr -CA " + d +
			   "/" + ca + ".pem -CAkey " + d + "/" + ca +
			   ".key -CAcreateserial -out " + b + ".pem -extfile " + b +
			   ".ext" + q));
	};
	client("client-a", "/O=frameproxy tests/CN=client a", "ca");
	client("stranger", "/CN=stranger", "stranger-ca");
	c = {d + "/client-a.pem", d + "/client-a.key", d + "/stranger.pem",
	     d + "/stranger.key", "CN=client a,O=frameproxy tests"};
	return c;
}

std::vector<std::string> tls_args(std::vector<std::string> more = {})
{
	const Pki &p = pki();
	std::vector<std::string> a = {"--set", "tls_cert=" + p.cert, "--set",
				      "tls_key=" + p.key, "--set",
				      "tls_cert=" + p.other_cert, "--set",
				      "tls_key=" + p.other_key, "--admin",
				      "127.0.0.1:0"};
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

int bench(const std::string &target, std::vector<std::string> more,
	  std::string *out = nullptr)
{
	std::vector<std::string> argv = {binary("FRAMEBENCH"), "--target", target,
					 "--tls", "--tls-ca", pki().ca,
					 "--no-progress", "--json"};
	argv.insert(argv.end(), more.begin(), more.end());
	Process p(argv, "framebench");
	int rc = run_to_exit(p, milliseconds(60000));
	if (out)
		*out = p.out() + p.err();
	return rc;
}

// Shards publish their counters now and then: wait for the value.
bool metric_is(Proxy &proxy, const std::string &family, uint64_t want,
	       const std::string &having = "")
{
	return wait_until([&] { return metric(proxy, family, having) == want; },
			  T5);
}

bool wait_generation(Proxy &proxy, int generation)
{
	return proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "reload complete") &&
		       r.is("generation", std::to_string(generation));
	}, milliseconds(10000));
}

// frameecho speaking TLS with a certificate for localhost and 127.0.0.1
// (by default the CA's).
std::vector<std::string> echo_tls(const std::string &cert = pki().cert,
				  const std::string &key = pki().key)
{
	return {"--tls-cert", cert, "--tls-key", key};
}

// A listener whose upstream connections speak TLS, verified against the
// test CA.
std::vector<std::string> upstream_tls(std::vector<std::string> more = {})
{
	std::vector<std::string> a = {"--set", "upstream_tls=on", "--set",
				      "upstream_tls_ca=" + pki().ca, "--admin",
				      "127.0.0.1:0"};
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

// A plain framebench run (the proxy originates TLS, the client is plain).
int bench_plain(const std::string &target, std::vector<std::string> more,
		std::string *out)
{
	std::vector<std::string> argv = {binary("FRAMEBENCH"), "--target", target,
					 "--no-progress", "--json"};
	argv.insert(argv.end(), more.begin(), more.end());
	Process p(argv, "framebench");
	int rc = run_to_exit(p, milliseconds(60000));
	*out = p.out() + p.err();
	return rc;
}

// The first flight of a real OpenSSL client (its ClientHello record), made
// with memory BIOs: no socket, so the test decides what reaches the proxy.
std::string client_hello()
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	REQUIRE(c);
	SSL *s = SSL_new(c);
	BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
	REQUIRE((s && in && out));
	SSL_set_bio(s, in, out);
	SSL_set_tlsext_host_name(s, "localhost");
	int r = SSL_connect(s);
	CHECK(SSL_get_error(s, r) == SSL_ERROR_WANT_READ);
	char *p = nullptr;
	long n = BIO_get_mem_data(out, &p);
	std::string hello(p, n > 0 ? (size_t)n : 0);
	SSL_free(s);
	SSL_CTX_free(c);
	return hello;
}

// frameproxy --check of one listener [a] with `body` added: its exit
// code, its output in *text.
int check_ini(const std::string &ini, const std::string &body,
	      std::string *text)
{
	write_file(ini, "[listener a]\nlisten = 127.0.0.1:0\n"
			"server = 127.0.0.1:1\n" + body);
	Process c({binary("FRAMEPROXY"), "--check", "-c", ini}, "check");
	int rc = run_to_exit(c, milliseconds(10000));
	*text = c.out() + c.err();
	return rc;
}

// A verified run of framebench (exit code rc, output out): every one of
// `frames` came back whole, and the proxy says each of `conns`
// connections was ended by its client.
void check_verified(Proxy &proxy, int rc, const std::string &out,
		    long long frames, size_t conns)
{
	INFO(out << proxy.log_tail());
	REQUIRE(rc == 0);
	CHECK(json_number(out, "frames") == frames);
	CHECK(json_number(out, "lost") == 0);
	CHECK(json_number(out, "mismatches") == 0);
	REQUIRE(proxy.wait_access_count(conns, T5));
	CHECK(count_reason(proxy, "client_eof") == conns);
}

// A verified TLS client of the test's own over a Conn (non-blocking: every
// OpenSSL call is retried after poll(2), bounded by `timeout`): which
// certificate the proxy showed, and frames echoed through it.
// What a TlsClient shows: a certificate (and its key), ALPN names.
struct TlsClientOpts {
	std::string cert, key;
	std::vector<std::string> alpn;
	int max_version = 0; // TLS1_2_VERSION: no TLS 1.3
};

class TlsClient {
public:
	TlsClient(uint16_t port, const std::string &name,
		  milliseconds timeout = milliseconds(5000))
		: TlsClient(port, name, TlsClientOpts(), timeout)
	{
	}
	TlsClient(uint16_t port, const std::string &name, const TlsClientOpts &o,
		  milliseconds timeout = milliseconds(5000))
		: timeout_(timeout)
	{
		conn_ = Conn::connect(port);
		ctx_ = SSL_CTX_new(TLS_client_method());
		if (!conn_.valid() || !ctx_ ||
		    SSL_CTX_load_verify_locations(ctx_, pki().ca.c_str(), nullptr) != 1)
			return;
		SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
		if (o.max_version &&
		    SSL_CTX_set_max_proto_version(ctx_, o.max_version) != 1)
			return;
		if (!o.cert.empty() &&
		    (SSL_CTX_use_certificate_file(ctx_, o.cert.c_str(),
						  SSL_FILETYPE_PEM) != 1 ||
		     SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(),
						 SSL_FILETYPE_PEM) != 1))
			return;
		std::string wire;
		for (const auto &a : o.alpn)
			wire += std::string(1, (char)a.size()) + a;
		if (!wire.empty() &&
		    SSL_CTX_set_alpn_protos(ctx_, (const unsigned char *)wire.data(),
					    (unsigned)wire.size()) != 0)
			return;
		if (!(ssl_ = SSL_new(ctx_)) || SSL_set_fd(ssl_, conn_.fd()) != 1)
			return;
		SSL_set_tlsext_host_name(ssl_, name.c_str());
		SSL_set1_host(ssl_, name.c_str());
		ok_ = drive([&] { return SSL_connect(ssl_); }) == 1;
	}
	~TlsClient()
	{
		SSL_free(ssl_);
		SSL_CTX_free(ctx_);
	}
	TlsClient(const TlsClient &) = delete;
	TlsClient &operator=(const TlsClient &) = delete;

	bool ok() const { return ok_; }
	const Conn &conn() const { return conn_; }

	// The CN of the certificate the proxy presented ("" without one).
	std::string subject_cn() const
	{
		X509 *x = ssl_ ? SSL_get1_peer_certificate(ssl_) : nullptr;
		char cn[256] = "";
		if (x)
			X509_NAME_get_text_by_NID(X509_get_subject_name(x),
						  NID_commonName, cn, sizeof(cn));
		X509_free(x);
		return cn;
	}

	// The protocol ALPN chose ("" for none).
	std::string alpn() const
	{
		const unsigned char *p = nullptr;
		unsigned n = 0;
		if (ssl_)
			SSL_get0_alpn_selected(ssl_, &p, &n);
		return p ? std::string((const char *)p, n) : "";
	}

	// One frame out, the same frame back.
	bool roundtrip(const std::string &payload)
	{
		std::string f = frame(payload);
		size_t at = 0;
		while (ok_ && at < f.size()) {
			int n = drive([&] {
				return SSL_write(ssl_, f.data() + at, (int)(f.size() - at));
			});
			if (n <= 0)
				return false;
			at += (size_t)n;
		}
		std::string back;
		char buf[16384];
		while (ok_ && back.size() < f.size()) {
			int n = drive([&] { return SSL_read(ssl_, buf, sizeof(buf)); });
			if (n <= 0)
				return false;
			back.append(buf, (size_t)n);
		}
		return back == f;
	}

private:
	// The call's result once it is neither WANT_READ nor WANT_WRITE; -1
	// when the time is up.
	template <typename Op>
	int drive(Op op)
	{
		auto deadline = Clock::now() + timeout_;
		for (;;) {
			// SSL_get_error reads the thread's error queue first:
			// what a refused client left there must not fail this
			// client's WANT_READ.
			ERR_clear_error();
			int r = op();
			if (r > 0)
				return r;
			int e = SSL_get_error(ssl_, r);
			short ev = e == SSL_ERROR_WANT_READ ? POLLIN
				   : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
			if (!ev)
				return r;
			auto left = std::chrono::duration_cast<milliseconds>(
				deadline - Clock::now()).count();
			pollfd p = {conn_.fd(), ev, 0};
			if (left <= 0 || ::poll(&p, 1, (int)left) == 0)
				return -1;
		}
	}

	milliseconds timeout_;
	Conn conn_;
	SSL_CTX *ctx_ = nullptr;
	SSL *ssl_ = nullptr;
	bool ok_ = false;
};

} // namespace

TEST_CASE("tls: verified frames through termination, 0..70000 bytes",
	  "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr()}));

	std::string out;
	int rc = bench(proxy.addr(), {"-c", "4", "-d", "4", "--size", "0-70000",
				      "--frames", "4000"}, &out);
	check_verified(proxy, rc, out, 4000, 4);
	CHECK(metric_is(proxy, "frameproxy_tls_handshakes_total", 4));
	CHECK(metric_is(proxy, "frameproxy_tls_connections_total", 4,
		     "version=\"TLSv1.3\""));
	CHECK(metric_is(proxy, "frameproxy_tls_handshake_failures_total", 0));
}

TEST_CASE("tls: SNI picks the certificate, the first pair is the default",
	  "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr()}));

	// Each is verified for the name it sends: it passes only with the
	// certificate of that name.
	std::string out;
	CHECK(bench(proxy.addr(), {"--tls-name", "other.test", "--frames", "20"},
		    &out) == 0);
	INFO(out);
	CHECK(bench(proxy.addr(), {"--tls-name", "localhost", "--frames", "20"},
		    &out) == 0);
	// An unknown name gets the default (localhost): it does not verify.
	CHECK(bench(proxy.addr(), {"--tls-name", "nobody.test", "--frames", "1"},
		    &out) != 0);
	CHECK(out.find("certificate verify failed") != std::string::npos);
}

TEST_CASE("tls: a client that sends nothing is closed at "
	  "tls_handshake_timeout", "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr(), "--set",
			      "tls_handshake_timeout=400ms"}));

	Conn c = Conn::connect(proxy.port());
	REQUIRE(c.valid());
	auto t0 = Clock::now();
	Io r = c.wait_closed(milliseconds(3000));
	long long waited = ms_since(t0);
	CHECK((r == Io::Eof || r == Io::Reset));
	CHECK(waited >= 300);
	CHECK(waited < 2500);
	LogRecord access;
	REQUIRE(proxy.wait_access(c.local_addr(), T5, &access));
	CHECK(access.get("reason") == "tls_handshake");
	CHECK(access.get("upstream") == "-");
	auto warns = proxy.records("tls handshake failed");
	REQUIRE(warns.size() == 1);
	CHECK(warns[0].get("error") == "handshake timeout");
	CHECK(metric_is(proxy, "frameproxy_upstream_connects_total", 0));
}

TEST_CASE("tls: a client that stops halfway through the handshake is closed "
	  "at tls_handshake_timeout", "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr(), "--set",
			      "tls_handshake_timeout=400ms"}));
	std::string hello = client_hello();
	// A TLS record header (handshake, version 3.x), then a ClientHello.
	REQUIRE(hello.size() > 100);
	REQUIRE(hello[0] == 0x16);
	REQUIRE(hello[5] == 0x01);

	// Half a ClientHello: the proxy still waits for its rest. The whole
	// ClientHello: the proxy answers with its flight and waits for the
	// client's Finished, which never comes.
	Conn half = Conn::connect(proxy.port());
	Conn whole = Conn::connect(proxy.port());
	REQUIRE((half.valid() && whole.valid()));
	auto t0 = Clock::now();
	REQUIRE(half.send_all(hello.substr(0, hello.size() / 2)) == Io::Ok);
	REQUIRE(whole.send_all(hello) == Io::Ok);

	std::string half_got, whole_got;
	Io rh = half.wait_closed(milliseconds(3000), &half_got);
	Io rw = whole.wait_closed(milliseconds(3000), &whole_got);
	while (rw == Io::Data) // the server's flight, then the close
		rw = whole.wait_closed(milliseconds(3000), &whole_got);
	long long waited = ms_since(t0);
	CHECK((rh == Io::Eof || rh == Io::Reset));
	CHECK(half_got.empty());
	CHECK((rw == Io::Eof || rw == Io::Reset));
	// A ServerHello record came back: the handshake was under way.
	REQUIRE(whole_got.size() > 5);
	CHECK(whole_got[0] == 0x16);
	CHECK(whole_got[5] == 0x02);
	CHECK(waited >= 300);
	CHECK(waited < 2500);

	for (Conn *c : {&half, &whole}) {
		LogRecord access;
		REQUIRE(proxy.wait_access(c->local_addr(), T5, &access));
		CHECK(access.get("reason") == "tls_handshake");
		CHECK(access.get("upstream") == "-");
	}
	auto warns = proxy.records("tls handshake failed");
	REQUIRE(warns.size() == 2);
	for (const auto &w : warns)
		CHECK(w.get("error") == "handshake timeout");
	CHECK(metric_is(proxy, "frameproxy_tls_handshake_failures_total", 2));
	CHECK(metric_is(proxy, "frameproxy_upstream_connects_total", 0));
}

TEST_CASE("tls: SIGHUP under load re-reads the certificate, no connection "
	  "lost; a bad file keeps the running one", "[tls]")
{
	const Pki &p = pki();
	const std::string live = p.dir + "/live";
	// Each file is replaced by a rename, so a reload never reads half of
	// one.
	auto install = [&](const std::string &from, const std::string &to) {
		REQUIRE(sh("cp " + from + " " + live + "/tmp && chmod 600 " + live +
			   "/tmp && mv " + live + "/tmp " + live + "/" + to));
	};
	REQUIRE(sh("mkdir -p " + live));
	install(p.cert, "cert.pem");
	install(p.key, "key.pem");

	Echo echo;
	// TLS connections stay in the shard that made them (their OpenSSL
	// state cannot be handed over), so a reload's old shards serve them
	// until drain_timeout: longer than this test.
	Proxy proxy({"--server", echo.addr(), "--shards", "2", "--drain-timeout",
		     "60s", "--admin", "127.0.0.1:0", "--set",
		     "tls_cert=" + live + "/cert.pem", "--set",
		     "tls_key=" + live + "/key.pem"});
	REQUIRE(proxy.wait_ready());
	TlsClient before(proxy.port(), "localhost");
	REQUIRE(before.ok());
	CHECK(before.subject_cn() == "localhost");
	REQUIRE(before.roundtrip("before the reload"));

	// The load: framebench's verified frames over 8 connections, made
	// before the reload and kept across both.
	Process load({binary("FRAMEBENCH"), "--target", proxy.addr(), "--tls",
		      "--tls-ca", p.ca, "-c", "8", "-d", "4", "--size", "0-16384",
		      "--duration", "4s", "--no-progress", "--json"},
		     "framebench");
	std::this_thread::sleep_for(milliseconds(1000));

	install(p.next_cert, "cert.pem");
	install(p.next_key, "key.pem");
	proxy.proc().signal(SIGHUP);
	INFO(proxy.log_tail());
	REQUIRE(wait_generation(proxy, 1));
	{
		TlsClient after(proxy.port(), "localhost");
		REQUIRE(after.ok());
		CHECK(after.subject_cn() == "localhost-next");
		CHECK(after.roundtrip("after the reload"));
	}
	CHECK(before.roundtrip("old connection, after the reload"));

	// A certificate file that does not parse: one line, nothing replaced.
	write_file(live + "/cert.pem", "-----BEGIN CERTIFICATE-----\nbroken\n"
				       "-----END CERTIFICATE-----\n");
	proxy.proc().signal(SIGHUP);
	LogRecord failed;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload failed: keeping the running configuration");
	}, T5, &failed));
	CHECK(failed.get("reason").find("cannot read certificate '" + live +
					"/cert.pem'") != std::string::npos);
	// Only that reason: the key left without its certificate is not
	// reported as a second error.
	CHECK(failed.get("reason").find(';') == std::string::npos);
	{
		TlsClient still(proxy.port(), "localhost");
		REQUIRE(still.ok());
		CHECK(still.subject_cn() == "localhost-next");
		CHECK(still.roundtrip("after the failed reload"));
	}

	REQUIRE(run_to_exit(load, milliseconds(30000)) == 0);
	const std::string json = load.out();
	INFO(json << load.err());
	CHECK(json_number(json, "connections") == 8);
	CHECK(json_number(json, "connect_failures") == 0);
	CHECK(json_number(json, "frames") > 1000);
	CHECK(json_number(json, "frames") == json_number(json, "frames_sent"));
	CHECK(json_number(json, "lost") == 0);
	CHECK(json_number(json, "mismatches") == 0);
	CHECK(json_number(json, "errors") == 0);
	CHECK(before.roundtrip("old connection, at the end"));

	// One failed reload, one line at level error; no shard died; every
	// connection so far ended by its client.
	CHECK(proxy.records("reload failed: keeping the running configuration")
		      .size() == 1);
	size_t errors = 0;
	for (const auto &r : proxy.log())
		errors += r.is("level", "error");
	CHECK(errors == 1);
	CHECK(proxy.records("shard died").empty());
	REQUIRE(proxy.wait_access_count(8 + 2, T5));
	for (const auto &r : proxy.records("access"))
		CHECK(r.get("reason") == "client_eof");
	CHECK(count_reason(proxy, "client_eof") == 8 + 2);
}

TEST_CASE("tls: plaintext frames to a TLS port are closed as tls_handshake "
	  "with OpenSSL's reason", "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr()}));

	for (int i = 0; i < 3; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_all(frame("hello, plain")) == Io::Ok);
		Io r = c.wait_closed(milliseconds(3000));
		CHECK((r == Io::Eof || r == Io::Reset));
	}
	REQUIRE(proxy.wait_access_count(3, T5));
	CHECK(count_reason(proxy, "tls_handshake") == 3);
	auto warns = proxy.records("tls handshake failed");
	REQUIRE(!warns.empty());
	CHECK(warns[0].get("error") == "wrong version number");
	CHECK(metric_is(proxy, "frameproxy_tls_handshake_failures_total", 3));
	CHECK(metric_is(proxy, "frameproxy_connections_closed_total", 3,
		     "reason=\"tls_handshake\""));
	// A failure leaves nothing behind for the next connection.
	CHECK(bench(proxy.addr(), {"--frames", "10"}) == 0);
	CHECK(metric_is(proxy, "frameproxy_upstream_connects_total", 1));
}

TEST_CASE("tls: openssl s_client sends a frame and reads its echo", "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr()}));

	std::string outf = tmp().file("s_client.out");
	std::string cmd = "(printf '\\000\\000\\000\\005hello'; sleep 1) | "
			  "openssl s_client -quiet -no_ign_eof -verify_return_error -CAfile " +
			  pki().ca + " -servername localhost -connect " +
			  proxy.addr() + " > " + outf + " 2>/dev/null";
	Process p({"/bin/sh", "-c", cmd}, "s_client");
	REQUIRE(run_to_exit(p, milliseconds(10000)) == 0);
	CHECK(read_file(outf) == frame("hello"));
	REQUIRE(proxy.wait_access_count(1, T5));
	CHECK(proxy.records("access")[0].num("client_frames") == 1);
}

TEST_CASE("tls: config errors name file, line and key; a key others can "
	  "read is a warning", "[tls]")
{
	const Pki &p = pki();
	std::string ini = tmp().file("tls.ini");
	auto check = [&](const std::string &body, std::string *text) {
		return check_ini(ini, body, text);
	};
	std::string text;

	CHECK(check("tls_cert = " + p.cert + "\ntls_key = " + p.key + "\n",
		    &text) == 0);
	INFO(text);
	CHECK(text.find("readable by others") == std::string::npos);

	CHECK(check("tls_cert = " + p.dir + "/missing.pem\ntls_key = " + p.key +
			    "\n", &text) != 0);
	CHECK(text.find(ini + ":4: key 'tls_cert': cannot read certificate") !=
	      std::string::npos);
	CHECK(text.find("missing.pem") != std::string::npos);

	CHECK(check("tls_cert = " + p.cert + "\ntls_key = " + p.ca + "\n",
		    &text) != 0);
	CHECK(text.find(ini + ":5: key 'tls_key': cannot read key") !=
	      std::string::npos);

	CHECK(check("tls_cert = " + p.cert + "\ntls_key = " + p.other_key + "\n",
		    &text) != 0);
	CHECK(text.find(ini + ":1: section [listener a]: TLS: tls_cert") !=
	      std::string::npos);
	CHECK(text.find("key values mismatch") != std::string::npos);

	CHECK(check("tls_cert = " + p.cert + "\n", &text) != 0);
	CHECK(text.find("in pairs") != std::string::npos);

	CHECK(check("tls_cert = " + p.cert + "\ntls_key = " + p.key +
			    "\ntls_ciphers = NOPE-NOTHING\n", &text) != 0);
	CHECK(text.find(":6: key 'tls_ciphers'") != std::string::npos);

	std::string loose = p.dir + "/loose.key";
	REQUIRE(sh("cp " + p.key + " " + loose));
	REQUIRE(chmod(loose.c_str(), 0644) == 0);
	CHECK(check("tls_cert = " + p.cert + "\ntls_key = " + loose + "\n",
		    &text) == 0);
	CHECK(text.find("readable by others") != std::string::npos);
}

// The volume run (a million frames of 0..256 KiB) through TLS
// termination, sized by the plain run's knob, FRAMEPROXY_VOLUME_FRAMES
// (default 1,000,000 here too); meson passes a count that keeps each
// configuration under a minute in the default suite (tests/proxy/meson.build).
TEST_CASE("tls volume: random frames 0..256KiB over 100 TLS connections "
	  "arrive whole, in order", "[tls-volume]")
{
	volume_run({"tls volume", env_long("FRAMEPROXY_VOLUME_FRAMES", 1000000),
		    env_long("FRAMEPROXY_VOLUME_TIMEOUT_S", 1500),
		    tls_args(), {"--tls", "--tls-ca", pki().ca}});
}

// --- origination: TLS to the upstreams -------------------------------------

TEST_CASE("tls origination: verified frames to a TLS upstream, 0..70000 "
	  "bytes, the name verified by default is the server's address",
	  "[tls]")
{
	Echo echo(echo_tls());
	Proxy proxy(upstream_tls({"--server", echo.addr()}));

	std::string out;
	int rc = bench_plain(proxy.addr(), {"-c", "4", "-d", "4", "--size",
					    "0-70000", "--frames", "3000"}, &out);
	check_verified(proxy, rc, out, 3000, 4);
	unsigned long long bytes = 0;
	for (const auto &r : proxy.records("access")) {
		CHECK(r.get("upstream") == echo.addr());
		bytes += r.num("upstream_bytes");
	}
	// Plaintext counted, as without TLS.
	CHECK(bytes == (unsigned long long)json_number(out, "bytes"));
	CHECK(proxy.records("upstream tls handshake failed").empty());
}

TEST_CASE("tls origination and termination at once: verified frames, SNI "
	  "on both sides", "[tls]")
{
	Echo echo(echo_tls(pki().other_cert, pki().other_key));
	Proxy proxy(tls_args(upstream_tls({"--server", echo.addr(), "--set",
					   "upstream_tls_name=other.test"})));

	std::string out;
	int rc = bench(proxy.addr(), {"-c", "4", "-d", "4", "--size", "0-70000",
				      "--frames", "3000"}, &out);
	check_verified(proxy, rc, out, 3000, 4);
	CHECK(metric_is(proxy, "frameproxy_tls_handshakes_total", 4));
	CHECK(proxy.records("upstream tls handshake failed").empty());
}

TEST_CASE("tls origination: a wrong name or a self-signed upstream "
	  "certificate is refused, the client closed at once", "[tls]")
{
	struct Case {
		const char *what;
		std::string cert, key;
		std::vector<std::string> more;
		std::string error, name;
	};
	const Pki &p = pki();
	const Case cases[] = {
		{"wrong name", p.cert, p.key,
		 {"--set", "upstream_tls_name=nobody.test"},
		 "certificate verify failed: hostname mismatch", "nobody.test"},
		{"self-signed", p.self_cert, p.self_key, {},
		 "certificate verify failed: self-signed certificate", "127.0.0.1"},
	};
	for (const Case &k : cases) {
		SECTION(k.what) {
			Echo echo(echo_tls(k.cert, k.key));
			std::vector<std::string> args = {"--server", echo.addr()};
			args.insert(args.end(), k.more.begin(), k.more.end());
			Proxy proxy(upstream_tls(args));

			for (int i = 0; i < 3; i++) {
				Conn c = Conn::connect(proxy.port());
				REQUIRE(c.valid());
				REQUIRE(c.send_all(frame("never relayed")) == Io::Ok);
				auto t0 = Clock::now();
				std::string got;
				Io r = c.wait_closed(milliseconds(3000), &got);
				CHECK((r == Io::Eof || r == Io::Reset));
				CHECK(got.empty());
				CHECK(ms_since(t0) < 1500);
			}
			REQUIRE(proxy.wait_access_count(3, T5));
			CHECK(count_reason(proxy, "upstream_tls_handshake") == 3);
			for (const auto &r : proxy.records("access")) {
				CHECK(r.get("upstream") == echo.addr());
				CHECK(r.num("upstream_frames") == 0);
			}
			auto warns = proxy.records("upstream tls handshake failed");
			REQUIRE(warns.size() == 3);
			INFO(warns[0].line);
			CHECK(warns[0].get("error") == k.error);
			CHECK(warns[0].get("name") == k.name);
			CHECK(warns[0].get("upstream") == echo.addr());
			CHECK(metric_is(proxy, "frameproxy_connections_closed_total", 3,
				     "reason=\"upstream_tls_handshake\""));
			// Passive health: three failures (fail_threshold) in a
			// row take the server out.
			auto out = proxy.records("upstream out");
			REQUIRE(out.size() == 1);
			CHECK(out[0].get("reason") == "protocol_errors");
			CHECK(out[0].get("upstream") == echo.addr());
		}
	}
}

TEST_CASE("tls origination: config errors", "[tls]")
{
	std::string ini = tmp().file("upstream-tls.ini");
	auto check = [&](const std::string &body, std::string *text) {
		return check_ini(ini, body, text);
	};
	std::string text;
	CHECK(check("upstream_tls = on\nupstream_tls_ca = " + pki().ca + "\n",
		    &text) == 0);
	INFO(text);
	CHECK(check("upstream_tls = maybe\n", &text) != 0);
	CHECK(text.find(ini + ":4: key 'upstream_tls': invalid upstream_tls "
			"'maybe'") != std::string::npos);
	CHECK(check("upstream_tls = on\nupstream_tls_ca = " + pki().dir +
			    "/missing.pem\n", &text) != 0);
	CHECK(text.find(ini + ":5: key 'upstream_tls_ca': cannot read "
			"certificate") != std::string::npos);
	CHECK(check("upstream_tls_name = localhost\n", &text) != 0);
	CHECK(text.find("need upstream_tls = on") != std::string::npos);
	CHECK(check("mode = rpc\nupstream_tls = on\n", &text) != 0);
	CHECK(text.find("upstream_tls is not available in mode = rpc") !=
	      std::string::npos);
}

TEST_CASE("tls origination: health checks make the verified handshake; a "
	  "self-signed upstream is down, clients go to the other", "[tls]")
{
	const Pki &p = pki();
	Echo good(echo_tls());
	Echo self(echo_tls(p.self_cert, p.self_key));
	std::vector<std::string> args = {"--server", self.addr(), "--server",
					 good.addr(), "--retries", "0",
					 "--health-interval", "100ms", "--set",
					 "health_rise=2", "--set", "health_fall=2"};
	SECTION("connect checks") {}
	SECTION("check_frame, exchanged through TLS") {
		args.insert(args.end(), {"--check-frame", "70696e67"});
	}
	Proxy proxy(upstream_tls(args));

	LogRecord down;
	INFO(proxy.log_tail());
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "upstream down") && r.is("upstream", self.addr());
	}, T5, &down));
	INFO(down.line);
	CHECK(down.get("error") == "Protocol error");
	// Enough rounds for the good server to have been checked again and
	// again, through the handshake (and the frame).
	std::this_thread::sleep_for(milliseconds(500));
	for (int i = 0; i < 6; i++) {
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		CHECK(c.roundtrip("after the checks " + std::to_string(i)));
	}
	REQUIRE(proxy.wait_access_count(6, T5));
	for (const auto &r : proxy.records("access")) {
		CHECK(r.get("upstream") == good.addr());
		CHECK(r.get("reason") == "client_eof");
	}
	for (const auto &r : proxy.records("upstream down"))
		CHECK(r.get("upstream") != good.addr());
	CHECK(proxy.records("upstream tls handshake failed").empty());
}

TEST_CASE("tls origination: a server named by a host is verified for that "
	  "host name by default", "[tls]")
{
	const Pki &p = pki();
	DnsServer dns; // the tests' own: no lookup leaves the machine
	dns.set_a("other.test", {"127.0.0.1"}, 60);
	dns.set_a("wrong.test", {"127.0.0.1"}, 60);
	// other.test's certificate names only other.test: it verifies for
	// the host name, not for the address the name resolved to.
	Echo echo(echo_tls(p.other_cert, p.other_key));
	std::string port = std::to_string(echo.port());

	SECTION("the certificate carries the host name") {
		Proxy proxy(upstream_tls({"--resolvers", dns.addr(), "--server",
					  "other.test:" + port}));
		REQUIRE(proxy.wait_record([](const LogRecord &r) {
			return r.is("msg", "servers changed");
		}, T5));
		for (int i = 0; i < 3; i++) {
			Conn c = Conn::connect(proxy.port());
			REQUIRE(c.valid());
			CHECK(c.roundtrip("by name " + std::to_string(i)));
		}
		CHECK(proxy.records("upstream tls handshake failed").empty());
	}
	SECTION("it does not") {
		Proxy proxy(upstream_tls({"--resolvers", dns.addr(), "--server",
					  "wrong.test:" + port}));
		REQUIRE(proxy.wait_record([](const LogRecord &r) {
			return r.is("msg", "servers changed");
		}, T5));
		Conn c = Conn::connect(proxy.port());
		REQUIRE(c.valid());
		REQUIRE(c.send_all(frame("never relayed")) == Io::Ok);
		Io r = c.wait_closed(milliseconds(3000));
		CHECK((r == Io::Eof || r == Io::Reset));
		LogRecord warn;
		REQUIRE(proxy.wait_record([](const LogRecord &w) {
			return w.is("msg", "upstream tls handshake failed");
		}, T5, &warn));
		CHECK(warn.get("name") == "wrong.test");
		CHECK(warn.get("error") ==
		      "certificate verify failed: hostname mismatch");
	}
}

// --- mTLS and ALPN -----------------------------------------------------------

namespace {

std::vector<std::string> mtls_args(const std::string &verify,
				   std::vector<std::string> more = {})
{
	std::vector<std::string> a = tls_args({"--set", "tls_client_ca=" + pki().ca,
					       "--set", "tls_verify_client=" + verify});
	a.insert(a.end(), more.begin(), more.end());
	return a;
}

// A client the proxy refused: no frame comes back (with TLS 1.3 the
// client's side of the handshake may finish before the proxy has checked
// its certificate, so the refusal shows at the first read), and its
// access line says tls_handshake with no upstream.
void check_refused(Proxy &proxy, TlsClient &c, const std::string &error)
{
	INFO(proxy.log_tail());
	CHECK(!(c.ok() && c.roundtrip("never relayed")));
	LogRecord access;
	REQUIRE(proxy.wait_access(c.conn().local_addr(), T5, &access));
	CHECK(access.get("reason") == "tls_handshake");
	CHECK(access.get("upstream") == "-");
	CHECK(!access.has("client_cert"));
	LogRecord warn;
	REQUIRE(proxy.wait_record([&](const LogRecord &r) {
		return r.is("msg", "tls handshake failed") &&
		       r.is("client", access.get("client"));
	}, T5, &warn));
	CHECK(warn.get("error") == error);
}

// A client the proxy accepted: a frame echoed, then its access line.
LogRecord accepted(Proxy &proxy, TlsClient &c)
{
	INFO(proxy.log_tail());
	REQUIRE(c.ok());
	REQUIRE(c.roundtrip("through mTLS"));
	std::string addr = c.conn().local_addr();
	::shutdown(c.conn().fd(), SHUT_WR); // EOF, no close_notify: client_eof
	LogRecord access;
	REQUIRE(proxy.wait_access(addr, T5, &access));
	CHECK(access.get("reason") == "client_eof");
	return access;
}

} // namespace

TEST_CASE("tls mTLS required: no certificate and a stranger's are refused "
	  "(tls_handshake), a good one is accepted and its subject logged",
	  "[tls]")
{
	const ClientPki &cp = client_pki();
	Echo echo;
	Proxy proxy(mtls_args("required", {"--server", echo.addr()}));

	SECTION("no certificate") {
		TlsClient c(proxy.port(), "localhost");
		check_refused(proxy, c, "peer did not return a certificate");
	}
	SECTION("no certificate, TLS 1.2: the client sees it in the handshake") {
		TlsClient c(proxy.port(), "localhost", {"", "", {}, TLS1_2_VERSION});
		CHECK(!c.ok());
		check_refused(proxy, c, "peer did not return a certificate");
	}
	SECTION("a certificate from another CA") {
		TlsClient c(proxy.port(), "localhost",
			    {cp.stranger_cert, cp.stranger_key, {}});
		check_refused(proxy, c, "certificate verify failed: unable to "
				       "get local issuer certificate");
	}
	SECTION("a certificate from the CA, also with SNI picking the second "
		"pair") {
		for (const char *name : {"localhost", "other.test"}) {
			TlsClient c(proxy.port(), name, {cp.cert, cp.key, {}});
			LogRecord a = accepted(proxy, c);
			INFO(a.line);
			CHECK(a.get("client_cert") == cp.subject);
			CHECK(!a.has("alpn"));
		}
		CHECK(metric_is(proxy, "frameproxy_tls_handshake_failures_total", 0));
	}
}

TEST_CASE("tls mTLS optional: no certificate is fine, a good one is logged, "
	  "a stranger's is refused", "[tls]")
{
	const ClientPki &cp = client_pki();
	Echo echo;
	Proxy proxy(mtls_args("optional", {"--server", echo.addr()}));

	{
		TlsClient none(proxy.port(), "localhost");
		LogRecord a = accepted(proxy, none);
		CHECK(!a.has("client_cert"));
	}
	{
		TlsClient good(proxy.port(), "localhost", {cp.cert, cp.key, {}});
		LogRecord a = accepted(proxy, good);
		CHECK(a.get("client_cert") == cp.subject);
	}
	{
		TlsClient bad(proxy.port(), "localhost",
			      {cp.stranger_cert, cp.stranger_key, {}});
		check_refused(proxy, bad, "certificate verify failed: unable to "
					  "get local issuer certificate");
	}
	CHECK(metric_is(proxy, "frameproxy_tls_handshakes_total", 2));
	CHECK(metric_is(proxy, "frameproxy_tls_handshake_failures_total", 1));
}

TEST_CASE("tls mTLS off (the default): a client certificate is not asked "
	  "for, none logged", "[tls]")
{
	const ClientPki &cp = client_pki();
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr()}));

	TlsClient c(proxy.port(), "localhost", {cp.stranger_cert,
						cp.stranger_key, {}});
	LogRecord a = accepted(proxy, c);
	CHECK(!a.has("client_cert"));
}

TEST_CASE("tls ALPN: the first of the proxy's protocols the client offers "
	  "is chosen and logged; none in common is refused; none offered is "
	  "fine", "[tls]")
{
	Echo echo;
	Proxy proxy(tls_args({"--server", echo.addr(), "--set",
			      "tls_alpn=frames/2, frames/1"}));

	{
		TlsClient c(proxy.port(), "localhost",
			    {"", "", {"x-other", "frames/1", "frames/2"}});
		CHECK(c.alpn() == "frames/2");
		LogRecord a = accepted(proxy, c);
		CHECK(a.get("alpn") == "frames/2");
	}
	{
		TlsClient c(proxy.port(), "localhost", {"", "", {"frames/1"}});
		CHECK(c.alpn() == "frames/1");
		LogRecord a = accepted(proxy, c);
		CHECK(a.get("alpn") == "frames/1");
	}
	{
		TlsClient c(proxy.port(), "localhost");
		CHECK(c.alpn() == "");
		LogRecord a = accepted(proxy, c);
		CHECK(!a.has("alpn"));
	}
	{
		TlsClient c(proxy.port(), "localhost", {"", "", {"h2", "x-other"}});
		CHECK(!c.ok()); // the alert comes in the server's first flight
		check_refused(proxy, c, "no application protocol");
	}
}

TEST_CASE("tls ALPN and mTLS with openssl s_client: the protocol and the "
	  "subject in the access line", "[tls]")
{
	const ClientPki &cp = client_pki();
	Echo echo;
	Proxy proxy(mtls_args("required", {"--server", echo.addr(), "--set",
					    "tls_alpn=frames/1"}));

	std::string outf = tmp().file("s_client_alpn.out");
	std::string cmd = "(printf '\\000\\000\\000\\005hello'; sleep 1) | "
			  "openssl s_client -quiet -no_ign_eof -verify_return_error "
			  "-CAfile " + pki().ca + " -cert " + cp.cert + " -key " +
			  cp.key + " -alpn frames/1 -servername localhost -connect " +
			  proxy.addr() + " > " + outf + " 2>/dev/null";
	Process p({"/bin/sh", "-c", cmd}, "s_client");
	REQUIRE(run_to_exit(p, milliseconds(10000)) == 0);
	CHECK(read_file(outf) == frame("hello"));
	REQUIRE(proxy.wait_access_count(1, T5));
	LogRecord a = proxy.records("access")[0];
	INFO(a.line);
	CHECK(a.get("alpn") == "frames/1");
	CHECK(a.get("client_cert") == cp.subject);
	CHECK(a.num("client_frames") == 1);
}

TEST_CASE("tls mTLS and ALPN: config errors name file, line and key", "[tls]")
{
	const Pki &p = pki();
	std::string ini = tmp().file("mtls.ini");
	const std::string pair = "tls_cert = " + p.cert + "\ntls_key = " + p.key +
				 "\n";
	std::string text;

	CHECK(check_ini(ini, pair + "tls_client_ca = " + p.ca +
				 "\ntls_verify_client = required\ntls_alpn = a,b\n",
			&text) == 0);
	INFO(text);

	CHECK(check_ini(ini, pair + "tls_verify_client = optional\n", &text) != 0);
	CHECK(text.find(ini + ":6: key 'tls_verify_client': optional and "
			"required need tls_client_ca") != std::string::npos);

	CHECK(check_ini(ini, pair + "tls_client_ca = " + p.dir +
				 "/missing-ca.pem\ntls_verify_client = required\n",
			&text) != 0);
	CHECK(text.find(ini + ":6: key 'tls_client_ca': cannot read "
			"certificate") != std::string::npos);
	CHECK(text.find("missing-ca.pem") != std::string::npos);
	// Only that error: the verify mode left without its CA is not a
	// second one.
	CHECK(text.find("need tls_client_ca") == std::string::npos);

	std::string garbage = p.dir + "/garbage-ca.pem";
	write_file(garbage, "not a certificate\n");
	CHECK(check_ini(ini, pair + "tls_verify_client = required\n"
				 "tls_client_ca = " + garbage + "\n", &text) != 0);
	CHECK(text.find(ini + ":7: key 'tls_client_ca': cannot read "
			"certificate") != std::string::npos);

	CHECK(check_ini(ini, pair + "tls_verify_client = sometimes\n", &text) != 0);
	CHECK(text.find(ini + ":6: key 'tls_verify_client': invalid "
			"tls_verify_client 'sometimes'") != std::string::npos);

	CHECK(check_ini(ini, pair + "tls_client_ca = " + p.ca + "\n", &text) != 0);
	CHECK(text.find(ini + ":6: key 'tls_client_ca': needs tls_verify_client") !=
	      std::string::npos);

	CHECK(check_ini(ini, pair + "tls_alpn = a,,b\n", &text) != 0);
	CHECK(text.find(ini + ":6: key 'tls_alpn': invalid tls_alpn 'a,,b'") !=
	      std::string::npos);

	CHECK(check_ini(ini, "tls_alpn = a\n", &text) != 0);
	CHECK(text.find("need tls_cert") != std::string::npos);

	// With --set the error names the flag.
	Process c({binary("FRAMEPROXY"), "--check", "--listen", "127.0.0.1:0",
		   "--server", "127.0.0.1:1", "--set", "tls_cert=" + p.cert,
		   "--set", "tls_key=" + p.key, "--set",
		   "tls_verify_client=required"}, "check");
	CHECK(run_to_exit(c, milliseconds(10000)) != 0);
	CHECK((c.out() + c.err()).find("tls_verify_client") != std::string::npos);
	CHECK((c.out() + c.err()).find("need tls_client_ca") != std::string::npos);
}

TEST_CASE("tls mTLS: tls_client_ca is re-read on SIGHUP, a connection from "
	  "before keeps working; a bad file keeps the running CA", "[tls]")
{
	const Pki &p = pki();
	const ClientPki &cp = client_pki();
	const std::string live = p.dir + "/live-ca";
	auto install = [&](const std::string &from) {
		REQUIRE(sh("mkdir -p " + live + " && cp " + from + " " + live +
			   "/tmp && mv " + live + "/tmp " + live + "/ca.pem"));
	};
	install(p.ca);
	Echo echo;
	Proxy proxy({"--server", echo.addr(), "--drain-timeout", "60s",
		     "--admin", "127.0.0.1:0", "--set", "tls_cert=" + p.cert,
		     "--set", "tls_key=" + p.key, "--set",
		     "tls_client_ca=" + live + "/ca.pem", "--set",
		     "tls_verify_client=required"});
	REQUIRE(proxy.wait_ready());
	const TlsClientOpts ours = {cp.cert, cp.key, {}};
	const TlsClientOpts stranger = {cp.stranger_cert, cp.stranger_key, {}};

	TlsClient before(proxy.port(), "localhost", ours);
	REQUIRE(before.ok());
	REQUIRE(before.roundtrip("before the reload"));
	{
		TlsClient c(proxy.port(), "localhost", stranger);
		check_refused(proxy, c, "certificate verify failed: unable to get "
					"local issuer certificate");
	}

	install(p.dir + "/stranger-ca.pem");
	proxy.proc().signal(SIGHUP);
	INFO(proxy.log_tail());
	REQUIRE(wait_generation(proxy, 1));
	{
		TlsClient c(proxy.port(), "localhost", stranger);
		LogRecord a = accepted(proxy, c);
		CHECK(a.get("client_cert") == "CN=stranger");
	}
	{
		// The test's client sends the test CA with its certificate
		// (OpenSSL builds the chain from the CA it trusts): a root
		// the proxy no longer trusts.
		TlsClient c(proxy.port(), "localhost", ours);
		check_refused(proxy, c, "certificate verify failed: self-signed "
					"certificate in certificate chain");
	}
	CHECK(before.roundtrip("old connection, after the reload"));

	write_file(live + "/ca.pem", "not a certificate\n");
	proxy.proc().signal(SIGHUP);
	LogRecord failed;
	REQUIRE(proxy.wait_record([](const LogRecord &r) {
		return r.is("msg", "reload failed: keeping the running configuration");
	}, T5, &failed));
	CHECK(failed.get("reason").find("cannot read certificate '" + live +
					"/ca.pem'") != std::string::npos);
	CHECK(failed.get("reason").find(';') == std::string::npos);
	{
		TlsClient c(proxy.port(), "localhost", stranger);
		LogRecord a = accepted(proxy, c);
		CHECK(a.get("client_cert") == "CN=stranger");
	}
	CHECK(before.roundtrip("old connection, at the end"));
}
