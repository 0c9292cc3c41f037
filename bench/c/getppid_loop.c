/* The load of the perf_vs_ringbuf figures and tests: a process making
 * getppid(2) syscalls (one traced event each), started on a line on stdin
 * so the tracer can be attached with its pid first.
 *
 *   getppid_loop count <n>
 *     After a line on stdin: n getppid calls, then "done" on stdout; exits
 *     at stdin's end.
 *
 *   getppid_loop flat <seconds>
 *     After a line on stdin: getppid in a loop until <seconds> have passed.
 *     Prints {"calls", "seconds", "rate"}.
 *
 *   getppid_loop rate <seconds> <per_second>
 *     The same, paced: calls in batches of 16 as long as it is behind
 *     <per_second> x the time elapsed, spinning otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	char line[64];
	int paced = argc == 4 && !strcmp(argv[1], "rate");
	if (!paced && (argc != 3 || (strcmp(argv[1], "count") && strcmp(argv[1], "flat")))) {
		fprintf(stderr, "usage: getppid_loop count <n> | flat <seconds> | rate <seconds> <per_second>\n");
		return 2;
	}
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	if (!strcmp(argv[1], "count")) {
		long n = atol(argv[2]);
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		printf("done\n");
		fflush(stdout);
		while (fgets(line, sizeof(line), stdin))
			;
		return 0;
	}
	double secs = atof(argv[2]), t0 = now_ns(), end = t0 + secs * 1e9, t;
	long calls = 0;
	if (paced) {
		double per_ns = atof(argv[3]) / 1e9;
		while ((t = now_ns()) < end) {
			if (calls < (t - t0) * per_ns) {
				for (int i = 0; i < 16; i++)
					syscall(SYS_getppid);
				calls += 16;
			}
		}
		printf("{\"calls\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", calls, (t - t0) / 1e9, calls / ((t - t0) / 1e9));
		return 0;
	}
	do {
		for (int i = 0; i < 256; i++)
			syscall(SYS_getppid);
		calls += 256;
	} while ((t = now_ns()) < end);
	printf("{\"calls\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", calls, (t - t0) / 1e9, calls / ((t - t0) / 1e9));
	return 0;
}
