# ShardKV — the two entry points are `make run` and `make test`; each installs what a fresh
# Debian machine lacks first.
.PHONY: deps build test lint format run proto bench-raft clean

deps:
	@scripts/install-deps.sh

build: deps
	swift build

# Zero warnings, lint clean, every test, a short fuzzing slice of the RESP parser, and a short
# nemesis slice (fixed seeds of both shapes, and proof that a broken read path is caught).
test: deps
	scripts/check-build.sh
	scripts/lint.sh
	swift test --skip-build
	scripts/fuzz.sh RESPFuzz 30
	scripts/nemesis-ci.sh

# The nemesis slice of `make test` alone (needs root: network namespaces; RELIABILITY.md).
.PHONY: nemesis-ci
nemesis-ci: deps
	scripts/nemesis-ci.sh

# A nemesis campaign: make nemesis [RUNS=50] [RUN_SECONDS=120] [SHAPE=both] [SEED=N];
# results and how to read them in RELIABILITY.md.
RUNS ?= 50
RUN_SECONDS ?= 120
SHAPE ?= both
SEED ?= $(shell date +%s)
.PHONY: nemesis
nemesis: deps
	scripts/nemesis.sh --runs $(RUNS) --seconds $(RUN_SECONDS) --shape $(SHAPE) --seed $(SEED) --dir nemesis-runs

# A longer fuzzing campaign: make fuzz SECONDS=600
SECONDS ?= 300
.PHONY: fuzz
fuzz: deps
	scripts/fuzz.sh RESPFuzz $(SECONDS)

lint:
	scripts/lint.sh

format:
	swift format -i -r Package.swift $$(git ls-files -- "Sources/*.swift" "Tests/*.swift" | grep -v /Generated/)

# A whole sharded cluster from a cluster file: make run [CONFIG=configs/tiny.toml]
CONFIG ?= configs/local.toml
run: deps
	scripts/run-local.sh $(CONFIG)

proto:
	scripts/gen-proto.sh

clean:
	rm -rf .build

# ShardKV's three-node group against three etcd members on loopback (installs etcd if missing);
# figures in BENCHMARKS.md ("KV").
.PHONY: bench-kv
bench-kv: deps
	scripts/bench-kv.sh

# A 200 MB shard moved between two three-node groups on loopback, with the latency of the other
# shards' gets and puts during the move; figures in BENCHMARKS.md ("Shard migration (issue 8)").
.PHONY: bench-migration
bench-migration: deps
	scripts/bench-migration.sh

# The router's Redis protocol against a local redis-server (redis-benchmark), and kvbench through
# the router against straight to the groups, on three groups of three; figures in BENCHMARKS.md
# ("Router and Redis protocol (issue 9)").
.PHONY: bench-router
bench-router: deps
	scripts/bench-router.sh
