#!/usr/bin/env python3
"""Collects one `make bench` run into bench/results.json and bench/results.md, and prints a short table.

Inputs, all from the same run (see bench/run.sh):
  target/criterion/<group>/<shape>/new/estimates.json   criterion medians (record, record-gzip, stage-*, compress-*)
  target/bench-shapes/manifest.json                      the record shapes (sizes, events, suite)
  target/bench-shapes/compression.json                   archive object sizes per codec (gzip-6, zstd-1, zstd-3)
  $OUT/python.json        bench/reference.py shapes      Python reference path, µs per record
  $OUT/batch-memory.json, $OUT/batch-s3.json             examples/batch_throughput --json
  $OUT/kms.json           KMS calls for 10,000 records: ours (replay) and the per-record path
  $OUT/cold-start.json    bench/cold_start.py --json
  $OUT/sizes.json         release binary sizes

    report.py OUT_DIR

Missing inputs are reported as such in the tables, never invented.
"""

import datetime
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion")
# The stages whose sum is the ceiling of the whole per-record path (record-gzip).
CEILING_STAGES = ["envelope", "aes-gcm", "hkdf", "ecdsa-p384-verify", "inflate", "json-parse", "deflate-output"]
TARGETS = {
    "speedup": 50.0,
    "ceiling_percent": 60.0,
    "batch_cpu_ms": 1000.0,
    "batch_rss_mib": 128.0,
    "cold_start_ms": 50.0,
    "binary_mib": 15.0,
}


def load(path):
    """A JSON file, or None if it is missing."""
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def criterion_us(group, shape):
    """Criterion's median for one benchmark, in µs, or None if it did not run."""
    estimates = load(os.path.join(CRITERION, group, shape, "new", "estimates.json"))
    return None if estimates is None else estimates["median"]["point_estimate"] / 1000.0


def command_output(*argv):
    """First line of a command's output, or '?'."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine():
    """What the figures were measured on."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "rustc": command_output("rustc", "--version"),
        "python": platform.python_version(),
    }


def speedup_bound(python_us, stages):
    """The speed-up over Python that no implementation can beat: Python's time over the stages any
    decoder must run (inflate, and the ECDSA verify of signed suites) at their measured speed."""
    unavoidable = (stages.get("inflate") or 0.0) + (stages.get("ecdsa-p384-verify") or 0.0)
    return python_us / unavoidable if python_us and unavoidable else None


def per_record(value, records):
    """A time measured for a group of records, per record."""
    return None if value is None else value / records


def shape_results(manifest, python):
    """Per shape: our times, Python's, the stages, the ceiling percentage and the speed-up."""
    shapes = {}
    # The gzip benchmarks time a group of records compressed as one object.
    group = manifest.get("gzip_group_records", 1)
    for shape in manifest["shapes"]:
        sid = shape["id"]
        ours = criterion_us("record", sid)
        ours_gzip = per_record(criterion_us("record-gzip", sid), group)
        stages = {name: criterion_us(f"stage-{name}", sid) for name in CEILING_STAGES + ["esdk-decrypt"]}
        stages["deflate-output"] = per_record(stages["deflate-output"], group)
        stages = {k: v for k, v in stages.items() if v is not None}
        ceiling_us = sum(v for k, v in stages.items() if k in CEILING_STAGES)
        py = (python or {}).get("shapes", {}).get(sid, {}).get("python_us")
        shapes[sid] = {
            "events": shape["events"],
            "suite": shape["suite"],
            "record_bytes": shape["record_bytes"],
            "json_bytes": shape["json_bytes"],
            "ndjson_bytes": shape["ndjson_bytes"],
            "ours_us": ours,
            "ours_gzip_us": ours_gzip,
            "python_us": py,
            "stages_us": stages,
            "ceiling_us": ceiling_us or None,
            "ceiling_percent": 100.0 * ceiling_us / ours_gzip if ours_gzip and ceiling_us else None,
            "speedup_vs_python": py / ours if py and ours else None,
            "speedup_bound": speedup_bound(py, stages),
        }
    return shapes


COMPRESSION_CODECS = ["gzip-6", "zstd-1", "zstd-3"]


def compression_results(sizes):
    """Per 20- and 500-event shape and codec: µs per record (criterion `compress-<codec>`, divided by the
    group) and object bytes per record (`target/bench-shapes/compression.json`, written by the bench)."""
    if not sizes:
        return {}
    group = sizes.get("group_records", 1)
    out = {}
    for sid, measured in sizes.get("shapes", {}).items():
        row = {"ndjson_bytes": per_record(measured.get("ndjson_bytes"), group)}
        for codec in COMPRESSION_CODECS:
            size = measured.get(codec)
            row[codec] = {
                "us": per_record(criterion_us(f"compress-{codec}", sid), group),
                "bytes": per_record(size, group),
                "ratio": measured["ndjson_bytes"] / size if size and measured.get("ndjson_bytes") else None,
            }
        out[sid] = row
    return out


def compression_table(compression):
    """Markdown table: gzip-6 against zstd 1 and 3, per record, side by side."""
    if not compression:
        return "(not measured: run `cargo bench --bench core`)"
    head = " | ".join(f"{c} µs | {c} bytes | {c} ratio" for c in COMPRESSION_CODECS)
    rows = [f"| shape | NDJSON bytes | {head} |",
            "|---|---:|" + "---:|---:|---:|" * len(COMPRESSION_CODECS)]
    for sid, row in compression.items():
        cells = " | ".join(f"{fmt(row[c]['us'], 2)} | {fmt(row[c]['bytes'], 0)} | {fmt(row[c]['ratio'], 1, '×')}"
                           for c in COMPRESSION_CODECS)
        rows.append(f"| {sid} | {fmt(row['ndjson_bytes'], 0)} | {cells} |")
    return "\n".join(rows)


def fmt(value, digits=1, suffix=""):
    """A number for a table, or '–' when it was not measured."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value:,}{suffix}"


def per_record_table(shapes):
    """Markdown table of the per-record benchmark (item 1) and the Python comparison (item 3)."""
    rows = [
        "| shape | record bytes | JSON bytes | ours µs | records/s | events/s | MB/s JSON | with gzip µs "
        "| Python µs | ours ÷ Python time | speed-up | bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sid, s in shapes.items():
        ours = s["ours_us"]
        per_s = 1e6 / ours if ours else None
        rows.append(
            f"| {sid} | {s['record_bytes']:,} | {s['json_bytes']:,} | {fmt(ours)} | {fmt(per_s, 0)} "
            f"| {fmt(per_s * max(s['events'], 1) if per_s else None, 0)} "
            f"| {fmt(s['json_bytes'] / ours if ours else None, 0)} | {fmt(s['ours_gzip_us'])} "
            f"| {fmt(s['python_us'])} | {fmt(ours / s['python_us'] if ours and s['python_us'] else None, 3)} "
            f"| {fmt(s['speedup_vs_python'], 1, '×')} | {fmt(s['speedup_bound'], 0, '×')} |"
        )
    return "\n".join(rows)


def stage_table(shapes):
    """Markdown table of the stage ceilings (item 2)."""
    names = CEILING_STAGES + ["esdk-decrypt"]
    rows = [
        "| shape | " + " | ".join(names) + " | Σ ceiling stages | record+gzip | % of ceiling |",
        "|---|" + "---:|" * (len(names) + 3),
    ]
    for sid, s in shapes.items():
        cells = [fmt(s["stages_us"].get(n), 2) for n in names]
        rows.append(
            f"| {sid} | " + " | ".join(cells) + f" | {fmt(s['ceiling_us'], 1)} | {fmt(s['ours_gzip_us'], 1)} "
            f"| {fmt(s['ceiling_percent'], 0, ' %')} |"
        )
    return "\n".join(rows)


def batch_table(batches):
    """Markdown table of the whole-batch runs (item 4)."""
    rows = ["| sink | records | events | wall ms | CPU ms | events/s | objects | peak RSS MiB |", "|---|" + "---:|" * 7]
    for name, b in batches.items():
        if b is None:
            rows.append(f"| {name} | not measured in this run |||||||")
            continue
        rows.append(
            f"| {name} | {b['records']:,} | {b['events']:,} | {fmt(b['wall_ms'])} | {fmt(b['cpu_ms'])} "
            f"| {fmt(b['events_per_s'], 0)} | {b['objects']} | {fmt(b['peak_rss_mib'])} |"
        )
    return "\n".join(rows)


def whole_process_table(variants):
    """Section 7: `das replay` as a whole process against the Python SDK on the same records."""
    if not variants:
        return "(not measured in this run)"
    rows = ["| records | archive | masking | das replay wall µs/record | CPU µs/record | CPUs used | peak RSS | event size | "
            "Python µs/record | speed-up (wall) | speed-up (CPU) |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for vid, v in variants.items():
        rows.append(
            f"| {vid} | {v.get('compression', 'gzip')} | {v.get('mask_sql', 'literals')} | {fmt(v['wall_us_per_record'], 2)} | {fmt(v['cpu_us_per_record'], 2)} | {fmt(v['cpus_used'], 2)} "
            f"| {fmt(v['peak_rss_bytes'] / 2**20, 0)} MiB | {fmt(v['event_bytes'] / 2**20, 1)} MiB "
            f"| {fmt(v['python_us_per_record'], 1)} | {fmt(v['speedup_wall'], 1, '×')} | {fmt(v['speedup_cpu'], 1, '×')} |")
    return "\n".join(rows)


def mask_table():
    """Section 8: criterion's `mask` group, per statement size."""
    rows = ["| statement | µs per statement (mask + fingerprint) |", "|---|---:|"]
    for size in ("100B", "2KB"):
        rows.append(f"| {size} | {fmt(criterion_us('mask', size), 2)} |")
    return "\n".join(rows)


def whole_process_runs(results):
    """How many runs each whole-process figure is the median of."""
    variants = results.get("whole_process") or {}
    return next((v["runs"] for v in variants.values()), "–")


def whole_process_rows(results):
    """The whole-process targets of the summary: CPU per one-event record, speed-ups, memory."""
    variants = results.get("whole_process") or {}
    rows = []
    one = variants.get("1-event-0178")
    if one:
        rows.append(("das replay, 1-event 0x0178, CPU per record", fmt(one["cpu_us_per_record"], 2, " µs"), "≤ 5 µs"))
        rows.append(("das replay, 1-event 0x0178, vs Python (wall)", fmt(one["speedup_wall"], 1, "×"), "≥ 20×"))
    twenty = variants.get("20-events-0178")
    if twenty:
        rows.append(("das replay, 20-event 0x0178, vs Python (wall)", fmt(twenty["speedup_wall"], 1, "×"), "≥ 25×"))
    signed = variants.get("1-event-0378")
    verify = ((results["shapes"].get("1-event-0378") or {}).get("stages_us") or {}).get("ecdsa-p384-verify")
    if signed and verify:
        rows.append(("das replay, 1-event 0x0378, CPU ÷ one P-384 verify",
                     fmt(signed["cpu_us_per_record"] / verify, 2, "×"), "≤ 1.3×"))
    for masked in ("1-event-0178", "20-events-0178"):
        on, off = variants.get(masked), variants.get(f"{masked}-mask-off")
        if on and off:
            cost = (on["cpu_us_per_record"] - off["cpu_us_per_record"]) / on["cpu_us_per_record"] * 100
            rows.append((f"das replay, {masked}, SQL masking's share of CPU (on vs off)", fmt(cost, 1, " %"), "≤ 10 %"))
    for vid, v in variants.items():
        allowed = 2 * v["event_bytes"] + 30 * 2**20
        rows.append((f"das replay, {vid}, peak RSS ÷ (2 × event + 30 MiB)", fmt(v["peak_rss_bytes"] / allowed, 2, "×"),
                     "≤ 1×"))
    return rows


def summary_rows(results):
    """The short table printed at the end of `make bench`: each target and what this run measured."""
    shapes = results["shapes"]
    rows = []
    for sid, s in shapes.items():
        rows.append((
            f"speed-up vs Python, {sid}",
            fmt(s["speedup_vs_python"], 1, "×"),
            f"≥ {TARGETS['speedup']:.0f}× (bound {fmt(s['speedup_bound'], 0, '×')})",
        ))
    for sid, s in shapes.items():
        if s["events"] >= 20:
            rows.append((f"% of stage ceiling, {sid}", fmt(s["ceiling_percent"], 0, " %"), "≥ 60 %"))
    memory = results["batch"].get("memory")
    if memory:
        rows.append(("10k-record batch, CPU", fmt(memory["cpu_ms"], 0, " ms"), "< 1000 ms"))
        rows.append(("10k-record batch, peak RSS", fmt(memory["peak_rss_mib"], 0, " MiB"), "< 128 MiB"))
    cold = results.get("cold_start_ms")
    rows.append(("cold start (init), median", fmt(cold and cold.get("median_ms"), 1, " ms"), "< 50 ms"))
    for arch, size in (results.get("binary_bytes") or {}).items():
        rows.append((f"stripped Lambda binary, {arch}", fmt(size / 2**20 if size else None, 1, " MiB"), "< 15 MiB"))
    rows.extend(whole_process_rows(results))
    kms = results.get("kms_calls_per_10000_records") or {}
    rows.append(("KMS calls / 10,000 records: ours", fmt(kms.get("das_archiver")), "1 per data key"))
    rows.append(("KMS calls / 10,000 records: per-record path", fmt(kms.get("per_record_path")), "(10,000)"))
    return rows


def markdown(results):
    """bench/results.md."""
    m = results["machine"]
    kms = results.get("kms_calls_per_10000_records") or {}
    cold = results.get("cold_start_ms") or {}
    sizes = results.get("binary_bytes") or {}
    summary = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in summary_rows(results))
    size_lines = "\n".join(
        f"- `{arch}`: {fmt(size / 2**20 if size else None, 2)} MiB ({fmt(size)} bytes)" for arch, size in sizes.items()
    )
    return f"""# Benchmark results

Measured {results['date']} on {m['cpu']} ({m['cores']} cores, shared and noisy), {m['os']},
{m['rustc']}, Python {m['python']}. Regenerate with `make bench` (this file, `results.json` and
`cost.md` are rewritten by it). Criterion medians; Python medians of 5 rounds. Compare ratios rather than
absolute figures: everything in a table was measured in the same run.

## Summary against the targets

| what | measured | target |
|---|---:|---|
{summary}

## 1. Per record, key in hand (`record/*`), and 3. the Python reference path side by side

Ours: envelope JSON + base64 → ESDK decrypt (AES-GCM, HKDF, ECDSA verify for 0x0378) → gunzip → parse →
default filter (heartbeats out) → NDJSON lines, as `batch::render_record` does in the Lambda. "with gzip"
adds gzip (libdeflate, level 6) of the lines as one archive object per 32 different records of the
shape, as the Lambda compresses each object: the Lambda's whole CPU cost per record. Python: the AWS DAS sample's
steps with `aws-encryption-sdk` {results.get('python_esdk_version', '4.x')} (raw AES key provider `BC`/`DataKey`,
`zlib` gunzip, `json.loads`, heartbeats dropped, `json.dumps` per event), `bench/reference.py`. Shapes are
Aurora PostgreSQL records for 0x0178 and Aurora MySQL records for 0x0378, from `das_archiver::simulate`.
"bound" is Python's time over the stages every decoder must run (inflate, plus the ECDSA P-384 verify for
0x0378) at the speed measured below: the largest speed-up any implementation could show on that shape.

{per_record_table(results['shapes'])}

## 2. Stage ceilings (µs per record, same bytes)

Each stage alone: envelope (JSON + base64 of the Kinesis data), AES-GCM (open of the body's ciphertext
and of the 32-byte data key), HKDF (SHA-256 for 0x0178, SHA-384 for 0x0378), ECDSA P-384 verify (SHA-384
over the message + verify, 0x0378 only), inflate, JSON parse (`ActivityRecord::parse`: events as raw JSON
plus the filter fields), gzip of the output lines as archive objects (libdeflate level 6, per record). The ceiling is Σ stages (1 / Σ 1/throughput);
"% of ceiling" = Σ stages ÷ record+gzip. `esdk-decrypt` is our whole ESDK decrypt, shown for reference.

{stage_table(results['shapes'])}

## 4. Whole batch: the Lambda's batch pipeline on 10,000 records × 1 event

`examples/batch_throughput.rs`: `Archiver::process` (parallel decrypt on rayon, filter, gzip NDJSON,
write) on a warm container (data key cached), with an in-memory sink and with moto's S3 on 127.0.0.1.
Peak RSS is the process's VmHWM, which includes the 10,000 input records themselves.

{batch_table(results['batch'])}

Cold start (`bench/cold_start.py`: process start → first `GET /runtime/invocation/next` on a fake Runtime
API, {cold.get('runs', '–')} runs): median {fmt(cold.get('median_ms'), 2)} ms, min {fmt(cold.get('min_ms'), 2)} ms,
p90 {fmt(cold.get('p90_ms'), 2)} ms, max {fmt(cold.get('max_ms'), 2)} ms.

Release binary `das-archiver-lambda` (profile `release`: thin LTO, 1 codegen unit, symbols stripped):
{size_lines}

## 5. KMS economy

KMS `Decrypt` requests counted by moto's request recorder for the same 10,000 records (one data key,
as DAS reuses it): das-archiver (`das replay`, the Lambda's handler with its key cache):
**{fmt(kms.get('das_archiver'))}**; the per-record path of the AWS sample and the Firehose-transform
modules (`bench/reference.py kms`): **{fmt(kms.get('per_record_path'))}**
({fmt(kms.get('per_record_ms'), 3)} ms per record against local moto, KMS round trip included).

## 6. Archive compression: gzip-6 against zstd 1 and 3 (per record)

`compress-<codec>`: the NDJSON lines of 32 different records of a shape compressed as one archive object, as
the Lambda does, with gzip level 6 (libdeflate; `DAS_COMPRESSION=gzip`, the default), zstd level 1, and zstd
level 3; `DAS_COMPRESSION=zstd` writes level 1. Time and object size divided by the 32 records. "ratio" = NDJSON bytes ÷
object bytes.

{compression_table(results.get('compression'))}

## 7. The whole process: `das replay` of one 10,000-record Lambda event, beside Python

`bench/whole_process.py`: `das simulate --to-event-file` writes one Lambda Kinesis event of 10,000 records
(no heartbeats; data key = a wrapping key in hand, so KMS is out of it), and `das replay EVENT --wrapping-key K
--out-dir D` runs the Lambda's batch handler on it as one process (read and parse the event, base64, decrypt,
gunzip, parse, filter, NDJSON, gzip-6 in parallel members or zstd-1, write), median of
{whole_process_runs(results)} runs after a warm-up, timed from outside:
wall time, user + system CPU and peak RSS from the kernel's rusage. Python: the official
`aws-encryption-sdk` doing only base64 + `json.loads` of the Kinesis data, base64 of the message, decrypt,
gunzip and `json.loads` of the payload for the same records, key in hand (single-threaded: CPU = wall).
The 0x0378 target compares the CPU per record with one ECDSA P-384 verify (section 2's stage, same run).

{whole_process_table(results.get('whole_process'))}

## 8. SQL masking per statement

`mask/<size>` (criterion): `mask_sql` (literals → `?`, PostgreSQL dialect) plus the query fingerprint of one
statement, median: the work each event with a statement adds. The whole-process cost is in section 7 (rows
`-mask-off` against the same records masked) and in the summary.

{mask_table()}
"""


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    manifest = load(os.path.join(ROOT, "target", "bench-shapes", "manifest.json"))
    if manifest is None:
        print("report.py: target/bench-shapes/manifest.json is missing: run `cargo bench --bench core` first",
              file=sys.stderr)
        return 1
    kms = load(os.path.join(out, "kms.json"))
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "python_esdk_version": (load(os.path.join(out, "python.json")) or {}).get("esdk_version"),
        "shapes": shape_results(manifest, load(os.path.join(out, "python.json"))),
        "compression": compression_results(load(os.path.join(ROOT, "target", "bench-shapes", "compression.json"))),
        "batch": {
            "memory": load(os.path.join(out, "batch-memory.json")),
            "s3": load(os.path.join(out, "batch-s3.json")),
        },
        "cold_start_ms": load(os.path.join(out, "cold-start.json")),
        "binary_bytes": load(os.path.join(out, "sizes.json")),
        "kms_calls_per_10000_records": kms,
        "whole_process": load(os.path.join(out, "whole-process.json")),
    }
    with open(os.path.join(ROOT, "bench", "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(ROOT, "bench", "results.md"), "w", encoding="utf-8") as f:
        f.write(markdown(results))
    width = max(len(a) for a, _, _ in summary_rows(results))
    print(f"\n{'what':<{width}}  {'measured':>12}  target")
    for what, measured, target in summary_rows(results):
        print(f"{what:<{width}}  {measured:>12}  {target}")
    print("\nfull tables: bench/results.md; cost model: bench/cost.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
