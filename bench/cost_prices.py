"""Public unit prices for bench/cost.py, each with its source and what it was checked against.

Data only: no computation, no I/O. Change a price here and re-run `python3 bench/cost.py`.
"""

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
