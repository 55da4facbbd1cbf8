# FRE: fre-runc (an OCI runtime) and containerd-shim-fre-v1.
#
#   make            build bin/fre-runc (and the shim once cmd/containerd-shim-fre-v1 has code)
#   make test       build, build containerd v2.4.2, go vet, go test ./... (as root)
#   make test-v2    the tests inside a cgroup v2 guest (qemu, Debian's kernel)
#   make bench      Go benchmarks + bench/cmd/frebench (fre-runc vs runc vs crun), results/,
#                   then the same in the cgroup v2 guest (make bench-v2), results/v2/,
#                   and the systemd driver in the systemd guest (make bench-systemd), results/systemd/
#   make conformance  OCI runtime-tools v0.9.0 validation suite against runc and fre-runc
#   make demo       run a busybox bundle and a function built from a template (fre build) with fre-runc and through containerd, with their times
#   make soak       10,000 fre-runc lifecycles + 2,000 through the shim, counting leaks; results/soak.csv, PNGs
#   make fuzz       every Go fuzz target for FUZZTIME each (60s; CI runs 3000 executions of each)
#   make deps       install missing Debian packages (used by .ci/run)
#   make install    install binaries under $(PREFIX)/bin; make clean

SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

GO      ?= go
PREFIX  ?= /usr/local
BIN_DIR := $(CURDIR)/bin
OUT_DIR := $(CURDIR)/_output
RESULTS := $(CURDIR)/results

CONTAINERD_VERSION := v2.4.2
CONTAINERD_BIN_DIR := $(BIN_DIR)/containerd-$(CONTAINERD_VERSION)
CONTAINERD_BINS    := $(addprefix $(CONTAINERD_BIN_DIR)/,containerd ctr containerd-shim-runc-v2)

SHIM_DIR      := cmd/containerd-shim-fre-v1
SHIM_SOURCES  := $(wildcard $(SHIM_DIR)/*.go)

# The whole CI run must stay well under 15 minutes; go test gets this much.
TEST_TIMEOUT ?= 10m
# Extra flags for go test, e.g. TESTFLAGS='-run TestX -v'.
TESTFLAGS ?=
# Sequential-run iterations and concurrent-start size for frebench.
BENCH_N           ?= 100
BENCH_CONCURRENCY ?= 256
BENCH_TIME        ?= 1x
# Extra frebench flags, e.g. BENCH_FLAGS='-fre-cgroup-pool on -fre-config my.json'.
BENCH_FLAGS       ?=
# make bench also runs bench-v2 (the cgroup v2 guest); BENCH_V2=0 skips it.
BENCH_V2 ?= 1
# ... and bench-systemd (the systemd guest's driver); BENCH_SYSTEMD=0 skips it.
BENCH_SYSTEMD ?= 1
# Packages whose Go benchmarks make bench runs (missing ones are skipped).
BENCH_PKGS ?= ./cgpool/ ./netns/ ./rootfs/ ./runtime/

# Debian packages the tests, benchmarks and conformance suite need.
DEB_PACKAGES := runc crun busybox-static musl-tools iproute2 containernetworking-plugins \
	util-linux tar gzip git ca-certificates procps bc qemu-system-x86 cpio e2fsprogs gcc debootstrap \
	python3-pip

# What the integration tests read to find the binaries.
export FRE_BIN_DIR        := $(BIN_DIR)
export CONTAINERD_BIN_DIR

.DEFAULT_GOAL := build
.PHONY: build build-soft containerd deps fuzz load soak test test-race test-v2 test-systemd vet bench bench-go bench-run bench-v2 bench-systemd bench-plot conformance demo install clean

# fre-runc and the shim link statically against musl when musl-gcc is
# there (make deps installs it). A glibc process spends about 0.5 ms here
# before main: its CPU-feature probes are some 80 CPUID instructions, each
# a VM exit of 6.6 µs on this VM, and the dynamic loader adds its
# relocations; musl's start-up makes no such probe. That is 0.8 ms of every
# `fre-runc run` (6.9 → 6.1 ms). musl's headers lack the kernel's, so
# linux/, asm/ and asm-generic/ come from the system's, after musl's own.
# Without musl-gcc: the usual glibc build.
# runc's "commit:" line of --version.
COMMIT := $(shell git -C $(CURDIR) describe --always --dirty 2>/dev/null || echo unknown)
COMMIT_LDFLAGS := -X main.Commit=$(COMMIT)
MUSL_GCC := $(shell command -v musl-gcc 2>/dev/null)
ifneq ($(MUSL_GCC),)
MUSL_INC    := $(OUT_DIR)/musl-include
BUILD_CFLAGS := -O2 -idirafter $(MUSL_INC)
BUILD_LDFLAGS := -linkmode external -extldflags -static $(COMMIT_LDFLAGS)
BUILD_ENV   := CC=$(MUSL_GCC) CGO_CFLAGS="$(BUILD_CFLAGS)"
BUILD_FLAGS := -ldflags '$(BUILD_LDFLAGS)'
# The tests build fre-runc and the shim the same way (testutil.GoBuild).
export FRE_BUILD_CC         := $(MUSL_GCC)
export FRE_BUILD_CGO_CFLAGS := $(BUILD_CFLAGS)
export FRE_BUILD_LDFLAGS    := $(BUILD_LDFLAGS)
else
BUILD_FLAGS := -ldflags '$(COMMIT_LDFLAGS)'
endif

build: $(MUSL_INC)
	@mkdir -p $(BIN_DIR)
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -o $(BIN_DIR)/fre-runc ./cmd/fre-runc
ifneq ($(SHIM_SOURCES),)
	$(BUILD_ENV) $(GO) build $(BUILD_FLAGS) -o $(BIN_DIR)/containerd-shim-fre-v1 ./$(SHIM_DIR)
else
	@echo "note: $(SHIM_DIR) has no Go files yet; shim not built"
endif
	CGO_ENABLED=0 $(GO) build -o $(BIN_DIR)/fre ./cmd/fre

# build-soft is for bench, conformance and demo: they compare against runc
# and crun too, so a fre-runc that does not build is reported and skipped
# rather than stopping them.
build-soft:
	@$(MAKE) --no-print-directory build || { \
		echo "WARNING: 'make build' failed; fre-runc results will be skipped"; \
		rm -f $(BIN_DIR)/fre-runc; }

$(MUSL_INC):
	@mkdir -p $@
	@multiarch=$$(gcc -print-multiarch); \
	ln -sfn /usr/include/linux $@/linux; \
	ln -sfn /usr/include/asm-generic $@/asm-generic; \
	ln -sfn /usr/include/$$multiarch/asm $@/asm

# containerd, ctr and the runc shim at the version the shim is built
# against, for the integration tests. Cached: skipped when present.
containerd: $(CONTAINERD_BINS)

$(CONTAINERD_BINS):
	@mkdir -p $(CONTAINERD_BIN_DIR)
	GOBIN=$(CONTAINERD_BIN_DIR) $(GO) install \
		github.com/containerd/containerd/v2/cmd/containerd@$(CONTAINERD_VERSION) \
		github.com/containerd/containerd/v2/cmd/ctr@$(CONTAINERD_VERSION) \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$(CONTAINERD_VERSION)

deps:
	@hack/deps.sh $(DEB_PACKAGES)

vet:
	$(GO) vet ./...

test: build containerd vet
	@if [ "$$(id -u)" != 0 ]; then echo "warning: not root; root-needing tests will skip"; fi
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./...
	@$(MAKE) --no-print-directory test-race

# The packages whose goroutines share containers (the runtime's async
# create, the shim's service) under the race detector, and the integration
# tests against a shim built with it (its reports fail the run).
test-race:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./runtime/ ./shim/...
	FRE_TEST_SHIM_RACE=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./integration/
	# The engine runs inside the test binary: its tests under -race.
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -run 'TestEngine' ./integration/

# The soak (integration/soak_test.go; make test runs a short form): mixed
# fre-runc lifecycles and containers through the shim, every leak counted
# at ten checkpoints, then the figures.
SOAK_CYCLES      ?= 10000
SOAK_SHIM_CYCLES ?= 2000
soak: build containerd
	set -o pipefail; FRE_SOAK_CYCLES=$(SOAK_CYCLES) FRE_SOAK_SHIM_CYCLES=$(SOAK_SHIM_CYCLES) FRE_SOAK_RESULTS=$(RESULTS)/soak.csv \
		$(GO) test -count=1 -timeout 90m -run '^TestSoak$$' -v ./integration/ | grep -v '^=== '
	$(GO) run ./bench/cmd/freplot -results $(RESULTS) soak

# The load run (integration/load_test.go; make test runs 60 of each):
# LOAD_CONTAINERS at once through one grouped shim and through CRI pods of
# LOAD_PER_POD, containerd restarted under them, every exit checked.
LOAD_CONTAINERS ?= 1000
LOAD_PER_POD    ?= 20
load: build containerd
	rm -f $(RESULTS)/load.txt
	set -o pipefail; FRE_LOAD_CONTAINERS=$(LOAD_CONTAINERS) FRE_LOAD_PER_POD=$(LOAD_PER_POD) FRE_LOAD_RESULTS=$(RESULTS)/load.txt \
		$(GO) test -count=1 -timeout 90m -run '^TestLoad' -v ./integration/ | grep -v '^=== '

# Fuzzing: each target in turn for FUZZTIME, a duration or a count of
# executions (hack/fuzz.sh: crashers, Go 1.26's deadline race).
FUZZTIME ?= 60s
FUZZ_TARGETS := ./runtime:FuzzConvert ./runtime:FuzzInstanceAnnotations ./rootfs:FuzzImportLayer \
	./seccomp:FuzzCompile ./shim/task:FuzzOptions ./fret:FuzzParse \
	./internal/quickjson:FuzzDecode ./internal/quickjson:FuzzMarshal
fuzz:
	@GO=$(GO) hack/fuzz.sh $(FUZZTIME) $(FUZZ_TARGETS)

# The tests again on a real cgroup v2 kernel: Debian's kernel in qemu
# (KVM when it works, else emulation), cgroup v2 only (hack/test-v2.sh,
# hack/vm/vm.sh). The kernel is cached under /var/cache/fre-vm.
test-v2: build containerd
	@hack/test-v2.sh

# A smoke test of the systemd guest (systemd as PID 1, D-Bus; cgroup v2):
# a transient scope over D-Bus, runc (also --systemd-cgroup) and fre-runc
# there, then the systemd driver's tests, CRI's with containerd
# (hack/test-systemd.sh, hack/vm/systemd.sh). Its Debian tree is built
# once with debootstrap and cached under /var/cache/fre-vm.
test-systemd: build containerd
	@hack/test-systemd.sh

# A failing Go benchmark is reported but does not stop the runtime
# comparison; make bench still exits non-zero.
bench: build-soft
	@start=$$(date +%s); status=0; \
	$(MAKE) --no-print-directory bench-go || { echo "WARNING: Go benchmarks failed (see above)"; status=1; }; \
	$(MAKE) --no-print-directory bench-run || status=1; \
	if [ "$(BENCH_V2)" = 1 ]; then $(MAKE) --no-print-directory bench-v2 || status=1; fi; \
	if [ "$(BENCH_SYSTEMD)" = 1 ]; then $(MAKE) --no-print-directory bench-systemd || status=1; fi; \
	echo "make bench: $$(( $$(date +%s) - start )) s; figures and tables in $(RESULTS) (see its README.md)"; \
	exit $$status

# Go benchmarks of the packages that have any (the rest are skipped), then
# the research's figures 1 and 2 from their output: CSV, PNG and ratios.
# Whatever the benchmarks produced is plotted even when one of them fails.
bench-go:
	@mkdir -p $(RESULTS) $(OUT_DIR)
	@status=0; \
	hack/bench-go.sh $(BENCH_TIME) $(RESULTS)/go-bench.txt $(BENCH_PKGS) || status=1; \
	{ $(GO) build -o $(OUT_DIR)/freplot ./bench/cmd/freplot && \
	  $(OUT_DIR)/freplot -results $(RESULTS) figures; } || status=1; \
	exit $$status

# fre-runc (cgroup pool on and off) against runc and crun, then the bar
# charts of the sequential and concurrent runs.
bench-run:
	@mkdir -p $(RESULTS) $(OUT_DIR)
	$(GO) build -o $(OUT_DIR)/frebench ./bench/cmd/frebench
	$(GO) build -o $(OUT_DIR)/freplot ./bench/cmd/freplot
	@status=0; \
	$(OUT_DIR)/frebench -bin-dir $(BIN_DIR) -results $(RESULTS) \
		-n $(BENCH_N) -concurrency $(BENCH_CONCURRENCY) $(BENCH_FLAGS) all || status=1; \
	$(OUT_DIR)/freplot -results $(RESULTS) runs || status=1; \
	exit $$status

# The start path on cgroup v2: fre-runc, runc and crun (its own cgroupfs
# manager) side by side inside the v2 guest of make test-v2, the Go
# benchmarks of cgpool and runtime there too; results/v2/.
bench-v2: build
	@BENCH_N=$(BENCH_N) BENCH_CONCURRENCY=$(BENCH_CONCURRENCY) hack/bench-v2.sh

# The systemd cgroup driver in the systemd guest: fre-runc, runc and crun
# each making a scope per container over D-Bus; results/systemd/.
bench-systemd: build
	@BENCH_N=$(BENCH_N) hack/bench-systemd.sh

# Redraws every figure from what is already under results/ (no measuring).
bench-plot:
	@mkdir -p $(OUT_DIR)
	$(GO) build -o $(OUT_DIR)/freplot ./bench/cmd/freplot
	$(OUT_DIR)/freplot -results $(RESULTS) all

conformance: build-soft
	@hack/conformance.sh

demo: build-soft
	@hack/demo.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN_DIR)/fre-runc $(DESTDIR)$(PREFIX)/bin/fre-runc
	if [ -x $(BIN_DIR)/containerd-shim-fre-v1 ]; then \
		install -m 0755 $(BIN_DIR)/containerd-shim-fre-v1 $(DESTDIR)$(PREFIX)/bin/; fi

clean:
	rm -rf $(BIN_DIR) $(OUT_DIR)
	$(GO) clean -testcache

# fre-dmz (runtime/spawn/dmz): the static program between the child's
# set-up and the container's program, embedded in fre-runc. The binary is
# committed so `go build` needs no C toolchain for it; rebuild after
# changing dmz.c.
DMZ := runtime/spawn/dmz/fre-dmz-amd64
.PHONY: dmz
dmz: $(DMZ)
$(DMZ): runtime/spawn/dmz/dmz.c
	gcc -static -nostdlib -nostartfiles -Os -fno-stack-protector \
		-fno-asynchronous-unwind-tables -fno-builtin -ffreestanding \
		-Wl,--gc-sections -Wl,--build-id=none -s -o $@ $<
