/*
 * Runs a fuzz target over every file of the directories (or files) named
 * on the command line, once each: the seed corpus as a regression test,
 * without libFuzzer. The target aborts on a failed check; this exits 1 when
 * a directory is missing or empty, so a lost corpus cannot pass.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	uint8_t *data = NULL;
	size_t size = 0, cap = 0;
	for (;;) {
		if (size == cap) {
			cap = cap ? cap * 2 : 4096;
			uint8_t *grown = realloc(data, cap);
			if (!grown)
				break;
			data = grown;
		}
		size_t n = fread(data + size, 1, cap - size, f);
		if (n == 0)
			break;
		size += n;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	int files = 0;

	if (!d)
		return run_file(dir) == 0 ? 1 : -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (run_file(path) == 0)
			files++;
	}
	closedir(d);
	return files;
}

int main(int argc, char **argv)
{
	int total = 0;

	for (int i = 1; i < argc; i++) {
		int n = run_dir(argv[i]);
		if (n <= 0) {
			fprintf(stderr, "fuzz replay: no input in %s\n", argv[i]);
			return 1;
		}
		total += n;
	}
	printf("fuzz replay: %d inputs, all checks held\n", total);
	return total > 0 ? 0 : 1;
}
