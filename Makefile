# das-archiver — every task the project has, one target each. `make help` lists them.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
CARGO   ?= cargo
# The official Python ESDK (test oracle and benchmark baseline) and, later, moto's server.
ORACLE_REQUIREMENTS := tests/oracle/requirements.txt

.PHONY: help run demo events test lint bench size-arm64 venv fuzz-check fuzz build clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run: venv build ## The archiver on a local AWS (moto): simulated DAS stream -> Lambda -> S3
	scripts/run-local.sh

demo: build ## The decoding core alone, offline: encode records for all four engines and decode them back
	./target/release/das demo

test: venv ## Unit, integration, official-vector, Python cross-check and property tests
	DAS_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --all-features

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings

bench: venv build ## Benchmarks vs the Python reference path, batch, cold start, KMS; writes bench/results.md
	bench/run.sh

size-arm64: venv ## Cross-build the arm64 Lambda binary (cargo-lambda + zig), for `make bench` to report its size
	rustup target add aarch64-unknown-linux-gnu
	PATH=$(abspath $(VENV))/bin:$$PATH $(CARGO) lambda build --release --arm64 --bin das-archiver-lambda --features lambda

# Sample Lambda events for `sam local invoke` / `cargo lambda invoke`. By default they are encrypted
# with the public test wrapping key below (decodable by the tests and `das decode`, not by KMS). With
# KMS_KEY_ID (and RESOURCE_ID, and AWS_ENDPOINT_URL for a local AWS) they carry real KMS data keys.
TEST_WRAPPING_KEY := 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
RESOURCE_ID ?= cluster-EXAMPLEAURORAPG000000001
MYSQL_RESOURCE_ID ?= cluster-EXAMPLEAURORAMY000000001
EVENT_KEY = $(if $(KMS_KEY_ID),--kms-key-id $(KMS_KEY_ID),--wrapping-key $(TEST_WRAPPING_KEY))
events: build ## Regenerate events/*.json (optionally KMS_KEY_ID=… RESOURCE_ID=… MYSQL_RESOURCE_ID=…)
	mkdir -p events
	./target/release/das simulate $(EVENT_KEY) --resource-id $(RESOURCE_ID) --engine aurora-postgresql --records 20 --events-per-record 5 --seed 1 --to-event-file events/aurora-postgresql.json
	./target/release/das simulate $(EVENT_KEY) --resource-id $(MYSQL_RESOURCE_ID) --engine aurora-mysql --records 10 --events-per-record 6 --seed 2 --to-event-file events/aurora-mysql.json
	./target/release/das simulate $(EVENT_KEY) --resource-id $(RESOURCE_ID) --records 5 --heartbeat-interval 1 --seed 3 --to-event-file events/heartbeats-only.json
	./target/release/das simulate $(EVENT_KEY) --resource-id $(RESOURCE_ID) --records 6 --events-per-record 3 --corrupt-record 2 --seed 4 --to-event-file events/one-corrupted-record.json

fuzz-check: ## Check that the fuzz targets build (stable toolchain, no sanitizer)
	$(CARGO) build --manifest-path fuzz/Cargo.toml --bins

fuzz: ## Run the ESDK fuzz target for 10 minutes (needs nightly and cargo-fuzz)
	cd fuzz && $(CARGO) +nightly fuzz run esdk_decrypt -- -max_total_time=600

build: ## Release build of the binaries (`das`, `das-archiver-lambda`)
	$(CARGO) build --release --bins

venv: $(VENV)/.installed ## Project-local Python virtualenv with the test oracles

$(VENV)/.installed: $(ORACLE_REQUIREMENTS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(ORACLE_REQUIREMENTS)
	touch $@

clean: ## Remove build outputs and the virtualenv
	$(CARGO) clean
	rm -rf $(VENV) fuzz/target
