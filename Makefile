# weft — see README.md. Every target works from a fresh clone; netns targets need root.
GO       ?= go
PKGS     := ./...
# the packages with network-namespace tests (test names contain "Netns")
NETNS_PKGS := ./agent ./cni ./tunnel ./l2 ./tap ./bench/... ./internal/netlab
BIN      := bin/weft
BENCH_BIN := bin/weft-bench
CNI_BIN  := bin/weft-cni
# Static, reproducible binaries stamped with their version (internal/version): git describe
# and the commit; without git both stay empty and the binary falls back to its build info.
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -s -w -X github.com/weftnet/weft/internal/version.version=$(VERSION) -X github.com/weftnet/weft/internal/version.commit=$(COMMIT)
GOBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
# Count-based, not a duration: go1.26's fuzz coordinator can report a spurious "context
# deadline exceeded" when a -fuzztime duration ends (golang/go#75804, fixed in go1.27).
FUZZTIME ?= 20000x

.PHONY: all build build-weft build-bench build-cni test test-unit test-norace test-netns fuzz fuzz-short bench lint demo clean tidy-check

all: build

# bin/weft (the daemon and CLI), bin/weft-bench (the benchmark, which `weft bench` runs) and
# bin/weft-cni (the CNI plugin, which `weft cni install` installs).
build: build-weft build-bench build-cni

build-weft:
	$(GOBUILD) -o $(BIN) ./cmd/weft

build-bench:
	$(GOBUILD) -o $(BENCH_BIN) ./cmd/weft-bench

build-cni:
	$(GOBUILD) -o $(CNI_BIN) ./cmd/weft-cni

# The full suite CI runs: lint, unit tests (race), short fuzz runs, network-namespace tests.
test: lint test-unit test-norace fuzz-short test-netns

# Unit and in-process tests; network-namespace tests skip under -short.
test-unit:
	$(GO) test -short -race -count=1 -timeout 10m $(PKGS)

# What -race and -short skip: zero-allocation tests (race instrumentation allocates; every
# one has Alloc in its name), the slow cookie interop with wireguard-go, and the 20-node
# subnet convergence (10 nodes under -short).
NORACE_PKGS := ./crypto ./tunnel ./l2 ./tap ./policy ./membership
test-norace:
	$(GO) test -count=1 -run 'Alloc|Interop|SubnetConverges' $(NORACE_PKGS)

# End-to-end tests with real TUN/TAP devices, veth pairs, iperf3 and dig (root). The JSON
# stream goes through testreport, which prints the usual output, names every skipped test
# and, with CI set (.ci/run sets it), fails the run on a skip: a missing prerequisite there
# is a check that silently did not happen.
test-netns: build
	@bash -o pipefail -c "WEFT_BIN=$(CURDIR)/$(BIN) WEFT_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) WEFT_CNI_BIN=$(CURDIR)/$(CNI_BIN) $(GO) test -json -count=1 -p 1 -timeout 20m -run 'Netns' $(NETNS_PKGS) 2>&1 | $(GO) run ./internal/tools/testreport"

# A short run of every fuzz target (20000 inputs each, a few seconds).
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz-all

# Longer fuzzing: two million inputs per target (minutes each).
fuzz:
	FUZZTIME=2000000x ./.ci/fuzz-all

# Hot-path micro-benchmarks; `weft bench` (bin/weft-bench, root) compares against the baselines.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint: tidy-check
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo "lint: no Go files listed by git"; exit 1; }; \
	 out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# go.mod and go.sum must be what `go mod tidy` makes of them (checked without touching them).
tidy-check:
	@$(GO) mod tidy -diff || { echo "go mod tidy would change go.mod/go.sum (above): run it and commit"; exit 1; }

# Three hosts in network namespaces joined by gossip, traffic through the overlay, DNS (root).
demo: build
	./scripts/demo.sh $(CURDIR)/$(BIN)

clean:
	rm -rf bin
