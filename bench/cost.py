#!/usr/bin/env python3
"""Cost model, per million Database Activity Streams events, of two ways to archive a DAS Kinesis stream to S3.

  (a) das-archiver: Kinesis event-source mapping (free) -> this Rust Lambda -> S3 objects (gzip NDJSON).
  (b) the usual architecture: Kinesis Data Streams -> Amazon Data Firehose (stream as source) with a Python
      transformation Lambda (1024 MB, x86_64) that calls KMS Decrypt once per record and decrypts with the
      Python aws-encryption-sdk -> S3.

CPU times per record come from bench/results.json (written by bench/report.py during `make bench`); the
Lambda settings come from the defaults in template.yaml. Every other number is an assumption listed in the
Markdown this writes (bench/cost.md by default), next to the public unit prices (bench/cost_prices.py).

    python3 bench/cost.py [--results bench/results.json] [--template template.yaml] [--out bench/cost.md]
                          [--events-per-record N ...] [--records-per-second R ...] [--suite 0178|0378|both]
                          [--shards N] [--firehose-lambda-buffer-mb MB]

The model is split in three modules beside this script: cost_prices.py (the public unit prices and
where each was checked), cost_model.py (inputs, the per-record profile, both architectures priced per
second) and cost_report.py (bench/cost.md and the terminal table). This file only reads the options.

Python 3.11, standard library only.
"""

import argparse
import os
import sys

from cost_prices import PRICES, PRICES_AS_OF
from cost_model import (
    DEFAULT_EVENTS, DEFAULT_RATES, FIREHOSE_LAMBDA_BUFFER_MB, ROOT, build_rows, load_results,
    read_template_defaults,
)
from cost_report import markdown, stdout_table


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
