/* The C reference for the xdp_sock figures: an AF_XDP socket on the raw
 * kernel interface (no libxdp), the same setup the TS library does:
 * socket(AF_XDP), XDP_UMEM_REG, the fill/completion/RX/TX ring sizes,
 * XDP_MMAP_OFFSETS, one mmap per ring, bind in copy mode with need-wakeup,
 * the socket put in a pinned XSKMAP at its queue. Then, until SIGINT/SIGTERM
 * or <seconds>, it waits in poll() for RX and either only counts (and
 * recycles the frames to the fill ring) or echoes UDP in place (swap MACs,
 * addresses, ports; the UDP checksum recomputed over the whole datagram;
 * the frame sent back through the TX ring with a sendto kick and recycled
 * from the completion ring).
 * Usage: xsk_ref <ifname> <xskmap_pin> count|echo <seconds> [queue]
 *   stderr: "ready" once the socket is in the map
 *   stdout: {"received": n, "echoed": n, "not_echoed": n, "seconds": s, "stats": {...}}
 * (not_echoed: received but not sent back; this one waits for TX room, so only non-UDP frames) */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define FRAME_SIZE 2048
#define NUM_FRAMES 4096
#define RING 2048
#define BATCH 64
#define HEADROOM 256 /* XDP_PACKET_HEADROOM: where copy-mode RX puts the packet in its frame */

struct ring {
	uint32_t *producer, *consumer, *flags;
	void *descs;
	uint32_t cached; /* producer: our next index; consumer: our next index */
	void *map;
	size_t map_len;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "xsk_ref: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void map_ring(int fd, struct ring *r, const struct xdp_ring_offset *o, size_t desc_size, off_t pgoff)
{
	r->map_len = o->desc + RING * desc_size;
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
	if (r->map == MAP_FAILED) die("mmap ring");
	r->producer = (uint32_t *)((char *)r->map + o->producer);
	r->consumer = (uint32_t *)((char *)r->map + o->consumer);
	r->flags = (uint32_t *)((char *)r->map + o->flags);
	r->descs = (char *)r->map + o->desc;
	r->cached = 0;
}

/* Loads with acquire, stores with release: the pairing the kernel's ring protocol documents. */
static inline uint32_t load_acq(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static uint16_t fold(uint32_t s)
{
	while (s >> 16) s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t sum16(const uint8_t *p, int len, uint32_t s)
{
	int i = 0;
	for (; i + 1 < len; i += 2) s += (p[i] << 8) | p[i + 1];
	if (i < len) s += p[i] << 8;
	return s;
}

/* Echoes an Ethernet/IPv4/UDP frame in place; returns 0 when it is not one. */
static int echo(uint8_t *f, uint32_t len)
{
	uint8_t t[6];
	if (len < 42 || f[12] != 0x08 || f[13] != 0x00) return 0;
	uint8_t *ip = f + 14;
	int ihl = (ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 17 || 14 + ihl + 8 > (int)len) return 0;
	uint8_t *udp = ip + ihl;
	int ulen = (udp[4] << 8) | udp[5];
	if (ulen < 8 || 14 + ihl + ulen > (int)len) return 0;
	memcpy(t, f, 6); memcpy(f, f + 6, 6); memcpy(f + 6, t, 6);
	uint8_t a[4];
	memcpy(a, ip + 12, 4); memcpy(ip + 12, ip + 16, 4); memcpy(ip + 16, a, 4);
	uint8_t pp[2];
	memcpy(pp, udp, 2); memcpy(udp, udp + 2, 2); memcpy(udp + 2, pp, 2);
	/* The IPv4 header checksum does not change when the addresses swap; the UDP one is recomputed whole. */
	udp[6] = udp[7] = 0;
	uint32_t s = sum16(ip + 12, 8, 0) + 17 + ulen;
	uint16_t c = ~fold(sum16(udp, ulen, s));
	if (c == 0) c = 0xffff;
	udp[6] = c >> 8; udp[7] = c & 0xff;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 6 || (strcmp(argv[3], "count") && strcmp(argv[3], "echo"))) {
		fprintf(stderr, "usage: xsk_ref <ifname> <xskmap_pin> count|echo <seconds> [queue]\n");
		return 2;
	}
	int echoing = !strcmp(argv[3], "echo");
	double seconds = atof(argv[4]);
	uint32_t queue = argc == 6 ? (uint32_t)atoi(argv[5]) : 0;
	unsigned int ifindex = if_nametoindex(argv[1]);
	if (!ifindex) die("if_nametoindex");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	int fd = socket(AF_XDP, SOCK_RAW, 0);
	if (fd < 0) die("socket(AF_XDP)");
	size_t umem_len = (size_t)FRAME_SIZE * NUM_FRAMES;
	uint8_t *umem = mmap(NULL, umem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (umem == MAP_FAILED) die("mmap umem");
	struct xdp_umem_reg mr;
	memset(&mr, 0, sizeof(mr));
	mr.addr = (uintptr_t)umem;
	mr.len = umem_len;
	mr.chunk_size = FRAME_SIZE;
	mr.headroom = 0;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr))) die("register umem (XDP_UMEM_REG)");
	int n = RING;
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof(n))) die("XDP_UMEM_FILL_RING");
	if (setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof(n))) die("XDP_UMEM_COMPLETION_RING");
	if (setsockopt(fd, SOL_XDP, XDP_RX_RING, &n, sizeof(n))) die("XDP_RX_RING");
	if (setsockopt(fd, SOL_XDP, XDP_TX_RING, &n, sizeof(n))) die("XDP_TX_RING");
	struct xdp_mmap_offsets off;
	socklen_t ol = sizeof(off);
	if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol)) die("XDP_MMAP_OFFSETS");
	struct ring fill, comp, rx, tx;
	map_ring(fd, &fill, &off.fr, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING);
	map_ring(fd, &comp, &off.cr, sizeof(uint64_t), XDP_UMEM_PGOFF_COMPLETION_RING);
	map_ring(fd, &rx, &off.rx, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING);
	map_ring(fd, &tx, &off.tx, sizeof(struct xdp_desc), XDP_PGOFF_TX_RING);

	/* Fill: RING frames for RX; the rest stay free for nothing (echo is in place, so frames cycle fill -> RX -> TX -> completion -> fill). */
	uint64_t *fd_descs = fill.descs;
	for (uint32_t i = 0; i < RING; i++) fd_descs[i] = (uint64_t)i * FRAME_SIZE;
	fill.cached = RING;
	store_rel(fill.producer, fill.cached);

	struct sockaddr_xdp sxdp;
	memset(&sxdp, 0, sizeof(sxdp));
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = ifindex;
	sxdp.sxdp_queue_id = queue;
	sxdp.sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
	if (bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp))) die("bind (copy mode)");
	int map = bpf_obj_get(argv[2]);
	if (map < 0) die("open the pinned XSKMAP");
	if (bpf_map_update_elem(map, &queue, &fd, 0)) die("put the socket in the XSKMAP");
	fprintf(stderr, "ready\n");

	long received = 0, echoed = 0, kicks = 0;
	uint32_t tx_outstanding = 0;
	rx.cached = load_acq(rx.consumer);
	comp.cached = load_acq(comp.consumer);
	tx.cached = load_acq(tx.producer);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	double t0 = now_s();
	while (!stop && now_s() - t0 < seconds) {
		/* Completions first: the frames the kernel sent go back to the fill ring. */
		if (tx_outstanding) {
			uint32_t cp = load_acq(comp.producer);
			uint32_t k = cp - comp.cached;
			if (k) {
				uint32_t fp = fill.cached;
				/* room in fill: the kernel's consumer + RING - our producer */
				while (RING - (fp - load_acq(fill.consumer)) < k) ;
				for (uint32_t i = 0; i < k; i++)
					fd_descs[(fp + i) & (RING - 1)] = ((uint64_t *)comp.descs)[(comp.cached + i) & (RING - 1)];
				fill.cached = fp + k;
				store_rel(fill.producer, fill.cached);
				comp.cached += k;
				store_rel(comp.consumer, comp.cached);
				tx_outstanding -= k;
				echoed += k;
			}
			if (*tx.flags & XDP_RING_NEED_WAKEUP) { sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0); kicks++; }
		}
		uint32_t avail = load_acq(rx.producer) - rx.cached;
		if (!avail) {
			if (tx_outstanding) continue;
			if (poll(&pfd, 1, 100) < 0 && errno != EINTR) die("poll");
			continue;
		}
		if (avail > BATCH) avail = BATCH;
		struct xdp_desc *rd = rx.descs;
		if (!echoing) {
			uint32_t fp = fill.cached;
			while (RING - (fp - load_acq(fill.consumer)) < avail) ;
			for (uint32_t i = 0; i < avail; i++) {
				uint64_t a = rd[(rx.cached + i) & (RING - 1)].addr;
				fd_descs[(fp + i) & (RING - 1)] = a - (a % FRAME_SIZE);
			}
			fill.cached = fp + avail;
			store_rel(fill.producer, fill.cached);
		} else {
			struct xdp_desc *td = tx.descs;
			uint32_t sent = 0, fp = fill.cached, back = 0;
			/* Wait for TX room, kicking: copy mode sends at most 32 frames per sendto (the kernel's TX_BATCH_SIZE). */
			while (RING - (tx.cached - load_acq(tx.consumer)) < avail) { sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0); kicks++; }
			for (uint32_t i = 0; i < avail; i++) {
				struct xdp_desc d = rd[(rx.cached + i) & (RING - 1)];
				if (echo(umem + d.addr, d.len)) {
					td[(tx.cached + sent) & (RING - 1)] = d;
					sent++;
				} else {
					fd_descs[(fp + back++) & (RING - 1)] = d.addr - (d.addr % FRAME_SIZE);
				}
			}
			if (back) { fill.cached = fp + back; store_rel(fill.producer, fill.cached); }
			if (sent) {
				tx.cached += sent;
				store_rel(tx.producer, tx.cached);
				tx_outstanding += sent;
				sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
				kicks++;
			}
		}
		rx.cached += avail;
		store_rel(rx.consumer, rx.cached);
		received += avail;
	}
	double t = now_s() - t0;
	/* The last completions. */
	for (int i = 0; i < 100 && tx_outstanding; i++) {
		sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
		uint32_t k = load_acq(comp.producer) - comp.cached;
		comp.cached += k;
		store_rel(comp.consumer, comp.cached);
		tx_outstanding -= k;
		echoed += k;
		if (tx_outstanding) usleep(1000);
	}
	struct xdp_statistics st;
	socklen_t sl = sizeof(st);
	memset(&st, 0, sizeof(st));
	if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &st, &sl)) die("XDP_STATISTICS");
	bpf_map_delete_elem(map, &queue);
	printf("{\"received\": %ld, \"echoed\": %ld, \"not_echoed\": %ld, \"kicks\": %ld, \"seconds\": %.6f, \"stats\": {\"rx_dropped\": %llu, \"rx_invalid_descs\": %llu, \"tx_invalid_descs\": %llu, \"rx_ring_full\": %llu, \"rx_fill_ring_empty_descs\": %llu, \"tx_ring_empty_descs\": %llu}}\n",
	       received, echoed, echoing ? received - echoed : 0, kicks, t, (unsigned long long)st.rx_dropped, (unsigned long long)st.rx_invalid_descs,
	       (unsigned long long)st.tx_invalid_descs, (unsigned long long)st.rx_ring_full,
	       (unsigned long long)st.rx_fill_ring_empty_descs, (unsigned long long)st.tx_ring_empty_descs);
	close(map);
	close(fd);
	return 0;
}
