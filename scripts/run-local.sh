#!/usr/bin/env bash
# `make run`: the archiver doing its job on a local AWS, with nothing from the cloud.
#
# Starts moto's server on 127.0.0.1, creates a KMS key, a DAS-named Kinesis stream and a bucket,
# produces realistic DAS records with `das simulate` into the stream (plus one corrupted record),
# batches the stream into Lambda events as an event-source mapping would, runs the real Lambda binary
# under `cargo lambda watch` (the Lambda runtime API emulator), invokes it with each batch, and prints
# what landed in S3. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PWD/.venv/bin:$PATH"
RECORDS=${RECORDS:-400}
EVENTS_PER_RECORD=${EVENTS_PER_RECORD:-20}
RESOURCE_ID=${RESOURCE_ID:-cluster-DEMOAURORAPG0000000000001}
BUCKET=das-archive-demo
STREAM="aws-rds-das-$RESOURCE_ID"
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
LAMBDA_PORT=$(free_port)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

step() { printf '\n== %s\n' "$*"; }
started=$(date +%s)

step "local AWS: moto on $AWS_ENDPOINT_URL"
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
python3 - "$MOTO_PORT" <<'PY' || { tail -n 20 "$WORK/moto.log"; exit 1; }
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/config", timeout=1); break
    except Exception:
        time.sleep(0.2)
else:
    sys.exit("moto did not start")
PY
KMS_KEY_ID=$(python scripts/local_aws.py setup --resource-id "$RESOURCE_ID" --bucket "$BUCKET")
echo "KMS key $KMS_KEY_ID, stream $STREAM (2 shards), bucket $BUCKET"

step "DAS producer: $RECORDS records x $EVENTS_PER_RECORD events (pgbench mix, logins, DDL, heartbeats)"
./target/release/das simulate --resource-id "$RESOURCE_ID" --kms-key-id "$KMS_KEY_ID" \
  --records "$RECORDS" --events-per-record "$EVENTS_PER_RECORD" --heartbeat-interval 10 --to-stream "$STREAM"
python scripts/local_aws.py put-garbage --stream "$STREAM"

step "event-source mapping: reading $STREAM into Lambda batches"
python scripts/local_aws.py events --stream "$STREAM" --batch-size 100 --out-dir "$WORK/events"

step "Lambda: das-archiver-lambda under cargo lambda watch"
cargo lambda watch --release --bin das-archiver-lambda -A 127.0.0.1 -P "$LAMBDA_PORT" --ignore-changes \
  --env-var DAS_ARCHIVE_BUCKET="$BUCKET" --env-var DAS_S3_FORCE_PATH_STYLE=true \
  --env-var AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" --env-var AWS_REGION=us-east-1 \
  --env-var AWS_ACCESS_KEY_ID=testing --env-var AWS_SECRET_ACCESS_KEY=testing \
  >"$WORK/lambda.log" 2>&1 &
PIDS+=($!)
wait_port() {
  python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(600):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close(); break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit(f"nothing listens on port {sys.argv[1]}")
PY
}
wait_port "$LAMBDA_PORT" || { tail -n 20 "$WORK/lambda.log"; exit 1; }
for event in "$WORK"/events/*.json; do
  printf '%s -> ' "$(basename "$event")"
  cargo lambda invoke das-archiver-lambda -A 127.0.0.1 -P "$LAMBDA_PORT" --data-file "$event" 2>>"$WORK/invoke.log" \
    || { echo "invoke failed:"; tail -n 20 "$WORK/invoke.log" "$WORK/lambda.log"; exit 1; }
  echo
done

step "what landed in S3"
python scripts/local_aws.py show --bucket "$BUCKET" --prefix activity/ --first 3

step "summary (from the function's CloudWatch EMF metric lines)"
python3 - "$WORK/lambda.log" <<'PY' || { echo "the function's log ends with:"; tail -n 30 "$WORK/lambda.log"; exit 1; }
import json, sys
totals = {}
for line in open(sys.argv[1], errors="replace"):
    start = line.find('{"')
    if start < 0 or '"_aws"' not in line:
        continue
    doc = json.loads(line[start:])
    for name in ("RecordsIn", "EventsArchived", "EventsFiltered", "HeartbeatsSkipped", "RecordsQuarantined", "RecordsRetried", "KmsCalls", "ObjectsWritten"):
        totals[name] = totals.get(name, 0) + doc.get(name, 0)
print("  " + ", ".join(f"{k} {v}" for k, v in totals.items()))
# The run is also CI's end-to-end check: say so loudly when the product did not do its job.
problems = []
if not totals.get("EventsArchived"):
    problems.append("no event was archived")
if totals.get("RecordsQuarantined") != 1:
    problems.append(f"expected the one corrupted record in quarantine, got {totals.get('RecordsQuarantined')}")
if totals.get("RecordsRetried"):
    problems.append(f"{totals['RecordsRetried']} record(s) were left for retry")
if problems:
    sys.exit("make run: " + "; ".join(problems))
PY
echo "done in $(( $(date +%s) - started )) s"
