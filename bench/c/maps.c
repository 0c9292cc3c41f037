/* Map lookup/update latency through libbpf from C: the baseline for the TS API.
 * Usage: maps <iterations>  ->  {"lookup_ns": x, "update_ns": y}
 * Same map shape as bench/maps.bench.ts: HASH, u32 key, u64 value, 1024 entries. */
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", 4, 8, 1024, NULL);
	if (fd < 0) { perror("bpf_map_create"); return 1; }
	for (uint32_t k = 0; k < 1024; k++) {
		uint64_t v = k;
		bpf_map_update_elem(fd, &k, &v, BPF_ANY);
	}
	double best_l = 1e18, best_u = 1e18;
	for (int round = 0; round < 3; round++) {
		uint64_t v = 0, sum = 0;
		double t0 = now_ns();
		for (long i = 0; i < iters; i++) {
			uint32_t k = i & 1023;
			if (bpf_map_lookup_elem(fd, &k, &v) == 0) sum += v;
		}
		double l = (now_ns() - t0) / iters;
		t0 = now_ns();
		for (long i = 0; i < iters; i++) {
			uint32_t k = i & 1023;
			v = i;
			bpf_map_update_elem(fd, &k, &v, BPF_ANY);
		}
		double u = (now_ns() - t0) / iters;
		if (l < best_l) best_l = l;
		if (u < best_u) best_u = u;
		if (sum == 42) fprintf(stderr, "-");
	}
	printf("{\"lookup_ns\": %.1f, \"update_ns\": %.1f}\n", best_l, best_u);
	close(fd);
	return 0;
}
