"""The cost model of bench/cost.py: its inputs (template.yaml defaults, bench/results.json), the per-record
profile interpolated between measured shapes, and both architectures priced in dollars per second by line item.

No formatting and no output files: bench/cost_report.py turns the rows built here into Markdown.
"""

import dataclasses
import json
import math
import os
import re
import sys

from cost_prices import PRICES

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
