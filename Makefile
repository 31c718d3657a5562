# weft — see README.md. Every target works from a fresh clone; netns targets need root.
GO       ?= go
PKGS     := ./...
# the packages with network-namespace tests (test names contain "Netns")
NETNS_PKGS := ./agent ./tunnel ./bench/...
BIN      := bin/weft
# Count-based, not a duration: go1.26's fuzz coordinator can report a spurious "context
# deadline exceeded" when a -fuzztime duration ends (golang/go#75804, fixed in go1.27).
FUZZTIME ?= 20000x

.PHONY: all build test test-unit test-netns fuzz fuzz-short bench lint demo clean tidy-check

all: build

build:
	$(GO) build -o $(BIN) ./cmd/weft

# The full suite CI runs: lint, unit tests (race), short fuzz runs, network-namespace tests.
test: lint test-unit fuzz-short test-netns

# Unit and in-process tests; network-namespace tests skip under -short.
test-unit:
	$(GO) test -short -race -count=1 -timeout 10m $(PKGS)

# End-to-end tests with real TUN/TAP devices, veth pairs, iperf3 and dig (root).
test-netns: build
	WEFT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 20m -run 'Netns' $(NETNS_PKGS)

# A short run of every fuzz target (20000 inputs each, a few seconds).
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz-all

# Longer fuzzing: two million inputs per target (minutes each).
fuzz:
	FUZZTIME=2000000x ./.ci/fuzz-all

# Hot-path micro-benchmarks; `weft bench` (root) compares against the baselines.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint: tidy-check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tidy-check:
	@cp go.mod /tmp/weft.go.mod.bak; cp go.sum /tmp/weft.go.sum.bak; $(GO) mod tidy; \
	 if ! cmp -s go.mod /tmp/weft.go.mod.bak || ! cmp -s go.sum /tmp/weft.go.sum.bak; then \
	   echo "go mod tidy changed go.mod/go.sum: commit the tidy result"; git --no-pager diff go.mod; exit 1; fi

# Three hosts in network namespaces joined by gossip, traffic through the overlay, DNS (root).
demo: build
	./scripts/demo.sh $(CURDIR)/$(BIN)

clean:
	rm -rf bin
