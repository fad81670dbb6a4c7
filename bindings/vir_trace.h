/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The trace events of vfio-iommu-rust: system "vfio_iommu_rust" in tracefs
 * (/sys/kernel/tracing/events/vfio_iommu_rust/), usable with trace-cmd and perf.
 * Documentation/observability.rst describes each field.
 *
 * bindings/trace.c instantiates them (CREATE_TRACE_POINTS) and wraps each in an out-of-line function
 * for Rust (trace_helpers.h); trace.rs calls a wrapper only when its event is enabled. The
 * notification event is emitted from C (helpers.c), where the devices are.
 *
 * Every event has the container's id, the "c<id>" of its debugfs directory.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vfio_iommu_rust

#if !defined(VIR_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VIR_TRACE_H

#include <linux/tracepoint.h>

/* VFIO_IOMMU_MAP_DMA (not the vaddr updates of VFIO_DMA_MAP_FLAG_VADDR), successful or not. */
TRACE_EVENT(vir_map,
	TP_PROTO(u64 container, u64 iova, u64 size, u64 pinned, u64 charged, u64 ns, int result),
	TP_ARGS(container, iova, size, pinned, charged, ns, result),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, size)
		__field(u64, pinned)
		__field(u64, charged)
		__field(u64, ns)
		__field(int, result)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->size = size;
		__entry->pinned = pinned;
		__entry->charged = charged;
		__entry->ns = ns;
		__entry->result = result;
	),
	TP_printk("container=%llu iova=%#llx size=%#llx pinned=%llu charged=%llu ns=%llu result=%d",
		  __entry->container, __entry->iova, __entry->size, __entry->pinned,
		  __entry->charged, __entry->ns, __entry->result)
);

/* A mapping removed: by VFIO_IOMMU_UNMAP_DMA, or with the container (release). */
TRACE_EVENT(vir_unmap,
	TP_PROTO(u64 container, u64 iova, u64 size, bool bitmap, u64 unpinned, u64 uncharged,
		 bool release),
	TP_ARGS(container, iova, size, bitmap, unpinned, uncharged, release),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, size)
		__field(u64, unpinned)
		__field(u64, uncharged)
		__field(bool, bitmap)
		__field(bool, release)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->size = size;
		__entry->unpinned = unpinned;
		__entry->uncharged = uncharged;
		__entry->bitmap = bitmap;
		__entry->release = release;
	),
	TP_printk("container=%llu iova=%#llx size=%#llx bitmap=%d unpinned=%llu uncharged=%llu release=%d",
		  __entry->container, __entry->iova, __entry->size, __entry->bitmap,
		  __entry->unpinned, __entry->uncharged, __entry->release)
);

/* vfio_pin_pages() by the vendor driver of a device in IOMMU group @group. */
TRACE_EVENT(vir_pin,
	TP_PROTO(u64 container, int group, u64 iova, u64 count, int result),
	TP_ARGS(container, group, iova, count, result),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, count)
		__field(int, group)
		__field(int, result)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->count = count;
		__entry->group = group;
		__entry->result = result;
	),
	TP_printk("container=%llu group=%d iova=%#llx count=%llu result=%d",
		  __entry->container, __entry->group, __entry->iova, __entry->count,
		  __entry->result)
);

/* vfio_unpin_pages(); @released pages lost their last pin. */
TRACE_EVENT(vir_unpin,
	TP_PROTO(u64 container, u64 iova, u64 count, u64 released),
	TP_ARGS(container, iova, count, released),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, count)
		__field(u64, released)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->count = count;
		__entry->released = released;
	),
	TP_printk("container=%llu iova=%#llx count=%llu released=%llu",
		  __entry->container, __entry->iova, __entry->count, __entry->released)
);

/* vfio_dma_rw(). */
TRACE_EVENT(vir_dma_rw,
	TP_PROTO(u64 container, u64 iova, u64 len, bool write, int result),
	TP_ARGS(container, iova, len, write, result),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, len)
		__field(bool, write)
		__field(int, result)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->len = len;
		__entry->write = write;
		__entry->result = result;
	),
	TP_printk("container=%llu iova=%#llx len=%llu write=%d result=%d",
		  __entry->container, __entry->iova, __entry->len, __entry->write, __entry->result)
);

/*
 * A dirty bitmap written: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, or an unmap with
 * VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (@unmap). @bits: bits set for the mappings in the range.
 */
TRACE_EVENT(vir_dirty_report,
	TP_PROTO(u64 container, u64 iova, u64 size, u64 bits, u64 bytes, bool unmap),
	TP_ARGS(container, iova, size, bits, bytes, unmap),
	TP_STRUCT__entry(
		__field(u64, container)
		__field(u64, iova)
		__field(u64, size)
		__field(u64, bits)
		__field(u64, bytes)
		__field(bool, unmap)
	),
	TP_fast_assign(
		__entry->container = container;
		__entry->iova = iova;
		__entry->size = size;
		__entry->bits = bits;
		__entry->bytes = bytes;
		__entry->unmap = unmap;
	),
	TP_printk("container=%llu iova=%#llx size=%#llx bits=%llu bytes=%llu unmap=%d",
		  __entry->container, __entry->iova, __entry->size, __entry->bits,
		  __entry->bytes, __entry->unmap)
);

/* A dma_unmap notification to a vendor device; @attempt 0 is the first for the mapping. */
TRACE_EVENT(vir_notify,
	TP_PROTO(u64 container, const char *device, u64 iova, u64 size, unsigned int attempt),
	TP_ARGS(container, device, iova, size, attempt),
	TP_STRUCT__entry(
		__field(u64, container)
		__string(device, device)
		__field(u64, iova)
		__field(u64, size)
		__field(unsigned int, attempt)
	),
	TP_fast_assign(
		__entry->container = container;
		__assign_str(device);
		__entry->iova = iova;
		__entry->size = size;
		__entry->attempt = attempt;
	),
	TP_printk("container=%llu device=%s iova=%#llx size=%#llx attempt=%u",
		  __entry->container, __get_str(device), __entry->iova, __entry->size,
		  __entry->attempt)
);

#endif /* VIR_TRACE_H */

/* For define_trace.h, with CREATE_TRACE_POINTS: Kbuild puts bindings/ on the include path. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE vir_trace
#include <trace/define_trace.h>
