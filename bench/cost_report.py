"""bench/cost.md and the terminal table of bench/cost.py, from the rows bench/cost_model.py prices.

Formatting only: every number shown is computed in cost_model.py or read from the results.
"""

import datetime
import math
import os

from cost_prices import PRICES, PRICES_AS_OF
from cost_model import (
    BASE64_OVERHEAD, FIREHOSE_LAMBDA_ARCH, FIREHOSE_LAMBDA_BUFFER_MB, FIREHOSE_LAMBDA_INTERVAL_S,
    FIREHOSE_LAMBDA_MB, FIREHOSE_S3_BUFFER_BYTES, FIREHOSE_S3_INTERVAL_S, FULL_VCPU_MB, GIB, GZIP_RATIO,
    HOURS_PER_MONTH, KEY_CACHE_TTL_S, KMS_ROUND_TRIP_MS, MIB, NO_WINDOW_POLL_S, OURS_LINES, ROOT, S3_PUT_MS,
    SHARD_RECORDS_PER_S, SUITES, THEIRS_LINES, cpu_scale, firehose_billed_bytes, interpolate,
    per_million_events, per_month, suite_points,
)

# ---------------------------------------------------------------------------------------------------------
# Number formats
# ---------------------------------------------------------------------------------------------------------
def sig3(x):
    """A number to three significant figures, with thousands separators; '–' for None."""
    if x is None:
        return "–"
    if x == 0:
        return "0"
    decimals = 2 - math.floor(math.log10(abs(x)))
    if decimals <= 0:
        return f"{round(x, decimals):,.0f}"
    return f"{x:,.{decimals}f}"


def money(x):
    """Dollars to three significant figures."""
    return "–" if x is None else f"${sig3(x)}"


def num(x):
    """A count or size without trailing noise: integers plainly, others to three significant figures."""
    return f"{x:,.0f}" if x is not None and float(x).is_integer() else sig3(x)


# ---------------------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------------------
def shown(path):
    """A path as the Markdown shows it: relative to the repository when inside it."""
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return path if rel.startswith("..") else rel


def plural(n, word):
    """'1 event', '20 events'."""
    return f"{num(n)} {word}" + ("" if n == 1 else "s")


def price_table():
    """The unit prices, their sources and what was checked."""
    out = ["| item | price (USD) | unit | source | checked against |", "|---|---|---|---|---|"]
    for key, p in PRICES.items():
        out.append(f"| `{key}` | ${p['usd']:.10f}".rstrip("0") + f" | {p['unit']} | {p['source']} | {p['checked']} |")
    return "\n".join(out)


def assumptions(template, args, results):
    """The numbered list of every assumption the tables rest on."""
    found = ", ".join(template.found) or "none (file not found: fallbacks used)"
    kms = results.get("kms_calls_per_10000_records") or {}
    measured = (f"The benchmark measured {num(kms['das_archiver'])} call(s) for 10,000 records sharing one key"
                if kms.get("das_archiver") is not None else "The results hold no KMS call count")
    return "\n".join(f"{i}. {text}" for i, text in enumerate([
        f"Region us-east-1, on-demand list prices, first pricing tier, no free tier (Lambda's 1M requests and "
        f"400,000 GB-s, KMS's 20,000 requests) and no Savings Plans, in both architectures.",
        f"Not counted, because both architectures pay them equally: the Kinesis data stream itself (shard-hours, "
        f"PUT payload units, created and sized by RDS for DAS), S3 storage of the archive (same bytes; see the "
        f"size line below), CloudWatch Logs, data transfer (same Region). Firehose reading the stream uses "
        f"shared-throughput GetRecords (no enhanced fan-out charge). Firehose's optional features (format "
        f"conversion, dynamic partitioning, VPC delivery, decompression) are not included.",
        f"Template defaults read from `{shown(args.template)}` ({found}): MemorySize {template.memory_mb} MB, "
        f"Architecture {template.architecture}, BatchSize {template.batch_size}, MaximumBatchingWindowInSeconds "
        f"{template.window_s:g}, ParallelizationFactor {template.parallelization}. Missing ones fall back to "
        f"512 MB / arm64 / 1000 / 60 s / 1.",
        "Load is steady: one record size (the interpolated one) at a constant rate. Heartbeat records, which DAS "
        "emits every few seconds whatever the load, are left out of both sides (they add a small constant).",
        "Per-record CPU time is single-core time measured on the benchmark machine (`results.json` → `machine`), "
        "interpolated linearly in events between the measured shapes of the same suite (fixed cost + per-event "
        "cost; beyond the largest shape, the last segment is extended). Ours is `ours_gzip_us` (decrypt, decode, "
        "gzip the NDJSON), Python's is `python_us` (aws-encryption-sdk decrypt + decompress + parse + "
        "re-serialise, with KMS mocked out). Record and JSON sizes are interpolated the same way.",
        f"A Lambda below {FULL_VCPU_MB} MB gets memory/{FULL_VCPU_MB} of a vCPU, so CPU-bound time is scaled by "
        f"{FULL_VCPU_MB}/memory ({cpu_scale(template.memory_mb):.3f}× at {template.memory_mb} MB, "
        f"{cpu_scale(FIREHOSE_LAMBDA_MB):.3f}× at {FIREHOSE_LAMBDA_MB} MB); at or above {FULL_VCPU_MB} MB no "
        f"credit is taken for a second vCPU. One Lambda core (arm64 Graviton for (a), x86_64 for (b)) is assumed "
        f"to be about as fast as one core of the benchmark machine. Billed duration is rounded up to 1 ms per "
        f"invocation; GB-s = billed seconds × memory MB / 1024. Cold starts and init time are ignored on both "
        f"sides.",
        f"(a) The stream needs max(--shards={args.shards}, records/s ÷ {SHARD_RECORDS_PER_S}, bytes/s ÷ 1 MiB) "
        f"shards (Kinesis write limits); each shard's event-source mapping batches on its own. Records per "
        f"invocation = min(BatchSize, per-shard records/s × window, 6 MiB ÷ (record bytes × {BASE64_OVERHEAD} "
        f"base64/JSON overhead)); with a 0 s window the ESM is taken to poll each shard every "
        f"{NO_WINDOW_POLL_S:g} s. Invocations/s = records/s ÷ records per invocation.",
        f"(a) Billed duration per invocation = batch CPU time × the memory scale + {S3_PUT_MS:g} ms for the S3 "
        f"PutObject round trip + {KMS_ROUND_TRIP_MS:g} ms per KMS call (amortised). One S3 object per invocation "
        f"(a batch rarely spans an hour boundary, so the date-hour split is ignored).",
        f"(a) KMS: the data key is cached per warm container, DAS rotates data keys rarely, so one Decrypt per "
        f"container per {KEY_CACHE_TTL_S // 60}-minute cache TTL, with one warm container per shard × "
        f"ParallelizationFactor. {measured} (KMS table below).",
        f"(b) Firehose ingestion: every record is billed rounded up to the next 5 KB (5,120 bytes), at the "
        f"Direct PUT / Kinesis-Data-Streams-source price, per GB of 2^30 bytes.",
        f"(b) Transformation Lambda: {FIREHOSE_LAMBDA_MB} MB, {FIREHOSE_LAMBDA_ARCH}. Firehose invokes it "
        f"synchronously with buffers of {args.firehose_lambda_buffer_mb:g} MB or {FIREHOSE_LAMBDA_INTERVAL_S} s, "
        f"whichever fills first ({FIREHOSE_LAMBDA_BUFFER_MB:g} MB / {FIREHOSE_LAMBDA_INTERVAL_S} s is the "
        f"documented default for S3 destinations, range 0.2–3 MB: "
        f"https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html). Billed duration per "
        f"invocation = Σ per record (python_us × {FULL_VCPU_MB}/{FIREHOSE_LAMBDA_MB} + one KMS Decrypt round "
        f"trip of {KMS_ROUND_TRIP_MS:g} ms, in-region, sequential); no other per-invocation overhead is charged "
        f"to (b).",
        "(b) KMS: one Decrypt request per record (the common pattern: the aws-encryption-sdk with a plain KMS "
        "master-key provider and no caching materials manager). At high rates this also consumes the account's "
        "shared KMS request quota.",
        f"(b) S3: Firehose writes one object per destination buffer, {FIREHOSE_S3_BUFFER_BYTES // MIB} MiB of "
        f"transformed (decrypted JSON) output or {FIREHOSE_S3_INTERVAL_S} s, the defaults "
        f"(https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html).",
        f"A month is {HOURS_PER_MONTH} hours. \"Per million events\" counts activity events only.",
    ], start=1))


def summary_table(rows):
    """One line per scenario: shards, batch sizes, $ per million events, ratio and $ per month."""
    out = ["| events/record | records/s | shards | record bytes | (a) records/invocation "
           "| (b) records/invocation | (a) $/M events | (b) $/M events | b/a | (a) $/month | (b) $/month |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, a, b = r.scenario, r.ours, r.theirs
        out.append(
            f"| {num(s.events_per_record)} | {num(s.records_per_s)} | {s.shards} | {num(round(r.profile.record_bytes))} "
            f"| {num(a.records_per_invocation) if a else '–'} | {num(b.records_per_invocation) if b else '–'} "
            f"| {money(r.per_million(a))} | {money(r.per_million(b))} "
            f"| {sig3(r.ratio) + '×' if r.ratio else '–'} "
            f"| {money(per_month(a.total) if a else None)} | {money(per_month(b.total) if b else None)} |")
    return "\n".join(out)


def breakdown_table(rows):
    """$ per million events by line item, for each scenario."""
    head = [f"(a) {n}" for n in OURS_LINES] + [f"(b) {n}" for n in THEIRS_LINES]
    out = ["| events/record | records/s | " + " | ".join(head) + " |",
           "|---:|---:|" + "---:|" * len(head)]
    for r in rows:
        cells = [money(per_million_events(r.ours.lines[n], r.scenario)) if r.ours else "–" for n in OURS_LINES]
        cells += [money(per_million_events(r.theirs.lines[n], r.scenario)) if r.theirs else "–"
                  for n in THEIRS_LINES]
        out.append(f"| {num(r.scenario.events_per_record)} | {num(r.scenario.records_per_s)} | "
                   + " | ".join(cells) + " |")
    return "\n".join(out)


def profile_table(rows):
    """The interpolated record each events-per-record value stands for, per suite."""
    out = ["| suite | events/record | record bytes | Firehose bills | JSON bytes | ours µs (gzip) | Python µs |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    seen = set()
    for r in rows:
        p = r.profile
        if (p.suite, p.events) in seen:
            continue
        seen.add((p.suite, p.events))
        out.append(f"| {p.suite} | {num(p.events)} | {num(round(p.record_bytes))} "
                   f"| {num(firehose_billed_bytes(p.record_bytes))} "
                   f"| {num(round(p.json_bytes)) if p.json_bytes is not None else '–'} "
                   f"| {sig3(p.ours_us)} | {sig3(p.python_us)} |")
    return "\n".join(out)


def kms_table(results):
    """KMS requests per 10,000 records: ours as measured, the per-record path, and their price."""
    kms = results.get("kms_calls_per_10000_records") or {}
    ours, theirs = kms.get("das_archiver"), kms.get("per_record_path", 10000)
    price = PRICES["kms_request"]["usd"]
    return "\n".join([
        "| path | KMS requests per 10,000 records | $ per 10,000 records | $ per million records |",
        "|---|---:|---:|---:|",
        f"| (a) das-archiver (measured: `kms_calls_per_10000_records.das_archiver`) | {num(ours)} "
        f"| {money(ours * price if ours is not None else None)} "
        f"| {money(ours * price * 100 if ours is not None else None)} |",
        f"| (b) one Decrypt per record (`per_record_path`) | {num(theirs)} | {money(theirs * price)} "
        f"| {money(theirs * price * 100)} |",
    ])


def storage_lines(rows):
    """Estimated gzip NDJSON per million events and its S3 Standard storage price, per events/record."""
    out, seen = [], set()
    for r in rows:
        p = r.profile
        if p.json_bytes is None or p.events == 0 or (p.suite, p.events) in seen:
            continue
        seen.add((p.suite, p.events))
        gb = p.json_bytes / p.events * 1e6 / GZIP_RATIO / GIB
        out.append(f"- suite {p.suite}, records of {plural(p.events, 'event')}: ≈ {sig3(gb)} GB of gzip NDJSON per million "
                   f"events, {money(gb * PRICES['s3_storage_gb_month']['usd'])} per month stored in S3 Standard.")
    return "\n".join(out) or "- (no `json_bytes` in the results: not estimated)"


def batch_check(results, rows):
    """One sentence comparing the 10,000-record batch's CPU per record with the shape-interpolated figure."""
    batch = (results.get("batch") or {}).get("s3") or (results.get("batch") or {}).get("memory")
    if not batch or not batch.get("records") or batch.get("cpu_ms") is None:
        return "No batch measurement in the results; nothing to cross-check."
    events = batch.get("events", batch["records"]) / batch["records"]
    measured_us = batch["cpu_ms"] * 1000.0 / batch["records"]
    suite = rows[0].scenario.suite if rows else "0178"
    interpolated = interpolate(suite_points(results, suite, "ours_gzip_us"), events)
    return (f"Cross-check: the 10,000-record batch run ({sig3(events)} events/record, the whole handler including "
            f"the S3 client against a local mock) used {sig3(measured_us)} µs of CPU per record; the shape "
            f"benchmarks interpolate to {sig3(interpolated)} µs for suite {suite}. The model uses the latter, plus "
            f"the fixed {S3_PUT_MS:g} ms per invocation for the real S3 round trip.")


def percent_range(shares):
    """'82–91%', or '65%' when the range is one value."""
    lo, hi = round(100 * min(shares)), round(100 * max(shares))
    return f"{lo}%" if lo == hi else f"{lo}–{hi}%"


def line_shares(costs):
    """(largest line item, its share of the total) of a Costs."""
    name = max(costs.lines, key=costs.lines.get)
    return name, costs.lines[name] / costs.total


def dominates_side(rows, side, label):
    """A sentence on which line item is largest for one side across all scenarios."""
    tops = {}
    for r in rows:
        costs = getattr(r, side)
        if costs is None:
            continue
        name, share = line_shares(costs)
        tops.setdefault(name, []).append(share)
    if not tops:
        return ""
    total = sum(map(len, tops.values()))
    parts = [f"{name} in {len(shares)} of {total} scenarios ({percent_range(shares)} of the total)"
             for name, shares in sorted(tops.items(), key=lambda kv: -len(kv[1]))]
    return f"The largest line of {label} is " + "; ".join(parts) + "."


def dominates_firehose_rest(rows):
    """A sentence on (b) without KMS: ingestion (inflated by the 5 KB rounding) versus the Python Lambda."""
    out, seen = [], set()
    for r in rows:
        p, b = r.profile, r.theirs
        if b is None or p.events in seen:
            continue
        seen.add(p.events)
        rest = b.total - b.lines["KMS"]
        billed = firehose_billed_bytes(p.record_bytes)
        out.append(f"{plural(p.events, 'event')} (~{num(round(p.record_bytes))} B billed as {num(billed)} B, "
                   f"{billed / p.record_bytes:.1f}× the bytes): ingestion {100 * b.lines['Firehose ingestion'] / rest:.0f}%, "
                   f"Python Lambda {100 * b.lines['Lambda duration'] / rest:.0f}%")
    if not out:
        return ""
    s = rows[0].scenario
    return (f"Without KMS, (b)'s remaining cost (suite {s.suite}, {num(s.records_per_s)} records/s) splits: "
            + "; ".join(out) + ".")


def per_invocation_share(costs):
    """Share of (a)'s cost that is paid per invocation: S3 PUT, request, and the PutObject wait in duration."""
    wait = costs.lines["Lambda duration"] * S3_PUT_MS / costs.billed_ms_per_invocation
    return (costs.lines["S3 PUT"] + costs.lines["Lambda requests"] + wait) / costs.total


def dominates_ours(rows):
    """A sentence on (a)'s dearest and cheapest scenarios and how much of each is paid per invocation."""
    priced = [r for r in rows if r.ours is not None]
    if not priced:
        return ""
    lo = min(priced, key=lambda r: r.per_million(r.ours))
    hi = max(priced, key=lambda r: r.per_million(r.ours))

    def where(r):
        return (f"{plural(r.scenario.events_per_record, 'event')}/record, {num(r.scenario.records_per_s)} "
                f"records/s, suite {r.scenario.suite}: {num(r.ours.records_per_invocation)} records/invocation, "
                f"{100 * per_invocation_share(r.ours):.0f}% of it per-invocation cost")
    return (f"(a) is dearest at {money(hi.per_million(hi.ours))}/M events ({where(hi)}) and cheapest at "
            f"{money(lo.per_million(lo.ours))}/M ({where(lo)}); per-invocation cost means S3 PUT, the request and "
            f"the {S3_PUT_MS:g} ms PutObject wait, the rest is per-record CPU time.")


def ratio_extremes(rows):
    """A sentence on where b/a is widest and narrowest."""
    priced = [r for r in rows if r.ratio]
    if not priced:
        return ""
    hi, lo = max(priced, key=lambda r: r.ratio), min(priced, key=lambda r: r.ratio)

    def where(r):
        return (f"{plural(r.scenario.events_per_record, 'event')}/record, {num(r.scenario.records_per_s)} "
                f"records/s, suite {r.scenario.suite}")
    return (f"Overall (b) costs {sig3(lo.ratio)}× ({where(lo)}) to {sig3(hi.ratio)}× ({where(hi)}) as much as (a) "
            f"per event.")


def what_dominates(rows):
    """The 'what dominates' paragraph, computed from the priced rows."""
    first = rows[0].scenario if rows else None
    first_rows = [r for r in rows if first and r.scenario.suite == first.suite
                  and r.scenario.records_per_s == first.records_per_s]
    text = [ratio_extremes(rows),
            dominates_side(rows, "theirs", "(b) Firehose + Python"),
            dominates_firehose_rest(first_rows),
            dominates_side(rows, "ours", "(a) das-archiver"),
            dominates_ours(rows)]
    return " ".join(t for t in text if t)


def missing_notes(rows):
    """Lines naming the suites a side could not be priced for, because the results lack its CPU time."""
    notes = []
    for side, field, label in (("ours", "ours_gzip_us", "(a)"), ("theirs", "python_us", "(b)")):
        suites = sorted({r.scenario.suite for r in rows if getattr(r, side) is None})
        if suites:
            notes.append(f"{label} is not priced for suite {', '.join(suites)}: the results have no `{field}` "
                         f"for it (shown as –).")
    return "\n\n".join(notes)


def markdown(rows, results, template, args):
    """The whole cost.md."""
    machine = results.get("machine") or {}
    suites = sorted({r.scenario.suite for r in rows})
    sections = [
        "# Cost per million DAS events: das-archiver vs Kinesis → Firehose + Python Lambda",
        "",
        "(a) **das-archiver**: Kinesis event-source mapping (free) → this Rust Lambda "
        f"({template.architecture}, {template.memory_mb} MB) → S3 objects of gzip NDJSON.  ",
        "(b) **Firehose + Python**: Kinesis Data Streams → Amazon Data Firehose (the stream as source) with a "
        f"Python data-transformation Lambda ({FIREHOSE_LAMBDA_MB} MB, {FIREHOSE_LAMBDA_ARCH}) that calls KMS "
        "Decrypt once per record and decrypts with the aws-encryption-sdk → S3.",
        "",
        f"Measurements: `{shown(args.results)}` of {results.get('date', '–')} on {machine.get('cpu', '–')} "
        f"({machine.get('cores', '–')} cores). Written by `bench/cost.py` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}. A model, not a bill: every input is below.",
        "",
        "## How to regenerate",
        "",
        "- `make bench` re-measures and rewrites `bench/results.json` (and runs this script at the end).",
        f"- `python3 bench/cost.py` rewrites this file from the current `bench/results.json` and `template.yaml`; "
        f"`--events-per-record N ...`, `--records-per-second R ...`, `--suite`, `--shards` and "
        f"`--firehose-lambda-buffer-mb` change the scenarios.",
        "",
        f"## Unit prices (us-east-1; as of: {PRICES_AS_OF})",
        "",
        price_table(),
        "",
        "The official pages' price tables are rendered by script, so the stored copies searched while writing "
        "this did not show the figures; they were confirmed on the pages in the last column (dated where the "
        "page has a date). They are list prices; check the official pages before quoting them.",
        "",
        "## Assumptions",
        "",
        assumptions(template, args, results),
        "",
        "## The records modelled",
        "",
        profile_table(rows),
    ]
    if missing_notes(rows):
        sections += ["", missing_notes(rows)]
    for suite in suites:
        suite_rows = [r for r in rows if r.scenario.suite == suite]
        sections += ["", f"## {SUITES[suite]}", "", summary_table(suite_rows), "",
                     "$ per million events by line item:", "", breakdown_table(suite_rows)]
    sections += [
        "", "## KMS alone", "", kms_table(results), "",
        "## S3 storage (not in the comparison: both store the same archive)", "", storage_lines(rows),
        "", "Estimate: gzip NDJSON ≈ JSON bytes ÷ 13, a ratio measured on simulated DAS data; real activity may "
        "compress differently.", "",
        "## What dominates", "", what_dominates(rows), "", batch_check(results, rows), "",
    ]
    return "\n".join(sections)


def stdout_table(rows):
    """The compact table printed to the terminal."""
    head = f"{'suite':<5} {'ev/rec':>6} {'rec/s':>6} {'(a) $/M ev':>11} {'(b) $/M ev':>11} {'b/a':>7} " \
           f"{'(a) $/month':>12} {'(b) $/month':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        s, a, b = r.scenario, r.ours, r.theirs
        lines.append(f"{s.suite:<5} {num(s.events_per_record):>6} {num(s.records_per_s):>6} "
                     f"{money(r.per_million(a)):>11} {money(r.per_million(b)):>11} "
                     f"{(sig3(r.ratio) + 'x') if r.ratio else '–':>7} "
                     f"{money(per_month(a.total) if a else None):>12} {money(per_month(b.total) if b else None):>12}")
    return "\n".join(lines)
