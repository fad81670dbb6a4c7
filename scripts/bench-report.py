#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn vir-bench's "BENCH <workload> <backend> <value> <unit>" and "BENCH-NA <workload> <backend>
<reason>" lines into a markdown table (median and spread per backend: type1, iommufd and ours;
the ratios ours/type1 and ours/iommufd; the issue's targets) and a bar plot of the ratios.

Usage: bench-report.py TAP_LOG RESULTS_DIR KERNEL_VERSION ARCH NCPU [EMULATOR [ICOUNT_TAP_LOG]]
ICOUNT_TAP_LOG is the TAP of a second boot under QEMU's "-icount shift=0,sleep=off" (bench.sh):
its times are guest instructions (1 ns each), and the table gives them in the rows marked
"-icount boot".
Writes RESULTS_DIR/<date>-linux-<kernel>.md and .png and prints the table.
"""
import datetime
import statistics
import sys

BACKENDS = ("type1", "iommufd", "rust")

# Rows of the table, in order: (workload, description, target of ours/type1 or None, whether
# "ours <= iommufd" applies: the map workloads). Sub-rows (map and unmap of a map+unmap, the
# informational measures) have no target.
ROWS = [
    ("map_unmap_1g_4k", "MAP+UNMAP 1 GiB, 4K (one mapping)", 0.75, True),
    ("map_1g_4k", "&nbsp;&nbsp;MAP", None, False),
    ("unmap_1g_4k", "&nbsp;&nbsp;UNMAP", None, False),
    ("map_unmap_1g_4k_fresh", "MAP+UNMAP 1 GiB, 4K, fresh memory per sample", 0.75, True),
    ("map_1g_4k_fresh", "&nbsp;&nbsp;MAP", None, False),
    ("unmap_1g_4k_fresh", "&nbsp;&nbsp;UNMAP", None, False),
    ("map_unmap_1g_thp", "MAP+UNMAP 1 GiB, THP", 0.30, True),
    ("map_1g_thp", "&nbsp;&nbsp;MAP", None, False),
    ("unmap_1g_thp", "&nbsp;&nbsp;UNMAP", None, False),
    ("map_unmap_1g_2m_hugetlb", "MAP+UNMAP 1 GiB, 2M hugetlb", 0.30, True),
    ("map_1g_2m_hugetlb", "&nbsp;&nbsp;MAP", None, False),
    ("unmap_1g_2m_hugetlb", "&nbsp;&nbsp;UNMAP", None, False),
    ("map_unmap_1g_1g_hugetlb", "MAP+UNMAP 1 GiB, one 1G hugetlb page", 0.30, True),
    ("map_1g_1g_hugetlb", "&nbsp;&nbsp;MAP", None, False),
    ("unmap_1g_1g_hugetlb", "&nbsp;&nbsp;UNMAP", None, False),
    ("map_16k_64k_unmap_all", "16,384 MAP of 64 KiB + UNMAP_ALL", 0.9, True),
    ("p2p_bar_map_unmap_1m", "MAP+UNMAP of a 1 MiB device BAR (p2p, VM_PFNMAP), per pair", None,
     True),
    ("growth_4k_256m", "growth: MAP+UNMAP 256 MiB, 4K, per page", None, True),
    ("growth_4k_1g", "growth: MAP+UNMAP 1 GiB, 4K, per page", None, True),
    ("growth_4k_2g", "growth: MAP+UNMAP 2 GiB, 4K, per page", None, True),
    ("growth_small_4k", "growth: 4,096 x 64 KiB + UNMAP_ALL, per mapping", None, True),
    ("growth_small_16k", "growth: 16,384 x 64 KiB + UNMAP_ALL, per mapping", None, True),
    ("growth_small_64k", "growth: 65,535 x 64 KiB + UNMAP_ALL, per mapping", None, True),
    ("get_bitmap_64g_sparse", "GET_BITMAP 64 GiB, sparse (mdev, 64 pinned pages)", 0.4, False),
    ("get_bitmap_1g_all_dirty", "GET_BITMAP 1 GiB, all dirty (IOMMU-backed group)", None, False),
    ("dirty_dense_256m_get_bitmap", "dense dirty 256 MiB (mdev, dma_rw every page): GET_BITMAP",
     1.0, False),
    ("dirty_dense_256m_rereport",
     "&nbsp;&nbsp;the same report again after 2 pages written (warm, median of 7)", None, False),
    ("dirty_dense_256m_rw", "&nbsp;&nbsp;the dma_rw writes, tracking on", None, False),
    ("icount_dirty_dense_256m_get_bitmap",
     "&nbsp;&nbsp;GET_BITMAP, guest instructions (-icount boot)", None, False),
    ("icount_dirty_dense_256m_rereport",
     "&nbsp;&nbsp;the warm report again, guest instructions (-icount boot)", None, False),
    ("dirty_dense_256m_mem", "dense dirty 256 MiB: kernel memory (slab + vmalloc)", 1.0, False),
    ("pin_unpin_512", "vendor pin+unpin 512 pages", 1.0, False),
    ("contention_vendor_pin_p99", "vendor pin/unpin p99 during 1 GiB MAP+UNMAP", 0.1, False),
    ("contention_vendor_pin_max", "vendor pin/unpin max during 1 GiB MAP+UNMAP", None, False),
    ("mem_per_mapping", "kernel memory per mapping (slab, no pinning)", 1.0, False),
    ("mem_per_pinned_page", "kernel memory per vendor-pinned page (slab, incl. driver's 8 B)", 1.0,
     False),
]

# The floor (tests/bench/floor.h: pinning and unpinning the same memory with no IOMMU work, the
# pseudo-backend "floor"): (workload, description, allowed multiple of the floor for ours or None).
FLOOR = [
    ("map_unmap_1g_4k", "MAP+UNMAP 1 GiB, 4K", None),
    ("map_unmap_1g_4k_fresh", "MAP+UNMAP 1 GiB, 4K, fresh memory", None),
    ("map_unmap_1g_thp", "MAP+UNMAP 1 GiB, THP", 2.0),
    ("map_unmap_1g_2m_hugetlb", "MAP+UNMAP 1 GiB, 2M hugetlb", 2.0),
    ("map_unmap_1g_1g_hugetlb", "MAP+UNMAP 1 GiB, one 1G hugetlb page", 2.0),
]

# Growth: (workloads smallest to largest, description, allowed band of ours' largest/smallest).
GROWTH = [
    (("growth_4k_256m", "growth_4k_1g", "growth_4k_2g"),
     "per-page cost 2 GiB / 256 MiB (4K MAP+UNMAP)", (0.85, 1.15)),
    (("growth_small_4k", "growth_small_16k", "growth_small_64k"),
     "per-mapping cost 65,535 / 4,096 mappings (64 KiB)", None),
]


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    tap, outdir, kver, arch, ncpu = sys.argv[1:6]
    emulator = sys.argv[6] if len(sys.argv) > 6 else "QEMU"
    icount_tap = sys.argv[7] if len(sys.argv) > 7 else None
    values, units, na = {}, {}, {}

    def parse(path, prefix=""):
        """Reads one boot's TAP; under -icount (prefix "icount_") a time in ms is 1e6 guest
        instructions per ms, as the guest clock advances 1 ns per instruction."""
        for line in open(path, errors="replace"):
            parts = line.strip().split()
            if len(parts) >= 4 and parts[0] == "BENCH-NA":
                na.setdefault((prefix + parts[1], parts[2]), " ".join(parts[3:]))
                continue
            if len(parts) != 5 or parts[0] != "BENCH" or parts[1].startswith("warmup-"):
                continue
            _, work, backend, value, unit = parts
            v = float(value)
            if prefix:
                if unit != "ms":
                    continue
                v, unit = v * 1e6, "instructions"
            values.setdefault((prefix + work, backend), []).append(v)
            units[prefix + work] = unit

    parse(tap)
    if icount_tap:
        parse(icount_tap, "icount_")

    notes = []  # footnote texts, numbered in order

    def note(text):
        if text not in notes:
            notes.append(text)
        return f"[{notes.index(text) + 1}]"

    def measure(work, backend):
        """The value a ratio uses: median for times, minimum for memory (unrelated allocations
        during a memory sample only ever add to it)."""
        v = values.get((work, backend))
        if not v:
            return None
        return min(v) if units.get(work) == "bytes" else statistics.median(v)

    def cell(work, backend):
        v = values.get((work, backend))
        if v:
            u = units[work]
            if len(v) == 1:
                return f"{fmt(v[0])} {u}"
            return f"{fmt(statistics.median(v))} {u} ({fmt(min(v))}-{fmt(max(v))})"
        if (work, backend) in na:
            return "n/a " + note(f"{backend}: {na[(work, backend)]}")
        return "missing"

    def ratio(work, other):
        a, b = measure(work, "rust"), measure(work, other)
        # A memory sample at or below zero (the kernel freed more than the workload held) has no
        # meaningful ratio.
        if a is None or b is None or b <= 0 or a < 0:
            return None
        return a / b

    date = datetime.date.today().isoformat()
    stem = f"{date}-linux-{kver}"
    rows, plotted = [], []
    for work, desc, target, vs_iommufd in ROWS:
        if not any((work, b) in values or (work, b) in na for b in BACKENDS):
            continue
        rt, ri = ratio(work, "type1"), ratio(work, "iommufd")
        checks = []
        if target is not None:
            if rt is None:
                t1, ours = measure(work, "type1"), measure(work, "rust")
                checks.append("? (no type1 value)" if t1 is None else
                              f"? (ours measured {fmt(ours)}: no ratio)"
                              if ours is not None and ours < 0 else
                              f"? (type1 measured {fmt(t1)}: no ratio)")
            else:
                checks.append("ok" if rt <= target else "NOT met")
        if vs_iommufd:
            if ri is not None:
                checks.append("ok" if ri <= 1.0 else "NOT met (vs iommufd)")
            elif (work, "iommufd") in na:
                checks.append("iommufd n/a")
        tgt = []
        if target is not None:
            tgt.append(f"<= {target} x type1")
        if vs_iommufd:
            tgt.append("<= iommufd")
        if not checks:
            met = "-"
        elif any(c.startswith("NOT") for c in checks):
            met = "**" + ", ".join(c for c in checks if c.startswith("NOT")) + "**"
        elif all(c == "ok" for c in checks):
            met = "met"
        else:
            met = ", ".join(c for c in checks if c != "ok") or "met"
            if "ok" in checks:
                met = "met; " + met
        rows.append(
            f"| {desc} | {cell(work, 'type1')} | {cell(work, 'iommufd')} | {cell(work, 'rust')} "
            f"| {'**' + fmt(rt) + '**' if rt is not None else '-'} "
            f"| {fmt(ri) if ri is not None else '-'} | {', '.join(tgt) or '-'} | {met} |"
        )
        if target is not None or vs_iommufd:
            if not desc.startswith("&nbsp;"):
                plotted.append((work, rt, ri, target, 1.0 if vs_iommufd else None))

    growth_rows = []
    for works, desc, band in GROWTH:
        slopes = {}
        for b in BACKENDS:
            lo, hi = measure(works[0], b), measure(works[-1], b)
            slopes[b] = hi / lo if lo and hi is not None and lo > 0 else None
        if all(s is None for s in slopes.values()):
            continue
        if band is None:
            met, tgt = "-", "-"
        elif slopes["rust"] is None:
            met, tgt = "missing", f"{band[0]}-{band[1]}"
        else:
            ok = band[0] <= slopes["rust"] <= band[1]
            met, tgt = ("met" if ok else "**NOT met**"), f"ours {band[0]}-{band[1]} (±15%)"
        growth_rows.append(
            f"| {desc} | {fmt(slopes['type1'])} | {fmt(slopes['iommufd'])} "
            f"| {fmt(slopes['rust'])} | - | - | {tgt} | {met} |"
        )

    floor_rows = []
    for work, desc, limit in FLOOR:
        fl = measure(work, "floor")
        if fl is None or fl <= 0:
            continue
        mult = {}
        for b in BACKENDS:
            v = measure(work, b)
            mult[b] = v / fl if v is not None else None
        if limit is None:
            met, tgt = "-", "-"
        elif mult["rust"] is None:
            met, tgt = "missing", f"ours <= {limit} x floor"
        else:
            met = "met" if mult["rust"] <= limit else "**NOT met**"
            tgt = f"ours <= {limit} x floor"
        floor_rows.append(
            f"| {desc} | {cell(work, 'floor')} | {fmt(mult['type1'])} | {fmt(mult['iommufd'])} "
            f"| {fmt(mult['rust'])} | {tgt} | {met} |"
        )

    n = max((len(v) for k, v in values.items()
             if k[1] in BACKENDS and not k[0].startswith("icount_")), default=0)
    ni = max((len(v) for k, v in values.items()
              if k[1] in BACKENDS and k[0].startswith("icount_")), default=0)
    md = [
        f"# vfio-iommu-rust benchmark, {date}",
        "",
        f"Linux {kver} guest under QEMU TCG (q35, virtual VT-d with caching mode), {arch}, "
        f"host with {ncpu} cores; one boot, {n} measured runs per backend and workload after a "
        "warm-up, rotating type1, vfio_iommu_rust (ours) and iommufd in the same process on the "
        "same memory (Documentation/benchmarks.rst).",
        f"Emulator: {emulator} (Documentation/benchmarks.rst says why the benchmark CPU has no fast "
        "short string bits).",
        "Times are wall-clock under TCG emulation: compare the ratios, not the absolute values.",
        *([f"The rows marked -icount boot come from a second boot that ran the dense dirty "
           f"workload alone ({ni} measured runs) under QEMU's -icount shift=0,sleep=off: the "
           "guest clock advances 1 ns per executed instruction, so a time there is a count of "
           "guest instructions, whatever the host's load and TCG's own costs."]
          if ni else []),
        "",
        "Cells: median (min-max) over the measured runs. Ratios: of medians for times, of minimums "
        "for memory (unrelated allocations during a memory sample only ever add to it).",
        "",
        "| workload | type1 | iommufd | ours | ours/type1 | ours/iommufd | target | |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    if growth_rows:
        md += [
            "Growth: the per-unit cost at the largest size over that at the smallest (medians; "
            "1.0 is flat).",
            "",
            "| growth | type1 | iommufd | ours | | | target | |",
            "|---|---|---|---|---|---|---|---|",
            *growth_rows,
            "",
        ]
    floor_na = sorted({r for (w, b), r in na.items() if b == "floor"})
    if not floor_rows and floor_na:
        md += ["The floor (pin+unpin with no IOMMU work) was not measured: " + "; ".join(floor_na)
               + ".", ""]
    if floor_rows:
        md += [
            "The floor: pinning and unpinning the same 1 GiB with no IOMMU work (an io_uring fixed "
            "buffer registered and unregistered: the same GUP, pins and locked-memory charge), "
            "measured after ours in each run; each backend's MAP+UNMAP as a multiple of its median.",
            "",
            "| workload | floor | type1 | iommufd | ours | target | |",
            "|---|---|---|---|---|---|---|",
            *floor_rows,
            "",
        ]
    if notes:
        md += ["Not measured:", ""]
        md += [f"{i + 1}. {t}" for i, t in enumerate(notes)]
        md.append("")
    text = "\n".join(md)
    with open(f"{outdir}/{stem}.md", "w") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from matplotlib.patches import Patch

        def color(r, t):
            if r is None or t is None:
                return "tab:gray"
            return "tab:green" if r <= t else "tab:red"

        names = [p[0] for p in plotted]
        fig, ax = plt.subplots(figsize=(11, 0.42 * len(names) + 1.6))
        ys = range(len(names))
        vt = [rt if rt is not None else 0 for _, rt, _, _, _ in plotted]
        vi = [ri if ri is not None else 0 for _, _, ri, _, _ in plotted]
        ax.barh([y - 0.2 for y in ys], vt, height=0.38,
                color=[color(rt, t) for _, rt, _, t, _ in plotted])
        ax.barh([y + 0.2 for y in ys], vi, height=0.38, hatch="//", edgecolor="white",
                linewidth=0, color=[color(ri, t) for _, _, ri, _, t in plotted])
        tg = [(y - 0.2, t) for y, (_, _, _, t, _) in zip(ys, plotted) if t is not None]
        if tg:
            ax.scatter([t for _, t in tg], [y for y, _ in tg], marker="|", s=250, color="black",
                       zorder=3)
        handles = [
            Patch(facecolor="tab:gray", label="ours / type1 (upper bar)"),
            Patch(facecolor="tab:gray", hatch="//", edgecolor="white",
                  label="ours / iommufd (lower bar)"),
            Patch(facecolor="tab:green", label="target met"),
            Patch(facecolor="tab:red", label="target not met"),
            Patch(facecolor="tab:gray", label="no target"),
            plt.Line2D([], [], marker="|", linestyle="", markersize=15, color="black",
                       label="target vs type1"),
        ]
        ax.axvline(1.0, color="grey", linestyle=":")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(names)
        positive = [x for x in vt + vi if x > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")
        ax.set_xlabel("ratio (times: medians, memory: minimums; lower is better; "
                      "no bar: not measured)")
        ax.set_title(f"vfio-iommu-rust vs type1 and iommufd, same boot, Linux {kver}, {date}")
        ax.invert_yaxis()
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(f"{outdir}/{stem}.png", dpi=100)
        print(f"plot: {outdir}/{stem}.png")
    except ImportError:
        print("matplotlib not installed: no plot (scripts/setup.sh bench installs it)")
    print(f"table: {outdir}/{stem}.md")


if __name__ == "__main__":
    main()
