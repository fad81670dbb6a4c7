// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded random ioctl fuzzer for vfio_iommu_rust: random container ioctls (valid and not) with
 * random flags, sizes, alignments, argsz, bitmap geometries and user pointers (valid, NULL,
 * unmapped, read-only, kernel addresses), on an IOMMU container, a v1 or v2 mdev container and the
 * vir_mdev vendor device. Bounded by VIR_FUZZ_CALLS (default 200000) and VIR_FUZZ_SECONDS
 * (default 600). The seed (VIR_FUZZ_SEED, fresh from getrandom() if not given) is printed first: a
 * failing run is replayed with `make fuzz VIR_FUZZ_SEED=<seed>`. Afterwards nothing is pinned or
 * charged.
 */
#include <sys/random.h>
#include <time.h>
#include "kselftest_harness.h"
#include "vfio_test.h"
#include "mdev/vir_mdev.h"

static unsigned long long rnd_state;

static unsigned long long rnd(void)
{
	/* xorshift64* */
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545f4914f6cdd1dULL;
}

static unsigned long long pick(const unsigned long long *v, int n)
{
	return v[rnd() % n];
}

static char *buf, *ro, *none;

static unsigned long long any_iova(void)
{
	const unsigned long long v[] = {
		0, PAGE, 0x100000, 0x100000 + PAGE * (rnd() % 64), 0x100000 + 512, 0xfee00000ULL,
		1ULL << 48, (1ULL << 48) - PAGE, ~0ULL - PAGE + 1, ~0ULL, 1ULL << 63, rnd(),
		rnd() & ~(PAGE - 1),
	};

	return pick(v, sizeof(v) / sizeof(v[0]));
}

static unsigned long long any_size(void)
{
	const unsigned long long v[] = {
		0, PAGE, 2 * PAGE, PAGE * (1 + rnd() % 16), 512, PAGE + 1, 64 * PAGE, 1ULL << 63,
		~0ULL, rnd(), (rnd() % 64) * PAGE,
	};

	return pick(v, sizeof(v) / sizeof(v[0]));
}

static unsigned long long any_vaddr(void)
{
	const unsigned long long v[] = {
		(uintptr_t)buf, (uintptr_t)buf + PAGE * (rnd() % 64), (uintptr_t)buf + 7,
		(uintptr_t)ro, (uintptr_t)none, 0, ~0ULL - PAGE + 1, 0xffff888000000000ULL, rnd(),
	};

	return pick(v, sizeof(v) / sizeof(v[0]));
}

/* A pointer for an ioctl argument: usually @good, sometimes not. */
static void *any_arg(void *good)
{
	switch (rnd() % 16) {
	case 0:
		return NULL;
	case 1:
		return none;
	case 2:
		return ro;
	case 3:
		return (void *)0xffff888000000000ULL;
	default:
		return good;
	}
}

static unsigned int any_argsz(unsigned int good)
{
	const unsigned long long v[] = { 0, good - 1, good, good, good, good + 8, 4096, rnd() };

	return (unsigned int)pick(v, sizeof(v) / sizeof(v[0]));
}

FIXTURE(long_running) {
	int unused;
};

FIXTURE_SETUP(long_running)
{
}

FIXTURE_TEARDOWN(long_running)
{
}

TEST_F_TIMEOUT(long_running, fuzz, 86400)
{
	const char *e, *given = getenv("VIR_FUZZ_SEED");
	unsigned long long seed = 0;
	long calls = (e = getenv("VIR_FUZZ_CALLS")) ? atol(e) : 200000;
	long seconds = (e = getenv("VIR_FUZZ_SECONDS")) ? atol(e) : 600;
	long pins = pins_outstanding(), n, ok = 0;
	int container, group, mcont, mgroup, dev;
	time_t end = time(NULL) + seconds;
	static __u64 bits[4096];
	char scratch[4096];
	struct __test_metadata meta;

	ASSERT_EQ(BACKEND_RUST, vfio_backend());
	if (given && *given)
		seed = strtoull(given, NULL, 0);
	else if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (unsigned long long)time(NULL) ^ (unsigned long long)getpid() << 32;
	printf("# fuzz: seed %#llx, %ld calls, %ld s at most\n", seed, calls, seconds);
	fflush(stdout);
	rnd_state = seed | 1;
	/*
	 * The fuzzed pointers and vaddrs start in `none`, `ro` and the 64 pages of `buf`, at the bottom
	 * of one reservation of our own: an mdev container maps any range without pinning, so the
	 * vendor driver pins, fills and dma_rw()s, and the kernel writes bitmaps, well past those
	 * pages. Above `buf` lie 64 MiB of writable memory, then PROT_NONE up to 8 GiB (the largest
	 * offset the fuzzed IOVAs give but a random one is 0xfee00000 + 95 pages), so no such write
	 * reaches the harness's shared _metadata. Separate mmaps did not ensure that: a 64 MiB
	 * mapping is PMD aligned (Linux 6.7+), the small ones then went above it, next to
	 * _metadata, and a PIN with WRITE through a mapping of `none` zeroed it (seed
	 * 0xeb1b5e461fe2f06c, call 10,955).
	 */
	{
		size_t reserve = 8ULL << 30, rw = 2 * PAGE + (64 << 20);
		char *r = mmap(NULL, reserve, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		ASSERT_NE(MAP_FAILED, r);
		ASSERT_EQ(0, mprotect(r, rw, PROT_READ | PROT_WRITE));
		none = r;
		ro = r + PAGE;
		buf = r + 2 * PAGE;
		memset(r, 0, 66 * PAGE);
		ASSERT_EQ(0, mprotect(none, PAGE, PROT_NONE));
		ASSERT_EQ(0, mprotect(ro, PAGE, PROT_READ));
	}
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container,
				    &group));
	ASSERT_EQ(0, open_container(env_int("VFIO_TEST_VMDEV_GROUP"),
				    rnd() % 4 ? VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU, &mcont, &mgroup));
	dev = ioctl(mgroup, VFIO_GROUP_GET_DEVICE_FD, env_str("VFIO_TEST_VMDEV"));
	ASSERT_LE(0, dev);

	/* A guard: a device write into the harness's shared memory is told by its call number. */
	memcpy(&meta, _metadata, sizeof(meta));
	for (n = 0; n < calls && (n % 1024 || time(NULL) < end); n++) {
		int fd = rnd() % 2 ? container : mcont;
		long ret = -1;

		switch (rnd() % 9) {
		case 0: {
			struct vfio_iommu_type1_dma_map m = {
				.argsz = any_argsz(sizeof(m)), .flags = rnd() % 16,
				.vaddr = any_vaddr(), .iova = any_iova(), .size = any_size(),
			};
			if (rnd() % 2)
				m.flags = RW;
			ret = ioctl(fd, VFIO_IOMMU_MAP_DMA, any_arg(&m));
			break;
		}
		case 1: {
			struct {
				struct vfio_iommu_type1_dma_unmap u;
				struct vfio_bitmap b;
			} u = {
				.u = { .argsz = any_argsz(sizeof(u.u)), .flags = rnd() % 8,
				       .iova = any_iova(), .size = any_size() },
				.b = { .pgsize = rnd() % 4 ? PAGE : rnd(), .size = rnd() % 4 ? 8 : rnd(),
				       .data = rnd() % 4 ? bits : (void *)any_vaddr() },
			};
			if (rnd() % 3 == 0)
				u.u.argsz = sizeof(u);
			if (rnd() % 4 == 0)
				u.u.flags = VFIO_DMA_UNMAP_FLAG_ALL, u.u.iova = u.u.size = 0;
			ret = ioctl(fd, VFIO_IOMMU_UNMAP_DMA, any_arg(&u));
			break;
		}
		case 2: {
			struct {
				struct vfio_iommu_type1_dirty_bitmap d;
				struct vfio_iommu_type1_dirty_bitmap_get g;
			} d = {
				.d = { .argsz = any_argsz(sizeof(d)), .flags = 1U << (rnd() % 4) },
				.g = { .iova = any_iova(), .size = any_size(),
				       .bitmap = { .pgsize = rnd() % 4 ? PAGE : rnd(),
						   .size = rnd() % 2 ? sizeof(bits) : rnd() % 64,
						   .data = rnd() % 4 ? bits : (void *)any_vaddr() } },
			};
			if (rnd() % 8 == 0)
				d.d.flags = rnd();
			ret = ioctl(fd, VFIO_IOMMU_DIRTY_PAGES, any_arg(&d));
			break;
		}
		case 3: {
			struct vfio_iommu_type1_info *i = (void *)scratch;

			memset(scratch, 0, sizeof(scratch));
			i->argsz = any_argsz(sizeof(*i));
			if (i->argsz > sizeof(scratch))
				i->argsz = sizeof(scratch);
			ret = ioctl(fd, VFIO_IOMMU_GET_INFO, any_arg(i));
			break;
		}
		case 4:
			ret = ioctl(fd, VFIO_CHECK_EXTENSION, rnd() % 16);
			break;
		case 5:
			ret = ioctl(fd, _IO(VFIO_TYPE, VFIO_BASE + rnd() % 64), any_arg(scratch));
			break;
		default: {
			const unsigned long long op[] = { VIR_MDEV_PIN, VIR_MDEV_UNPIN,
							  VIR_MDEV_WRITE, VIR_MDEV_READ };
			struct vir_mdev_cmd c = {
				.iova = rnd() % 2 ? 0x100000 + PAGE * (rnd() % 64) : any_iova(),
				.count = 1 + rnd() % 32, .flags = rnd() % 2,
				.buf = (uintptr_t)(rnd() % 4 ? scratch : (void *)any_vaddr()),
			};
			ret = ioctl(dev, pick(op, 4), &c);
		}
		}
		ok += ret >= 0;
		if (memcmp(&meta, _metadata, sizeof(meta))) {
			memcpy(_metadata, &meta, sizeof(meta));
			ASSERT_TRUE(0) TH_LOG("seed %#llx: call %ld wrote the harness's memory", seed, n);
		}
	}
	printf("# fuzz: %ld calls, %ld succeeded\n", n, ok);
	EXPECT_LT(0, ok);
	close(dev);
	close(mgroup);
	close(mcont);
	close(group);
	close(container);
	EXPECT_EQ(pins, pins_outstanding()) TH_LOG("seed %#llx: pins leaked", seed);
	EXPECT_EQ(0, locked_vm_kb()) TH_LOG("seed %#llx: locked memory leaked", seed);
	EXPECT_EQ(0, module_refcnt(RUST_MODULE));
}

TEST_HARNESS_MAIN
