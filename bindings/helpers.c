// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of vfio-iommu-rust; see helpers.h. Prototypes for Rust are generated from helpers.h.
 */
#include <linux/capability.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/rcupdate.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>

#include "helpers.h"
#include "vir_trace.h"

static unsigned int dma_entry_limit __read_mostly = U16_MAX;
module_param(dma_entry_limit, uint, 0644);
MODULE_PARM_DESC(dma_entry_limit,
		 "Maximum number of user DMA mappings per container (65535).");

static bool allow_unsafe_interrupts;
module_param(allow_unsafe_interrupts, bool, 0644);
MODULE_PARM_DESC(allow_unsafe_interrupts,
		 "Enable VFIO IOMMU support for on platforms without interrupt remapping support.");

static bool disable_hugepages;
module_param(disable_hugepages, bool, 0644);
MODULE_PARM_DESC(disable_hugepages,
		 "Disable VFIO IOMMU support for IOMMU hugepages.");

/* Not type1's: N makes new containers go on to the next backend (Documentation/install.rst). */
static bool serve = true;
module_param(serve, bool, 0644);
MODULE_PARM_DESC(serve,
		 "Serve new containers (Y); N leaves them to the next VFIO IOMMU backend, such as vfio_iommu_type1, while the containers served keep being served.");

unsigned int vir_param_dma_entry_limit(void)
{
	return READ_ONCE(dma_entry_limit);
}

bool vir_param_allow_unsafe_interrupts(void)
{
	return READ_ONCE(allow_unsafe_interrupts);
}

bool vir_param_disable_hugepages(void)
{
	return READ_ONCE(disable_hugepages);
}

bool vir_param_serve(void)
{
	return READ_ONCE(serve);
}

/* As type1's vfio_iommu_domain_alloc(): the group's first device picks the IOMMU. */
static int vir_alloc_domain_for_dev(struct device *dev, void *data)
{
	struct iommu_domain **domain = data;

	*domain = iommu_paging_domain_alloc(dev);
	return 1; /* Don't iterate */
}

struct iommu_domain *vir_group_alloc_domain(struct iommu_group *group)
{
	struct iommu_domain *domain = ERR_PTR(-ENODEV);

	iommu_group_for_each_dev(group, &domain, vir_alloc_domain_for_dev);
	return domain;
}

void vir_domain_info(struct iommu_domain *domain, struct vir_domain_info *info)
{
	info->pgsize_bitmap = domain->pgsize_bitmap;
	info->aperture_start = domain->geometry.aperture_start;
	info->aperture_end = domain->geometry.aperture_end;
	info->ops = domain->ops;
}

bool vir_domain_enforce_cache_coherency(struct iommu_domain *domain)
{
	return domain->ops->enforce_cache_coherency &&
	       domain->ops->enforce_cache_coherency(domain);
}

void vir_iotlb_gather_init(struct iommu_iotlb_gather *gather)
{
	iommu_iotlb_gather_init(gather);
}

void vir_iotlb_sync(struct iommu_domain *domain, struct iommu_iotlb_gather *gather)
{
	iommu_iotlb_sync(domain, gather);
}

int vir_map_runs(struct iommu_domain *domain, unsigned long iova, const u64 *runs, unsigned int n,
		 int prot)
{
	/* 16 entries of 32 to 40 bytes on the stack. */
	struct scatterlist sgl[VIR_MAP_RUNS_MAX];
	size_t size = 0;
	ssize_t mapped;
	unsigned int i;

	if (!n || n > VIR_MAP_RUNS_MAX)
		return -EINVAL;
	sg_init_table(sgl, n);
	for (i = 0; i < n; i++) {
		u64 pfn = runs[2 * i], pages = runs[2 * i + 1];

		if (!pages || pages > VIR_MAP_RUN_MAX_PAGES || !pfn_valid(pfn))
			return -EINVAL;
		sg_set_page(&sgl[i], pfn_to_page(pfn), pages << PAGE_SHIFT, 0);
		size += pages << PAGE_SHIFT;
	}
	mapped = iommu_map_sg(domain, iova, sgl, n, prot, GFP_KERNEL_ACCOUNT);
	if (mapped < 0)
		return mapped;
	if (WARN_ON_ONCE(mapped != size)) {
		/* iommu_map_sg() maps all or returns an error: cannot be. */
		iommu_unmap(domain, iova, mapped);
		return -EFAULT;
	}
	return 0;
}

int vir_group_resv_regions(struct iommu_group *group, u64 *out, int max)
{
	struct iommu_resv_region *r, *next;
	LIST_HEAD(list);
	int n = 0, ret;

	ret = iommu_get_group_resv_regions(group, &list);
	list_for_each_entry_safe(r, next, &list, list) {
		if (!ret && n < max) {
			out[3 * n] = r->start;
			out[3 * n + 1] = r->length;
			out[3 * n + 2] = r->type;
		}
		n++;
		list_del(&r->list);
		kfree(r);
	}
	return ret ? ret : n;
}

struct task_struct *vir_current_leader_get(void)
{
	return get_task_struct(current->group_leader);
}

bool vir_current_is(struct task_struct *task, struct mm_struct *mm)
{
	return current->group_leader == task && current->mm == mm;
}

void vir_task_put(struct task_struct *task)
{
	put_task_struct(task);
}

struct mm_struct *vir_current_mm_grab(void)
{
	struct mm_struct *mm = current->mm;

	if (mm)
		mmgrab(mm);
	return mm;
}

void vir_mm_drop(struct mm_struct *mm)
{
	mmdrop(mm);
}

bool vir_mm_get(struct mm_struct *mm)
{
	return mmget_not_zero(mm);
}

void vir_mm_put(struct mm_struct *mm)
{
	mmput(mm);
}

bool vir_current_has_mm(struct mm_struct *mm)
{
	return current->mm == mm;
}

int vir_current_tgid(void)
{
	return task_tgid_nr(current);
}

int vir_task_tgid(struct task_struct *task)
{
	return task_tgid_nr(task);
}

/*
 * The task's name, NUL-terminated and padded; a concurrent rename may give a mix of the two names
 * (as 7.3's get_task_comm(), which copies without the task lock; 6.12's __get_task_comm()
 * is gone in 7.x).
 */
void vir_task_comm(struct task_struct *task, char *buf, size_t len)
{
	strscpy_pad(buf, task->comm, len);
}

unsigned long vir_mm_locked_vm(struct mm_struct *mm)
{
	return READ_ONCE(mm->locked_vm);
}

bool vir_capable_ipc_lock(void)
{
	return capable(CAP_IPC_LOCK);
}

/* type1's mm_lock_acct() for a charge: killable, checks RLIMIT_MEMLOCK unless @lock_cap. */
int vir_mm_charge_locked(struct task_struct *task, struct mm_struct *mm, bool lock_cap,
			 unsigned long npage)
{
	int ret = mmap_write_lock_killable(mm);

	if (ret)
		return ret;
	ret = __account_locked_vm(mm, npage, true, task, lock_cap);
	mmap_write_unlock(mm);
	return ret;
}

/*
 * Returns a charge. Not killable, unlike type1's: an uncharge that gave up on a fatal signal of the
 * calling task would leave the owner's locked_vm charged for good.
 */
void vir_mm_uncharge_locked(struct task_struct *task, struct mm_struct *mm, bool lock_cap,
			    unsigned long npage)
{
	mmap_write_lock(mm);
	__account_locked_vm(mm, npage, false, task, lock_cap);
	mmap_write_unlock(mm);
}

/* type1's is_invalid_reserved_pfn(): memory we neither pin nor charge (MMIO, reserved pages). */
static bool vir_pfn_invalid_or_reserved(unsigned long pfn)
{
	return !pfn_valid(pfn) || PageReserved(pfn_to_page(pfn));
}

/*
 * The pfn of a VM_PFNMAP mapping at @vaddr if it is mapped already (no fault), writable if @write:
 * 0, -EFAULT if it is not writable, or the error of follow_pfnmap_start() (-EINVAL: not mapped).
 */
static int vir_follow_pfn(struct vm_area_struct *vma, unsigned long vaddr, unsigned long *pfn,
			  bool write)
{
	struct follow_pfnmap_args args = { .vma = vma, .address = vaddr };
	int ret = follow_pfnmap_start(&args);

	if (ret)
		return ret;
	if (write && !args.writable)
		ret = -EFAULT;
	else
		*pfn = args.pfn;
	follow_pfnmap_end(&args);
	return ret;
}

/* type1's follow_fault_pfn(): the pfn of a VM_PFNMAP mapping at @vaddr, faulting it in. */
static int vir_follow_fault_pfn(struct vm_area_struct *vma, struct mm_struct *mm,
				unsigned long vaddr, unsigned long *pfn, bool write)
{
	bool unlocked = false;
	int ret = vir_follow_pfn(vma, vaddr, pfn, write);

	if (!ret || ret == -EFAULT)
		return ret;
	ret = fixup_user_fault(mm, vaddr, FAULT_FLAG_REMOTE | (write ? FAULT_FLAG_WRITE : 0), &unlocked);
	if (unlocked)
		return -EAGAIN;
	if (ret)
		return ret;
	return vir_follow_pfn(vma, vaddr, pfn, write);
}

/* Replaces the @n page pointers of @buf by their pfns and counts the reserved pages among them. */
static void vir_pages_to_pfns(u64 *buf, long n, unsigned long *nr_reserved)
{
	struct page **pages = (struct page **)buf;
	long i;

	BUILD_BUG_ON(sizeof(*pages) != sizeof(*buf));
	for (i = 0; i < n; i++) {
		struct page *page = pages[i];

		if (PageReserved(page))
			(*nr_reserved)++;
		buf[i] = page_to_pfn(page);
	}
}

/*
 * type1's vaddr_get_pfns(): pin pages; if @vaddr has none, and its mapping is VM_PFNMAP (such as
 * another device's BAR, for peer-to-peer DMA), take its first pfn if it is MMIO or reserved memory,
 * which is neither pinned nor charged.
 *
 * The calling task's own memory (MAP_DMA from the process that maps, nearly always) is pinned with
 * pin_user_pages_fast(), as iommufd does (pfn_reader_user_pin()): page tables are walked without the
 * mmap_lock or a VMA lookup, and what GUP-fast cannot pin goes through the slow path inside it with
 * the same checks (FOLL_LONGTERM migration, faults). Only if that pins nothing is the VM_PFNMAP case
 * looked at, under the mmap_lock (without trying GUP again there if GUP-fast's slow path just
 * failed). From a VM_PFNMAP address, the following MMIO pfns of the same VMA that are mapped
 * already come in the same call, up to @npages: a BAR is not resolved one call (and one failed GUP)
 * per page.
 */
long vir_pin_user_pfns(struct mm_struct *mm, unsigned long vaddr, unsigned long npages,
		       bool write, u64 *buf, unsigned long *nr_reserved)
{
	unsigned int flags = FOLL_LONGTERM | (write ? FOLL_WRITE : 0);
	struct page **pages = (struct page **)buf;
	struct vm_area_struct *vma;
	unsigned long pfn;
	bool tried = false;
	long n;

	/* GUP-fast takes an int count (our batches are far smaller). */
	if (mm == current->mm && npages <= INT_MAX) {
		n = pin_user_pages_fast(untagged_addr(vaddr), npages, flags, pages);
		if (n > 0) {
			vir_pages_to_pfns(buf, n, nr_reserved);
			return n;
		}
		/* Its slow path ran under the mmap_lock, with the same flags, and pinned nothing. */
		tried = true;
	}
	mmap_read_lock(mm);
	vaddr = untagged_addr_remote(mm, vaddr);
	if (!tried) {
		n = pin_user_pages_remote(mm, vaddr, npages, flags, pages, NULL);
		if (n > 0) {
			vir_pages_to_pfns(buf, n, nr_reserved);
			goto done;
		}
	}
retry:
	vma = vma_lookup(mm, vaddr);
	if (vma && vma->vm_flags & VM_PFNMAP) {
		int ret = vir_follow_fault_pfn(vma, mm, vaddr, &pfn, write);

		if (ret == -EAGAIN)
			goto retry;
		if (!ret && vir_pfn_invalid_or_reserved(pfn)) {
			buf[0] = pfn;
			(*nr_reserved)++;
			n = 1;
			/* The mmap_lock is held since the lookup: @vma stays valid. */
			while ((unsigned long)n < npages && vma->vm_end - vaddr > (unsigned long)n * PAGE_SIZE) {
				if (vir_follow_pfn(vma, vaddr + n * PAGE_SIZE, &pfn, write) ||
				    !vir_pfn_invalid_or_reserved(pfn))
					break;
				buf[n++] = pfn;
				(*nr_reserved)++;
			}
		} else {
			n = ret ? ret : -EFAULT;
		}
	}
done:
	mmap_read_unlock(mm);
	return n;
}

bool vir_pfn_valid(unsigned long pfn)
{
	return pfn_valid(pfn);
}

struct page *vir_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

/*
 * The pages of the folio of @pfn (pinned memory that is not reserved) from @pfn to the folio's end.
 * A folio's pages are all memory, and none of a pinned folio is reserved (hugetlb clears the flag of
 * boot-time gigantic pages when it makes them folios), so they need no check of their own.
 */
static unsigned long vir_folio_pages_from(unsigned long pfn)
{
	struct page *page = pfn_to_page(pfn);
	struct folio *folio = page_folio(page);

	return folio_nr_pages(folio) - folio_page_idx(folio, page);
}

/*
 * Unpins the pinned pages of the range; MMIO and reserved pfns were never pinned (type1's put_pfn).
 * Returns how many pages were unpinned: the pages of the range that count as locked memory.
 * Checks one page per folio: a 2 MiB folio is one check, not 512.
 */
unsigned long vir_unpin_pfn_range(unsigned long pfn, unsigned long npages, bool dirty)
{
	unsigned long i = 0, start, unpinned = 0;

	while (i < npages) {
		while (i < npages && vir_pfn_invalid_or_reserved(pfn + i))
			i++;
		start = i;
		while (i < npages && !vir_pfn_invalid_or_reserved(pfn + i))
			i = min(npages, i + vir_folio_pages_from(pfn + i));
		if (i > start) {
			unpin_user_page_range_dirty_lock(pfn_to_page(pfn + start), i - start, dirty);
			unpinned += i - start;
		}
	}
	return unpinned;
}

/*
 * vir_unpin_pfn_range() for a range known to be pinned memory that is not reserved (the mapping
 * pinned no MMIO or reserved pfn): one call, no check per page or folio.
 */
void vir_unpin_pinned_range(unsigned long pfn, unsigned long npages, bool dirty)
{
	unpin_user_page_range_dirty_lock(pfn_to_page(pfn), npages, dirty);
}

__vir_hot void vir_cond_resched(void)
{
	cond_resched();
}

bool vir_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}

/* type1's vfio_iommu_type1_dma_rw_chunk(), minus the lookup: 0, -EPERM or -EFAULT. */
__vir_hot int vir_mm_copy(struct mm_struct *mm, unsigned long vaddr, void *data, size_t count, bool write)
{
	bool kthread = current->mm == NULL;
	unsigned long left = count;

	if (!mmget_not_zero(mm))
		return -EPERM;
	if (kthread)
		kthread_use_mm(mm);
	else if (current->mm != mm)
		goto out;
	if (write)
		left = copy_to_user((void __user *)vaddr, data, count);
	else
		left = copy_from_user(data, (void __user *)vaddr, count);
	if (kthread)
		kthread_unuse_mm(mm);
out:
	mmput(mm);
	return left ? -EFAULT : 0;
}

__vir_hot unsigned long vir_clear_user(u64 ptr, unsigned long len)
{
	return clear_user((void __user *)(unsigned long)ptr, len);
}

__vir_hot bool vir_user_range_ok(u64 ptr, u64 size)
{
	return access_ok((void __user *)(unsigned long)ptr, size);
}

bool vir_device_has_dma_unmap(struct vfio_device *vdev)
{
	return vdev->ops->dma_unmap != NULL;
}

/*
 * The devices to notify are linked through their own vfio_device::iommu_entry, the list head the
 * core provides for its IOMMU backend (type1 uses it the same way), so registering cannot fail.
 */
void vir_device_list_init(struct list_head *head)
{
	INIT_LIST_HEAD(head);
}

void vir_device_list_add(struct list_head *head, struct vfio_device *vdev)
{
	list_add(&vdev->iommu_entry, head);
}

void vir_device_list_del(struct vfio_device *vdev)
{
	list_del(&vdev->iommu_entry);
}

unsigned int vir_device_list_notify(struct list_head *head, u64 container, u64 iova, u64 length,
				    unsigned int attempt)
{
	struct vfio_device *vdev;
	unsigned int n = 0;

	list_for_each_entry(vdev, head, iommu_entry) {
		trace_vir_notify(container, dev_name(vdev->dev), iova, length, attempt);
		vdev->ops->dma_unmap(vdev, iova, length);
		n++;
	}
	return n;
}

/*
 * Waits until every task that was running, or about to run, code of this module at the call has
 * left it: RCU Tasks on preemptible kernels that have it; plain RCU otherwise, which on a
 * non-preemptible kernel waits for every CPU to schedule (Documentation/reliability.rst).
 */
void vir_wait_for_callers(void)
{
	synchronize_rcu_tasks();
	synchronize_rcu();
}

void vir_msleep(unsigned int ms)
{
	msleep(ms);
}
