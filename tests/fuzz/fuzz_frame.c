/*
 * The frame scanner as the relay drives it: bytes arrive in chunks of any
 * size into a bounded buffer, frame_scan says what may be forwarded, the
 * buffer is compacted the way relay.c does it. Checked against a plain
 * decoder of the whole stream:
 *   - what is forwarded is a prefix of the stream (nothing reordered,
 *     nothing invented), and every complete frame before an oversize header
 *     is forwarded;
 *   - bytes past the last complete frame are forwarded only for a frame too
 *     large for the buffer (streamed), never for one that fits it;
 *   - the scanner's frame count and oversize verdict match the decoder;
 *   - the relay never sits on a full buffer it cannot forward (a deadlock).
 * Input: byte 0 the buffer size, byte 1 max_frame, then the split sizes and
 * the stream interleaved from a simple rule, so any input is valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/frame.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

typedef struct reference {
	size_t complete_end;     /* end of the last complete frame */
	uint64_t frames;
	int oversize;
	size_t open_total;       /* header+payload of the frame after them */
} reference;

static reference decode(const uint8_t *s, size_t n, uint32_t max_frame)
{
	reference ref = {0};
	size_t pos = 0;

	while (n - pos >= FRAME_HEADER_SIZE) {
		uint32_t length = frame_read_length(s + pos);
		if (length > max_frame) {
			ref.oversize = 1;
			break;
		}
		if ((uint64_t)FRAME_HEADER_SIZE + length > n - pos) {
			ref.open_total = FRAME_HEADER_SIZE + (size_t)length;
			break;
		}
		pos += FRAME_HEADER_SIZE + length;
		ref.frames++;
	}
	ref.complete_end = pos;
	return ref;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	uint32_t buffer_size = 8 + data[0] % 120;     /* 8..127 */
	uint32_t max_frame = data[1] % 2 ? 0xffffffffu : data[1] * 2u;
	uint8_t split_seed = data[2];
	const uint8_t *stream = data + 3;
	size_t n = size - 3;
	reference ref = decode(stream, n, max_frame);

	uint8_t *buf = malloc(buffer_size);
	uint8_t *out = malloc(n ? n : 1);
	frame_scanner scanner;
	size_t in = 0, out_len = 0, start = 0, end = 0;

	CHECK(buf && out);
	frame_scanner_init(&scanner, max_frame, buffer_size);
	for (unsigned round = 0; round < 4 * n + 16; round++) {
		size_t room = buffer_size - end;
		size_t chunk = 1 + (split_seed = (uint8_t)(split_seed * 37 + 11)) % 9;
		if (chunk > room)
			chunk = room;
		if (chunk > n - in)
			chunk = n - in;
		memcpy(buf + end, stream + in, chunk);
		in += chunk;
		end += chunk;
		size_t ready = frame_scan(&scanner, buf + start, end - start);
		CHECK(ready <= end - start);
		memcpy(out + out_len, buf + start, ready);
		out_len += ready;
		start += ready;
		/* dir_compact: keep a partial frame where it fits the buffer. */
		size_t pending = end - start;
		if (pending == 0) {
			start = end = 0;
		} else if (start + frame_partial_need(buf + start, pending) > buffer_size) {
			memmove(buf, buf + start, pending);
			start = 0;
			end = pending;
		}
		if (scanner.oversize || (in == n && ready == 0))
			break;
		/* A full buffer that forwards nothing would hang a relay. */
		CHECK(!(end == buffer_size && ready == 0 && chunk == 0));
	}
	CHECK(memcmp(out, stream, out_len) == 0);
	CHECK(scanner.frames >= ref.frames);
	CHECK(out_len >= ref.complete_end);
	CHECK(scanner.oversize == ref.oversize);
	if (out_len > ref.complete_end) {
		/* Only a frame too big for the buffer streams out unfinished. */
		CHECK(ref.open_total > buffer_size);
		CHECK(scanner.frames == ref.frames);
	} else {
		CHECK(scanner.frames == ref.frames);
	}
	free(buf);
	free(out);
	return 0;
}
