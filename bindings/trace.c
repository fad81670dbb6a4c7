// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of vir_trace.h, instantiated here, and the wrappers Rust calls to emit them
 * (trace_helpers.h). A wrapper is only called once trace.rs has seen its event enabled; the
 * trace_vir_*() inside tests the same static key again, which costs a NOP.
 */
#define CREATE_TRACE_POINTS
#include "vir_trace.h"
#include "trace_helpers.h"

void vir_trace_map(u64 container, u64 iova, u64 size, u64 pinned, u64 charged, u64 ns, int result)
{
	trace_vir_map(container, iova, size, pinned, charged, ns, result);
}

void vir_trace_unmap(u64 container, u64 iova, u64 size, bool bitmap, u64 unpinned, u64 uncharged,
		     bool release)
{
	trace_vir_unmap(container, iova, size, bitmap, unpinned, uncharged, release);
}

void vir_trace_pin(u64 container, int group, u64 iova, u64 count, int result)
{
	trace_vir_pin(container, group, iova, count, result);
}

void vir_trace_unpin(u64 container, u64 iova, u64 count, u64 released)
{
	trace_vir_unpin(container, iova, count, released);
}

void vir_trace_dma_rw(u64 container, u64 iova, u64 len, bool write, int result)
{
	trace_vir_dma_rw(container, iova, len, write, result);
}

void vir_trace_dirty_report(u64 container, u64 iova, u64 size, u64 bits, u64 bytes, bool unmap)
{
	trace_vir_dirty_report(container, iova, size, bits, bytes, unmap);
}
