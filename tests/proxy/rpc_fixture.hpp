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

} // namespace rpctest
