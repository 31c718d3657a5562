# weft — see README.md. Every target works from a fresh clone; netns targets need root.
GO       ?= go
PKGS     := ./...
# the packages with network-namespace tests (test names contain "Netns")
NETNS_PKGS := ./agent ./cni ./tunnel ./l2 ./tap ./bench/... ./internal/netlab ./udp
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

.PHONY: all build build-weft build-bench build-cni test test-unit test-norace test-netns fuzz fuzz-short bench scale scale-agents lint demo clean tidy-check docs install uninstall deb deps test-package

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

# The Debian packages the tests and the demo use (.ci/run-deps), installed when missing; as
# root only (otherwise it says the one command to run).
deps:
	@if [ "$$(id -u)" = 0 ]; then bash .ci/run-deps; \
	 else echo "deps: not root: if a tool is missing, run 'sudo bash .ci/run-deps' once"; fi

# The full suite CI runs: lint, unit tests (race), short fuzz runs, network-namespace tests,
# the Debian package (built, installed with dpkg -i, run, removed: root).
test: deps lint test-unit test-norace fuzz-short test-netns test-package

# Unit and in-process tests; network-namespace tests skip under -short.
test-unit:
	$(GO) test -short -race -count=1 -timeout 10m $(PKGS)

# What -race and -short skip: zero-allocation tests (race instrumentation allocates; every
# one has Alloc in its name), the slow cookie interop with wireguard-go, and the 20-node
# subnet convergence (10 nodes under -short) and the simulated 1,000-host allocator.
NORACE_PKGS := ./crypto ./tunnel ./l2 ./tap ./policy ./discovery/membership ./peers ./udp
test-norace:
	$(GO) test -count=1 -run 'Alloc|Interop|SubnetConverges|Subnet_Simulated' $(NORACE_PKGS)

# End-to-end tests with real TUN/TAP devices, veth pairs, iperf3 and dig (root). The JSON
# stream goes through testreport, which prints the usual output, names every skipped test
# and, with CI set (.ci/run sets it), fails the run on a skip: a missing prerequisite there
# is a check that silently did not happen. Screenshots of the console test go to artifacts/.
test-netns: build
	@mkdir -p artifacts
	@bash -o pipefail -c "WEFT_ARTIFACTS=$(CURDIR)/artifacts WEFT_BIN=$(CURDIR)/$(BIN) WEFT_BENCH_BIN=$(CURDIR)/$(BENCH_BIN) WEFT_CNI_BIN=$(CURDIR)/$(CNI_BIN) $(GO) test -json -count=1 -p 1 -timeout 20m -run 'Netns' $(NETNS_PKGS) 2>&1 | $(GO) run ./internal/tools/testreport"

# What -short skips in packaging/: the .deb installed into this machine's root and removed.
test-package:
	$(GO) test -count=1 -timeout 15m ./packaging/...

# A short run of every fuzz target (20000 inputs each, a few seconds).
fuzz-short:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz-all

# Longer fuzzing: two million inputs per target (minutes each).
fuzz:
	FUZZTIME=2000000x ./.ci/fuzz-all

# Hot-path micro-benchmarks; `weft bench` (bin/weft-bench, root) compares against the baselines.
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# The cost of a member (issue 26): the agent's member pipeline driven by 100, 1,000 and
# 10,000 synthetic members (SCALE_N=100,1000 for others), as a table. About a minute.
SCALE_N ?= 100,1000,10000
scale:
	@bash -o pipefail -c "WEFT_SCALE_N=$(SCALE_N) $(GO) test -run '^$$' -bench MemberPipeline -benchtime 1x -timeout 30m ./agent | $(GO) run ./internal/tools/benchtable"

# Real agents in network namespaces, all started together (root; make test runs 16):
# convergence, first ping to every host, idle CPU and memory, failure detection.
# SCALE_AGENTS=100 by default (a few minutes); SCALE_PROFILE=DIR saves one agent's profiles.
SCALE_AGENTS ?= 100
scale-agents: build
	@bash -o pipefail -c "WEFT_SCALE_AGENTS=$(SCALE_AGENTS) WEFT_SCALE_PROFILE=$(SCALE_PROFILE) WEFT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -timeout 30m -run 'TestNetns_ScaleAgents' ./agent | grep -E '^ *[|]|^(---|FAIL|ok|PASS)|scale_netns_test'"

lint: tidy-check
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo "lint: no Go files listed by git"; exit 1; }; \
	 out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# go.mod and go.sum must be what `go mod tidy` makes of them (checked without touching them).
tidy-check:
	@$(GO) mod tidy -diff || { echo "go mod tidy would change go.mod/go.sum (above): run it and commit"; exit 1; }

# Three hosts in network namespaces joined by gossip, traffic through the overlay, DNS (root).
demo: deps build
	./scripts/demo.sh $(CURDIR)/$(BIN)

# Man pages and shell completions, generated from the commands (weft gen-docs).
DOCS     := bin/docs
docs: build-weft
	$(BIN) gen-docs --man $(DOCS)/man --completion $(DOCS)/completion

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, its man pages and completions, the
# systemd unit (pointed at PREFIX) and, where none exists, /etc/weft/weft.yaml.
PREFIX   ?= /usr/local
install: docs
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/weft
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0644 $(DOCS)/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -D -m 0644 $(DOCS)/completion/weft.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/weft
	install -D -m 0644 $(DOCS)/completion/_weft $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_weft
	install -D -m 0644 $(DOCS)/completion/weft.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/weft.fish
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/bin/weft|$(PREFIX)/bin/weft|g' packaging/weft.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/weft.service
	[ -e $(DESTDIR)/etc/weft/weft.yaml ] || install -D -m 0644 packaging/weft.yaml $(DESTDIR)/etc/weft/weft.yaml

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/weft $(DESTDIR)$(PREFIX)/share/man/man1/weft.1 $(DESTDIR)$(PREFIX)/share/man/man1/weft-*.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/weft $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_weft \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/weft.fish $(DESTDIR)$(PREFIX)/lib/systemd/system/weft.service

# dist/weft_VERSION_ARCH.deb: binary, unit, configuration, man pages, completions (nfpm as a
# Go module: packaging/mkdeb).
deb: docs
	$(GO) run ./packaging/mkdeb -bin $(BIN) -docs $(DOCS) -version '$(VERSION)' -out dist

clean:
	rm -rf bin dist
