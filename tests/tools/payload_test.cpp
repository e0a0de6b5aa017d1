// Deterministic frame payloads: generated in any chunking, verified without a
// copy, and every kind of damage (a byte, a swapped or truncated frame) seen.
#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "proxy/frame.h"
#include "tools/lib/payload.h"

namespace {

std::vector<uint8_t> make_frame(const payload_frame_id &id)
{
	std::vector<uint8_t> f(4 + id.len);
	frame_write_length(f.data(), id.len);
	payload_fill(f.data() + 4, id.len, &id, 0);
	return f;
}

const uint32_t kSizes[] = {0, 1, 7, 8, 15, 16, 17, 23, 24, 100, 4096, 70001};

} // namespace

TEST_CASE("payload frames verify as sent", "[payload]")
{
	for (uint32_t len : kSizes) {
		payload_frame_id id = {7, 3, 12345, len};
		auto f = make_frame(id);
		INFO("len " << len);
		CHECK(payload_frame_check(f.data(), f.size(), &id) == 0);
	}
}

TEST_CASE("payload header carries conn, seq and length", "[payload]")
{
	payload_frame_id id = {1, 0x01020304u, 0x1122334455667788ull, 40};
	auto f = make_frame(id);
	const uint8_t want[16] = {1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55,
				  0x66, 0x77, 0x88, 0, 0, 0, 40};
	CHECK(std::memcmp(f.data() + 4, want, 16) == 0);
	CHECK(frame_read_length(f.data()) == 40);
}

TEST_CASE("payload generation is independent of chunking", "[payload]")
{
	payload_frame_id id = {99, 5, 77, 10000};
	std::vector<uint8_t> whole(id.len), pieces(id.len);
	payload_fill(whole.data(), id.len, &id, 0);
	uint32_t off = 0, step = 1;
	while (off < id.len) {
		uint32_t k = std::min(step, id.len - off);
		payload_fill(pieces.data() + off, k, &id, off);
		off += k;
		step = step * 3 % 1013 + 1;  // odd sizes cross every boundary
	}
	CHECK(whole == pieces);
}

TEST_CASE("payload streaming verifier takes any chunking", "[payload]")
{
	payload_frame_id id = {3, 1, 2, 5000};
	auto f = make_frame(id);
	payload_verifier v;
	payload_verify_begin(&v, &id);
	size_t off = 4, step = 1;
	while (off < f.size()) {
		size_t k = std::min(step, f.size() - off);
		CHECK(payload_verify_feed(&v, f.data() + off, k) == k);
		off += k;
		step = step * 7 % 509 + 1;
	}
	CHECK(payload_verify_done(&v));
	CHECK_FALSE(v.bad);
	// It never takes more than the frame.
	uint8_t extra = 0;
	CHECK(payload_verify_feed(&v, &extra, 1) == 0);
}

TEST_CASE("payload a corrupted byte is detected anywhere", "[payload]")
{
	for (uint32_t len : kSizes) {
		if (len == 0)
			continue;
		payload_frame_id id = {7, 3, 12345, len};
		auto f = make_frame(id);
		for (uint32_t pos : {0u, len / 2, len - 1}) {
			auto bad = f;
			bad[4 + pos] ^= 0x01;  // a single bit flip
			INFO("len " << len << " pos " << pos);
			CHECK(payload_frame_check(bad.data(), bad.size(), &id) == -EBADMSG);
			payload_verifier v;
			payload_verify_begin(&v, &id);
			payload_verify_feed(&v, bad.data() + 4, len);
			CHECK(v.bad);
			CHECK(v.bad_offset == pos);
		}
	}
}

TEST_CASE("payload a swapped frame is detected", "[payload]")
{
	// Frames seq and seq+1 of the same size, delivered in the wrong order.
	for (uint32_t len : kSizes) {
		if (len == 0)
			continue;  // nothing to tell empty frames apart by
		payload_frame_id five = {7, 3, 5, len}, six = {7, 3, 6, len};
		auto f6 = make_frame(six);
		INFO("len " << len);
		CHECK(payload_frame_check(f6.data(), f6.size(), &five) == -EBADMSG);
	}
	// Another connection's frame with the same seq and size, and another seed.
	payload_frame_id mine = {7, 3, 5, 64}, theirs = {7, 4, 5, 64}, reseeded = {8, 3, 5, 64};
	auto f = make_frame(theirs);
	CHECK(payload_frame_check(f.data(), f.size(), &mine) == -EBADMSG);
	f = make_frame(reseeded);
	CHECK(payload_frame_check(f.data(), f.size(), &mine) == -EBADMSG);
}

TEST_CASE("payload a truncated frame is detected", "[payload]")
{
	for (uint32_t len : kSizes) {
		payload_frame_id id = {7, 3, 9, len};
		auto f = make_frame(id);
		INFO("len " << len);
		// Cut short: the stream ended inside the frame.
		CHECK(payload_frame_check(f.data(), f.size() - 1, &id) == -EPIPE);
		CHECK(payload_frame_check(f.data(), 3, &id) == -EPIPE);
		// Extra bytes after it.
		f.push_back(0);
		CHECK(payload_frame_check(f.data(), f.size(), &id) == -E2BIG);
	}
	// Re-framed shorter: the prefix no longer announces what was sent.
	payload_frame_id id = {7, 3, 9, 100};
	auto f = make_frame(id);
	frame_write_length(f.data(), 60);
	CHECK(payload_frame_check(f.data(), 64, &id) == -EMSGSIZE);
}

TEST_CASE("payload sizes are deterministic and inside the range", "[payload]")
{
	uint32_t lo = 100, hi = 0;
	for (uint64_t seq = 0; seq < 10000; seq++) {
		uint32_t s = payload_pick_size(1, 2, seq, 16, 100);
		REQUIRE(s >= 16);
		REQUIRE(s <= 100);
		REQUIRE(s == payload_pick_size(1, 2, seq, 16, 100));
		lo = std::min(lo, s);
		hi = std::max(hi, s);
	}
	CHECK(lo == 16);
	CHECK(hi == 100);
	CHECK(payload_pick_size(1, 2, 3, 64, 64) == 64);
}

TEST_CASE("payload reply-size content is rebuilt from the request", "[payload]")
{
	const uint8_t request[] = "hello frames";
	uint64_t d = payload_fnv1a(PAYLOAD_FNV_INIT, request, sizeof(request) - 1);
	// Incremental digest equals the one-shot digest.
	uint64_t d2 = payload_fnv1a(payload_fnv1a(PAYLOAD_FNV_INIT, request, 5), request + 5,
				    sizeof(request) - 6);
	CHECK(d == d2);
	std::vector<uint8_t> whole(300), pieces(300);
	payload_reply_fill(whole.data(), whole.size(), d, 0);
	for (uint32_t off = 0; off < 300; off += 7)
		payload_reply_fill(pieces.data() + off, std::min<uint32_t>(7, 300 - off),
				   d, off);
	CHECK(whole == pieces);
	for (int i = 0; i < 8; i++)
		CHECK(whole[i] == (uint8_t)(d >> (56 - 8 * i)));
	// The streaming verifier checks replies too, and catches a bad byte.
	payload_verifier v;
	payload_verify_begin_reply(&v, d, 300);
	CHECK(payload_verify_feed(&v, whole.data(), 100) == 100);
	CHECK(payload_verify_feed(&v, whole.data() + 100, 200) == 200);
	CHECK(payload_verify_done(&v));
	CHECK_FALSE(v.bad);
	whole[150] ^= 0x80;
	payload_verify_begin_reply(&v, d, 300);
	payload_verify_feed(&v, whole.data(), 300);
	CHECK(v.bad);
	CHECK(v.bad_offset == 150);
	whole[150] ^= 0x80;
	// Short replies are a prefix of the digest.
	uint8_t three[3];
	payload_reply_fill(three, 3, d, 0);
	CHECK(std::memcmp(three, whole.data(), 3) == 0);
}
