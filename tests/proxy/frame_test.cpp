// frame_scan: what may be forwarded from a byte range that starts at a frame
// boundary. Small frames only whole; large frames streamed; oversize stops.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

extern "C" {
#include "proxy/frame.h"
}

namespace {

std::vector<uint8_t> make_frame(uint32_t length, uint8_t fill)
{
	std::vector<uint8_t> frame(FRAME_HEADER_SIZE + length, fill);
	frame_write_length(frame.data(), length);
	return frame;
}

// resize + memcpy, not insert: GCC 12 at -O3 warns about insert into an
// empty vector (a false -Warray-bounds), which --werror makes fatal.
void append(std::vector<uint8_t> &to, const std::vector<uint8_t> &from)
{
	size_t at = to.size();
	to.resize(at + from.size());
	if (!from.empty())
		memcpy(to.data() + at, from.data(), from.size());
}

} // namespace

TEST_CASE("length header is big-endian", "[frame]")
{
	uint8_t header[4];
	frame_write_length(header, 0x01020304u);
	CHECK(header[0] == 1);
	CHECK(header[3] == 4);
	CHECK(frame_read_length(header) == 0x01020304u);
}

TEST_CASE("complete frames are forwarded, a partial one waits", "[frame]")
{
	frame_scanner scanner;
	frame_scanner_init(&scanner, 1024, 4096);
	std::vector<uint8_t> data;
	append(data, make_frame(10, 'a'));
	append(data, make_frame(0, 0)); // zero-length frames are valid
	append(data, make_frame(20, 'b'));
	size_t whole = data.size();
	auto partial = make_frame(100, 'c');
	data.insert(data.end(), partial.begin(), partial.begin() + 50);

	CHECK(frame_scan(&scanner, data.data(), data.size()) == whole);
	CHECK(scanner.frames == 3);
	CHECK_FALSE(scanner.oversize);
	CHECK(frame_partial_need(data.data() + whole, 50) == 104);
	CHECK(frame_partial_need(data.data() + whole, 3) == FRAME_HEADER_SIZE);
}

TEST_CASE("an incomplete header forwards nothing", "[frame]")
{
	frame_scanner scanner;
	frame_scanner_init(&scanner, 1024, 4096);
	uint8_t header[3] = {0, 0, 0};
	CHECK(frame_scan(&scanner, header, sizeof header) == 0);
	CHECK(scanner.frames == 0);
}

TEST_CASE("oversize header stops after the frames before it", "[frame]")
{
	frame_scanner scanner;
	frame_scanner_init(&scanner, 100, 4096);
	std::vector<uint8_t> data = make_frame(100, 'a'); // exactly the limit
	size_t good = data.size();
	uint8_t bad[4];
	frame_write_length(bad, 101);
	data.insert(data.end(), bad, bad + 4);

	CHECK(frame_scan(&scanner, data.data(), data.size()) == good);
	CHECK(scanner.frames == 1);
	REQUIRE(scanner.oversize);
	CHECK(scanner.oversize_len == 101);
	// Once oversize, nothing more is ever forwarded.
	CHECK(frame_scan(&scanner, data.data() + good, 4) == 0);
}

TEST_CASE("a frame larger than the buffer is streamed", "[frame]")
{
	frame_scanner scanner;
	frame_scanner_init(&scanner, 1 << 20, 64);
	auto big = make_frame(200, 'z'); // 204 bytes through a 64-byte buffer
	auto next = make_frame(5, 'n');

	// The first chunk holds the header: forwarded as soon as it is checked.
	CHECK(frame_scan(&scanner, big.data(), 64) == 64);
	CHECK(scanner.stream_left == 204 - 64);
	CHECK(scanner.frames == 0);
	CHECK_FALSE(frame_at_boundary(&scanner, 0));
	CHECK(frame_scan(&scanner, big.data() + 64, 64) == 64);
	CHECK(frame_scan(&scanner, big.data() + 128, 64) == 64);

	// The tail of the big frame and a whole small frame in one read.
	std::vector<uint8_t> tail(big.begin() + 192, big.end());
	append(tail, next);
	CHECK(frame_scan(&scanner, tail.data(), tail.size()) == tail.size());
	CHECK(scanner.frames == 2);
	CHECK(frame_at_boundary(&scanner, 0));
}

TEST_CASE("a frame exactly the buffer size is not streamed", "[frame]")
{
	frame_scanner scanner;
	frame_scanner_init(&scanner, 1 << 20, 64);
	auto frame = make_frame(60, 'x');
	CHECK(frame_scan(&scanner, frame.data(), 63) == 0);
	CHECK(scanner.stream_left == 0);
	CHECK(frame_scan(&scanner, frame.data(), 64) == 64);
	CHECK(scanner.frames == 1);
}

TEST_CASE("random splits forward every byte exactly once, frames whole",
	  "[frame]")
{
	std::mt19937 rng(42);
	const uint32_t buffer = 256;
	std::vector<uint8_t> stream;
	std::vector<size_t> ends; // byte offsets where frames end
	for (int i = 0; i < 2000; i++) {
		uint32_t length = rng() % 600;
		append(stream, make_frame(length, uint8_t(i)));
		ends.push_back(stream.size());
	}

	// Emulate the relay: a buffer that starts at a boundary, filled by reads
	// of random size, forwarding what frame_scan allows.
	frame_scanner scanner;
	frame_scanner_init(&scanner, 1 << 20, buffer);
	size_t fed = 0, forwarded = 0, pending_start = 0;
	std::vector<uint8_t> out;
	while (forwarded < stream.size()) {
		size_t room = buffer - (fed - pending_start);
		size_t n = std::min<size_t>(1 + rng() % buffer, room);
		n = std::min(n, stream.size() - fed);
		REQUIRE((n > 0 || fed == stream.size()));
		fed += n;
		size_t ready = frame_scan(&scanner, stream.data() + pending_start,
					  fed - pending_start);
		if (ready > 0 && scanner.stream_left == 0 &&
		    ready <= buffer) {
			// Not streaming: what is forwarded ends on a frame boundary.
			bool on_boundary = false;
			for (size_t e : ends)
				on_boundary |= (e == pending_start + ready);
			CHECK(on_boundary);
		}
		out.insert(out.end(), stream.begin() + pending_start,
			   stream.begin() + pending_start + ready);
		pending_start += ready;
		forwarded = pending_start;
	}
	CHECK(out == stream);
	CHECK(scanner.frames == ends.size());
}
