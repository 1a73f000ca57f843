# poolmgr — build, test, demo, bench.
#
#   make build         bin/poolmgr (and bin/pgstorm when ./cmd/pgstorm exists)
#   make test          deps -> go vet -> unit tests (-race) -> fuzz (3s/target) -> build
#                      -> cluster -> e2e once per engine (fallback, uring when it exists)
#   make test-unit     go test -race on every package outside ./test/...
#   make test-e2e      build + cluster + POOLMGR_E2E=1 go test ./test/e2e/... per engine
#   make fuzz          every Fuzz target for $(FUZZTIME) each
#   make demo          cluster + build + poolmgr ./poolmgr.toml on :6432 + pgbench through it
#   make demo-stop     stop the demo poolmgr
#   make bench         bench/bench.sh: direct PostgreSQL vs poolmgr vs PgBouncer
#   make cluster-start | cluster-stop | cluster-status | cluster-destroy
#   make clean         remove bin/ (stops the demo first)
#
# Variables: FUZZTIME (3s), E2E_ENGINES (fallback [uring]), GOTESTFLAGS, UNIT_TIMEOUT, E2E_TIMEOUT.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go from /usr/local/go when it is not on PATH (fresh machines, CI).
ifeq ($(shell command -v go 2>/dev/null),)
export PATH := $(PATH):/usr/local/go/bin
endif

GO          ?= go
CLUSTER     := scripts/pgcluster
FUZZTIME    ?= 3s
GOTESTFLAGS ?=
UNIT_TIMEOUT ?= 15m
E2E_TIMEOUT  ?= 20m

HAVE_URING   := $(wildcard internal/engine/uringengine)
HAVE_PGSTORM := $(wildcard cmd/pgstorm)
E2E_ENGINES  ?= fallback $(if $(HAVE_URING),uring)

# Unit tests that want a live server use the test cluster's primary.
export POOLMGR_TEST_PG ?= 127.0.0.1:20000

.PHONY: all help build deps vet test test-unit test-e2e fuzz demo demo-stop bench \
	cluster-start cluster-stop cluster-status cluster-destroy clean

all: build

help:
	@sed -n '/^# poolmgr/,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

build:
	$(GO) build -o bin/poolmgr ./cmd/poolmgr
ifneq ($(HAVE_PGSTORM),)
	$(GO) build -o bin/pgstorm ./cmd/pgstorm
endif

# Debian packages (gcc for -race, PostgreSQL 15, pgbouncer) + Go modules, then the cluster
# (which also initialises it on first use).
deps:
	scripts/install-deps
	$(CLUSTER) start

vet:
	$(GO) vet ./...

# Each step runs in order and stops `make test` at the first failure.
test:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory vet
	$(MAKE) --no-print-directory test-unit
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory cluster-start
	$(MAKE) --no-print-directory test-e2e-only
	@echo "make test: all steps passed"

test-unit:
	mod=$$($(GO) list -m); all=$$($(GO) list ./...); pkgs=$$(grep -v "^$$mod/test/" <<<"$$all" || true); \
	[ -n "$$pkgs" ] || { echo "test-unit: no packages"; exit 0; }; \
	$(GO) test -race -count=1 -timeout $(UNIT_TIMEOUT) $(GOTESTFLAGS) $$pkgs

# Discover Fuzz targets per package (go test -list prints the names, then "ok <pkg>").
fuzz:
	@list=$$($(GO) test -list '^Fuzz' ./... 2>&1) || { echo "$$list"; exit 1; }; \
	targets=$$(awk '/^Fuzz/ { names[++n] = $$1; next } \
		/^ok / { for (i = 1; i <= n; i++) print $$2, names[i]; n = 0 }' <<<"$$list"); \
	if [ -z "$$targets" ]; then echo "fuzz: no Fuzz targets found"; exit 0; fi; \
	count=$$(wc -l <<<"$$targets"); echo "fuzz: $$count targets, $(FUZZTIME) each"; \
	while read -r pkg name; do \
		echo "fuzz: $$pkg $$name"; \
		rc=0; out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null 2>&1) || rc=$$?; \
		echo "$$out"; \
		if [ $$rc -ne 0 ] && grep -q 'context deadline exceeded' <<<"$$out" && ! grep -q 'Failing input written' <<<"$$out"; then \
			echo "fuzz: $$pkg $$name: Go's fuzz coordinator hit its own deadline (no failing input): retrying once"; \
			rc=0; $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$pkg" </dev/null || rc=$$?; \
		fi; \
		[ $$rc -eq 0 ] || { echo "fuzz: $$pkg $$name FAILED (reproducer under the package's testdata/fuzz/$$name)"; exit 1; }; \
	done <<<"$$targets"

# e2e against bin/poolmgr and the cluster, once per engine; POOLMGR_E2E=1 turns a missing
# cluster or tool into a failure instead of a skip.
test-e2e: build cluster-start
	$(MAKE) --no-print-directory test-e2e-only

.PHONY: test-e2e-only
test-e2e-only:
	@for eng in $(E2E_ENGINES); do \
		echo "=== e2e with POOLMGR_ENGINE=$$eng ==="; \
		POOLMGR_E2E=1 POOLMGR_ENGINE=$$eng POOLMGR_BIN="$(CURDIR)/bin/poolmgr" \
			POOLMGR_CLUSTER_DIR="$$($(CLUSTER) dir)" \
			$(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) $(GOTESTFLAGS) ./test/e2e/... </dev/null \
			|| { echo "e2e FAILED with POOLMGR_ENGINE=$$eng"; exit 1; }; \
	done

demo: cluster-start build
	bench/demo.sh start

demo-stop:
	bench/demo.sh stop

bench: cluster-start build
	bench/bench.sh

cluster-start:
	$(CLUSTER) start

cluster-stop:
	$(CLUSTER) stop

cluster-status:
	$(CLUSTER) status

cluster-destroy:
	$(CLUSTER) destroy

clean:
	-bench/demo.sh stop
	rm -rf bin/
