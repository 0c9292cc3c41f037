/* The load of the openat_snoop figures (bench/openat_snoop.bench.ts): a
 * process that calls openat(2) on one file as fast as it can.
 *
 *   openat_loop calls <path> <n> <rounds>
 *     Per round: n x (openat + close) of <path>, timed with CLOCK_MONOTONIC.
 *     Prints {"calls", "best_ns", "median_ns"}: ns per openat+close pair.
 *
 *   openat_loop flat <path> <seconds>
 *     openat + close of <path> in a loop until <seconds> have passed.
 *     Prints {"calls", "seconds", "rate"}. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int one(const char *path)
{
	int fd = openat(AT_FDCWD, path, O_RDONLY);
	if (fd < 0) { perror(path); exit(1); }
	return close(fd);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "calls")) {
		long n = atol(argv[3]);
		int rounds = atoi(argv[4]);
		double per[64];
		if (rounds < 1 || rounds > 64 || n < 1) { fprintf(stderr, "bad arguments\n"); return 2; }
		for (int r = 0; r < rounds; r++) {
			double t0 = now_ns();
			for (long i = 0; i < n; i++) one(argv[2]);
			per[r] = (now_ns() - t0) / n;
		}
		qsort(per, rounds, sizeof(per[0]), cmp);
		printf("{\"calls\": %ld, \"best_ns\": %.1f, \"median_ns\": %.1f}\n", n * rounds, per[0], per[rounds / 2]);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "flat")) {
		double secs = atof(argv[3]), t0 = now_ns(), end = t0 + secs * 1e9, t;
		long calls = 0;
		do {
			for (int i = 0; i < 256; i++) one(argv[2]);
			calls += 256;
		} while ((t = now_ns()) < end);
		printf("{\"calls\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", calls, (t - t0) / 1e9, calls / ((t - t0) / 1e9));
		return 0;
	}
	fprintf(stderr, "usage: openat_loop calls <path> <n> <rounds> | flat <path> <seconds>\n");
	return 2;
}
