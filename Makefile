# das-archiver — every task the project has, one target each. `make help` lists them.

VENV    := .venv
PYTHON  := $(VENV)/bin/python
CARGO   ?= cargo
# The official Python ESDK (test oracle and benchmark baseline) and, later, moto's server.
ORACLE_REQUIREMENTS := tests/oracle/requirements.txt

.PHONY: help run demo events test test-tools lint bench size-arm64 venv fuzz-check fuzz build clean smoke

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

run: venv build ## The archiver on a local AWS (moto): simulated DAS stream -> Lambda -> S3
	scripts/run-local.sh

demo: build ## The decoding core alone, offline: encode records for all four engines and decode them back
	./target/release/das demo

test: venv test-tools ## Unit, integration, official-vector, Python cross-check and property tests
	DAS_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --all-features

# The archive readers of tests/it/archive_readers.rs that are not Python packages: a JDK (Java's
# GZIPInputStream, run with `java File.java`) and the zstd CLI, from Debian, installed only when missing
# (as root on CI; through sudo otherwise). OpenJDK 17 took 14 s to download and install here (2026-12-02).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-tools: ## Install what the archive reader tests run (a JDK, zstd) if missing
	@missing=""; \
	{ command -v java >/dev/null && command -v javac >/dev/null; } || missing="default-jdk-headless"; \
	command -v zstd >/dev/null || missing="$$missing zstd"; \
	if [ -n "$$missing" ]; then \
	  echo "test-tools: installing $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The library must also build without any feature: the pure decoding core alone (README, "Source tree").
lint: ## rustfmt check; clippy and rustdoc with warnings as errors; the core built without features
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --all-features
	$(CARGO) build --lib --no-default-features

bench: venv build ## Benchmarks vs the Python reference path, batch, cold start, KMS; writes bench/results.md
	bench/run.sh

size-arm64: venv ## Cross-build the arm64 Lambda binary (cargo-lambda + zig), for `make bench` to report its size
	rustup target add aarch64-unknown-linux-gnu
	PATH=$(abspath $(VENV))/bin:$$PATH $(CARGO) lambda build --release --arm64 --bin das-archiver-lambda --features lambda

# Sample Lambda events for `sam local invoke` / `cargo lambda invoke` (scripts/sample-events.sh). By default
# they are encrypted with a public test wrapping key (decodable by the tests and `das decode`, not by KMS).
# With KMS_KEY_ID (and RESOURCE_ID, MYSQL_RESOURCE_ID, and AWS_ENDPOINT_URL for a local AWS) they carry
# real KMS data keys.
events: build ## Regenerate events/*.json (optionally KMS_KEY_ID=… RESOURCE_ID=… MYSQL_RESOURCE_ID=…)
	scripts/sample-events.sh ./target/release/das events

# A rehearsal in a real AWS account with your credentials and region (scripts/smoke.py): a DAS-named stream,
# two temporary KMS keys, the stack (sam build + sam deploy), simulated records, the checks, then everything
# deleted. It checks the credentials before building anything; `make test` runs its local steps against moto
# (tests/it/smoke.rs) and never reaches an account. ARGS passes options: ARGS='--athena', '--keep',
# '--cleanup-only [--run-id ID]', '--architecture x86_64', '--timeout 900'.
smoke: venv ## Rehearse a deployment in your AWS account, then delete it (ARGS='--athena --keep …')
	$(PYTHON) scripts/smoke.py --check-credentials $(ARGS)
	$(CARGO) build --release --bin das
	$(PYTHON) scripts/smoke.py $(ARGS)

fuzz-check: ## Check that the fuzz targets build (stable toolchain, no sanitizer)
	$(CARGO) build --manifest-path fuzz/Cargo.toml --bins

# cargo-fuzz needs nightly's -Z flags (sanitizer, coverage); RUSTC_BOOTSTRAP=1 lets the stable toolchain,
# the only one on a fresh machine here, accept them.
FUZZ_TIME ?= 600
fuzz: ## Run the three fuzz targets for FUZZ_TIME seconds each (default 600; installs cargo-fuzz)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for target in esdk_decrypt record_decode mask_sql; do \
	  mkdir -p fuzz/corpus/$$target && \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target fuzz/corpus/$$target fuzz/seeds/$$target -- \
	    -max_total_time=$(FUZZ_TIME) -print_final_stats=1 || exit 1; \
	done

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
