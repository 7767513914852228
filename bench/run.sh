#!/usr/bin/env bash
# `make bench`: every benchmark of bench/results.md in one run, so that ratios compare like with like.
#
#   1-2. criterion: per-record path and its stages            (benches/core.rs)
#   3.   the Python reference path on the same record bytes   (bench/reference.py shapes)
#   4.   the batch pipeline on 10,000 records, memory and moto S3 (examples/batch_throughput.rs);
#        cold start (bench/cold_start.py); release binary sizes
#   5.   KMS calls for 10,000 records: ours (das replay) vs per record (bench/reference.py kms), on moto
#   7.   the whole `das replay` process on 10,000-record events vs Python (bench/whole_process.py)
# then bench/report.py writes results.json/results.md and prints the summary, and bench/cost.py
# writes cost.md. Expects `make build` and the virtualenv (the Makefile target does both).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="$PWD/.venv/bin/python"
OUT="$PWD/target/bench-run"
rm -rf "$OUT" && mkdir -p "$OUT"
export PATH="$PWD/.venv/bin:$PATH"
step() { printf '\n== %s\n' "$*" >&2; }

step "1-2. criterion: per-record path and stages"
cargo bench --bench core

step "3. Python reference path (aws-encryption-sdk) on the same records"
"$PY" bench/reference.py shapes target/bench-shapes/manifest.json >"$OUT/python.json"

step "4. batch pipeline, 10,000 records x 1 event (memory sink)"
cargo build --release --example batch_throughput
./target/release/examples/batch_throughput 10000 1 --json >"$OUT/batch-memory.json"
cat "$OUT/batch-memory.json" >&2

step "7. whole process: das replay of 10,000 records vs the Python SDK, same records"
"$PY" bench/whole_process.py target/release/das "$OUT/whole-process.json"

step "cold start and binary sizes"
"$PY" bench/cold_start.py --binary target/release/das-archiver-lambda --runs 20 --json >"$OUT/cold-start.json"
cat "$OUT/cold-start.json" >&2
"$PY" - "$OUT/sizes.json" <<'PY'
import json, os, sys
def elf_machine(path):
    """The ELF e_machine of a binary: 62 is x86_64, 183 aarch64; None if absent."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return None
    return int.from_bytes(header[18:20], "little") if header[:4] == b"\x7fELF" else None
sizes = {"x86_64": os.path.getsize("target/release/das-archiver-lambda"), "arm64": None}
# The arm64 binary exists only after `make size-arm64` (a cross build with cargo-lambda and zig).
arm64 = "target/lambda/das-archiver-lambda/bootstrap"
if elf_machine(arm64) == 183:
    sizes["arm64"] = os.path.getsize(arm64)
json.dump(sizes, open(sys.argv[1], "w"))
PY

step "local AWS (moto) for the S3 batch and the KMS count"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK=$(mktemp -d)
MOTO_RECORDER_FILEPATH="$WORK/recording" moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
moto() { "$PY" -c 'import sys, urllib.request as u; r=u.Request(sys.argv[1] + sys.argv[2], method=sys.argv[3], data=b"" if sys.argv[3]=="POST" else None); print(u.urlopen(r, timeout=30).read().decode())' "$AWS_ENDPOINT_URL" "$@"; }
for _ in $(seq 150); do moto /moto-api/config GET >/dev/null 2>&1 && break; sleep 0.2; done
RESOURCE_ID=cluster-BENCHKMS0000000000000001
KEY_ID=$("$PY" scripts/local_aws.py setup --resource-id "$RESOURCE_ID" --bucket das-archive-bench)

step "4. batch pipeline, 10,000 records x 1 event (moto S3)"
DAS_ARCHIVE_BUCKET=das-archive-bench DAS_S3_FORCE_PATH_STYLE=true \
  ./target/release/examples/batch_throughput 10000 1 --json >"$OUT/batch-s3.json"
cat "$OUT/batch-s3.json" >&2

step "5. KMS calls for 10,000 records sharing one data key"
./target/release/das simulate --resource-id "$RESOURCE_ID" --kms-key-id "$KEY_ID" --records 10000 \
  --events-per-record 1 --heartbeat-interval 0 --to-event-file "$WORK/event.json"
count_decrypts() {
  moto /moto-api/recorder/download-recording GET | "$PY" -c '
import json, sys
print(sum(1 for line in sys.stdin if line.strip()
          and any(k.lower() == "x-amz-target" and v == "TrentService.Decrypt"
                  for k, v in json.loads(line).get("headers", {}).items())))'
}
moto /moto-api/recorder/start-recording POST >/dev/null
DAS_ARCHIVE_BUCKET=das-archive-bench DAS_S3_FORCE_PATH_STYLE=true \
  ./target/release/das replay "$WORK/event.json" >"$WORK/replay.out"
OURS=$(count_decrypts)
moto /moto-api/recorder/reset-recording POST >/dev/null
"$PY" bench/reference.py kms "$WORK/event.json" --resource-id "$RESOURCE_ID" >"$WORK/reference-kms.json"
THEIRS=$(count_decrypts)
moto /moto-api/recorder/stop-recording POST >/dev/null
"$PY" - "$OUT/kms.json" "$OURS" "$THEIRS" "$WORK/reference-kms.json" <<'PY'
import json, sys
reference = json.load(open(sys.argv[4]))
json.dump({"records": reference["records"], "das_archiver": int(sys.argv[2]), "per_record_path": int(sys.argv[3]),
           "per_record_ms": reference["ms_per_record"]}, open(sys.argv[1], "w"))
PY
cat "$OUT/kms.json" >&2

step "report"
"$PY" bench/report.py "$OUT"
"$PY" bench/cost.py --results bench/results.json --out bench/cost.md >/dev/null
