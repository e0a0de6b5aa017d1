// A small DNS server of the tests' own, on 127.0.0.1 UDP: answers A, AAAA
// and SRV questions from a table the test rewrites while it runs (each
// record with its TTL), counts the questions per name and type, and can
// go silent (drop every question: a resolver that times out). Anything
// not in the table is
// NXDOMAIN; a name in the table without records of the asked type is
// an empty NOERROR answer. One thread; the table is under a mutex.
#ifndef FRAMEPROXY_TESTS_PROXY_DNS_SERVER_HPP
#define FRAMEPROXY_TESTS_PROXY_DNS_SERVER_HPP

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace itest {

class DnsServer {
public:
	struct Srv {
		uint16_t priority, weight, port;
		std::string target;
	};

	DnsServer();
	~DnsServer();
	DnsServer(const DnsServer &) = delete;
	DnsServer &operator=(const DnsServer &) = delete;

	uint16_t port() const { return port_; }
	// For `resolvers =`.
	std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

	// Replace the name's A (IPv4 text) or AAAA (IPv6 text) records.
	void set_a(const std::string &name, const std::vector<std::string> &ips,
		   uint32_t ttl);
	void set_aaaa(const std::string &name, const std::vector<std::string> &ips,
		      uint32_t ttl);
	void set_srv(const std::string &name, const std::vector<Srv> &records,
		     uint32_t ttl);
	// The name and all its records go: NXDOMAIN from now on.
	void remove(const std::string &name);

	// Questions seen for the name ("A", "AAAA", "SRV"; "" = any type).
	unsigned queries(const std::string &name, const std::string &type = "");
	void silent(bool on) { silent_ = on; }

private:
	struct Records {
		std::vector<std::string> a, aaaa;
		std::vector<Srv> srv;
		uint32_t ttl_a = 0, ttl_aaaa = 0, ttl_srv = 0;
	};

	void run();
	std::string answer(const unsigned char *q, size_t len);

	int fd_ = -1;
	int wake_[2] = {-1, -1};
	uint16_t port_ = 0;
	std::atomic<bool> silent_{false};
	std::atomic<bool> stop_{false};
	std::thread thread_;
	std::mutex mu_;
	std::map<std::string, Records> table_;           // under mu_
	std::map<std::string, unsigned> counts_;         // "name/TYPE", under mu_
};

} // namespace itest

#endif
