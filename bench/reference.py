#!/usr/bin/env python3
"""The reference path people run today, timed on the same records as our benchmarks.

This is the AWS Database Activity Streams Python sample (Aurora User Guide, "Processing a database
activity stream using the AWS SDK") turned into an archiver, as the Firehose-transform Lambdas do it:
per record, json.loads of the Kinesis data, base64 decode, the official aws-encryption-sdk decrypt
with the sample's raw AES key provider (namespace BC, key name DataKey), zlib gunzip, json.loads,
drop heartbeats, and one json.dumps line per event with clusterId/instanceId added.

    reference.py shapes MANIFEST     time each record shape written by `cargo bench --bench core`
                                     (target/bench-shapes/manifest.json); the data key is in hand,
                                     so KMS is out of the measurement, as it is for ours
    reference.py kms EVENT_FILE --resource-id ID
                                     the sample's full loop over a Lambda Kinesis event file, with
                                     one KMS Decrypt per record (AWS_ENDPOINT_URL: moto in
                                     `make bench`); reports records, KMS calls made, time

Both print one JSON object on stdout. Run with the project's virtualenv (.venv/bin/python).
"""

import base64
import json
import os
import statistics
import sys
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import esdk_oracle  # noqa: E402  (the sample's key provider and client, shared with the tests)

ROUNDS = 5
ROUND_SECONDS = 0.4


def decrypt_record(client, data_key, record_bytes):
    """The sample's per-record steps, data key in hand; returns the NDJSON lines of the kept events."""
    record = json.loads(record_bytes)
    payload_decoded = base64.b64decode(record["databaseActivityEvents"])
    case = {"name": "reference"}
    decrypted, _header = client.decrypt(
        source=payload_decoded, materials_manager=esdk_oracle.materials_manager(data_key, case)
    )
    payload = json.loads(zlib.decompress(decrypted, zlib.MAX_WBITS + 16))
    lines = []
    for event in payload["databaseActivityEventList"]:
        if event.get("type") == "heartbeat":
            continue
        event["clusterId"] = payload.get("clusterId")
        event["instanceId"] = payload.get("instanceId")
        lines.append(json.dumps(event))
    return "\n".join(lines)


def time_per_call(call):
    """Median seconds per call over ROUNDS rounds of about ROUND_SECONDS each."""
    call()  # warm-up, and fail early
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-6)
    iterations = max(1, int(ROUND_SECONDS / once))
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(iterations):
            call()
        rounds.append((time.perf_counter() - start) / iterations)
    return statistics.median(rounds)


def cmd_shapes(manifest_path):
    """Times every shape of the manifest; {"shapes": {id: {"python_us", "ndjson_lines"}}}."""
    with open(manifest_path, "rb") as f:
        manifest = json.load(f)
    data_key = bytes.fromhex(manifest["wrapping_key_hex"])
    client = esdk_oracle.decrypt_client()
    results = {}
    for shape in manifest["shapes"]:
        with open(shape["record"], "rb") as f:
            record_bytes = f.read()
        lines = decrypt_record(client, data_key, record_bytes)
        seconds = time_per_call(lambda: decrypt_record(client, data_key, record_bytes))  # noqa: B023
        results[shape["id"]] = {"python_us": round(seconds * 1e6, 2), "ndjson_lines": lines.count("\n") + bool(lines)}
        print(f"  python {shape['id']:>16}: {seconds * 1e6:10.1f} µs/record", file=sys.stderr)
    return {"esdk_version": esdk_oracle.aws_encryption_sdk.__version__, "shapes": results}


def cmd_kms(event_path, resource_id):
    """The sample's loop with a KMS Decrypt per record, over a Lambda Kinesis event file."""
    import boto3  # only this subcommand needs it

    with open(event_path, "rb") as f:
        records = json.load(f)["Records"]
    kms = boto3.client("kms", region_name=os.environ.get("AWS_REGION", "us-east-1"))
    context_key = "aws:rds:dbc-id" if resource_id.startswith("cluster-") else "aws:rds:db-id"
    client = esdk_oracle.decrypt_client()
    kms_calls = 0
    events = 0
    start = time.perf_counter()
    for entry in records:
        record_bytes = base64.b64decode(entry["kinesis"]["data"])
        record = json.loads(record_bytes)
        data_key = kms.decrypt(
            CiphertextBlob=base64.b64decode(record["key"]), EncryptionContext={context_key: resource_id}
        )["Plaintext"]
        kms_calls += 1
        lines = decrypt_record(client, data_key, record_bytes)
        events += lines.count("\n") + bool(lines)
    seconds = time.perf_counter() - start
    return {
        "records": len(records),
        "events": events,
        "kms_calls": kms_calls,
        "seconds": round(seconds, 3),
        "ms_per_record": round(seconds * 1e3 / max(len(records), 1), 4),
    }


def main(argv):
    if len(argv) == 3 and argv[1] == "shapes":
        result = cmd_shapes(argv[2])
    elif len(argv) == 5 and argv[1] == "kms" and argv[3] == "--resource-id":
        result = cmd_kms(argv[2], argv[4])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
