# das-archiver — every task the project has, one target each. `make help` lists them.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
CARGO   ?= cargo
# The official Python ESDK (test oracle and benchmark baseline) and, later, moto's server.
ORACLE_REQUIREMENTS := tests/oracle/requirements.txt

.PHONY: help run demo test lint bench venv fuzz-check fuzz build clean

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

bench: venv ## Criterion benchmarks of the decoding core and its stages (see bench/)
	DAS_PYTHON=$(abspath $(PYTHON)) $(CARGO) bench --bench core

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
