/* The C lookup and update loops of bench/c/maps.c as a shared library, so the
 * maps benchmark can run them inside the Node process (one koffi call for
 * the whole loop): it tells the cost of being a Node process apart from the
 * cost of one FFI call per lookup. Each returns ns per operation. */
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uint64_t sink;

double lookup_loop(int fd, long iters)
{
	uint64_t v = 0, sum = 0;
	double t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		uint32_t k = i & 1023;
		if (bpf_map_lookup_elem(fd, &k, &v) == 0)
			sum += v;
	}
	sink = sum;
	return (now_ns() - t0) / iters;
}

double update_loop(int fd, long iters)
{
	double t0 = now_ns();
	for (long i = 0; i < iters; i++) {
		uint32_t k = i & 1023;
		uint64_t v = i;
		bpf_map_update_elem(fd, &k, &v, BPF_ANY);
	}
	return (now_ns() - t0) / iters;
}

/* The cheapest syscall, for scale: what any syscall costs here, and (against
 * the same call made through koffi once per call) what returning into the
 * JIT-compiled JS after a syscall costs on this machine. */
double getppid_loop(long iters)
{
	double t0 = now_ns();
	for (long i = 0; i < iters; i++)
		sink += getppid();
	return (now_ns() - t0) / iters;
}

/* Returns at once: a koffi call with no syscall in it. */
int noop(int x)
{
	return x + 1;
}
