/*
 * The config loader on arbitrary text: it must never crash or leak
 * (LeakSanitizer runs with libFuzzer), and every error it records must be
 * a non-empty line that names where it came from.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct config cfg;

	CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	config_init(&cfg);
	int rc = config_load_string(&cfg, "fuzz.ini", text);
	if (rc == 0)
		rc = config_finish(&cfg);
	CHECK(rc == 0 || config_error_count(&cfg) > 0);
	for (size_t i = 0; i < config_error_count(&cfg); i++) {
		const char *e = config_error(&cfg, i);
		/* Past CONFIG_MAX_ERRORS errors are only counted, not kept. */
		if (!e) {
			CHECK(i >= CONFIG_MAX_ERRORS);
			continue;
		}
		CHECK(e[0] != '\0');
		CHECK(strchr(e, '\n') == NULL);
	}
	config_free(&cfg);
	free(text);
	return 0;
}
