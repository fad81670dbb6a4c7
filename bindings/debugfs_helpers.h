/* SPDX-License-Identifier: GPL-2.0 */
/*
 * debugfs files whose contents Rust writes (debugfs.rs): /sys/kernel/debug/vfio_iommu_rust/ and a
 * directory per container in it. Every file is a read-only (0400) seq_file whose show callback is
 * a Rust function, given the file's struct vir_debugfs_file.
 */
#ifndef VIR_DEBUGFS_HELPERS_H
#define VIR_DEBUGFS_HELPERS_H

#include <linux/types.h>

struct dentry;
struct seq_file;

/* What a file shows: @show(m, @data, @index). Owned by Rust, live until the file is removed. */
struct vir_debugfs_file {
	int (*show)(struct seq_file *m, const void *data, unsigned int index);
	const void *data;
	unsigned int index;
};

/* The module's directory, created at load and removed (with everything in it) at unload. */
void vir_debugfs_init(void);
void vir_debugfs_exit(void);
/* A directory in the module's; an ERR_PTR if debugfs is unavailable (then files are not created). */
struct dentry *vir_debugfs_dir(const char *name);
/* A read-only file in @dir showing @file, which must stay valid until @dir is removed. */
void vir_debugfs_file(struct dentry *dir, const char *name, struct vir_debugfs_file *file);
/* Removes @dir and its files; waits for reads in progress (debugfs' full proxy). */
void vir_debugfs_remove(struct dentry *dir);
/* Whether @m's buffer overflowed: the show callback can stop, seq_read() calls it again. */
bool vir_seq_has_overflowed(struct seq_file *m);

#endif /* VIR_DEBUGFS_HELPERS_H */
