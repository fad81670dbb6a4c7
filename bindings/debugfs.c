// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs helpers of vfio-iommu-rust; see debugfs_helpers.h. The files use debugfs_create_file()'s
 * full proxy: debugfs_remove() returns only once no show callback of the removed files runs, and
 * later reads of a file still open fail with EIO, so Rust can free what a file shows after removing
 * it.
 */
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/seq_file.h>

#include "debugfs_helpers.h"

static struct dentry *vir_debugfs_root;

void vir_debugfs_init(void)
{
	vir_debugfs_root = debugfs_create_dir("vfio_iommu_rust", NULL);
}

void vir_debugfs_exit(void)
{
	debugfs_remove(vir_debugfs_root);
	vir_debugfs_root = NULL;
}

struct dentry *vir_debugfs_dir(const char *name)
{
	return debugfs_create_dir(name, vir_debugfs_root);
}

static int vir_debugfs_show(struct seq_file *m, void *v)
{
	const struct vir_debugfs_file *file = m->private;

	return file->show(m, file->data, file->index);
}

static int vir_debugfs_open(struct inode *inode, struct file *file)
{
	return single_open(file, vir_debugfs_show, inode->i_private);
}

static const struct file_operations vir_debugfs_fops = {
	.owner = THIS_MODULE,
	.open = vir_debugfs_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

void vir_debugfs_file(struct dentry *dir, const char *name, struct vir_debugfs_file *file)
{
	debugfs_create_file(name, 0400, dir, file, &vir_debugfs_fops);
}

void vir_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}

bool vir_seq_has_overflowed(struct seq_file *m)
{
	return seq_has_overflowed(m);
}
