// Shared pieces of the rpc core tests: frames as byte vectors, a pool that
// checks at the end of each test that every record came back, and iovec
// helpers.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <sys/uio.h>
#include <vector>

#include "proxy/frame.h"
#include "proxy/rpc_field.h"
#include "proxy/rpc_inflight.h"
#include "proxy/rpc_order.h"
#include "proxy/rpc_req.h"

namespace rpctest {

using Bytes = std::vector<uint8_t>;

inline Bytes frame(const Bytes &payload)
{
	Bytes f(FRAME_HEADER_SIZE + payload.size());
	frame_write_length(f.data(), (uint32_t)payload.size());
	if (!payload.empty())
		memcpy(f.data() + FRAME_HEADER_SIZE, payload.data(),
		       payload.size());
	return f;
}

inline Bytes frame(const std::string &payload)
{
	return frame(Bytes(payload.begin(), payload.end()));
}

inline std::string payload_of(const uint8_t *f, size_t len)
{
	REQUIRE(len >= FRAME_HEADER_SIZE);
	REQUIRE(frame_read_length(f) == len - FRAME_HEADER_SIZE);
	return std::string((const char *)f + FRAME_HEADER_SIZE,
			   len - FRAME_HEADER_SIZE);
}

inline std::string payload_of(const iovec &v)
{
	return payload_of((const uint8_t *)v.iov_base, v.iov_len);
}

inline std::string payload_of(const rpc_req *r)
{
	return payload_of(r->bytes, r->len);
}

// A pool that must be whole again when the test ends: every record handed
// out was put back exactly once.
struct Pool {
	rpc_pool p;
	explicit Pool(uint32_t free_max = 1024, uint32_t keep = 4096)
	{
		rpc_pool_init(&p, free_max, keep);
	}
	~Pool()
	{
		CHECK(p.live == 0);
		rpc_pool_free(&p);
	}
	// A NEW record holding the frame of `payload`.
	rpc_req *request(const std::string &payload, int64_t now = 0)
	{
		rpc_req *r = rpc_pool_get(&p);
		REQUIRE(r);
		Bytes f = frame(payload);
		REQUIRE(rpc_req_store(r, f.data(), f.size()) == 0);
		r->read_ns = now;
		return r;
	}
	Pool(const Pool &) = delete;
	Pool &operator=(const Pool &) = delete;
};

struct Order {
	rpc_order o;
	Order(Pool &pool, uint32_t max_inflight, size_t budget = SIZE_MAX)
	{
		REQUIRE(rpc_order_init(&o, &pool.p, max_inflight, budget) ==
			0);
	}
	~Order()
	{
		rpc_order_detach(&o);
		rpc_order_free(&o);
	}
	// The payloads of everything deliverable now, written and released.
	std::vector<std::string> deliver(size_t max_iov = 64)
	{
		std::vector<std::string> out;
		std::vector<iovec> iov(max_iov);
		size_t n;
		while ((n = rpc_order_take(&o, iov.data(), max_iov, nullptr))) {
			for (size_t i = 0; i < n; i++)
				out.push_back(payload_of(iov[i]));
			rpc_order_release(&o);
		}
		return out;
	}
	Order(const Order &) = delete;
	Order &operator=(const Order &) = delete;
};

struct Conn {
	rpc_inflight q;
	Conn(Pool &pool, uint32_t max, rpc_field tag = { 0, 0 },
	     bool keep = false, unsigned *load = nullptr)
	{
		rpc_inflight_params params = { max, tag, keep, load };
		REQUIRE(rpc_inflight_init(&q, &pool.p, &params) == 0);
	}
	~Conn()
	{
		rpc_req_list out = {};
		rpc_inflight_drain(&q, &out);
		// Requests still owned go back to their clients' hands: a
		// test that leaves some owned must detach its orders first.
		CHECK(out.count == 0);
		rpc_inflight_free(&q);
	}
	// Write everything queued; the payloads in write order.
	std::vector<std::string> write_all()
	{
		std::vector<std::string> out;
		iovec iov[64];
		size_t n;
		while ((n = rpc_inflight_gather(&q, iov, 64, nullptr))) {
			for (size_t i = 0; i < n; i++)
				out.push_back(payload_of(iov[i]));
			rpc_inflight_wrote(&q);
		}
		return out;
	}
	Conn(const Conn &) = delete;
	Conn &operator=(const Conn &) = delete;
};

} // namespace rpctest
