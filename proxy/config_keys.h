/* config_keys — the table of config keys and their setters; private to
 * proxy/config*.c (config.h is the public side).
 *
 * One entry per key says all there is to say about it: its name, whether
 * it lives in [frameproxy] or in [listener NAME], the setter that parses a
 * value into the model, its default (as it would be written in the file),
 * whether it may repeat, and its command-line flag with the flag's --help
 * line. Adding a key takes an entry here plus its field in config.h.
 *
 * A setter gets the config (global keys) or the
 * config_listener (listener keys) to set, and returns 0, or -1 with the
 * reason in why (CONFIG_WHY_MAX bytes), e.g. "invalid size '16XB' (...)";
 * the caller adds where the value came from. A bad value leaves the model
 * as it was.
 */
#ifndef FRAMEPROXY_PROXY_CONFIG_KEYS_H
#define FRAMEPROXY_PROXY_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/config.h"

#define CONFIG_WHY_MAX 256
#define CONFIG_KEYS_MAX 80 /* bound of the table, for per-section arrays */

/* Where a value came from: a line of a file (key names the key there), or
 * a command-line flag. All NULL/0: a default. */
typedef struct config_origin {
	const char *file;
	int line;
	const char *key;
	const char *flag;
} config_origin;

typedef enum config_scope { CONFIG_SCOPE_GLOBAL, CONFIG_SCOPE_LISTENER } config_scope;

typedef struct config_key config_key;
typedef int config_set_fn(void *target, const config_key *k,
			  const char *v, const config_origin *o,
			  char *why);

typedef struct config_key {
	const char *name;
	config_scope scope;
	config_set_fn *set;
	size_t off;        /* the field, for the size/duration/number setters */
	uint64_t min, max; /* their bounds; durations use min only */
	const char *def;   /* default as written in a file; NULL = unset */
	bool repeat;       /* may appear more than once in a section */
	const char *flag;  /* "--max-frame", or NULL */
	const char *arg;   /* the flag's argument in --help; NULL: the flag
			    * takes none and sets "on" */
	const char *help;  /* one short line for --help */
} config_key;

extern const config_key config_keys[];
extern const size_t config_key_count;

/* NULL when there is no such key. */
const config_key *config_key_find(const char *name);

/* Applies every default of the scope to target. */
void config_keys_defaults(void *target, config_scope scope);

void config_servers_free(config_listener *l);

#endif
