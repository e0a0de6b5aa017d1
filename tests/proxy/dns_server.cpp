#include "tests/proxy/dns_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace itest {

namespace {

constexpr uint16_t TYPE_A = 1, TYPE_AAAA = 28, TYPE_SRV = 33;

std::string lower(std::string s)
{
	for (auto &c : s)
		c = (char)std::tolower((unsigned char)c);
	if (!s.empty() && s.back() == '.')
		s.pop_back();
	return s;
}

void put16(std::string &out, unsigned v)
{
	out.push_back((char)(v >> 8));
	out.push_back((char)(v & 0xff));
}

void put32(std::string &out, uint32_t v)
{
	put16(out, v >> 16);
	put16(out, v & 0xffff);
}

std::string encode_name(const std::string &name)
{
	std::string out;
	size_t at = 0;
	while (at < name.size()) {
		size_t dot = name.find('.', at);
		if (dot == std::string::npos)
			dot = name.size();
		out.push_back((char)(dot - at));
		out += name.substr(at, dot - at);
		at = dot + 1;
	}
	out.push_back('\0');
	return out;
}

// The question's name (no compression in questions); npos on garbage.
size_t read_name(const unsigned char *p, size_t len, size_t at, std::string &name)
{
	name.clear();
	while (at < len) {
		unsigned n = p[at++];
		if (n == 0)
			return at;
		if (n > 63 || at + n > len)
			return std::string::npos;
		if (!name.empty())
			name.push_back('.');
		name.append((const char *)p + at, n);
		at += n;
	}
	return std::string::npos;
}

// One answer record naming the question (a pointer to offset 12).
void put_rr(std::string &out, uint16_t type, uint32_t ttl, const std::string &rdata)
{
	put16(out, 0xc00c);
	put16(out, type);
	put16(out, 1);
	put32(out, ttl);
	put16(out, (unsigned)rdata.size());
	out += rdata;
}

} // namespace

DnsServer::DnsServer()
{
	fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	if (fd_ < 0 || ::bind(fd_, (sockaddr *)&sa, sizeof(sa)) < 0 ||
	    ::getsockname(fd_, (sockaddr *)&sa, &sl) < 0 || ::pipe(wake_) < 0)
		throw std::runtime_error("DnsServer: cannot bind");
	port_ = ntohs(sa.sin_port);
	thread_ = std::thread([this] { run(); });
}

DnsServer::~DnsServer()
{
	stop_ = true;
	char b = 0;
	if (::write(wake_[1], &b, 1) < 0) {
	}
	thread_.join();
	::close(fd_);
	::close(wake_[0]);
	::close(wake_[1]);
}

void DnsServer::set_a(const std::string &name, const std::vector<std::string> &ips,
		      uint32_t ttl)
{
	std::lock_guard<std::mutex> g(mu_);
	auto &r = table_[lower(name)];
	r.a = ips;
	r.ttl_a = ttl;
}

void DnsServer::set_aaaa(const std::string &name, const std::vector<std::string> &ips,
			 uint32_t ttl)
{
	std::lock_guard<std::mutex> g(mu_);
	auto &r = table_[lower(name)];
	r.aaaa = ips;
	r.ttl_aaaa = ttl;
}

void DnsServer::set_srv(const std::string &name, const std::vector<Srv> &records,
			uint32_t ttl)
{
	std::lock_guard<std::mutex> g(mu_);
	auto &r = table_[lower(name)];
	r.srv = records;
	r.ttl_srv = ttl;
}

void DnsServer::remove(const std::string &name)
{
	std::lock_guard<std::mutex> g(mu_);
	table_.erase(lower(name));
}

unsigned DnsServer::queries(const std::string &name, const std::string &type)
{
	std::lock_guard<std::mutex> g(mu_);
	if (!type.empty())
		return counts_[lower(name) + "/" + type];
	unsigned n = 0;
	for (const char *t : {"A", "AAAA", "SRV"})
		n += counts_[lower(name) + "/" + t];
	return n;
}

std::string DnsServer::answer(const unsigned char *q, size_t len)
{
	std::string name;
	if (len < 12)
		return "";
	size_t at = read_name(q, len, 12, name);
	if (at == std::string::npos || at + 4 > len)
		return "";
	uint16_t type = (uint16_t)(q[at] << 8 | q[at + 1]);
	size_t question_end = at + 4;
	name = lower(name);

	std::string body;
	unsigned count = 0;
	bool known;
	{
		std::lock_guard<std::mutex> g(mu_);
		const char *tname = type == TYPE_A ? "A" : type == TYPE_AAAA ? "AAAA"
					 : type == TYPE_SRV ? "SRV" : "other";
		counts_[name + "/" + tname]++;
		auto it = table_.find(name);
		known = it != table_.end();
		if (known && type == TYPE_A) {
			for (auto &ip : it->second.a) {
				in_addr a{};
				inet_pton(AF_INET, ip.c_str(), &a);
				put_rr(body, TYPE_A, it->second.ttl_a, std::string((char *)&a, 4));
				count++;
			}
		} else if (known && type == TYPE_AAAA) {
			for (auto &ip : it->second.aaaa) {
				in6_addr a{};
				inet_pton(AF_INET6, ip.c_str(), &a);
				put_rr(body, TYPE_AAAA, it->second.ttl_aaaa,
				       std::string((char *)&a, 16));
				count++;
			}
		} else if (known && type == TYPE_SRV) {
			for (auto &s : it->second.srv) {
				std::string rd;
				put16(rd, s.priority);
				put16(rd, s.weight);
				put16(rd, s.port);
				rd += encode_name(s.target);
				put_rr(body, TYPE_SRV, it->second.ttl_srv, rd);
				count++;
			}
		}
	}
	std::string out;
	put16(out, (unsigned)(q[0] << 8 | q[1]));             // id
	put16(out, 0x8400 | (q[2] & 0x01) << 8 | 0x80 | (known ? 0 : 3)); // QR AA RD RA rcode
	put16(out, 1);
	put16(out, count);
	put16(out, 0);
	put16(out, 0);
	out.append((const char *)q + 12, question_end - 12);
	return out + body;
}

void DnsServer::run()
{
	unsigned char buf[1500];
	while (!stop_) {
		pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
		if (::poll(p, 2, 1000) <= 0 || (p[1].revents & POLLIN))
			continue;
		sockaddr_storage from{};
		socklen_t fl = sizeof(from);
		ssize_t n = ::recvfrom(fd_, buf, sizeof(buf), 0, (sockaddr *)&from, &fl);
		if (n <= 0)
			continue;
		std::string reply = answer(buf, (size_t)n);
		if (silent_ || reply.empty())
			continue;
		::sendto(fd_, reply.data(), reply.size(), 0, (sockaddr *)&from, fl);
	}
}

} // namespace itest
