/* Shared between openat_snoop.bpf.c and its TypeScript mirror
 * (src/lessons/openat_snoop.ts): test/layouts.test.ts checks that both agree
 * with the compiled object's BTF, byte for byte. */
#ifndef OPENAT_SNOOP_H
#define OPENAT_SNOOP_H

#define OPENAT_COMM_LEN 16  /* TASK_COMM_LEN */
#define OPENAT_NAME_LEN 256 /* longer names are cut (name_len says so) */

/* One event per finished openat: 304 bytes, no implicit padding. */
struct openat_event {
	__u64 ts_ns;    /* 0: bpf_ktime_get_ns() at the syscall's exit */
	__u32 pid;      /* 8: process (tgid) */
	__u32 tid;      /* 12: thread */
	__u32 uid;      /* 16 */
	__s32 ret;      /* 20: the new fd, or -errno */
	__s32 flags;    /* 24: O_* flags asked for */
	__s32 name_len; /* 28: bytes read with the NUL (<= OPENAT_NAME_LEN), or -errno when unreadable */
	char comm[OPENAT_COMM_LEN];  /* 32 */
	char name[OPENAT_NAME_LEN];  /* 48: NUL-terminated; empty when unreadable */
};

/* Per-CPU counters in counters[0]. */
struct openat_counters {
	__u64 events;     /* events submitted to the ring */
	__u64 unreadable; /* of those, with a file name that could not be read */
	__u64 lost;       /* events dropped: the ring had no room */
	__u64 untracked;  /* openat calls whose entry could not be kept (map update failed) */
};

#endif
