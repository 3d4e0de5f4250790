# Every user-facing command (CONTRACTS.md section 1). Run from the repository root.
#   make run-smp-process-scale   the multi-process scaling benchmark
#   make run-ring-scale          the kernel-path benchmark (ring, timer, park ops/s), both modes
#   make test                    host unit tests, then every smoke manifest
#   make soak                    every smoke manifest SOAK_RUNS times per CPU count (TCG)
#   BOOT=auto|iso|pvh            GRUB ISO on -machine pc, or PVH entry on -machine microvm
SHELL := /bin/bash
.DEFAULT_GOAL := iso

MANIFEST ?= manifests/default.toml
SMP ?= 2
ACCEL ?= auto
# auto|iso|pvh: iso = GRUB ISO on -machine pc; pvh = the kernel ELF's PVH
# entry on -machine microvm; auto = iso, except pvh under KVM on PVM (and
# both for make test and make soak). CONTRACTS.md section 1.
BOOT ?= auto
# Overrides QEMU's -cpu (default: host,-arch-capabilities under KVM, max under TCG).
CPU_MODEL ?=
MEM ?= 512M
RUNS ?= 5
REPEAT ?= 3
SMP_LIST ?= 1 2 4
SMOKE_SMP ?= 1 2 4
# Extra CPU counts for single smokes (the SMP bring-up smoke also runs at 8).
SMOKE_EXTRA ?= smoke-smp=8;smoke-apic-x2apic=8;smoke-apic-xapic=8
TIMEOUT ?=
# make soak: boots per manifest and CPU count, the CPU counts, the manifests.
SOAK_RUNS ?= 20
SOAK_SMP ?= 1 2 4 8
MANIFESTS ?= $(wildcard manifests/smoke-*.toml)
# make soak runs under TCG unless ACCEL was given (command line or environment).
SOAK_ACCEL := $(if $(filter command line environment environment override,$(origin ACCEL)),$(ACCEL),tcg)

ROOT := $(CURDIR)
BUILD := $(ROOT)/build
# Kernel cargo features, space- or comma-separated (lockstat: LOCKSTAT
# lines, docs/architecture/locks.md). Each feature set builds in its own
# cargo target dir, and build/kernel is copied afresh by every build, so a
# kernel built with one set never ends up in an image built for another.
KERNEL_FEATURES ?=
comma := ,
KERNEL_FEATURES_TAG := $(subst $(eval) ,-,$(strip $(subst $(comma), ,$(KERNEL_FEATURES))))
KERNEL_TARGET_DIR := $(ROOT)/target/kernel$(if $(KERNEL_FEATURES_TAG),-$(KERNEL_FEATURES_TAG),)
KERNEL_ELF := $(KERNEL_TARGET_DIR)/x86_64-unknown-none/release/kernel
MKIMAGE := $(ROOT)/target/release/mkimage
HARNESS := $(ROOT)/target/release/harness
KERNEL_RUSTFLAGS := -C code-model=kernel -C relocation-model=static
# One image folder per manifest (absolute paths work too).
IMAGE_DIR := $(BUILD)/images/$(basename $(notdir $(MANIFEST)))
TIMEOUT_ARG := $(if $(TIMEOUT),--timeout $(TIMEOUT),)
BOOT_ARGS := --boot "$(BOOT)" --cpu "$(CPU_MODEL)" --mem $(MEM) $(TIMEOUT_ARG)

.PHONY: iso run test debug clean deps prereqs kernel programs tools \
        run-smp-process-scale run-thread-scale run-ring-scale fmt clippy

deps:
	@scripts/install-deps.sh

tools: deps
	cargo build --release -q -p mkimage -p harness

kernel: deps
	cd kernel && CARGO_TARGET_DIR=$(KERNEL_TARGET_DIR) RUSTFLAGS="$(KERNEL_RUSTFLAGS)" \
	    cargo build --release -q --target x86_64-unknown-none --features "$(KERNEL_FEATURES)"
	@mkdir -p $(BUILD)
	strip -o $(BUILD)/kernel $(KERNEL_ELF)

programs: deps
	scripts/build-programs.sh $(BUILD)/programs

prereqs: tools kernel programs

iso: prereqs
	@scripts/mkiso.sh $(MANIFEST) $(IMAGE_DIR)

# `make run` exits 0 (PASS), 1 (FAIL) or 2 (panic, hang, no verdict). GNU make
# reports any failed recipe as 2 and can exit 1 only in question mode (-q), so
# the boot happens while this file is read (scripts/make-run.sh streams the
# serial console to stdout) and the verdict picks the ending below.
ifneq ($(filter run,$(MAKECMDGOALS)),)
RUN_STATUS := $(shell KERNEL_FEATURES="$(KERNEL_FEATURES)" scripts/make-run.sh "$$PPID" "$(MANIFEST)" "$(IMAGE_DIR)" "$(SMP)" \
                  "$(ACCEL)" "$(MEM)" "$(TIMEOUT)" "$(BOOT)" "$(CPU_MODEL)"; echo $$?)
ifeq ($(RUN_STATUS),0)
run: ; @:
else ifeq ($(RUN_STATUS),1)
MAKEFLAGS += -q
run: ; @:
else
run: ; @exit 2
endif
endif

test: deps
	cargo test -q
	$(MAKE) --no-print-directory prereqs
	$(HARNESS) test --smp-list "$(SMOKE_SMP)" --extra "$(SMOKE_EXTRA)" --accel $(ACCEL) $(BOOT_ARGS) \
	    --corrupt-initrd manifests/smoke-boot.toml --cpu-hole manifests/smoke-sched-spread.toml \
	    --cpu-fallback manifests/smoke-apic-x2apic.toml manifests/smoke-*.toml

# Not part of `make test`: it takes long (scripts/harness/src/soak.rs).
.PHONY: soak
soak: prereqs
	$(HARNESS) soak --smp-list "$(SOAK_SMP)" --runs $(SOAK_RUNS) --accel $(SOAK_ACCEL) $(BOOT_ARGS) \
	    $(MANIFESTS)

run-smp-process-scale: prereqs
	$(HARNESS) scale --manifest $(if $(filter manifests/default.toml,$(MANIFEST)),manifests/smp-process-scale.toml,$(MANIFEST)) \
	    --smp-list "$(SMP_LIST)" --runs $(RUNS) --repeat $(REPEAT) --accel $(ACCEL) $(BOOT_ARGS)

run-thread-scale: prereqs
	$(HARNESS) scale --manifest $(if $(filter manifests/default.toml,$(MANIFEST)),manifests/thread-scale.toml,$(MANIFEST)) \
	    --smp-list "$(SMP_LIST)" --runs $(RUNS) --repeat $(REPEAT) --accel $(ACCEL) $(BOOT_ARGS)

# The kernel-path benchmark in both modes: one harness run, one results
# folder and one RESULT line per manifest (ring-scale: process mode,
# ring-scale-thread: thread mode); exit 0 only if both PASS. MANIFEST=
# runs just that manifest. The kernel is built with lock statistics, so
# the guest prints LOCKSTAT lines (docs/benchmarks.md, "Kernel paths").
RING_SCALE_MANIFESTS ?= manifests/ring-scale.toml manifests/ring-scale-thread.toml
run-ring-scale: KERNEL_FEATURES = lockstat
run-ring-scale: prereqs
	@status=0; \
	for m in $(if $(filter manifests/default.toml,$(MANIFEST)),$(RING_SCALE_MANIFESTS),$(MANIFEST)); do \
	    echo "$(HARNESS) scale --manifest $$m"; \
	    $(HARNESS) scale --manifest $$m --smp-list "$(SMP_LIST)" --runs $(RUNS) --repeat $(REPEAT) \
	        --accel $(ACCEL) $(BOOT_ARGS) || status=1; \
	done; \
	exit $$status

# TCG; BOOT picks the image (auto: the ISO). The harness prints the QEMU line.
debug: prereqs
	@echo "QEMU waits for gdb on :1234. Attach with:"
	@echo "  gdb $(KERNEL_ELF) -ex 'target remote :1234'"
	$(HARNESS) debug --manifest $(MANIFEST) --image-dir $(IMAGE_DIR) --smp $(SMP) $(BOOT_ARGS)

fmt:
	cargo fmt --all

clippy:
	cargo clippy -q --all-targets -- -D warnings
	cd kernel && CARGO_TARGET_DIR=$(KERNEL_TARGET_DIR) RUSTFLAGS="$(KERNEL_RUSTFLAGS)" \
	    cargo clippy -q --release --target x86_64-unknown-none -- -D warnings
	CARGO_TARGET_DIR=$(ROOT)/target/programs-clippy cargo clippy -q --release \
	    --target x86_64-unknown-none -p rt -p primes -p smoke -p ringbench -- -D warnings

clean:
	cargo clean
	rm -rf $(BUILD)
