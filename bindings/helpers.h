/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C helpers of vfio-iommu-rust: static inlines and macros Rust cannot call, struct fields behind
 * opaque types, and the module parameters. Each helper is a one-liner or a short wrapper that does
 * exactly what type1 does at the same place; the logic lives in Rust.
 */
#ifndef VIR_HELPERS_H
#define VIR_HELPERS_H

#include <linux/iommu.h>
#include <linux/mm_types.h>
#include <linux/sched.h>
#include <linux/types.h>

/*
 * The section of the code a migration pass runs over and over (vfio_dma_rw() with its dirty
 * marks, the dirty-bitmap report), kept together so that it touches few pages of module text
 * (Documentation/architecture.rst, "Code layout"); the Rust functions of those paths carry the
 * same section.
 */
#define __vir_hot __section(".text.vir_hot")

/* Module parameters, as in vfio_iommu_type1. */
unsigned int vir_param_dma_entry_limit(void);
bool vir_param_allow_unsafe_interrupts(void);
bool vir_param_disable_hugepages(void);
bool vir_param_serve(void);

/* IOMMU domains. */
struct iommu_domain *vir_group_alloc_domain(struct iommu_group *group);
struct vir_domain_info {
	u64 pgsize_bitmap;
	u64 aperture_start;
	u64 aperture_end;
	const void *ops; /* identity only: compatible domains share their ops */
};
void vir_domain_info(struct iommu_domain *domain, struct vir_domain_info *info);
/* Only meaningful once a group is attached (the Intel driver checks the attached devices). */
bool vir_domain_enforce_cache_coherency(struct iommu_domain *domain);

/*
 * Deferred IOTLB invalidation (type1's unmap_unpin_fast()): iommu_unmap_fast() gathers into a
 * gather initialised by vir_iotlb_gather_init(); vir_iotlb_sync() invalidates what was gathered
 * (iommu_iotlb_sync(), which also frees the page-table pages the unmaps released) and
 * re-initialises the gather.
 */
void vir_iotlb_gather_init(struct iommu_iotlb_gather *gather);
void vir_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *gather);

/*
 * Maps @n runs of pages, one after the other in IOVA from @iova, into @domain with one IOTLB sync
 * (iommu_map_sg(), where iommu_map() syncs once per run: under a VT-d with caching mode, as a
 * guest's vIOMMU is, every sync is an invalidation the hypervisor traps). @runs holds @n pairs
 * (first pfn, pages): at most VIR_MAP_RUNS_MAX runs of at most VIR_MAP_RUN_MAX_PAGES pages of
 * memory with a struct page (no MMIO). Returns 0 with every run mapped, or a negative errno with
 * none (iommu_map_sg() undoes a partial map).
 */
#define VIR_MAP_RUNS_MAX 16
#define VIR_MAP_RUN_MAX_PAGES (1U << 19)
int vir_map_runs(struct iommu_domain *domain, unsigned long iova, const u64 *runs, unsigned int n,
		 int prot);

/*
 * Reserved regions of @group, copied into @out as (start, length, enum iommu_resv_type) triples
 * (at most @max regions); returns how many the group has (which may be more than @max), or a
 * negative errno.
 */
int vir_group_resv_regions(struct iommu_group *group, u64 *out, int max);

/* The owner of a mapping: the mapping task's group leader and its mm. */
struct task_struct *vir_current_leader_get(void);
/* Whether the calling task's group leader is @task and its mm is @mm (no references taken). */
bool vir_current_is(struct task_struct *task, struct mm_struct *mm);
void vir_task_put(struct task_struct *task);
struct mm_struct *vir_current_mm_grab(void);
void vir_mm_drop(struct mm_struct *mm);
bool vir_mm_get(struct mm_struct *mm);
void vir_mm_put(struct mm_struct *mm);
bool vir_current_has_mm(struct mm_struct *mm);
bool vir_capable_ipc_lock(void);
/* For debugfs: the calling task's and @task's thread group id, @task's name, @mm's locked_vm. */
int vir_current_tgid(void);
int vir_task_tgid(struct task_struct *task);
void vir_task_comm(struct task_struct *task, char *buf, size_t len);
unsigned long vir_mm_locked_vm(struct mm_struct *mm);
int vir_mm_charge_locked(struct task_struct *task, struct mm_struct *mm, bool lock_cap,
			 unsigned long npage);
void vir_mm_uncharge_locked(struct task_struct *task, struct mm_struct *mm, bool lock_cap,
			    unsigned long npage);

/* Pinning user pages. */
/*
 * Pins pages into @buf and replaces each page pointer by its pfn in place; the number of reserved
 * pages among them is added to @nr_reserved. A VM_PFNMAP address gives one MMIO pfn, counted as
 * reserved (type1's vaddr_get_pfns()).
 */
long vir_pin_user_pfns(struct mm_struct *mm, unsigned long vaddr, unsigned long npages,
		       bool write, u64 *buf, unsigned long *nr_reserved);
struct page *vir_pfn_to_page(unsigned long pfn);
bool vir_pfn_valid(unsigned long pfn);
void vir_unpin_pinned_range(unsigned long pfn, unsigned long npages, bool dirty);
unsigned long vir_unpin_pfn_range(unsigned long pfn, unsigned long npages, bool dirty);

/* Copies between a kernel buffer and @mm's memory at @vaddr (type1's dma_rw chunk). */
int vir_mm_copy(struct mm_struct *mm, unsigned long vaddr, void *data, size_t count, bool write);
/* clear_user(): returns the number of bytes that could not be cleared. */
unsigned long vir_clear_user(u64 ptr, unsigned long len);
/* access_ok(): whether a user range could be valid at all. */
bool vir_user_range_ok(u64 ptr, u64 size);

/* Devices of vendor (mdev) drivers. */
struct vfio_device;
struct list_head;
bool vir_device_has_dma_unmap(struct vfio_device *vdev);
void vir_device_list_init(struct list_head *head);
void vir_device_list_add(struct list_head *head, struct vfio_device *vdev);
void vir_device_list_del(struct vfio_device *vdev);
/*
 * Calls every device's dma_unmap for @length bytes from @iova, emitting the vir_notify trace event
 * of container @container (its @attempt-th notification for the mapping, from 0); returns how
 * many devices were notified.
 */
unsigned int vir_device_list_notify(struct list_head *head, u64 container, u64 iova, u64 length,
				    unsigned int attempt);

/* Module exit: waits for tasks still in this module's code (see helpers.c). */
void vir_wait_for_callers(void);
void vir_msleep(unsigned int ms);

/* Scheduling. */
void vir_cond_resched(void);
bool vir_fatal_signal_pending(void);

#endif /* VIR_HELPERS_H */
