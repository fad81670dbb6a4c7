# SPDX-License-Identifier: GPL-2.0
#
# vfio-iommu-rust: the two commands of README.md and the steps behind them.
#
#   make demo     set up, build, boot the guest, show our backend serving a device's container
#                 (QEMU=1: also the host's QEMU live migrating a VM over it, with dirty pages)
#   make check    set up, build, boot the guest, run all tests: ends with "N passed, N failed"
#   make bench    same-boot performance and memory comparison with type1 and iommufd
#                 (bench/results/); VIR_BENCH_ROUNDS=N, VIR_BENCH_ONLY=workload,... shorten it
#   make check-debug  the suite on a KASAN/lockdep/kmemleak kernel, plus fault injection, stress,
#                 200k fuzzed ioctls, 100k memory-churn steps and a kmemleak scan
#   make fuzz     the two fuzzers on the debug kernel: 1e6 ioctls and 1e6 churn steps, or
#                 VIR_FUZZ_SECONDS=N (seconds shared by the fuzzers); VIR_FUZZ_SEED=S replays a
#                 run or a churn sequence; VIR_ONLY=churn_test (or fuzz_test) runs one of them
#   make          build the module against KDIR (default: the cached test kernel)
#   make install  install it into /lib/modules/<kver>/updates, depmod, and the modprobe
#                 configuration (modprobe.d/) that loads it after vfio_iommu_type1; make uninstall
#                 (KDIR: default the kernel `make` built against; DESTDIR or INSTALL_MOD_PATH: a
#                 staging root)
#   make install-check  make install/uninstall into a staged root and DKMS add/build/install/remove
#                 against the cached test kernel (what CI runs; installs the dkms package)
#
# KERNEL=7.3 (any target above): the 7.3 kernel line instead of 6.12: its own cached test kernel,
# the same suite, benchmark and demo (README.md, "Kernel lines").
# KDIR=/path/to/kernel/build builds against another Rust-enabled 6.12.y or 7.3.y kernel build tree.

SHELL := /bin/bash
KDIR ?=
KERNEL ?= 6.12
export VIR_KERNEL := $(KERNEL)
CLIPPY ?= 1
QEMU ?= 0
DESTDIR ?=
INSTALL_MOD_PATH ?= $(DESTDIR)

# The cached test kernel, built on demand (build-kernel.sh prints its path).
kdir = $(if $(KDIR),$(KDIR),$$(bash scripts/build-kernel.sh))

.PHONY: all modules setup kernel guest check check-debug fuzz demo bench clean install uninstall \
	install-check

all: modules

setup:
	@bash scripts/setup.sh

kernel: setup
	@bash scripts/build-kernel.sh >/dev/null

modules:
	+@k=$(kdir) && echo "==> module: building against $$k" && \
	bash scripts/build-module.sh "$$k" $(CURDIR) -s CLIPPY=$(CLIPPY)

# Installs what `make` built (no build here, so `sudo make install` needs no toolchain).
install uninstall:
	@KDIR="$(KDIR)" INSTALL_MOD_PATH="$(INSTALL_MOD_PATH)" DESTDIR="$(DESTDIR)" \
	bash scripts/install.sh $@

install-check:
	@bash scripts/setup.sh dkms
	@bash scripts/install-check.sh $(KDIR)

guest: modules
	@bash scripts/build-guest.sh $(kdir)

check: setup
	@bash scripts/check.sh $(KDIR)

check-debug:
	@bash scripts/setup.sh debug
	@bash scripts/check-debug.sh

fuzz:
	@bash scripts/setup.sh debug
	@bash scripts/check-debug.sh fuzz

demo: setup
	@VIR_DEMO_QEMU=$(QEMU) bash scripts/demo.sh $(KDIR)

bench:
	@bash scripts/setup.sh bench
	@bash scripts/bench.sh $(KDIR)

clean:
	@k=$(kdir) && $(MAKE) -s -C "$$k" M=$(CURDIR) clean && \
	$(MAKE) -s -C "$$k" M=$(CURDIR)/tests/mdev clean
	rm -rf out .vir-kdir tests/mdev/.vir-kdir
