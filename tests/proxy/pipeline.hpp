// Verified pipelining clients for the drain and handoff tests: N
// connections, each keeping `depth` frames in flight to an echo through the
// proxy, every reply checked against what was sent, in order. All of them
// run in the calling thread over one poll(2) loop, so hundreds cost no
// threads. How each connection ended is counted: a clean EOF, a reset
// (ECONNRESET seen on read or write), a partial frame before the end.
#pragma once

#include <poll.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "tests/proxy/harness.hpp"

namespace itest {

struct PipelineStats {
	size_t connected = 0;
	size_t eofs = 0;          // connections the proxy ended with FIN
	size_t resets = 0;        // ECONNRESET on read or write
	size_t partial = 0;       // ended with part of a frame read
	size_t mismatched = 0;    // replies that were not the frame sent
	size_t errors = 0;        // any other socket error
	uint64_t sent = 0;        // frames written
	uint64_t replied = 0;     // correct replies read
};

class Pipeline {
public:
	// `size`: payload bytes of each frame; frames name their client and
	// sequence number, so a reply is checked byte for byte.
	Pipeline(uint16_t port, size_t clients, size_t depth, size_t size)
		: depth_(depth), size_(size)
	{
		for (size_t i = 0; i < clients; i++) {
			Conn c = Conn::connect(port);
			if (!c.valid())
				continue;
			Client cl;
			cl.id = i;
			cl.fd = c.fd();
			cl.conn = std::move(c);
			clients_.push_back(std::move(cl));
			stats_.connected++;
		}
	}

	// Runs until `until` returns true (polled about every 10 ms) or every
	// connection has ended. With `stop_sending`, no new frame is written
	// once it is set (the frames in flight are still read).
	template <typename Until>
	void run(Until until, const bool *stop_sending = nullptr)
	{
		std::vector<pollfd> fds;
		std::vector<size_t> which;
		while (!until()) {
			fds.clear();
			which.clear();
			for (size_t i = 0; i < clients_.size(); i++) {
				Client &c = clients_[i];
				if (c.ended)
					continue;
				short ev = POLLIN;
				if (wants_send(c, stop_sending))
					ev |= POLLOUT;
				fds.push_back({c.fd, ev, 0});
				which.push_back(i);
			}
			if (fds.empty())
				return;
			if (::poll(fds.data(), fds.size(), 10) < 0 && errno != EINTR)
				return;
			for (size_t k = 0; k < fds.size(); k++) {
				Client &c = clients_[which[k]];
				if (fds[k].revents & POLLOUT)
					do_send(c, stop_sending);
				if (!c.ended && (fds[k].revents & (POLLIN | POLLERR | POLLHUP)))
					do_read(c);
			}
		}
	}

	// Frames written and not yet answered, over all live connections.
	uint64_t in_flight() const
	{
		uint64_t n = 0;
		for (const Client &c : clients_)
			if (!c.ended)
				n += c.next_send - c.next_reply;
		return n;
	}

	size_t live() const
	{
		size_t n = 0;
		for (const Client &c : clients_)
			n += !c.ended;
		return n;
	}

	const PipelineStats &stats() const { return stats_; }

	// Stops writing and reads what is in flight, for at most `timeout`.
	void finish(milliseconds timeout)
	{
		const bool stop = true;
		auto t0 = Clock::now();
		run([&] { return in_flight() == 0 || ms_since(t0) > timeout.count(); }, &stop);
	}

	// The counts, for a failed check's message.
	std::string summary() const
	{
		std::ostringstream o;
		o << "sent " << stats_.sent << " replied " << stats_.replied << " eofs "
		  << stats_.eofs << " resets " << stats_.resets << " mismatched "
		  << stats_.mismatched << " errors " << stats_.errors;
		return o.str();
	}

	// Close every connection still open (FIN).
	void close_all()
	{
		for (Client &c : clients_)
			if (!c.ended) {
				c.ended = true;
				c.conn.close();
			}
	}

private:
	struct Client {
		size_t id = 0;
		int fd = -1;
		Conn conn;
		uint64_t next_send = 0;   // sequence of the next frame to write
		uint64_t next_reply = 0;  // sequence of the next reply expected
		std::string out;          // the frame being written
		size_t out_at = 0;
		std::string in;           // bytes read, not yet a whole frame
		bool ended = false;
	};

	std::string payload(const Client &c, uint64_t seq) const
	{
		std::string p = "c" + std::to_string(c.id) + "s" + std::to_string(seq) + ":";
		while (p.size() < size_)
			p += static_cast<char>('a' + (seq + p.size() + c.id) % 26);
		p.resize(size_);
		return p;
	}

	bool wants_send(const Client &c, const bool *stop) const
	{
		if (c.out_at < c.out.size())
			return true;
		return !(stop && *stop) && c.next_send - c.next_reply < depth_;
	}

	void end(Client &c, bool reset)
	{
		c.ended = true;
		if (reset)
			stats_.resets++;
		else
			stats_.eofs++;
		if (!c.in.empty())
			stats_.partial++;
		c.conn.close();
	}

	void fail(Client &c, int err)
	{
		if (err == ECONNRESET || err == EPIPE) {
			end(c, err == ECONNRESET);
			return;
		}
		stats_.errors++;
		c.ended = true;
		c.conn.close();
	}

	void do_send(Client &c, const bool *stop)
	{
		for (;;) {
			if (c.out_at == c.out.size()) {
				if ((stop && *stop) || c.next_send - c.next_reply >= depth_)
					return;
				c.out = frame(payload(c, c.next_send++));
				c.out_at = 0;
				stats_.sent++;
			}
			ssize_t n = ::send(c.fd, c.out.data() + c.out_at,
					   c.out.size() - c.out_at, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				// EPIPE: the proxy shut its side and we wrote on; a
				// reset shows on the read that follows.
				if (errno != EPIPE)
					fail(c, errno);
				return;
			}
			c.out_at += static_cast<size_t>(n);
		}
	}

	void do_read(Client &c)
	{
		char buf[65536];
		for (;;) {
			ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
			if (n == 0) {
				end(c, false);
				return;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				fail(c, errno);
				return;
			}
			c.in.append(buf, static_cast<size_t>(n));
			take_frames(c);
		}
	}

	void take_frames(Client &c)
	{
		size_t at = 0;
		while (c.in.size() - at >= 4) {
			const unsigned char *h =
				reinterpret_cast<const unsigned char *>(c.in.data() + at);
			size_t len = (size_t(h[0]) << 24) | (size_t(h[1]) << 16) |
				     (size_t(h[2]) << 8) | size_t(h[3]);
			if (c.in.size() - at < 4 + len)
				break;
			std::string got = c.in.substr(at + 4, len);
			if (got == payload(c, c.next_reply))
				stats_.replied++;
			else
				stats_.mismatched++;
			c.next_reply++;
			at += 4 + len;
		}
		c.in.erase(0, at);
	}

	size_t depth_;
	size_t size_;
	std::vector<Client> clients_;
	PipelineStats stats_;
};

} // namespace itest
