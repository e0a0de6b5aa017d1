#include "proxy/rpc_field.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/frame.h"

/* Decimal digits only (no sign, no space, no base prefix) into *out, up to
 * max; returns the first byte after them, or NULL. */
static const char *parse_decimal(const char *p, uint64_t max, uint64_t *out)
{
	uint64_t n = 0;
	const char *start = p;

	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > max)
			return NULL;
	}
	if (p == start)
		return NULL;
	*out = n;
	return p;
}

int rpc_field_parse(const char *text, uint32_t max_len, rpc_field *out,
		    char *why, size_t why_len)
{
	uint64_t offset = 0, len = 0;
	const char *p = parse_decimal(text, UINT32_MAX, &offset);

	if (p && *p == ':')
		p = parse_decimal(p + 1, max_len, &len);
	else
		p = NULL;
	if (!p || *p != '\0' || len < 1 || offset + len > UINT32_MAX) {
		snprintf(why, why_len,
			 "invalid field '%s' (OFFSET:LEN, LEN 1..%u)", text,
			 max_len);
		return -EINVAL;
	}
	out->offset = (uint32_t)offset;
	out->len = (uint32_t)len;
	return 0;
}

int rpc_field_find(const rpc_field *field, const uint8_t *frame, size_t len,
		   size_t *at)
{
	if (len < FRAME_HEADER_SIZE)
		return -EBADMSG;
	uint64_t payload = frame_read_length(frame);
	uint64_t given = len - FRAME_HEADER_SIZE;
	uint64_t end = (uint64_t)field->offset + field->len;

	if (end > payload || end > given)
		return -EBADMSG;
	*at = FRAME_HEADER_SIZE + field->offset;
	return 0;
}

uint64_t rpc_field_get(const uint8_t *p, uint32_t len)
{
	uint64_t value = 0;

	for (uint32_t i = 0; i < len; i++)
		value = value << 8 | p[i];
	return value;
}

void rpc_field_put(uint8_t *p, uint32_t len, uint64_t value)
{
	for (uint32_t i = len; i-- > 0;) {
		p[i] = (uint8_t)value;
		value >>= 8;
	}
}

int rpc_field_pick(balance_state *b, const rpc_field *field,
		   const uint8_t *frame, size_t len,
		   const balance_tried *tried, int *server)
{
	size_t at;
	int rc = rpc_field_find(field, frame, len, &at);

	if (rc < 0)
		return rc;
	*server = balance_pick_key(b, frame + at, field->len, tried);
	return 0;
}
