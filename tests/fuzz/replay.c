/*
 * replay.c - runs a harness over its seed corpus without libFuzzer, so
 * that make check replays every seed (the inputs of bugs found before
 * included) with any compiler, under valgrind and the sanitizers too.
 * The Makefile names the harness (HARNESS) and where the corpora are
 * (CORPUS_DIR). Fails if a seed breaks an invariant (the harness aborts)
 * or if there is no seed at all, so that a wrong path cannot pass.
 */
#include <dirent.h>
#include <string.h>

#include "fuzz.h"

#define CORPUS CORPUS_DIR "/" HARNESS

/* Reads the file whole; returns its bytes (malloc'd) or NULL. */
static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) &&
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*size = buf ? (size_t)n : 0;
	return buf;
}

int main(void)
{
	DIR *d = opendir(CORPUS);
	struct dirent *e;
	char path[4096];
	size_t runs = 0, size;

	if (!d) {
		perror(CORPUS);
		return 1;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
		uint8_t *data = read_all(path, &size);
		if (!data) {
			perror(path);
			closedir(d);
			return 1;
		}
		LLVMFuzzerTestOneInput(data, size);
		free(data);
		runs++;
	}
	closedir(d);
	printf("%zu inputs of %s replayed\n", runs, CORPUS);
	return runs ? 0 : 1;
}
