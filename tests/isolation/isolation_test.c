// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupt isolation, in a guest whose virtual IOMMU has no interrupt remapping (run-guest.sh
 * mode "isolation"): a device group cannot be isolated from MSI forgery, so VFIO_SET_IOMMU fails
 * with EPERM, unless the backend's allow_unsafe_interrupts parameter says otherwise. Against both
 * backends; only this boot runs it.
 */
#include "kselftest_harness.h"
#include "vfio_test.h"

TEST(no_interrupt_remapping)
{
	struct backend_refs before = backend_refs(), now;
	const char *module = backend_module(vfio_backend());
	int container, group, err;

	err = open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container, &group);
	EXPECT_EQ(EPERM, err);
	RECORD("no_interrupt_remapping", "set_iommu %d", err);
	now = backend_refs();
	EXPECT_EQ(before.rust, now.rust);
	EXPECT_EQ(before.type1, now.type1);
	close(group);
	close(container);

	/* Allowed by the parameter of the backend under test: it serves the container. */
	ASSERT_EQ(0, write_module_param(module, "allow_unsafe_interrupts", "1"));
	before = backend_refs();
	err = open_container(env_int("VFIO_TEST_GROUP"), VFIO_TYPE1v2_IOMMU, &container, &group);
	EXPECT_EQ(0, write_module_param(module, "allow_unsafe_interrupts", "0"));
	ASSERT_EQ(0, err);
	ASSERT_SERVED_SINCE(before);
	EXPECT_EQ(0, dma_map(container, 0x100000, (uintptr_t)alloc_pages(1), PAGE, RW));
	close(group);
	close(container);
}

TEST_HARNESS_MAIN
