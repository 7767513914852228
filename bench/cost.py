#!/usr/bin/env python3
"""Cost model, per million Database Activity Streams events, of two ways to archive a DAS Kinesis stream to S3.

  (a) das-archiver: Kinesis event-source mapping (free) -> this Rust Lambda -> S3 objects (gzip NDJSON).
  (b) the usual architecture: Kinesis Data Streams -> Amazon Data Firehose (stream as source) with a Python
      transformation Lambda (1024 MB, x86_64) that calls KMS Decrypt once per record and decrypts with the
      Python aws-encryption-sdk -> S3.

CPU times per record come from bench/results.json (written by bench/report.py during `make bench`); the
Lambda settings come from the defaults in template.yaml. Every other number is an assumption listed in the
Markdown this writes (bench/cost.md by default), next to the public unit prices below.

    python3 bench/cost.py [--results bench/results.json] [--template template.yaml] [--out bench/cost.md]
                          [--events-per-record N ...] [--records-per-second R ...] [--suite 0178|0378|both]
                          [--shards N] [--firehose-lambda-buffer-mb MB]

Python 3.11, standard library only.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import sys

# ---------------------------------------------------------------------------------------------------------
# PUBLIC UNIT PRICES, us-east-1, on-demand, no free tier, no Savings Plans, first pricing tier only.
# ---------------------------------------------------------------------------------------------------------
# The official AWS pricing pages render their price tables dynamically, so the stored copies that could be
# searched while writing this did not show the figures themselves; each figure below was confirmed against
# the (mostly third-party, dated) pages named in "source" and "checked". Re-check before relying on them.
PRICES_AS_OF = "2024 to 2026-06 (dated secondary pages, see each 'checked'; not re-checked on aws.amazon.com)"
PRICES = {
    "lambda_gb_s_arm64": {
        "usd": 0.0000133334, "unit": "per GB-second (Arm, first 7.5 billion GB-s/month)",
        "source": "https://aws.amazon.com/lambda/pricing/",
        "checked": "cloudchipr.com/blog/aws-lambda-pricing (\"Ultimate Guide 2025\", US East N. Virginia): "
                   "Arm first 7.5 billion GB-s $0.0000133334",
    },
    "lambda_gb_s_x86_64": {
        "usd": 0.0000166667, "unit": "per GB-second (x86, first 6 billion GB-s/month)",
        "source": "https://aws.amazon.com/lambda/pricing/",
        "checked": "same page: x86 first 6 billion GB-s $0.0000166667",
    },
    "lambda_request": {
        "usd": 0.20 / 1e6, "unit": "per request ($0.20 per 1M)",
        "source": "https://aws.amazon.com/lambda/pricing/",
        "checked": "same page, and git.mcrn.ar lambda_local_runner docs/lambdas-md/lambda-13-cost.md: $0.20 / 1M "
                   "for both architectures",
    },
    "kms_request": {
        "usd": 0.03 / 1e4, "unit": "per request ($0.03 per 10,000)",
        "source": "https://aws.amazon.com/kms/pricing/",
        "checked": "factualminds.com/blog/aws-kms-pricing-keys-requests-multi-region (2026-06-13, \"us-east-1, "
                   "June 2026\"): $0.03 per 10K requests; the stored aws.amazon.com/kms/pricing/ copy confirms "
                   "the 20,000 free requests/month (not applied here)",
    },
    "s3_put": {
        "usd": 0.005 / 1000, "unit": "per PUT (S3 Standard, $0.005 per 1,000)",
        "source": "https://aws.amazon.com/s3/pricing/",
        "checked": "c3x.dev/blog/s3-request-fees-explained (undated): Standard PUT/COPY/POST/LIST $0.005 per 1,000",
    },
    "s3_storage_gb_month": {
        "usd": 0.023, "unit": "per GB-month (S3 Standard, first 50 TB)",
        "source": "https://aws.amazon.com/s3/pricing/",
        "checked": "cloudburn.io/blog/amazon-s3-pricing (2026-03-13, \"US East (N. Virginia) as of March 2026\"): "
                   "S3 Standard $0.023/GB-month",
    },
    "firehose_ingest_gb": {
        "usd": 0.029, "unit": "per GB ingested, each record rounded up to 5 KB (first 500 TB/month)",
        "source": "https://aws.amazon.com/firehose/pricing/",
        "checked": "stored aws.amazon.com/de/ and /ru/ Firehose pricing pages (undated): \"Direct PUT and KDS as a "
                   "source\" ingestion is tiered, per GB, in 5 KB increments (3 KB bills as 5 KB); the $0.029 "
                   "figure itself only from public READMEs/cost notes (e.g. an AWS sample, 2026: \"Data Firehose: "
                   "$0.029 per GB ingested\"; another: \"$0.029 per GB (first 500 TB/month)\")",
    },
}

# ---------------------------------------------------------------------------------------------------------
# Modelling constants (all stated in the Markdown's assumptions).
# ---------------------------------------------------------------------------------------------------------
TEMPLATE_FALLBACKS = {"MemorySize": 512, "MaximumBatchingWindowInSeconds": 60, "BatchSize": 1000,
                      "Architecture": "arm64", "ParallelizationFactor": 1}
SUITES = {"0178": "Aurora PostgreSQL (suite 0x0178, unsigned)", "0378": "Aurora MySQL (suite 0x0378, signed)"}
GIB = 1024 ** 3                          # "GB" in the price units is taken as 2^30 bytes
MIB = 1024 ** 2
FULL_VCPU_MB = 1769                      # Lambda memory that buys one full vCPU
PAYLOAD_LIMIT_BYTES = 6 * MIB            # Lambda synchronous payload limit, which caps an ESM batch
BASE64_OVERHEAD = 1.37                   # base64 + JSON envelope of a record in the Lambda event
S3_PUT_MS = 40.0                         # one PutObject round trip per invocation of (a)
KMS_ROUND_TRIP_MS = 8.0                  # one in-region KMS Decrypt round trip
KEY_CACHE_TTL_S = 15 * 60                # (a): one KMS call per warm container per TTL
NO_WINDOW_POLL_S = 1.0                   # ESM polls a shard about once a second when the window is 0
SHARD_RECORDS_PER_S = 1000               # Kinesis shard write limits
SHARD_BYTES_PER_S = 1 * MIB
FIREHOSE_INCREMENT_BYTES = 5 * 1024      # ingestion rounds each record up to this
FIREHOSE_LAMBDA_MB = 1024
FIREHOSE_LAMBDA_ARCH = "x86_64"
FIREHOSE_LAMBDA_BUFFER_MB = 1.0          # documented default Lambda buffering hint (range 0.2-3 MB)
FIREHOSE_LAMBDA_INTERVAL_S = 60
FIREHOSE_S3_BUFFER_BYTES = 5 * MIB       # default S3 destination buffering hints
FIREHOSE_S3_INTERVAL_S = 300
HOURS_PER_MONTH = 730
GZIP_RATIO = 13.0                        # gzip NDJSON ~ json_bytes / 13 (simulated data)
DEFAULT_EVENTS = [1, 20, 100]
DEFAULT_RATES = [10, 100, 1000]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS_LINES = ["Lambda duration", "Lambda requests", "S3 PUT", "KMS"]
THEIRS_LINES = ["Firehose ingestion", "Lambda duration", "Lambda requests", "KMS", "S3 PUT"]


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TemplateDefaults:
    """The Lambda and event-source-mapping defaults of template.yaml this model needs."""
    memory_mb: int
    window_s: float
    batch_size: int
    architecture: str
    parallelization: int
    found: tuple  # names of the parameters actually read from the file


@dataclasses.dataclass(frozen=True)
class RecordProfile:
    """One DAS record of a suite with a given number of events: sizes and single-core CPU times (µs)."""
    suite: str
    events: float
    record_bytes: float
    json_bytes: float | None
    ours_us: float | None
    python_us: float | None


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A steady load: records of one suite and size arriving at a fixed rate on a number of shards."""
    suite: str
    events_per_record: float
    records_per_s: float
    shards: int


@dataclasses.dataclass
class Costs:
    """Dollars per second by line item, plus the batch size the architecture ends up with."""
    lines: dict
    records_per_invocation: float
    billed_ms_per_invocation: float

    @property
    def total(self):
        """All line items, $ per second."""
        return sum(self.lines.values())


@dataclasses.dataclass
class Row:
    """One scenario priced both ways."""
    scenario: Scenario
    profile: RecordProfile
    ours: Costs | None
    theirs: Costs | None

    def per_million(self, costs):
        """$ per million events for (a) or (b), or None if it could not be computed."""
        return None if costs is None else per_million_events(costs.total, self.scenario)

    @property
    def ratio(self):
        """(b) / (a), or None."""
        a, b = self.per_million(self.ours), self.per_million(self.theirs)
        return b / a if a and b is not None else None


def parse_args(argv):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=os.path.join(ROOT, "bench", "results.json"), help="bench/report.py output")
    p.add_argument("--template", default=os.path.join(ROOT, "template.yaml"), help="SAM template to read")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "cost.md"), help="Markdown to write")
    p.add_argument("--events-per-record", type=float, nargs="+", default=DEFAULT_EVENTS, metavar="N")
    p.add_argument("--records-per-second", type=float, nargs="+", default=DEFAULT_RATES, metavar="R")
    p.add_argument("--suite", choices=["0178", "0378", "both"], default="both")
    p.add_argument("--shards", type=int, default=1,
                   help="minimum shard count (raised if Kinesis write limits need more); default 1")
    p.add_argument("--firehose-lambda-buffer-mb", type=float, default=FIREHOSE_LAMBDA_BUFFER_MB,
                   help="Firehose transformation buffering hint, 0.2-3 MB (default: the documented 1 MB)")
    args = p.parse_args(argv)
    if any(e <= 0 for e in args.events_per_record) or any(r <= 0 for r in args.records_per_second):
        p.error("events per record and records per second must be positive")
    if args.shards < 1 or not 0.2 <= args.firehose_lambda_buffer_mb <= 3:
        p.error("--shards must be >= 1 and --firehose-lambda-buffer-mb within 0.2-3")
    return args


def read_template_defaults(path):
    """Parameters' Default values from template.yaml by a line scan, with the documented fallbacks."""
    values, found = dict(TEMPLATE_FALLBACKS), []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    in_parameters, current = False, None
    for line in lines:
        if re.match(r"^\S", line):
            in_parameters, current = line.startswith("Parameters:"), None
            continue
        if not in_parameters:
            continue
        name = re.match(r"^  (\w+):\s*$", line)
        if name:
            current = name.group(1)
            continue
        default = re.match(r"^\s{4,}Default:\s*[\"']?([^\"'#\s]+)", line)
        if default and current in values:
            raw = default.group(1)
            values[current] = raw if current == "Architecture" else float(raw)
            found.append(current)
    return TemplateDefaults(memory_mb=int(values["MemorySize"]), window_s=float(values["MaximumBatchingWindowInSeconds"]),
                            batch_size=int(values["BatchSize"]), architecture=str(values["Architecture"]),
                            parallelization=int(values["ParallelizationFactor"]), found=tuple(found))


def load_results(path):
    """bench/results.json as a dict; exits with a message if it is missing or has no shapes."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"cost.py: cannot read {path}: {e} (run `make bench` first)")
    if not results.get("shapes"):
        sys.exit(f"cost.py: {path} has no shapes")
    return results


# ---------------------------------------------------------------------------------------------------------
# Per-record profile: linear in events between the measured shapes
# ---------------------------------------------------------------------------------------------------------
def interpolate(points, x):
    """Piecewise-linear y(x) through (x, y) points, extended along the end segments; None without points."""
    points = sorted(points)
    if len(points) < 2:
        return points[0][1] if points else None
    i = next((i for i in range(1, len(points)) if x <= points[i][0]), len(points) - 1)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    if x1 == x0:
        return y1
    return max(0.0, y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def suite_points(results, suite, field):
    """(events, value) for every shape of a suite that measured `field`."""
    return [(s["events"], s[field]) for s in results["shapes"].values()
            if s.get("suite") == suite and s.get(field) is not None and s.get("events") is not None]


def record_profile(results, suite, events):
    """Sizes and CPU times of a record with `events` events, interpolated from the suite's shapes."""
    def at(field):
        return interpolate(suite_points(results, suite, field), events)
    record_bytes = at("record_bytes")
    if record_bytes is None:
        sys.exit(f"cost.py: no shapes of suite {suite} with record_bytes in the results")
    return RecordProfile(suite=suite, events=events, record_bytes=record_bytes, json_bytes=at("json_bytes"),
                         ours_us=at("ours_gzip_us"), python_us=at("python_us"))


def shards_for(records_per_s, record_bytes, minimum):
    """Shards the stream needs for its write limits (1,000 records/s and 1 MiB/s each), at least `minimum`."""
    needed = max(records_per_s / SHARD_RECORDS_PER_S, records_per_s * record_bytes / SHARD_BYTES_PER_S)
    return max(minimum, math.ceil(needed - 1e-9))


# ---------------------------------------------------------------------------------------------------------
# (a) das-archiver
# ---------------------------------------------------------------------------------------------------------
def ours_records_per_batch(profile, scenario, template):
    """Records per invocation: the ESM fires at the end of the window, at BatchSize, or at the 6 MB payload."""
    per_shard_rate = scenario.records_per_s / (scenario.shards * template.parallelization)
    window = template.window_s if template.window_s > 0 else NO_WINDOW_POLL_S
    payload_cap = math.floor(PAYLOAD_LIMIT_BYTES / (profile.record_bytes * BASE64_OVERHEAD))
    return max(1.0, min(template.batch_size, per_shard_rate * window, payload_cap))


def cpu_scale(memory_mb):
    """Wall time per single-core CPU second at a memory setting (no credit for a second vCPU above 1769 MB)."""
    return FULL_VCPU_MB / memory_mb if memory_mb < FULL_VCPU_MB else 1.0


def ours_costs(profile, scenario, template):
    """$ per second of (a), by line item; None if our CPU time was not measured for this suite."""
    if profile.ours_us is None:
        return None
    batch = ours_records_per_batch(profile, scenario, template)
    invocations_per_s = scenario.records_per_s / batch
    kms_per_s = scenario.shards * template.parallelization / KEY_CACHE_TTL_S
    cpu_ms = batch * profile.ours_us * cpu_scale(template.memory_mb) / 1000.0
    billed_ms = math.ceil(cpu_ms + S3_PUT_MS + KMS_ROUND_TRIP_MS * kms_per_s / invocations_per_s)
    gb_s_per_s = invocations_per_s * billed_ms / 1000.0 * template.memory_mb / 1024.0
    lines = {
        "Lambda duration": gb_s_per_s * PRICES[f"lambda_gb_s_{template.architecture}"]["usd"],
        "Lambda requests": invocations_per_s * PRICES["lambda_request"]["usd"],
        "S3 PUT": invocations_per_s * PRICES["s3_put"]["usd"],
        "KMS": kms_per_s * PRICES["kms_request"]["usd"],
    }
    return Costs(lines=lines, records_per_invocation=batch, billed_ms_per_invocation=billed_ms)


# ---------------------------------------------------------------------------------------------------------
# (b) Kinesis -> Firehose + Python transformation Lambda -> S3
# ---------------------------------------------------------------------------------------------------------
def firehose_billed_bytes(record_bytes):
    """Bytes Firehose bills for one record: rounded up to the next 5 KB."""
    return math.ceil(record_bytes / FIREHOSE_INCREMENT_BYTES) * FIREHOSE_INCREMENT_BYTES


def theirs_records_per_batch(profile, scenario, buffer_mb):
    """Records per transformation invocation: the buffering hint in MB or 60 s, whichever fills first."""
    by_size = math.floor(buffer_mb * MIB / profile.record_bytes)
    return max(1.0, min(by_size, scenario.records_per_s * FIREHOSE_LAMBDA_INTERVAL_S))


def firehose_objects_per_s(profile, scenario):
    """S3 objects Firehose writes per second: one per 5 MiB of transformed output or per 300 s."""
    out_bytes = profile.json_bytes if profile.json_bytes is not None else profile.record_bytes
    return max(1.0 / FIREHOSE_S3_INTERVAL_S, scenario.records_per_s * out_bytes / FIREHOSE_S3_BUFFER_BYTES)


def theirs_costs(profile, scenario, buffer_mb):
    """$ per second of (b), by line item; None if the Python path was not measured for this suite."""
    if profile.python_us is None:
        return None
    batch = theirs_records_per_batch(profile, scenario, buffer_mb)
    invocations_per_s = scenario.records_per_s / batch
    per_record_ms = profile.python_us * cpu_scale(FIREHOSE_LAMBDA_MB) / 1000.0 + KMS_ROUND_TRIP_MS
    billed_ms = math.ceil(batch * per_record_ms)
    gb_s_per_s = invocations_per_s * billed_ms / 1000.0 * FIREHOSE_LAMBDA_MB / 1024.0
    ingested_gb_per_s = scenario.records_per_s * firehose_billed_bytes(profile.record_bytes) / GIB
    lines = {
        "Firehose ingestion": ingested_gb_per_s * PRICES["firehose_ingest_gb"]["usd"],
        "Lambda duration": gb_s_per_s * PRICES[f"lambda_gb_s_{FIREHOSE_LAMBDA_ARCH}"]["usd"],
        "Lambda requests": invocations_per_s * PRICES["lambda_request"]["usd"],
        "KMS": scenario.records_per_s * PRICES["kms_request"]["usd"],
        "S3 PUT": firehose_objects_per_s(profile, scenario) * PRICES["s3_put"]["usd"],
    }
    return Costs(lines=lines, records_per_invocation=batch, billed_ms_per_invocation=billed_ms)


# ---------------------------------------------------------------------------------------------------------
# Scenarios and units
# ---------------------------------------------------------------------------------------------------------
def per_million_events(usd_per_s, scenario):
    """$ per second at this load expressed per million events."""
    return usd_per_s / (scenario.records_per_s * scenario.events_per_record) * 1e6


def per_month(usd_per_s):
    """$ per second expressed per month of 730 hours."""
    return usd_per_s * HOURS_PER_MONTH * 3600


def build_rows(results, template, args):
    """Every suite x events-per-record x records-per-second scenario, priced both ways."""
    suites = ["0178", "0378"] if args.suite == "both" else [args.suite]
    rows = []
    for suite in suites:
        for events in args.events_per_record:
            profile = record_profile(results, suite, events)
            for rate in args.records_per_second:
                scenario = Scenario(suite, events, rate, shards_for(rate, profile.record_bytes, args.shards))
                rows.append(Row(scenario, profile, ours_costs(profile, scenario, template),
                                theirs_costs(profile, scenario, args.firehose_lambda_buffer_mb)))
    return rows


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


def main(argv):
    """Read the inputs, price every scenario, write the Markdown, print the compact table."""
    args = parse_args(argv)
    results = load_results(args.results)
    template = read_template_defaults(args.template)
    if f"lambda_gb_s_{template.architecture}" not in PRICES:
        sys.exit(f"cost.py: no Lambda price for architecture {template.architecture!r}")
    rows = build_rows(results, template, args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(markdown(rows, results, template, args))
    print(stdout_table(rows))
    print(f"\nprices as of {PRICES_AS_OF}; assumptions and breakdown: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
