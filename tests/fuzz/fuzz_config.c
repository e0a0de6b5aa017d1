/*
 * The config loader on arbitrary text: it must never crash or leak
 * (LeakSanitizer runs with libFuzzer), and every error it records must be
 * a non-empty line without control bytes (what the text holds is echoed
 * escaped). The text's first line, split at its first '=', is also given
 * as an override (--set KEY=VALUE), which may hold any byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/config.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	config cfg;

	CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	config_init(&cfg);
	int rc = config_load_string(&cfg, "fuzz.ini", text);
	char *eq = strchr(text, '=');
	if (eq && !memchr(text, '\n', (size_t)(eq - text))) {
		*eq = '\0';
		if (config_apply_override(&cfg, text, eq + 1, NULL) < 0)
			rc = -1;
	}
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
		for (const unsigned char *p = (const unsigned char *)e; *p; p++)
			CHECK(*p >= 0x20 && *p != 0x7f);
	}
	config_free(&cfg);
	free(text);
	return 0;
}
