/*
 * frameproxy-metrics-doc: the tables of docs/METRICS.md, made from the
 * metric tables (shard/'s own and proxy/counters.h), so the list of
 * families cannot drift from what /metrics and /stats serve.
 *
 *   frameproxy-metrics-doc               print them
 *   frameproxy-metrics-doc --check FILE  exit 1 unless what follows FILE's
 *                                        marker line is exactly them
 *   frameproxy-metrics-doc --update FILE rewrite what follows the marker
 *
 * `ninja -C build metrics-doc` runs --update on docs/METRICS.md; the
 * metrics_doc test runs --check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/counters.h"
#include "shard/shard.h"

#define MARKER "<!-- Made from the metric tables by frameproxy-metrics-doc"

static void usage(FILE *out)
{
	fprintf(out, "usage: frameproxy-metrics-doc [--check FILE | --update FILE]\n");
}

/* The generated text, malloc'd, or NULL. */
static char *generate(size_t *len)
{
	char *text = NULL;
	FILE *mem = open_memstream(&text, len);

	if (!mem)
		return NULL;
	int rc = shard_metrics_markdown(&counters_metrics, mem);
	if (fclose(mem) != 0 || rc < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* The whole file, malloc'd and terminated, or NULL. */
static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data = NULL;
	size_t cap = 0;

	*len = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (*len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *grown = realloc(data, cap);
			if (!grown)
				break;
			data = grown;
		}
		size_t n = fread(data + *len, 1, cap - *len - 1, f);
		*len += n;
		if (n == 0)
			break;
	}
	bool failed = ferror(f) || !data;
	fclose(f);
	if (failed) {
		free(data);
		return NULL;
	}
	data[*len] = '\0';
	return data;
}

/* Where the generated part starts: after the marker's line; NULL if the
 * file has no marker. */
static const char *generated_part(const char *doc)
{
	const char *m = strstr(doc, "\n" MARKER);
	const char *eol = m ? strchr(m + 1, '\n') : NULL;
	return eol ? eol + 1 : NULL;
}

static int write_all(const char *path, const char *head, size_t head_len,
		     const char *text, size_t text_len)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return -errno;
	bool ok = fwrite(head, 1, head_len, f) == head_len &&
		  fwrite(text, 1, text_len, f) == text_len;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		int err = -errno;
		remove(tmp);
		return err ? err : -EIO;
	}
	return 0;
}

static int check_or_update(const char *path, bool update, const char *text,
			   size_t text_len)
{
	size_t len;
	char *doc = read_all(path, &len);
	if (!doc) {
		fprintf(stderr, "%s: cannot read\n", path);
		return 1;
	}
	const char *part = generated_part(doc);
	int rc = 0;
	if (!part) {
		fprintf(stderr, "%s: no line starting with \"%s\"\n", path, MARKER);
		rc = 1;
	} else if (update) {
		int err = write_all(path, doc, (size_t)(part - doc), text, text_len);
		if (err)
			fprintf(stderr, "%s: cannot write: %s\n", path, strerror(-err));
		rc = err ? 1 : 0;
	} else if ((size_t)(doc + len - part) != text_len ||
		   memcmp(part, text, text_len) != 0) {
		fprintf(stderr, "%s: the metric tables changed; run "
			"`ninja -C build metrics-doc` and commit the file\n", path);
		rc = 1;
	}
	free(doc);
	return rc;
}

int main(int argc, char **argv)
{
	bool update = argc == 3 && strcmp(argv[1], "--update") == 0;
	bool check = argc == 3 && strcmp(argv[1], "--check") == 0;

	if (argc != 1 && !update && !check) {
		usage(stderr);
		return 2;
	}
	size_t len;
	char *text = generate(&len);
	if (!text) {
		fprintf(stderr, "frameproxy-metrics-doc: the metric tables are "
			"not valid or memory ran out\n");
		return 1;
	}
	int rc = 0;
	if (argc == 1)
		rc = fwrite(text, 1, len, stdout) == len ? 0 : 1;
	else
		rc = check_or_update(argv[2], update, text, len);
	free(text);
	return rc;
}
