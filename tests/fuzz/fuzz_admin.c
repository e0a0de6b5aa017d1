/*
 * The admin endpoint's request parser on arbitrary bytes. Beyond not
 * crashing: `consumed` stays within the input, and a verdict reached on a
 * prefix never changes when more bytes arrive (a client that sends its
 * request in pieces gets the same answer as one that sends it at once).
 */
#include <stdint.h>
#include <stdlib.h>

#include "shard/admin.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t consumed = 0;
	admin_route whole = admin_parse_request(buf, size, &consumed);

	if (whole == ADMIN_INCOMPLETE)
		CHECK(consumed == 0);
	else
		CHECK(consumed <= size);
	/* A few prefixes, chosen by the input itself, not all (quadratic). */
	for (size_t k = 1; k <= 4 && size > 0; k++) {
		size_t cut = (data[0] * k * 131u + k) % (size + 1);
		size_t part_consumed = 0;
		admin_route part = admin_parse_request(buf, cut, &part_consumed);
		if (part == ADMIN_INCOMPLETE)
			continue;
		CHECK(part == whole);
		CHECK(part_consumed == consumed);
	}
	return 0;
}
