#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn vir-bench's "BENCH <workload> <backend> <value> <unit>" lines into a markdown table (min and
median per backend, ratio of medians ours/type1, the issue's target) and a bar plot of the ratios.

Usage: bench-report.py TAP_LOG RESULTS_DIR KERNEL_VERSION ARCH NCPU [EMULATOR]
Writes RESULTS_DIR/<date>.md and RESULTS_DIR/<date>.png and prints the table.
"""
import datetime
import statistics
import sys

# Workload -> (description, target ratio ours/type1, lower is better).
WORKLOADS = {
    "map_unmap_1g_4k": ("MAP_DMA + UNMAP_DMA, 1 GiB of 4K anonymous memory, one mapping", 0.8),
    "map_unmap_1g_2m_hugetlb": ("MAP_DMA + UNMAP_DMA, 1 GiB of 2M hugetlb memory", 0.8),
    "map_unmap_512m_4k_fresh": ("MAP_DMA + UNMAP_DMA, 512 MiB of 4K memory faulted in for each run", 0.8),
    "map_unmap_512m_thp_fresh": ("MAP_DMA + UNMAP_DMA, 512 MiB of THP memory faulted in for each run", 0.8),
    "map_16k_64k_unmap_all": ("16,384 MAP_DMA of 64 KiB, then UNMAP_ALL", 1.0),
    "get_bitmap_64g_sparse": ("GET_BITMAP over 64 GiB (mdev container, 64 pinned pages)", 0.5),
    "pin_unpin_512": ("pin_pages + unpin_pages of 512 pages (vendor driver)", 1.0),
    "mem_per_mapping": ("kernel memory per mapping (slab, mdev container)", 1.0),
    "mem_per_pinned_page": ("kernel memory per vendor-pinned page (slab, incl. driver's 8 B)", 1.0),
}


def main():
    tap, outdir, kver, arch, ncpu = sys.argv[1:6]
    emulator = sys.argv[6] if len(sys.argv) > 6 else "QEMU"
    values = {}
    units = {}
    for line in open(tap, errors="replace"):
        parts = line.strip().split()
        if len(parts) != 5 or parts[0] != "BENCH" or parts[1].startswith("warmup-"):
            continue
        _, work, backend, value, unit = parts
        values.setdefault((work, backend), []).append(float(value))
        units[work] = unit
    date = datetime.date.today().isoformat()
    rows = []
    ratios = []
    for work, (desc, target) in WORKLOADS.items():
        t = values.get((work, "type1"), [])
        r = values.get((work, "rust"), [])
        if not t or not r:
            rows.append(f"| {desc} | - | - | - | {target} | missing |")
            continue
        # Times: ratio of medians. Memory: ratio of minimums (other allocations in the measuring
        # window only ever add to a sample).
        memory = units[work] == "bytes"
        tm, rm = statistics.median(t), statistics.median(r)
        tb, rb = (min(t), min(r)) if memory else (tm, rm)
        ratio = rb / tb if tb else float("inf")
        ratios.append((work, ratio, target))
        unit = units[work]
        verdict = "met" if ratio <= target else "NOT met"
        rows.append(
            f"| {desc} | {min(t):.1f} / {tm:.1f} {unit} | {min(r):.1f} / {rm:.1f} {unit} "
            f"| **{ratio:.2f}** | <= {target} | {verdict} |"
        )
    n = max(len(v) for v in values.values()) if values else 0
    md = [
        f"# vfio-iommu-rust benchmark, {date}",
        "",
        f"Linux {kver} guest under QEMU TCG (q35, virtual VT-d with caching mode), {arch}, "
        f"host with {ncpu} cores; one boot, {n} measured runs per backend and workload after a "
        "warm-up, alternating type1 and vfio_iommu_rust in the same process on the same memory.",
        f"Emulator: {emulator} (Documentation/benchmarks.rst says why the benchmark CPU has no fast "
        "short string bits).",
        "Times are wall-clock under TCG emulation: compare the ratios, not the absolute values.",
        "",
        "Ratios: medians for times, minimums for memory (unrelated allocations during a memory "
        "sample only ever add to it).",
        "",
        "| workload | type1 min / median | rust min / median | ratio rust/type1 "
        "| target | |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    text = "\n".join(md)
    with open(f"{outdir}/{date}.md", "w") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(10.5, 4.5))
        names = [w for w, _, _ in ratios]
        ax.barh(names, [x for _, x, _ in ratios],
                color=["tab:green" if x <= tgt else "tab:red" for _, x, tgt in ratios])
        ax.scatter([tgt for _, _, tgt in ratios], names, marker="|", s=400, color="black",
                   label="target")
        ax.axvline(1.0, color="grey", linestyle=":")
        ax.set_xlabel("vfio_iommu_rust / type1 (times: medians, memory: minimums; lower is better)")
        ax.set_title(f"vfio-iommu-rust vs type1, same boot, {date}")
        ax.invert_yaxis()
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(f"{outdir}/{date}.png", dpi=100)
        print(f"plot: {outdir}/{date}.png")
    except ImportError:
        print("matplotlib not installed: no plot (scripts/setup.sh bench installs it)")
    print(f"table: {outdir}/{date}.md")


if __name__ == "__main__":
    main()
