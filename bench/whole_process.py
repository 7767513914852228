#!/usr/bin/env python3
"""Whole-process timing of `das replay` on one Lambda event of 10,000 records, beside Python.

What a new user tries first: `das simulate --to-event-file` writes one Lambda Kinesis event of 10,000
records (data key = a wrapping key in hand, so KMS is out of the measurement), and

    das replay EVENT --wrapping-key K --out-dir D

runs the Lambda's whole batch handler on it as one process: read and parse the 21 MB event,
base64, decrypt, gunzip, parse, filter, NDJSON, gzip, write. It is timed from the outside (wall time,
and user + system CPU time and peak RSS from the kernel's rusage of the child), median of RUNS runs.

Beside it, in the same run, the official Python `aws-encryption-sdk` doing only what every decoder
must do for the same records with the key in hand: base64 and `json.loads` of the Kinesis data,
base64 of the message, decrypt, gunzip, `json.loads` of the payload (no output at all). Python is
single-threaded, so its CPU time is its wall time.

    whole_process.py DAS_BINARY OUT_JSON [--records N] [--runs R]

Variants: one-event records of suite 0x0178 (Aurora PostgreSQL) and 0x0378 (Aurora MySQL, signed),
and 20-event 0x0178 records, with gzip archives (the default); and the 0x0178 ones again with zstd
archives (`DAS_COMPRESSION=zstd`), and without SQL masking (`DAS_MASK_SQL=off`; masking is on in all the others).
Run with the project's virtualenv (.venv/bin/python).
"""

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
import esdk_oracle  # noqa: E402  (the DAS sample's key provider and client, shared with the tests)

WRAPPING_KEY = "42" * 32
VARIANTS = [
    # id, engine, suite, events per record, archive compression (DAS_COMPRESSION), masking (DAS_MASK_SQL)
    ("1-event-0178", "aurora-postgresql", "0178", 1, "gzip", "literals"),
    ("1-event-0378", "aurora-mysql", "0378", 1, "gzip", "literals"),
    ("20-events-0178", "aurora-postgresql", "0178", 20, "gzip", "literals"),
    # The same records with zstd archives: Python writes no output at all, so these show what the
    # output's compression costs in the rows above.
    ("1-event-0178-zstd", "aurora-postgresql", "0178", 1, "zstd", "literals"),
    ("20-events-0178-zstd", "aurora-postgresql", "0178", 20, "zstd", "literals"),
    # And without SQL masking (on by default), so the two rows side by side show what masking costs.
    ("1-event-0178-mask-off", "aurora-postgresql", "0178", 1, "gzip", "off"),
    ("20-events-0178-mask-off", "aurora-postgresql", "0178", 20, "gzip", "off"),
]


def simulate(das, path, engine, suite, events, records):
    """One Lambda Kinesis event file of `records` records, all under the wrapping key."""
    subprocess.run(
        [das, "simulate", "--resource-id", "cluster-WHOLEPROCESS00000000001", "--engine", engine,
         "--suite", suite, "--wrapping-key", WRAPPING_KEY, "--records", str(records),
         "--events-per-record", str(events), "--heartbeat-interval", "0", "--to-event-file", path],
        check=True, capture_output=True,
    )


def run_replay(das, event, out_dir, compression, mask):
    """One `das replay` process: (wall s, CPU s, peak RSS bytes)."""
    env = dict(os.environ, AWS_EC2_METADATA_DISABLED="true", AWS_REGION="us-east-1", DAS_COMPRESSION=compression,
               DAS_MASK_SQL=mask)
    # stderr goes to a file, not a pipe: nobody reads a pipe until the child has exited, so a chatty
    # run would fill it and block.
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(
            [das, "replay", event, "--wrapping-key", WRAPPING_KEY, "--out-dir", out_dir],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if status != 0:
            stderr.seek(0)
            raise SystemExit(f"das replay failed ({status}): {stderr.read().decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def python_path(event):
    """The Python SDK's per-record work on the event's records: (seconds per record, records)."""
    with open(event, "rb") as f:
        records = [base64.b64decode(r["kinesis"]["data"]) for r in json.load(f)["Records"]]
    client = esdk_oracle.decrypt_client()
    key = bytes.fromhex(WRAPPING_KEY)
    manager = esdk_oracle.materials_manager(key, {"name": "whole-process"})
    start = time.process_time()
    for data in records:
        envelope = json.loads(data)
        message = base64.b64decode(envelope["databaseActivityEvents"])
        plaintext, _ = client.decrypt(source=message, materials_manager=manager)
        json.loads(zlib.decompress(plaintext, zlib.MAX_WBITS + 16))
    return (time.process_time() - start) / len(records), len(records)


def python_in_own_process(event):
    """`python_path` in a child process: the records it loads must not swell this process, whose
    size every `das replay` child inherits into its peak RSS until it execs."""
    out = subprocess.run([sys.executable, __file__, "--python-path", event], check=True, capture_output=True)
    return json.loads(out.stdout)["seconds_per_record"]


def variant(das, work, vid, engine, suite, events, compression, mask, records, runs):
    """One variant's figures."""
    event = os.path.join(work, f"{engine}-{suite}-{events}.json")
    if not os.path.exists(event):
        simulate(das, event, engine, suite, events, records)
    samples = []
    for run in range(runs + 1):
        out_dir = os.path.join(work, f"out-{vid}-{run}")
        samples.append(run_replay(das, event, out_dir, compression, mask))
        subprocess.run(["rm", "-rf", out_dir], check=True)
    samples = samples[1:]  # the first run warms the page cache
    python_s = python_in_own_process(event)
    wall_us = statistics.median(s[0] for s in samples) / records * 1e6
    cpu_us = statistics.median(s[1] for s in samples) / records * 1e6
    result = {
        "records": records,
        "events_per_record": events,
        "compression": compression,
        "mask_sql": mask,
        "event_bytes": os.path.getsize(event),
        "runs": runs,
        "wall_us_per_record": round(wall_us, 2),
        "cpu_us_per_record": round(cpu_us, 2),
        "cpus_used": round(cpu_us / wall_us, 2),
        "peak_rss_bytes": max(s[2] for s in samples),
        "python_us_per_record": round(python_s * 1e6, 2),
        "speedup_wall": round(python_s * 1e6 / wall_us, 1),
        "speedup_cpu": round(python_s * 1e6 / cpu_us, 1),
    }
    print(f"  {vid:>16}: das replay {wall_us:6.2f} µs wall, {cpu_us:6.2f} µs CPU per record, "
          f"peak RSS {result['peak_rss_bytes'] / 2**20:.0f} MiB; Python {python_s * 1e6:7.1f} µs "
          f"({result['speedup_wall']}× wall, {result['speedup_cpu']}× CPU)", file=sys.stderr)
    return result


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--python-path":
        seconds, _ = python_path(sys.argv[2])
        print(json.dumps({"seconds_per_record": seconds}))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("das")
    parser.add_argument("out")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", help="run only this variant id")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for vid, engine, suite, events, compression, mask in VARIANTS:
            if args.only and vid != args.only:
                continue
            results[vid] = variant(args.das, work, vid, engine, suite, events, compression, mask, args.records,
                                   args.runs)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
