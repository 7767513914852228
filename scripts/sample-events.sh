#!/usr/bin/env bash
# The sample Lambda events (`make events` writes them to events/; tests/it/lambda_emulator.rs makes the same
# shapes under moto's KMS): Aurora PostgreSQL (0x0178), Aurora MySQL (0x0378, record version 1.2), heartbeats
# only, and a batch with one corrupted record.
#
# Usage: scripts/sample-events.sh <das binary> <output directory>
# With KMS_KEY_ID set, the records carry real KMS data keys (`das simulate` calls GenerateDataKey with the
# DAS encryption context; AWS_ENDPOINT_URL points it at a local AWS). Without it they are encrypted with
# the public test wrapping key, which the tests and `das decode` / `das replay --wrapping-key` know.
set -euo pipefail
das=$1
out=$2
TEST_WRAPPING_KEY=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
RESOURCE_ID=${RESOURCE_ID:-cluster-EXAMPLEAURORAPG000000001}
MYSQL_RESOURCE_ID=${MYSQL_RESOURCE_ID:-cluster-EXAMPLEAURORAMY000000001}
if [ -n "${KMS_KEY_ID:-}" ]; then key=(--kms-key-id "$KMS_KEY_ID"); else key=(--wrapping-key "$TEST_WRAPPING_KEY"); fi

mkdir -p "$out"
"$das" simulate "${key[@]}" --resource-id "$RESOURCE_ID" --engine aurora-postgresql --records 20 --events-per-record 5 \
  --seed 1 --to-event-file "$out/aurora-postgresql.json"
"$das" simulate "${key[@]}" --resource-id "$MYSQL_RESOURCE_ID" --engine aurora-mysql --records 10 --events-per-record 6 \
  --seed 2 --to-event-file "$out/aurora-mysql.json"
"$das" simulate "${key[@]}" --resource-id "$RESOURCE_ID" --records 5 --heartbeat-interval 1 \
  --seed 3 --to-event-file "$out/heartbeats-only.json"
"$das" simulate "${key[@]}" --resource-id "$RESOURCE_ID" --records 6 --events-per-record 3 --corrupt-record 2 \
  --seed 4 --to-event-file "$out/one-corrupted-record.json"
