/*
 * Frame codec: 4-byte big-endian length, then that many payload bytes.
 *
 * The relay keeps a byte range that always starts at a frame boundary (or
 * inside a frame too large for the buffer, which is streamed). frame_scan
 * says how much of that range may be forwarded now: every complete frame,
 * plus what has arrived of a streamed frame. Frames that fit the buffer are
 * only ever forwarded whole, so a sender that dies mid-frame leaves nothing
 * cut on the other side.
 *
 * frame_read_length / frame_write_length are the one codec of the prefix;
 * the header is self-contained (inline, no library) so tools use it too.
 */
#ifndef FRAMEPROXY_PROXY_FRAME_H
#define FRAMEPROXY_PROXY_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FRAME_HEADER_SIZE 4u

typedef struct frame_scanner {
	uint32_t max_frame;     /* largest accepted payload length */
	uint32_t buffer_size;   /* frames whose header+payload exceed it stream */
	uint64_t stream_left;   /* bytes of the streamed frame not yet seen */
	uint64_t frames;        /* frames completed so far */
	uint32_t oversize_len;  /* the announced length that broke max_frame */
	bool oversize;          /* scanning stopped at an oversize header */
} frame_scanner;

void frame_scanner_init(frame_scanner *scanner, uint32_t max_frame,
			uint32_t buffer_size);

/*
 * Given `len` bytes starting where the previous scan left off, return how
 * many leading bytes can be forwarded now. The bytes after that are the
 * beginning of a frame that is not complete yet (or an oversize header).
 */
size_t frame_scan(frame_scanner *scanner, const uint8_t *data, size_t len);

/* Total size (header + payload) of the partial frame at `data`, or the
 * header size when the header itself is incomplete. */
size_t frame_partial_need(const uint8_t *data, size_t len);

/* True when no frame is started: nothing pending and nothing streaming. */
static inline bool frame_at_boundary(const frame_scanner *scanner,
				     size_t pending)
{
	return pending == 0 && scanner->stream_left == 0;
}

static inline uint32_t frame_read_length(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void frame_write_length(uint8_t *p, uint32_t length)
{
	p[0] = (uint8_t)(length >> 24);
	p[1] = (uint8_t)(length >> 16);
	p[2] = (uint8_t)(length >> 8);
	p[3] = (uint8_t)length;
}

#ifdef __cplusplus
}
#endif

#endif
