#include "tools/lib/payload.h"

#include <errno.h>
#include <string.h>

#include "proxy/frame.h"

uint64_t payload_mix64(uint64_t x)
{
	/* splitmix64's finaliser: every input bit flips about half the output. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t payload_stream_key(uint64_t seed, uint32_t conn, uint64_t seq)
{
	return payload_mix64(payload_mix64(seed ^ ((uint64_t)conn << 32)) ^ seq);
}

/*
 * Word `block` of a stream: one multiply and two shifts, inlined, because
 * generating and checking payloads is framebench's hot loop (splitmix64
 * per word held it to ~170 MB/s). Keys are fully mixed per frame, so the
 * cheaper per-word step still gives unrelated frames unrelated bytes.
 */
static inline uint64_t stream_word(uint64_t key, uint64_t block)
{
	uint64_t x = key + block * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 32);
}

static inline void put_le64(uint8_t *dst, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(dst, &v, 8);
#else
	for (int i = 0; i < 8; i++)
		dst[i] = (uint8_t)(v >> (8 * i));
#endif
}

static void put_be(uint8_t *dst, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		dst[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

void payload_stream_fill(uint8_t *dst, size_t n, uint64_t key, uint64_t offset)
{
	/* A partial first block, then whole blocks, then a partial last one. */
	while (n > 0 && (offset & 7)) {
		uint64_t word = stream_word(key, offset >> 3);
		*dst++ = (uint8_t)(word >> (8 * (offset & 7)));
		offset++;
		n--;
	}
	uint64_t block = offset >> 3;
	size_t words = n / 8;
	for (size_t w = 0; w < words; w++)
		put_le64(dst + 8 * w, stream_word(key, block + w));
	dst += 8 * words;
	offset += 8 * words;
	n -= 8 * words;
	if (n == 0)
		return;
	uint64_t word = stream_word(key, offset >> 3);
	for (size_t i = 0; i < n; i++)
		dst[i] = (uint8_t)(word >> (8 * i));
}

static void header_fill(uint8_t *dst, size_t n, const payload_frame_id *id,
			uint32_t offset)
{
	uint8_t header[PAYLOAD_HEADER_SIZE];
	put_be(header, id->conn, 4);
	put_be(header + 4, id->seq, 8);
	put_be(header + 12, id->len, 4);
	memcpy(dst, header + offset, n);
}

void payload_fill(uint8_t *dst, size_t n, const payload_frame_id *id,
		  uint32_t offset)
{
	uint64_t key = payload_stream_key(id->seed, id->conn, id->seq);
	if (id->len >= PAYLOAD_HEADER_SIZE && offset < PAYLOAD_HEADER_SIZE) {
		size_t head = PAYLOAD_HEADER_SIZE - offset;
		if (head > n)
			head = n;
		header_fill(dst, head, id, offset);
		dst += head;
		n -= head;
		offset += (uint32_t)head;
	}
	payload_stream_fill(dst, n, key, offset);
}

uint32_t payload_pick_size(uint64_t seed, uint32_t conn, uint64_t seq,
			   uint32_t min, uint32_t max)
{
	if (max <= min)
		return min;
	uint64_t span = (uint64_t)max - min + 1;
	/* A distinct salt so sizes do not correlate with payload bytes. */
	uint64_t r = payload_mix64(payload_stream_key(seed, conn, seq) ^ 0x5349a3e1u);
	return min + (uint32_t)(r % span);
}

void payload_verify_begin(payload_verifier *v, const payload_frame_id *id)
{
	v->id = *id;
	v->reply = false;
	v->offset = 0;
	v->bad = false;
	v->bad_offset = 0;
}

size_t payload_verify_feed(payload_verifier *v, const uint8_t *data, size_t n)
{
	size_t left = v->id.len - v->offset;
	if (n > left)
		n = left;
	size_t done = 0;
	while (done < n && !v->bad) {
		uint8_t expect[512];
		size_t chunk = n - done < sizeof(expect) ? n - done : sizeof(expect);
		uint32_t at = v->offset + (uint32_t)done;
		if (v->reply)
			payload_reply_fill(expect, chunk, v->id.seq, at);
		else
			payload_fill(expect, chunk, &v->id, at);
		if (memcmp(expect, data + done, chunk) != 0) {
			size_t i = 0;
			while (expect[i] == data[done + i])
				i++;
			v->bad = true;
			v->bad_offset = v->offset + (uint32_t)(done + i);
		}
		done += chunk;
	}
	v->offset += (uint32_t)n;
	return n;
}

void payload_verify_begin_reply(payload_verifier *v, uint64_t digest, uint32_t len)
{
	payload_frame_id id = {0, 0, digest, len};
	payload_verify_begin(v, &id);
	v->reply = true;
}

bool payload_verify_done(const payload_verifier *v)
{
	return v->offset == v->id.len;
}

int payload_frame_check(const uint8_t *frame, size_t n, const payload_frame_id *id)
{
	if (n < 4)
		return -EPIPE;
	if (frame_read_length(frame) != id->len)
		return -EMSGSIZE;
	if (n - 4 < id->len)
		return -EPIPE;
	if (n - 4 > id->len)
		return -E2BIG;
	payload_verifier v;
	payload_verify_begin(&v, id);
	payload_verify_feed(&v, frame + 4, n - 4);
	return v.bad ? -EBADMSG : 0;
}

uint64_t payload_fnv1a(uint64_t hash, const uint8_t *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		hash ^= data[i];
		hash *= 0x100000001b3ull;
	}
	return hash;
}

void payload_reply_fill(uint8_t *dst, size_t n, uint64_t digest, uint32_t offset)
{
	uint8_t head[8];
	put_be(head, digest, 8);
	while (n > 0 && offset < 8) {
		*dst++ = head[offset++];
		n--;
	}
	payload_stream_fill(dst, n, payload_stream_key(0, 0, digest), offset);
}
