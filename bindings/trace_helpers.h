/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The trace events of vir_trace.h as Rust sees them: each event's tracepoint (whose static key
 * trace.rs tests with a jump label of its own) and an out-of-line wrapper that emits the event,
 * which trace.rs calls only when the key is enabled.
 */
#ifndef VIR_TRACE_HELPERS_H
#define VIR_TRACE_HELPERS_H

#include <linux/tracepoint-defs.h>
#include <linux/types.h>

extern struct tracepoint __tracepoint_vir_map;
extern struct tracepoint __tracepoint_vir_unmap;
extern struct tracepoint __tracepoint_vir_pin;
extern struct tracepoint __tracepoint_vir_unpin;
extern struct tracepoint __tracepoint_vir_dma_rw;
extern struct tracepoint __tracepoint_vir_dirty_report;

void vir_trace_map(u64 container, u64 iova, u64 size, u64 pinned, u64 charged, u64 ns, int result);
void vir_trace_unmap(u64 container, u64 iova, u64 size, bool bitmap, u64 unpinned, u64 uncharged,
		     bool release);
void vir_trace_pin(u64 container, int group, u64 iova, u64 count, int result);
void vir_trace_unpin(u64 container, u64 iova, u64 count, u64 released);
void vir_trace_dma_rw(u64 container, u64 iova, u64 len, bool write, int result);
void vir_trace_dirty_report(u64 container, u64 iova, u64 size, u64 bits, u64 bytes, bool unmap);

#endif /* VIR_TRACE_HELPERS_H */
