/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A qtest script as the guest's VT-d driver: QEMU's virtual Intel IOMMU (-device intel-iommu) in a
 * VM driven through tests/qemu.h, programmed the way a guest kernel would, in legacy (not scalable)
 * mode with register-based invalidation.
 *
 * The VM needs -device intel-iommu,caching-mode=on,aw-bits=39: caching mode is what lets QEMU
 * shadow the guest's page tables into a VFIO container (it requires an invalidation after every
 * change, which QEMU turns into MAP_DMA and UNMAP_DMA); with 39 address bits the tables have three
 * levels (1 GiB, 2 MiB and 4 KiB entries) and QEMU's whole-space unmaps stay below 256 GiB chunks.
 * Queued invalidation is not needed and not used; scalable mode (x-scalable-mode, x-flts) is not
 * supported here (QEMU 10.0 fails vfio devices with x-flts=on).
 *
 * Tables live in the VM's RAM, in a region the test hands to vtd_init() (bump allocated, zeroed
 * pages). What the library does, and how QEMU 10.0 reacts (hw/i386/intel_iommu.c):
 *
 *  - vtd_init(): checks the capability registers, writes the root table address and sets it with
 *    GCMD.SRTP (QEMU then unmaps every notifier's whole range, see vtd_cc_invalidate_global());
 *  - vtd_set_context(): a context entry (bus, devfn) -> domain: DID and page table, 3 levels;
 *  - vtd_map(): 4 KiB leaves IOVA -> GPA, creating the intermediate tables; vtd_clear_entry():
 *    clears one entry at a chosen level (a PDE at level 2 drops 512 leaves at once);
 *  - vtd_enable(): GCMD.TE. QEMU switches the devices' address spaces from the plain RAM alias
 *    to the IOMMU region: a vfio device's container loses its RAM mappings, registers an IOMMU
 *    notifier and gets MAP_DMAs for the leaves present (replay);
 *  - vtd_iotlb_invalidate_*(): IOTLB register, global / domain-selective / page-selective. With
 *    caching mode QEMU walks the domain's page table (or the range) and notifies MAP for new
 *    leaves and UNMAP for ranges mapped before and not present any more: one notification per
 *    entry found not present, so a cleared PDE is ONE 2 MiB UNMAP;
 *  - vtd_cc_invalidate_*(): context-cache register. QEMU treats domain-selective as global, and a
 *    global one unmaps every notifier's whole range in power-of-two chunks (whatever is mapped),
 *    then resyncs each device (a device whose context entry is not present is unmapped whole
 *    again);
 *  - vtd_fault_*(): fault status (FSTS) and the fault recording register (FRCD, one in QEMU), for
 *    DMA of emulated devices, which the virtual IOMMU itself translates. A vfio device's DMA is
 *    translated by the container's mappings in the host IOMMU: its faults are the host's.
 *
 * Hazards: QEMU asserts if an UNMAP notification crosses its interrupt window (0xfee00000 -
 * 0xfeefffff) -- keep IOVAs and cleared ranges below it. Register writes are done with the whole
 * wanted state (GCMD has no memory of earlier commands: TE must be written again with SRTP).
 */
#ifndef VIR_VTD_H
#define VIR_VTD_H

#include "qemu.h"

#define VTD_BASE 0xfed90000ULL	/* q35's DMAR unit */

/* Registers (VT-d spec 11.4, QEMU hw/i386/intel_iommu_internal.h). */
#define VTD_REG_CAP	0x08
#define VTD_REG_ECAP	0x10
#define VTD_REG_GCMD	0x18
#define VTD_REG_GSTS	0x1c
#define VTD_REG_RTADDR	0x20
#define VTD_REG_CCMD	0x28
#define VTD_REG_FSTS	0x34
#define VTD_REG_FECTL	0x38
#define VTD_REG_IVA	0xf0	/* at ECAP.IRO * 16, checked by vtd_init() */
#define VTD_REG_IOTLB	0xf8

#define VTD_GCMD_TE	(1U << 31)
#define VTD_GCMD_SRTP	(1U << 30)
#define VTD_GSTS_TES	(1U << 31)
#define VTD_GSTS_RTPS	(1U << 30)

#define VTD_CCMD_ICC		(1ULL << 63)
#define VTD_CCMD_GLOBAL		(1ULL << 61)
#define VTD_CCMD_DOMAIN		(2ULL << 61)
#define VTD_CCMD_DEVICE		(3ULL << 61)

#define VTD_IOTLB_IVT		(1ULL << 63)
#define VTD_IOTLB_GLOBAL	(1ULL << 60)
#define VTD_IOTLB_DOMAIN	(2ULL << 60)
#define VTD_IOTLB_PAGE		(3ULL << 60)
#define VTD_IOTLB_IAIG(v)	(((v) >> 57) & 3)	/* granularity done: 1, 2, 3; 0 = refused */

#define VTD_FSTS_PFO		(1U << 0)
#define VTD_FSTS_PPF		(1U << 1)

/* Fault reasons of the recording register (VT-d spec appendix A). */
#define VTD_FR_CONTEXT_ENTRY_P	0x2
#define VTD_FR_WRITE		0x5
#define VTD_FR_READ		0x6

/* Entries: present/readable/writable bits; a 39-bit context entry walks 3 levels. */
#define VTD_PTE_RW		3ULL
#define VTD_CTX_AW_39		1ULL
#define VTD_LEVELS		3
#define VTD_LEVEL_SHIFT(l)	(12 + 9 * ((l) - 1))	/* 1: 4 KiB, 2: 2 MiB, 3: 1 GiB */

/* The driver's state: the table area in VM RAM and what it has set up. */
struct vtd {
	struct qemu *q;
	unsigned long long next, end;	/* free table pages in VM RAM */
	unsigned long long root;	/* root table */
	unsigned long long ctx[256];	/* context table per bus, 0 if none yet */
	unsigned int gcmd;		/* the wanted GCMD state (TE) */
	unsigned long long frcd;	/* offset of the fault recording registers */
	unsigned long long cap, ecap;
};

/* A domain: its ID and the top-level (level 3) table of its page tables. */
struct vtd_domain {
	unsigned int did;
	unsigned long long pgtbl;
};

static inline int vtd_writel(struct vtd *v, unsigned int reg, unsigned int val)
{
	return qtest(v->q, "writel 0x%llx 0x%x", VTD_BASE + reg, val);
}

static inline int vtd_writeq(struct vtd *v, unsigned int reg, unsigned long long val)
{
	return qtest(v->q, "writeq 0x%llx 0x%llx", VTD_BASE + reg, val);
}

static inline unsigned long long vtd_readq(struct vtd *v, unsigned int reg)
{
	return qtest_value(v->q, "readq 0x%llx", VTD_BASE + reg);
}

static inline unsigned int vtd_readl(struct vtd *v, unsigned int reg)
{
	return (unsigned int)qtest_value(v->q, "readl 0x%llx", VTD_BASE + reg);
}

/* One 64-bit entry of VM RAM. */
static inline int vtd_write_entry(struct vtd *v, unsigned long long gpa, unsigned long long val)
{
	return qtest(v->q, "writeq 0x%llx 0x%llx", gpa, val);
}

static inline unsigned long long vtd_read_entry(struct vtd *v, unsigned long long gpa)
{
	return qtest_value(v->q, "readq 0x%llx", gpa);
}

/* A zeroed 4 KiB page of the table area, or 0 when it is used up. */
static inline unsigned long long vtd_alloc_table(struct vtd *v)
{
	static const unsigned char zero[2048];
	unsigned long long t = v->next;

	if (t + PAGE > v->end)
		return 0;
	if (qtest_memwrite(v->q, t, zero, sizeof(zero)) ||
	    qtest_memwrite(v->q, t + sizeof(zero), zero, sizeof(zero)))
		return 0;
	v->next += PAGE;
	return t;
}

/*
 * Writes GCMD with the wanted state plus @oneshot (SRTP) and checks GSTS: 0 or EIO. QEMU handles
 * the command synchronously, so the status is final when the write returns.
 */
static inline int vtd_gcmd(struct vtd *v, unsigned int oneshot)
{
	unsigned int want = v->gcmd & VTD_GCMD_TE ? VTD_GSTS_TES : 0, gsts;

	if (vtd_writel(v, VTD_REG_GCMD, v->gcmd | oneshot))
		return EIO;
	gsts = vtd_readl(v, VTD_REG_GSTS);
	if ((gsts & VTD_GSTS_TES) != want || (oneshot & VTD_GCMD_SRTP && !(gsts & VTD_GSTS_RTPS)))
		return EIO;
	return 0;
}

/*
 * Takes the unit over: tables in [@tables, @tables + @size) of VM RAM (4 KiB aligned), an empty
 * root table set with SRTP, translation off. Returns 0, EIO (register access) or ENODEV (a unit
 * without what this library needs: 39-bit 3-level tables, register-based invalidation at 0xf0).
 */
static inline int vtd_init(struct vtd *v, struct qemu *q, unsigned long long tables,
			   unsigned long long size)
{
	memset(v, 0, sizeof(*v));
	v->q = q;
	v->next = tables;
	v->end = tables + size;
	v->cap = vtd_readq(v, VTD_REG_CAP);
	v->ecap = vtd_readq(v, VTD_REG_ECAP);
	if (v->cap == ~0ULL || v->ecap == ~0ULL)
		return EIO;
	/* SAGAW bit 1: 39-bit, 3 levels; IRO: the IOTLB registers at 0xf0; FRO: fault records. */
	if (!(v->cap >> 8 & 2) || ((v->ecap >> 8) & 0x3ff) * 16 != VTD_REG_IVA)
		return ENODEV;
	v->frcd = ((v->cap >> 24) & 0x3ff) * 16;
	v->root = vtd_alloc_table(v);
	if (!v->root)
		return ENOSPC;
	if (vtd_writeq(v, VTD_REG_RTADDR, v->root))
		return EIO;
	return vtd_gcmd(v, VTD_GCMD_SRTP);
}

/* Sets the root table pointer again (GCMD.SRTP), with the current translation state. */
static inline int vtd_set_root(struct vtd *v)
{
	return vtd_writeq(v, VTD_REG_RTADDR, v->root) ?: vtd_gcmd(v, VTD_GCMD_SRTP);
}

/* Translation on or off (GCMD.TE). */
static inline int vtd_enable(struct vtd *v, bool on)
{
	v->gcmd = on ? VTD_GCMD_TE : 0;
	return vtd_gcmd(v, 0);
}

/* The domain's top-level table, empty. */
static inline int vtd_domain_init(struct vtd *v, struct vtd_domain *d, unsigned int did)
{
	d->did = did;
	d->pgtbl = vtd_alloc_table(v);
	return d->pgtbl ? 0 : ENOSPC;
}

/*
 * Points the context entry of (@bus, @devfn) at domain @d (translated requests: TT 0, 39-bit
 * AW), creating the bus's context table (and its root entry) if needed. Needs a context-cache
 * invalidation (and an IOTLB one) to take effect.
 */
static inline int vtd_set_context(struct vtd *v, unsigned int bus, unsigned int devfn,
				  const struct vtd_domain *d)
{
	unsigned long long ce;

	if (bus > 255 || devfn > 255)
		return EINVAL;
	if (!v->ctx[bus]) {
		v->ctx[bus] = vtd_alloc_table(v);
		if (!v->ctx[bus])
			return ENOSPC;
		if (vtd_write_entry(v, v->root + bus * 16, v->ctx[bus] | 1))
			return EIO;
	}
	ce = v->ctx[bus] + devfn * 16;
	/* The high half first: the entry is present only once both halves are right. */
	return vtd_write_entry(v, ce + 8, (unsigned long long)d->did << 8 | VTD_CTX_AW_39) ?:
	       vtd_write_entry(v, ce, d->pgtbl | 1);
}

/* Clears the context entry of (@bus, @devfn): the device leaves its domain. */
static inline int vtd_clear_context(struct vtd *v, unsigned int bus, unsigned int devfn)
{
	unsigned long long ce;

	if (bus > 255 || devfn > 255 || !v->ctx[bus])
		return EINVAL;
	ce = v->ctx[bus] + devfn * 16;
	return vtd_write_entry(v, ce, 0) ?: vtd_write_entry(v, ce + 8, 0);
}

/*
 * The address in VM RAM of the entry at @level (1-3) for @iova in domain @d; with @create, missing
 * tables above it are allocated and linked (non-leaf entries: next table | R | W). 0 if a table
 * is missing (without @create) or the area is used up.
 */
static inline unsigned long long vtd_entry_addr(struct vtd *v, const struct vtd_domain *d,
						unsigned long long iova, int level, bool create)
{
	unsigned long long table = d->pgtbl;
	int l;

	for (l = VTD_LEVELS; ; l--) {
		unsigned long long e = table + ((iova >> VTD_LEVEL_SHIFT(l)) & 511) * 8, val;

		if (l == level)
			return e;
		val = vtd_read_entry(v, e);
		if (val == ~0ULL)
			return 0;
		if (!(val & VTD_PTE_RW)) {
			unsigned long long next;

			if (!create)
				return 0;
			next = vtd_alloc_table(v);
			if (!next || vtd_write_entry(v, e, next | VTD_PTE_RW))
				return 0;
			val = next;
		}
		table = val & ~0xfffULL & ((1ULL << 39) - 1);
	}
}

/*
 * Maps @n 4 KiB pages from @iova (4 KiB aligned) to the guest physical pages @gpa[0..n-1] (read
 * and write). Leaves in the same table are written in runs of up to 256 entries (one qtest write
 * each). Needs an IOTLB invalidation to reach QEMU's shadow (caching mode).
 */
static inline int vtd_map(struct vtd *v, const struct vtd_domain *d, unsigned long long iova,
			  const unsigned long long *gpa, unsigned int n)
{
	unsigned long long run[256];
	unsigned int i = 0;

	while (i < n) {
		unsigned long long e = vtd_entry_addr(v, d, iova + i * PAGE, 1, true);
		unsigned int k = 0, slot;

		if (!e)
			return ENOSPC;
		slot = (e & 0xfff) / 8;
		/* Up to the end of this leaf table, the end of the request or a full run. */
		while (i + k < n && slot + k < 512 && k < 256) {
			run[k] = (gpa[i + k] & ~0xfffULL) | VTD_PTE_RW;
			k++;
		}
		if (qtest_memwrite(v->q, e, run, k * sizeof(run[0])))
			return EIO;
		i += k;
	}
	return 0;
}

/*
 * Clears the entry at @level for @iova: level 1 unmaps one page, level 2 (a PDE) the 2 MiB (512
 * leaves) it covers, level 3 1 GiB. ENOENT if the tables do not reach that level.
 */
static inline int vtd_clear_entry(struct vtd *v, const struct vtd_domain *d,
				  unsigned long long iova, int level)
{
	unsigned long long e = vtd_entry_addr(v, d, iova, level, false);

	return e ? vtd_write_entry(v, e, 0) : ENOENT;
}

/* Writes CCMD (ICC | @cmd) and checks that QEMU completed it (ICC clear, CAIG set). */
static inline int vtd_ccmd(struct vtd *v, unsigned long long cmd)
{
	unsigned long long r;

	if (vtd_writeq(v, VTD_REG_CCMD, VTD_CCMD_ICC | cmd))
		return EIO;
	r = vtd_readq(v, VTD_REG_CCMD);
	return r == ~0ULL || (r & VTD_CCMD_ICC) || !((r >> 59) & 3) ? EIO : 0;
}

/* Context-cache invalidation, global (QEMU: every notifier unmapped whole, then resynced). */
static inline int vtd_cc_invalidate_global(struct vtd *v)
{
	return vtd_ccmd(v, VTD_CCMD_GLOBAL);
}

/* Context-cache invalidation of one device (source ID @bus:@devfn) in domain @did. */
static inline int vtd_cc_invalidate_device(struct vtd *v, unsigned int did, unsigned int bus,
					   unsigned int devfn)
{
	return vtd_ccmd(v, VTD_CCMD_DEVICE | (unsigned long long)(bus << 8 | devfn) << 16 | did);
}

/* Writes the IOTLB register (IVT | @cmd) and checks that QEMU completed it. */
static inline int vtd_iotlb(struct vtd *v, unsigned long long cmd)
{
	unsigned long long r;

	if (vtd_writeq(v, VTD_REG_IOTLB, VTD_IOTLB_IVT | cmd))
		return EIO;
	r = vtd_readq(v, VTD_REG_IOTLB);
	return r == ~0ULL || (r & VTD_IOTLB_IVT) || !VTD_IOTLB_IAIG(r) ? EIO : 0;
}

/* Global IOTLB invalidation (QEMU: every device with a notifier resynced). */
static inline int vtd_iotlb_invalidate_global(struct vtd *v)
{
	return vtd_iotlb(v, VTD_IOTLB_GLOBAL);
}

/* Domain-selective IOTLB invalidation (QEMU: the domain's devices resynced, whole range). */
static inline int vtd_iotlb_invalidate_domain(struct vtd *v, unsigned int did)
{
	return vtd_iotlb(v, VTD_IOTLB_DOMAIN | (unsigned long long)did << 32);
}

/* Page-selective IOTLB invalidation of 2^@am pages from @iova (aligned to that size). */
static inline int vtd_iotlb_invalidate_pages(struct vtd *v, unsigned int did,
					     unsigned long long iova, unsigned int am)
{
	return vtd_writeq(v, VTD_REG_IVA, (iova & ~0xfffULL) | am) ?:
	       vtd_iotlb(v, VTD_IOTLB_PAGE | (unsigned long long)did << 32);
}

/* A recorded fault: requester (bus << 8 | devfn), reason, page address, write or read. */
struct vtd_fault {
	unsigned int sid, reason;
	unsigned long long addr;
	bool write;
};

/* The fault status register (FSTS): VTD_FSTS_PPF when a fault is recorded. */
static inline unsigned int vtd_fault_status(struct vtd *v)
{
	return vtd_readl(v, VTD_REG_FSTS);
}

/*
 * Reads the fault recording register FSTS.FRI points at into @f and clears it (and FSTS's
 * overflow bit). Returns 0, ENOENT without a pending fault, or EIO.
 */
static inline int vtd_fault_take(struct vtd *v, struct vtd_fault *f)
{
	unsigned int fsts = vtd_fault_status(v);
	unsigned long long reg, lo, hi;

	if (fsts == ~0U)
		return EIO;
	if (!(fsts & VTD_FSTS_PPF))
		return ENOENT;
	reg = v->frcd + ((fsts >> 8) & 0xff) * 16;
	lo = vtd_readq(v, reg);
	hi = vtd_readq(v, reg + 8);
	if (lo == ~0ULL || hi == ~0ULL || !(hi >> 63))
		return EIO;
	f->sid = hi & 0xffff;
	f->reason = (hi >> 32) & 0xff;
	f->addr = lo & ~0xfffULL;
	f->write = !(hi >> 62 & 1);
	/* F is write-1-to-clear, as FSTS.PFO; PPF follows the recording registers. */
	return vtd_writeq(v, reg + 8, 1ULL << 63) ?: vtd_writel(v, VTD_REG_FSTS, VTD_FSTS_PFO);
}

#endif /* VIR_VTD_H */
