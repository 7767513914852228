#!/usr/bin/env python3
"""Local-AWS helper for `make run`: the parts of AWS that a deployment provides and we emulate.

Talks to the AWS endpoint in AWS_ENDPOINT_URL (moto's server in `make run`) with boto3.

    local_aws.py setup  --resource-id ID --bucket B             create a KMS key, the DAS stream, the bucket; print the key id
    local_aws.py events --stream S --batch-size N --out-dir D   read the stream from TRIM_HORIZON into Lambda Kinesis
                                                                event files, as an event-source mapping would batch it
    local_aws.py put-garbage --stream S                        put one corrupted record
    local_aws.py show   --bucket B --prefix P [--first N]       list what landed in S3 and print the first events
"""

import argparse
import base64
import gzip
import json
import os
import sys

import boto3


def client(service):
    return boto3.client(service, region_name=os.environ.get("AWS_REGION", "us-east-1"))


def setup(args):
    kms = client("kms")
    key_id = kms.create_key(Description="das-archiver local demo (DAS activity stream key)")["KeyMetadata"]["KeyId"]
    kinesis = client("kinesis")
    stream = f"aws-rds-das-{args.resource_id}"
    kinesis.create_stream(StreamName=stream, ShardCount=args.shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client("s3").create_bucket(Bucket=args.bucket)
    print(key_id)


def lambda_events(kinesis, stream, batch_size):
    """Yields (shard id, Lambda Kinesis event) for every batch of up to `batch_size` records of the stream,
    read from TRIM_HORIZON shard by shard, as an event-source mapping would batch it (also used by
    scripts/smoke.py)."""
    description = kinesis.describe_stream(StreamName=stream)["StreamDescription"]
    arn = description["StreamARN"]
    region = arn.split(":")[3]
    for shard in description["Shards"]:
        shard_id = shard["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            out = kinesis.get_records(ShardIterator=iterator, Limit=batch_size)
            records = out["Records"]
            if not records:
                break
            yield shard_id, {"Records": [{
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/das-archiver",
                "awsRegion": region,
                "eventSourceARN": arn,
            } for r in records]}
            iterator = out.get("NextShardIterator")


def events(args):
    kinesis = client("kinesis")
    os.makedirs(args.out_dir, exist_ok=True)
    count = 0
    files = 0
    shards = set()
    for shard_id, batch in lambda_events(kinesis, args.stream, args.batch_size):
        shards.add(shard_id)
        files += 1
        with open(os.path.join(args.out_dir, f"batch-{files:04d}.json"), "w") as f:
            json.dump(batch, f)
        count += len(batch["Records"])
    print(f"{count} records from {len(shards)} shard(s) in {files} Lambda event(s)", file=sys.stderr)


# Not a DAS record: its ESDK message is not base64, so it is quarantined as a permanent failure.
GARBAGE_RECORD = (b'{"type":"DatabaseActivityMonitoringRecords","version":"1.1",'
                  b'"databaseActivityEvents":"AYAB-corrupted","key":"AQID"}')


def put_garbage(args):
    """One record that is not a DAS record, to show quarantine at work."""
    client("kinesis").put_record(StreamName=args.stream, Data=GARBAGE_RECORD, PartitionKey="corrupted")


def show(args):
    s3 = client("s3")
    paginator = s3.get_paginator("list_objects_v2")
    keys = [o for page in paginator.paginate(Bucket=args.bucket, Prefix=args.prefix) for o in page.get("Contents", [])]
    archived = [o for o in keys if "/quarantine/" not in o["Key"]]
    quarantined = [o for o in keys if "/quarantine/" in o["Key"]]
    print(f"\ns3://{args.bucket}/{args.prefix}: {len(archived)} archive object(s), {len(quarantined)} quarantined record(s)")
    for o in keys:
        print(f"  {o['Key']}  ({o['Size']} bytes)")
    lines = 0
    shown = 0
    for o in archived:
        body = s3.get_object(Bucket=args.bucket, Key=o["Key"])["Body"].read()
        if o["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        for line in body.decode().splitlines():
            lines += 1
            if shown < args.first:
                event = json.loads(line)
                keep = {k: event.get(k) for k in ("logTime", "dbUserName", "class", "command", "objectName", "clusterId")}
                print(f"  event: {json.dumps(keep)}")
                shown += 1
    print(f"  {lines} events archived in total")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--resource-id", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--shards", type=int, default=2)
    p.set_defaults(func=setup)
    p = sub.add_parser("events")
    p.add_argument("--stream", required=True)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=events)
    p = sub.add_parser("put-garbage")
    p.add_argument("--stream", required=True)
    p.set_defaults(func=put_garbage)
    p = sub.add_parser("show")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--first", type=int, default=3)
    p.set_defaults(func=show)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
