/* Ring buffer consumption through libbpf from C: the baseline for the TS
 * reader (bench/ringbuf.bench.ts), and a producer that runs flat out.
 *
 *   ringbuf consume <object> <records> <rounds>
 *     Loads <object> (bpf/build/ringbuf_bench.bpf.o) with its ring sized to
 *     hold <records> records, then per round: produces a burst of <records>
 *     records with one BPF_PROG_TEST_RUN (repeat = records) and times only
 *     ring_buffer__consume(), whose callback counts records and sums the u32
 *     at offset 8. Prints {"records", "best_ns", "rate", "sum"} (best round).
 *
 *   ringbuf produce <seconds> <repeat> <frame-hex>
 *     Test-runs the program whose fd is 3 (inherited from the caller) on
 *     the frame given in hex, <repeat> runs per call, in a loop until
 *     <seconds> have passed. Prints {"runs", "seconds", "rate"}. */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <stdint.h>
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

struct tally {
	uint64_t count;
	uint64_t sum;
};

static int on_record(void *ctx, void *data, size_t len)
{
	struct tally *t = ctx;
	t->count++;
	t->sum += *(uint32_t *)((char *)data + 8);
	return 0;
}

static int consume(const char *path, long records, int rounds)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj) { perror("bpf_object__open_file"); return 1; }
	struct bpf_map *rb = bpf_object__find_map_by_name(obj, "rb");
	uint32_t size = 4096;
	while (size < (uint64_t)records * 24 + 4096) size <<= 1;
	if (!rb || bpf_map__set_max_entries(rb, size)) { fprintf(stderr, "resize rb failed\n"); return 1; }
	if (bpf_object__load(obj)) { fprintf(stderr, "load failed\n"); return 1; }
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "produce");
	int prog_fd = bpf_program__fd(prog);
	struct tally t = { 0, 0 };
	struct ring_buffer *r = ring_buffer__new(bpf_map__fd(rb), on_record, &t, NULL);
	if (!r) { perror("ring_buffer__new"); return 1; }
	char frame[64] = { 0 };
	double best = 1e18;
	for (int i = 0; i < rounds; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof(frame), .repeat = records);
		if (bpf_prog_test_run_opts(prog_fd, &opts)) { perror("bpf_prog_test_run_opts"); return 1; }
		uint64_t before = t.count;
		double t0 = now_ns();
		int n = ring_buffer__consume(r);
		double ns = now_ns() - t0;
		if (n < 0 || t.count - before != (uint64_t)records) {
			fprintf(stderr, "consumed %llu of %ld records (ret %d)\n", (unsigned long long)(t.count - before), records, n);
			return 1;
		}
		if (ns < best) best = ns;
	}
	printf("{\"records\": %ld, \"best_ns\": %.0f, \"rate\": %.0f, \"sum\": %llu}\n",
	       records, best, records / best * 1e9, (unsigned long long)t.sum);
	ring_buffer__free(r);
	bpf_object__close(obj);
	return 0;
}

static int produce(double seconds, long repeat, const char *hex)
{
	unsigned char frame[1514];
	long frame_len = strlen(hex) / 2;
	if (frame_len < 14 || frame_len > (long)sizeof(frame)) { fprintf(stderr, "bad frame\n"); return 1; }
	for (long i = 0; i < frame_len; i++) {
		unsigned int b;
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) { fprintf(stderr, "bad frame hex\n"); return 1; }
		frame[i] = b;
	}
	uint64_t runs = 0;
	double t0 = now_ns(), t = t0;
	while (t - t0 < seconds * 1e9) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = frame_len, .repeat = repeat);
		if (bpf_prog_test_run_opts(3, &opts)) { perror("bpf_prog_test_run_opts"); return 1; }
		runs += repeat;
		t = now_ns();
	}
	printf("{\"runs\": %llu, \"seconds\": %.6f, \"rate\": %.0f}\n",
	       (unsigned long long)runs, (t - t0) / 1e9, runs / ((t - t0) / 1e9));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "consume"))
		return consume(argv[2], atol(argv[3]), atoi(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "produce"))
		return produce(atof(argv[2]), atol(argv[3]), argv[4]);
	fprintf(stderr, "usage: ringbuf consume <object> <records> <rounds> | produce <seconds> <repeat> <frame-hex>\n");
	return 2;
}
