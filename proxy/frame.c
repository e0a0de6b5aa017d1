#include "proxy/frame.h"

void frame_scanner_init(frame_scanner *scanner, uint32_t max_frame,
			uint32_t buffer_size)
{
	*scanner = (frame_scanner){
		.max_frame = max_frame,
		.buffer_size = buffer_size,
	};
}

/* Pass through what has arrived of a frame larger than the buffer. */
static size_t scan_streamed(frame_scanner *scanner, size_t len)
{
	size_t take = len < scanner->stream_left ? len : (size_t)scanner->stream_left;
	scanner->stream_left -= take;
	if (scanner->stream_left == 0)
		scanner->frames++;
	return take;
}

size_t frame_scan(frame_scanner *scanner, const uint8_t *data, size_t len)
{
	size_t pos = 0;

	if (scanner->oversize)
		return 0;
	if (scanner->stream_left > 0) {
		pos = scan_streamed(scanner, len);
		if (scanner->stream_left > 0)
			return pos;
	}
	while (len - pos >= FRAME_HEADER_SIZE) {
		uint32_t length = frame_read_length(data + pos);
		uint64_t total = (uint64_t)FRAME_HEADER_SIZE + length;

		if (length > scanner->max_frame) {
			scanner->oversize = true;
			scanner->oversize_len = length;
			return pos;
		}
		if (total <= len - pos) {
			pos += total;
			scanner->frames++;
			continue;
		}
		if (total <= scanner->buffer_size)
			return pos; /* fits: wait until it is whole */
		scanner->stream_left = total;
		return pos + scan_streamed(scanner, len - pos);
	}
	return pos;
}

size_t frame_partial_need(const uint8_t *data, size_t len)
{
	if (len < FRAME_HEADER_SIZE)
		return FRAME_HEADER_SIZE;
	return FRAME_HEADER_SIZE + (size_t)frame_read_length(data);
}
