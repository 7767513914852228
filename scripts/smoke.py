#!/usr/bin/env python3
"""`make smoke`: rehearse a deployment of das-archiver in a real AWS account, without an Aurora cluster,
and clean up after itself.

With the caller's credentials and region it creates a Kinesis stream named like an activity stream
(aws-rds-das-cluster-SMOKE…), two temporary KMS keys whose policy lets the caller generate and decrypt data
keys with that id's DAS encryption context, deploys the stack with that id (`sam build --beta-features`, no
Docker, then `sam deploy`), puts real KMS-encrypted records with `das simulate`, and checks, each within
--timeout: the archive objects and their line counts, an Athena query over the Glue table (--athena), the
`das fleet status` verdict, and two poison records: a corrupt one (quarantined for good: `das redrive` says it
still fails) and one under the second key, which the stack was not told about (quarantined, then archived by
`das redrive` once the configuration names that key). Then it deletes everything it created (unless --keep)
and prints what each step took and an estimate of what it cost.

With --endpoint-url (or AWS_ENDPOINT_URL) it runs against a local AWS server (moto): the steps moto cannot
do are replaced (the function runs under cargo-lambda's Runtime API emulator and the script delivers the
stream's batches to it, as an event-source mapping would) or skipped, and the summary says which and why.
`make test` runs it that way (tests/it/smoke.rs).

It must never touch what it did not create: everything it creates carries the tag `das-archiver-smoke` (the
run id) or a name made from the run id, and --cleanup-only deletes only what carries that tag.

Exit codes: 0 every check passed and everything was cleaned up (or kept with --keep); 1 a check or the
cleanup failed (the summary says which); 2 usage error, no credentials or no region.
"""

import argparse
import contextlib
import gzip
import http.client
import http.server
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import local_aws  # noqa: E402  (the stream-to-Lambda-events reader `make run` uses)

TAG = "das-archiver-smoke"
PREFIX = "activity/"
SAM_MANAGED_STACK = "aws-sam-cli-managed-default"

# Public list prices, us-east-1, read on 2026-12-02; the free tiers are ignored. ESTIMATES, not a bill.
HOURS_PER_MONTH = 730
PRICES = {
    # https://aws.amazon.com/kinesis/data-streams/pricing/ (provisioned mode)
    "kinesis_shard_hour": 0.015,
    "kinesis_put_units_per_million": 0.014,  # one unit = up to 25 KB of a record
    # https://aws.amazon.com/kms/pricing/ ($1/key-month prorated hourly; a key scheduled for deletion is
    # not charged)
    "kms_key_month": 1.0,
    "kms_requests_per_10k": 0.03,
    # https://aws.amazon.com/lambda/pricing/
    "lambda_gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    "lambda_requests_per_million": 0.20,
    # https://aws.amazon.com/s3/pricing/ (S3 Standard requests; storage of a few KB for an hour is nil)
    "s3_put_per_1k": 0.005,
    "s3_get_per_1k": 0.0004,
    # https://aws.amazon.com/athena/pricing/ ($5 per TB scanned, at least 10 MB per query)
    "athena_per_tb": 5.0,
    "athena_min_bytes": 10 * 1024 * 1024,
    # https://aws.amazon.com/cloudwatch/pricing/ (custom metrics and alarms prorated hourly)
    "cloudwatch_metric_month": 0.30,
    "cloudwatch_alarm_month": 0.10,
    # https://aws.amazon.com/cloudformation/pricing/ (no charge for AWS:: resource types)
    "cloudformation": 0.0,
}
# The function's EMF metrics per resource id (src/lambda.rs) and the alarms the stack makes for one id.
EMF_METRICS = 12
ALARMS_FOR_ONE_ID = 8
FUNCTION_MEMORY_GB = 0.5  # the template's MemorySize default


class UsageError(Exception):
    """No credentials, no region, a missing tool: nothing was created."""


class CheckFailed(Exception):
    """The rehearsal found the product not doing its job; the message says what."""


class Skipped(Exception):
    """A step that cannot run in this mode; the message says why."""


@dataclass
class Step:
    name: str
    status: str = "ok"
    seconds: float = 0.0
    usd: float = 0.0
    detail: str = ""


@dataclass
class Created:
    """What this run created, for the cleanup (filled in as it goes)."""

    stream: str | None = None
    stream_created_at: float | None = None
    keys: dict = field(default_factory=dict)  # role -> {"arn", "alias", "created_at"}
    stack: str | None = None
    stack_created_at: float | None = None
    bucket: str | None = None
    function: str | None = None  # local mode: moto's placeholder function
    role: str | None = None  # local mode: its role


def log(message):
    print(f"smoke: {message}", file=sys.stderr, flush=True)


def hours_since(started):
    """Whole hours billed from `started` until now (a started hour counts; conservative for prorating)."""
    return max(1, math.ceil((time.time() - started) / 3600))


class Rehearsal:
    def __init__(self, args):
        self.args = args
        self.local = bool(args.endpoint_url)
        self.run_id = args.run_id or secrets.token_hex(4)
        self.resource_id = args.resource_id or (
            "cluster-SMOKE" + self.run_id.upper() + "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                                                             for _ in range(13)))
        self.stack = f"das-smoke-{self.run_id}"
        self.function = f"{self.stack}-archiver"
        self.created = Created()
        self.steps = []
        self.summary = {"mode": "local" if self.local else "aws", "run_id": self.run_id,
                        "resource_id": self.resource_id, "stack": self.stack, "skipped": [], "checks": []}
        self.work = Path(tempfile.mkdtemp(prefix="das-smoke-"))
        self.processes = []
        self.shim = None
        self.invocations = 0  # local mode: the batches the script delivered

    # ---- plumbing ------------------------------------------------------------------------------------------
    def client(self, service, **config):
        cfg = botocore.config.Config(retries={"max_attempts": 5, "mode": "standard"}, **config)
        if self.local and service == "s3":
            cfg = cfg.merge(botocore.config.Config(s3={"addressing_style": "path"}))
        return self.session.client(service, endpoint_url=self.args.endpoint_url or None, config=cfg)

    def das_env(self, **extra):
        """The environment of `das`: the caller's AWS settings, none of the caller's DAS_* settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAS_")}
        env["AWS_REGION"] = self.region
        if self.local:
            env.update(AWS_ENDPOINT_URL=self.args.endpoint_url, DAS_S3_FORCE_PATH_STYLE="true",
                       AWS_EC2_METADATA_DISABLED="true")
        env.update(extra)
        return env

    def das(self, *args, ok_codes=(0,), **env):
        out = subprocess.run([self.args.das, *args], env=self.das_env(**env), capture_output=True, text=True)
        if out.returncode not in ok_codes:
            raise CheckFailed(f"das {args[0]} {args[1] if len(args) > 1 else ''} exited {out.returncode}: "
                              f"{out.stderr.strip()[-2000:]}")
        return out

    @contextlib.contextmanager
    def step(self, name):
        step = Step(name)
        started = time.monotonic()
        log(f"== {name}")
        try:
            yield step
        except Skipped as why:
            step.status, step.detail = "skipped", str(why)
            self.summary["skipped"].append({"step": name, "why": str(why)})
            log(f"   skipped: {why}")
        except Exception:
            step.status = "failed"
            raise
        finally:
            step.seconds = round(time.monotonic() - started, 1)
            self.steps.append(step)
            if step.status == "ok" and step.detail:
                log(f"   {step.detail}")

    def check(self, what, passed, detail):
        self.summary["checks"].append({"check": what, "passed": bool(passed), "detail": detail})
        if not passed:
            raise CheckFailed(f"{what}: {detail}")

    # ---- steps ---------------------------------------------------------------------------------------------
    def preflight(self):
        with self.step("preflight") as step:
            if self.local:
                for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                    os.environ.setdefault(name, "testing")
            # AWS_REGION first, as the Rust SDK in `das` reads it (boto3 reads AWS_DEFAULT_REGION and profiles).
            self.session = boto3.Session(region_name=self.args.region or os.environ.get("AWS_REGION") or None)
            self.region = self.session.region_name or ("us-east-1" if self.local else None)
            if not self.region:
                raise UsageError("no AWS region: set AWS_REGION (or a profile's region) or give --region")
            self.session = boto3.Session(region_name=self.region)
            if self.session.get_credentials() is None:
                raise UsageError("no AWS credentials: `make smoke` deploys into a real account with the caller's "
                                 "credentials (aws configure, AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/"
                                 "AWS_SECRET_ACCESS_KEY); it is not part of `make test`, which runs it against moto")
            sts = self.client("sts", connect_timeout=5, read_timeout=10)
            try:
                identity = sts.get_caller_identity()
            except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError) as e:
                raise UsageError(f"cannot reach AWS STS in {self.region}: {e}") from e
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                raise UsageError(f"the credentials were refused or could not be loaded: {e}") from e
            self.account = identity["Account"]
            self.partition = identity["Arn"].split(":")[1]
            self.principal = self.key_policy_principal(identity["Arn"])
            self.summary.update(region=self.region, account=self.account)
            step.detail = f"account {self.account}, region {self.region}, caller {self.principal}"

    def key_policy_principal(self, caller_arn):
        """The caller as a key policy principal: an assumed role's session ARN is not one, its role's ARN is
        (with its path, which only IAM knows; a role at path / otherwise)."""
        match = re.match(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/", caller_arn)
        if not match:
            return caller_arn
        partition, account, role = match.groups()
        try:
            return self.client("iam").get_role(RoleName=role)["Role"]["Arn"]
        except botocore.exceptions.ClientError:
            return f"arn:{partition}:iam::{account}:role/{role}"

    def find_tools(self):
        self.venv_bin = REPO / ".venv" / "bin"
        missing = [path for path in (self.args.das,) if not Path(path).exists()]
        if self.local:
            missing += [p for p in (self.args.lambda_binary,) if not Path(p).exists()]
        if missing:
            raise UsageError(f"not built: {', '.join(missing)} (`make build`, or `cargo build --bins`)")
        self.cargo_lambda = shutil.which("cargo-lambda", path=f"{self.venv_bin}:{os.environ.get('PATH', '')}")
        if not self.cargo_lambda:
            raise UsageError("cargo-lambda is not installed: `make venv` puts it in .venv/bin")
        if not self.local and not shutil.which(self.args.sam):
            raise UsageError(f"the AWS SAM CLI ({self.args.sam}) is not installed: "
                             "https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/"
                             "install-sam-cli.html (or pip install aws-sam-cli)")

    def create_stream(self):
        with self.step("kinesis stream") as step:
            kinesis = self.client("kinesis")
            stream = f"aws-rds-das-{self.resource_id}"
            kinesis.create_stream(StreamName=stream, ShardCount=self.args.shards)
            self.created.stream, self.created.stream_created_at = stream, time.time()
            kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
            kinesis.add_tags_to_stream(StreamName=stream, Tags={TAG: self.run_id})
            self.stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
            step.detail = f"{stream}, {self.args.shards} provisioned shard(s)"

    def key_policy(self):
        root = f"arn:{self.partition}:iam::{self.account}:root"
        return json.dumps({"Version": "2012-10-17", "Statement": [
            # Delegation to IAM: the stack's function role gets kms:Decrypt through its own IAM policy
            # (template.yaml, DecryptDasDataKeysOfListedClustersOnly), which works only because of this.
            {"Sid": "AccountAdministersAndGrantsTheKeyThroughIam", "Effect": "Allow", "Principal": {"AWS": root},
             "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy",
                        "kms:ListResourceTags", "kms:TagResource", "kms:UntagResource", "kms:CreateAlias",
                        "kms:DeleteAlias", "kms:EnableKey", "kms:DisableKey", "kms:ListGrants",
                        "kms:RevokeGrant", "kms:UpdateKeyDescription", "kms:ScheduleKeyDeletion",
                        "kms:CancelKeyDeletion"],
             "Resource": "*"},
            # The caller plays the DAS producer (das simulate) and runs das redrive: data keys of this
            # resource id only.
            {"Sid": "TheRehearsalProducesAndReadsThisIdsDataKeys", "Effect": "Allow",
             "Principal": {"AWS": self.principal}, "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
             "Resource": "*",
             "Condition": {"StringEquals": {"kms:EncryptionContext:aws:rds:dbc-id": self.resource_id}}},
        ]})

    def create_keys(self):
        with self.step("kms keys") as step:
            kms = self.client("kms")
            for role in ("stream", "rotated"):
                key = kms.create_key(
                    Policy=self.key_policy(), KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT",
                    Description=f"das-archiver smoke {self.run_id}: temporary DAS key ({role}); scripts/smoke.py "
                                "schedules its deletion",
                    Tags=[{"TagKey": TAG, "TagValue": self.run_id}])["KeyMetadata"]
                alias = f"alias/das-archiver-smoke-{self.run_id}-{role}"
                self.created.keys[role] = {"arn": key["Arn"], "id": key["KeyId"], "alias": None,
                                          "created_at": time.time()}
                kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
                self.created.keys[role]["alias"] = alias
            step.detail = (f"{self.created.keys['stream']['arn']} (the stream's), "
                           f"{self.created.keys['rotated']['arn']} (not given to the stack)")

    def deploy(self):
        with self.step("deploy") as step:
            if self.local:
                self.deploy_locally()
                self.summary["skipped"].append({
                    "step": "sam build + sam deploy",
                    "why": "moto cannot run a SAM template's function: the local step creates the bucket and runs "
                           "the function binary under cargo lambda's Runtime API emulator instead"})
                step.detail = (f"local: bucket {self.created.bucket}; das-archiver-lambda under cargo lambda's "
                               "Runtime API emulator with the template's settings")
                return
            self.sam_build_and_deploy()
            # The template and the function's zip, uploaded by sam deploy; CloudFormation itself is free.
            step.usd = PRICES["cloudformation"] + 4 * PRICES["s3_put_per_1k"] / 1000
            step.detail = f"stack {self.stack}: function {self.function}, bucket {self.created.bucket}"

    def sam_build_and_deploy(self):
        env = dict(os.environ, PATH=f"{self.venv_bin}:{os.environ.get('PATH', '')}", SAM_CLI_TELEMETRY="0")
        build_dir = self.work / "sam-build"
        arch = self.args.architecture
        subprocess.run([self.args.sam, "build", "--beta-features", "--template-file", str(REPO / "template.yaml"),
                        "--build-dir", str(build_dir), "--parameter-overrides", f"Architecture={arch}"],
                       cwd=REPO, env=env, check=True, stdout=sys.stderr)
        overrides = [f"ResourceIds={self.resource_id}", f"DasKmsKeyArn={self.created.keys['stream']['arn']}",
                     f"Architecture={arch}", "StartingPosition=TRIM_HORIZON",
                     # Batches reach the function within seconds instead of the default minute.
                     "MaximumBatchingWindowInSeconds=1", "LogRetentionDays=1"]
        self.created.stack, self.created.stack_created_at = self.stack, time.time()
        subprocess.run([self.args.sam, "deploy", "--template-file", str(build_dir / "template.yaml"),
                        "--stack-name", self.stack, "--region", self.region, "--resolve-s3", "--s3-prefix", self.stack,
                        "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
                        "--parameter-overrides", *overrides, "--tags", f"{TAG}={self.run_id}",
                        "--no-confirm-changeset", "--no-fail-on-empty-changeset"],
                       cwd=REPO, env=env, check=True, stdout=sys.stderr)
        stack = self.client("cloudformation").describe_stacks(StackName=self.stack)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.created.bucket = outputs["ArchiveBucketName"]
        self.function = outputs["ArchiverFunctionName"]
        self.athena_table = outputs["AthenaTable"]

    def deploy_locally(self):
        """What the stack would create, as far as the rehearsal needs it: the archive bucket (versioned, as the
        template makes it), a placeholder function in moto's Lambda (for `das fleet`), and the function's
        binary polling cargo lambda's Runtime API emulator, with the template's environment."""
        s3 = self.client("s3")
        bucket = f"{self.stack}-archive"
        s3.create_bucket(Bucket=bucket)
        self.created.bucket = bucket
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": TAG, "Value": self.run_id}]})
        iam = self.client("iam")
        role = iam.create_role(RoleName=self.function, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        self.created.role = self.function
        self.client("lambda").create_function(
            FunctionName=self.function, Runtime="provided.al2023", Role=role["Role"]["Arn"], Handler="bootstrap",
            Code={"ZipFile": placeholder_zip()}, Tags={TAG: self.run_id})
        self.created.function = self.function
        self.shim = IncorrectKeyShim(self.args.endpoint_url)
        self.start_emulator()

    def start_emulator(self):
        port = free_port()
        self.emulator_port = port
        logs = open(self.work / "emulator.log", "w")
        self.processes.append(subprocess.Popen(
            [self.cargo_lambda, "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
            stdin=subprocess.DEVNULL, stdout=logs, stderr=logs, cwd=REPO))
        wait_for_port(port, 60)
        # The variables cargo-lambda says a function started outside it needs, and the template's settings.
        env = self.das_env(
            AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{port}/.rt", AWS_LAMBDA_FUNCTION_NAME="_",
            AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
            AWS_ENDPOINT_URL_KMS=self.shim.endpoint, DAS_ARCHIVE_BUCKET=self.created.bucket,
            DAS_ARCHIVE_PREFIX=PREFIX, DAS_RESOURCE_IDS=self.resource_id,
            DAS_KMS_KEY_ARN=self.created.keys["stream"]["arn"], DAS_GIVE_UP_AFTER_SECONDS="43200",
            DAS_COMPRESSION="gzip", DAS_SKIP_HEARTBEATS="true")
        self.function_log = self.work / "function.log"
        out = open(self.function_log, "w")
        self.processes.append(subprocess.Popen([self.args.lambda_binary], env=env, stdin=subprocess.DEVNULL,
                                               stdout=out, stderr=out))

    def wait_for_mapping(self):
        with self.step("event-source mapping") as step:
            if self.local:
                raise Skipped("moto's Lambda would run the function in Docker for every record put; the script "
                              "delivers the stream's batches itself (step 'deliver')")
            lam = self.client("lambda")
            deadline = time.monotonic() + self.args.timeout
            while True:
                mappings = lam.list_event_source_mappings(FunctionName=self.function)["EventSourceMappings"]
                ours = [m for m in mappings if m["EventSourceArn"] == self.stream_arn]
                if ours and ours[0]["State"] == "Enabled":
                    step.detail = f"mapping {ours[0]['UUID']} Enabled"
                    return
                if time.monotonic() > deadline:
                    raise CheckFailed(f"the event-source mapping is not Enabled after {self.args.timeout} s: "
                                      f"{[m['State'] for m in ours]}")
                time.sleep(5)

    def simulate(self):
        with self.step("das simulate") as step:
            a = self.args
            self.das("simulate", "--resource-id", self.resource_id, "--kms-key-id", self.created.keys["stream"]["arn"],
                     "--records", str(a.records), "--events-per-record", str(a.events_per_record),
                     "--heartbeat-interval", str(a.heartbeat_interval), "--seed", "1", "--to-stream",
                     self.created.stream)
            heartbeat_records = a.records // a.heartbeat_interval if a.heartbeat_interval else 0
            self.expected_events = (a.records - heartbeat_records) * a.events_per_record
            # A record of 10 events is a few KB: one 25 KB PUT payload unit each; one GenerateDataKey.
            step.usd = (a.records * PRICES["kinesis_put_units_per_million"] / 1e6
                        + PRICES["kms_requests_per_10k"] / 1e4)
            step.detail = (f"{a.records} records ({heartbeat_records} heartbeat-only) of {a.events_per_record} "
                           f"events: {self.expected_events} events to archive")
            self.summary["expected_events"] = self.expected_events

    def put_poison(self):
        with self.step("poison records") as step:
            self.client("kinesis").put_record(StreamName=self.created.stream, Data=local_aws.GARBAGE_RECORD,
                                              PartitionKey="smoke-corrupted")
            # A record whose data key is under the second key, which the stack was not given (as after a restart
            # of the activity stream with a new key, before the stack is updated).
            self.das("simulate", "--resource-id", self.resource_id, "--kms-key-id", self.created.keys["rotated"]["arn"],
                     "--records", "1", "--events-per-record", str(self.args.events_per_record),
                     "--heartbeat-interval", "0", "--seed", "2", "--to-stream", self.created.stream)
            step.usd = 2 * PRICES["kinesis_put_units_per_million"] / 1e6 + PRICES["kms_requests_per_10k"] / 1e4
            step.detail = "one corrupt record, one record under the key the stack does not know"

    def deliver(self):
        with self.step("deliver") as step:
            if not self.local:
                raise Skipped("in AWS the event-source mapping delivers the batches")
            kinesis = self.client("kinesis")
            batches = 0
            for _, event in local_aws.lambda_events(kinesis, self.created.stream, self.args.batch_size):
                response = self.invoke(event)
                if response.get("batchItemFailures"):
                    raise CheckFailed(f"the function asked Kinesis to retry {response['batchItemFailures']}; "
                                      f"its log ends with:\n{tail(self.function_log)}")
                batches += 1
            self.invocations += batches
            step.detail = f"{batches} batch(es) of up to {self.args.batch_size} records through the function binary"

    def invoke(self, event):
        """The emulator's Lambda Invoke API (what `cargo lambda invoke` calls)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.emulator_port}/2015-03-31/functions/_/invocations",
            data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def wait_for_archive(self):
        with self.step("archive") as step:
            state = self.poll(lambda s: s["lines"] >= self.expected_events and s["quarantined"] >= 2,
                              "the archive lines and 2 quarantine documents")
            self.check("every simulated event archived once", state["distinct_events"] == self.expected_events,
                       f"{state['distinct_events']} distinct events archived, {self.expected_events} simulated "
                       f"({state['lines']} lines)")
            self.check("object metadata counts the object's lines", not state["metadata_mismatches"],
                       f"das-event-count differs from the lines in {state['metadata_mismatches']}")
            self.check("the two poison records quarantined", state["quarantined"] == 2,
                       f"{state['quarantined']} quarantine documents: {state['reasons']}")
            self.summary["archive"] = {k: state[k] for k in ("objects", "lines", "distinct_events", "per_object")}
            self.summary["quarantined"] = state["quarantined"]
            self.summary["quarantine_reasons"] = state["reasons"]
            step.usd = self.lambda_usd(state["objects"]) + (state["objects"] + 2) * PRICES["s3_put_per_1k"] / 1000
            step.detail = (f"{state['objects']} object(s), {state['lines']} lines; {state['quarantined']} "
                           f"quarantined: {'; '.join(state['reasons'])}")

    def lambda_usd(self, objects):
        """Invocations are not counted in AWS: about one per object written, each billed at most 1 s."""
        invocations = max(self.invocations, objects + 1)
        gb_s = PRICES["lambda_gb_second"][self.args.architecture]
        return invocations * (PRICES["lambda_requests_per_million"] / 1e6 + FUNCTION_MEMORY_GB * gb_s)

    def poll(self, done, what):
        deadline = time.monotonic() + self.args.timeout
        cache = {}
        while True:
            state = self.archive_state(cache)
            if done(state):
                return state
            if time.monotonic() > deadline:
                raise CheckFailed(f"no {what} after {self.args.timeout} s: {state['lines']} lines of "
                                  f"{self.expected_events}, {state['quarantined']} quarantine documents")
            time.sleep(0.5 if self.local else 5)

    def archive_state(self, cache):
        """Every archive object of the id (read once each) and every quarantine document."""
        s3 = self.client("s3")
        bucket = self.created.bucket
        state = {"objects": 0, "lines": 0, "per_object": {}, "metadata_mismatches": [], "quarantined": 0,
                 "reasons": []}
        events = set()
        for key in list_keys(s3, bucket, f"{PREFIX}{self.resource_id}/"):
            if key not in cache:
                obj = s3.get_object(Bucket=bucket, Key=key)
                body = obj["Body"].read()
                text = gzip.decompress(body) if key.endswith(".gz") else body
                lines = [json.loads(line) for line in text.decode().splitlines()]
                cache[key] = (lines, obj.get("Metadata", {}).get("das-event-count"))
            lines, counted = cache[key]
            state["objects"] += 1
            state["lines"] += len(lines)
            state["per_object"][key] = len(lines)
            if counted is None or int(counted) != len(lines):
                state["metadata_mismatches"].append(key)
            events.update((e.get("kinesisShardId"), e.get("kinesisSequenceNumber"), e.get("eventIndex"))
                          for e in lines)
        state["distinct_events"] = len(events)
        for key in list_keys(s3, bucket, f"{PREFIX}quarantine/{self.resource_id}/"):
            doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            state["quarantined"] += 1
            # Quarantine reasons never quote the record (README, Security): safe to print.
            state["reasons"].append(doc.get("error", "?")[:400])
        return state

    def athena(self):
        with self.step("athena") as step:
            if self.local:
                raise Skipped("moto's Athena runs no query over S3")
            if not self.args.athena:
                raise Skipped("not asked for (--athena)")
            athena = self.client("athena")
            query = athena.start_query_execution(
                QueryString=f"SELECT count(*) FROM {self.athena_table} WHERE resource_id = '{self.resource_id}'",
                WorkGroup=self.args.athena_workgroup,
                ResultConfiguration={"OutputLocation": f"s3://{self.created.bucket}/athena-results/"})
            qid = query["QueryExecutionId"]
            deadline = time.monotonic() + self.args.timeout
            while True:
                execution = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
                status = execution["Status"]["State"]
                if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                if time.monotonic() > deadline:
                    raise CheckFailed(f"the Athena query is still {status} after {self.args.timeout} s")
                time.sleep(2)
            if status != "SUCCEEDED":
                raise CheckFailed(f"the Athena query {status}: {execution['Status'].get('StateChangeReason')}")
            rows = athena.get_query_results(QueryExecutionId=qid)["ResultSet"]["Rows"]
            count = int(rows[1]["Data"][0]["VarCharValue"])
            scanned = execution.get("Statistics", {}).get("DataScannedInBytes", 0)
            step.usd = max(scanned, PRICES["athena_min_bytes"]) / 1e12 * PRICES["athena_per_tb"]
            self.summary["athena"] = {"count": count, "scanned_bytes": scanned}
            lines = self.summary["archive"]["lines"]
            self.check("Athena reads every archived line", count == lines, f"count(*) = {count}, {lines} lines")
            step.detail = f"count(*) = {count} over {self.athena_table}, {scanned} bytes scanned"

    def fleet(self):
        with self.step("das fleet status") as step:
            bucket = self.created.bucket
            if self.local:
                # Attached only now: moto's Lambda would try to run the function for each record put.
                attach = self.das("fleet", "attach", "--resource-id", self.resource_id, "--function", self.function,
                                  "--bucket", bucket, ok_codes=(0, 1))
                if attach.returncode and "no DB cluster or instance" not in attach.stderr:
                    raise CheckFailed(f"das fleet attach failed: {attach.stderr.strip()[-2000:]}")
                if attach.returncode:
                    raise Skipped("no RDS database has this id here (moto's RDS has no activity-stream fields; the "
                                  "test serves one through AWS_ENDPOINT_URL_RDS)")
            out = self.das("fleet", "status", "--json", "--function", self.function, "--bucket", bucket)
            rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
            ours = [r for r in rows if r.get("resource_id") == self.resource_id]
            if not ours:
                self.summary["fleet"] = {"verdict": None, "databases_listed": len(rows)}
                raise Skipped("fleet status starts from RDS, and no database has this id (there is no Aurora "
                              "cluster in a rehearsal)")
            self.summary["fleet"] = ours[0]
            self.check("fleet status says ok", ours[0]["verdict"] == "ok", json.dumps(ours[0]))
            step.usd = 4 * PRICES["s3_put_per_1k"] / 1000  # LIST requests are priced as PUTs
            step.detail = f"verdict {ours[0]['verdict']}, mapping {ours[0]['mapping_state']}"

    def redrive(self):
        with self.step("das redrive") as step:
            keys = ",".join(k["arn"] for k in self.created.keys.values())
            # The fix: the configuration now names both keys (as a stack update with both in DasKmsKeyArn would).
            # `das redrive` runs with the deployed function's settings unless told otherwise, and neither the
            # emulated function ("_") nor the stack has the fix yet: --use-env applies it explicitly, with the
            # function's other settings.
            out = self.das("redrive", "--use-env", "--bucket", self.created.bucket, "--prefix", PREFIX,
                           ok_codes=(0, 1), DAS_KMS_KEY_ARN=keys, DAS_RESOURCE_IDS=self.resource_id,
                           DAS_COMPRESSION="gzip", DAS_SKIP_HEARTBEATS="true")
            result = json.loads(out.stdout)
            result["exit_code"] = out.returncode
            self.summary["redrive"] = result
            m = self.args.events_per_record
            self.check("redrive archives the record under the other key and keeps the corrupt one",
                       (result["redriven"], result["still_failing"], result["events_archived"]) == (1, 1, m),
                       json.dumps(result))
            state = self.archive_state({})
            self.summary["archive_after_redrive"] = {"lines": state["lines"], "quarantined": state["quarantined"]}
            self.check("the redriven events are archived", state["distinct_events"] == self.expected_events + m,
                       f"{state['distinct_events']} distinct events, {self.expected_events + m} expected")
            self.check("only the corrupt record stays quarantined", state["quarantined"] == 1, str(state["reasons"]))
            step.usd = (4 * PRICES["s3_put_per_1k"] + 4 * PRICES["s3_get_per_1k"]) / 1000 \
                + PRICES["kms_requests_per_10k"] / 1e4
            step.detail = (f"redriven 1 ({m} events archived); the corrupt record still fails and keeps its "
                           "document (exit 1 by design)")

    # ---- cleanup -------------------------------------------------------------------------------------------
    def cleanup(self):
        with self.step("cleanup") as step:
            for process in reversed(self.processes):
                process.kill()
                process.wait()
            if self.shim:
                self.shim.close()
            cleaner = Cleaner(self)
            cleaner.delete_created(self.created)
            left = cleaner.left_over(self.created)
            self.summary["cleanup"] = {"done": not cleaner.errors and not left, "errors": cleaner.errors,
                                       "left": left}
            if cleaner.errors or left:
                raise CheckFailed(f"cleanup incomplete: {cleaner.errors + left}; run again with --cleanup-only "
                                  f"--run-id {self.run_id}")
            step.detail = "deleted: " + ", ".join(cleaner.deleted)

    def costs(self):
        """The resources billed by the hour, added to the step that created them, once their life is known."""
        c = self.created
        by_name = {s.name: s for s in self.steps}
        if c.stream_created_at and "kinesis stream" in by_name:
            by_name["kinesis stream"].usd += (self.args.shards * hours_since(c.stream_created_at)
                                              * PRICES["kinesis_shard_hour"])
        if "kms keys" in by_name:
            by_name["kms keys"].usd += sum(hours_since(k["created_at"]) * PRICES["kms_key_month"] / HOURS_PER_MONTH
                                           for k in c.keys.values())
        if "deploy" in by_name and c.stack_created_at:
            hours = hours_since(c.stack_created_at)
            by_name["deploy"].usd += hours * (ALARMS_FOR_ONE_ID * PRICES["cloudwatch_alarm_month"]
                                              + EMF_METRICS * PRICES["cloudwatch_metric_month"]) / HOURS_PER_MONTH


class Cleaner:
    """Deletes what a run created (or, with --cleanup-only, what carries the tag), one resource at a time:
    a failure is noted and the rest goes on."""

    def __init__(self, rehearsal):
        self.r = rehearsal
        self.errors = []
        self.deleted = []

    def attempt(self, what, action):
        try:
            action()
            self.deleted.append(what)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the cleanup
            self.errors.append(f"{what}: {e}")
            log(f"   could not delete {what}: {e}")

    def delete_created(self, c):
        if c.stack:
            # A stack that failed to deploy has no outputs, but may have made the bucket it keeps.
            c.bucket = c.bucket or self.stack_bucket(c.stack)
            self.attempt(f"stack {c.stack}", lambda: self.delete_stack(c.stack))
            self.attempt(f"SAM artifacts s3://…/{c.stack}/", lambda: self.delete_sam_artifacts(c.stack))
        if c.function:
            self.attempt(f"function {c.function}", lambda: self.delete_function(c.function))
        if c.role:
            self.attempt(f"role {c.role}", lambda: self.r.client("iam").delete_role(RoleName=c.role))
        if c.bucket:
            self.attempt(f"bucket {c.bucket}", lambda: self.delete_bucket(c.bucket))
        if c.stream:
            self.attempt(f"stream {c.stream}", lambda: self.delete_stream(c.stream))
        for key in c.keys.values():
            self.attempt(f"key {key['arn']} (deletion in 7 days)", lambda key=key: self.delete_key(key["id"], key["alias"]))

    def stack_bucket(self, stack):
        try:
            return self.r.client("cloudformation").describe_stack_resource(
                StackName=stack, LogicalResourceId="ArchiveBucket")["StackResourceDetail"]["PhysicalResourceId"]
        except (botocore.exceptions.ClientError, KeyError):
            return None

    def delete_stack(self, stack):
        cfn = self.r.client("cloudformation")
        cfn.delete_stack(StackName=stack)
        delay = 10
        cfn.get_waiter("stack_delete_complete").wait(
            StackName=stack, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, self.r.args.timeout // delay)})

    def delete_sam_artifacts(self, stack):
        """What `sam deploy --resolve-s3 --s3-prefix <stack>` uploaded; SAM's own managed stack and bucket,
        shared by every `sam deploy` of the account, stay."""
        try:
            stacks = self.r.client("cloudformation").describe_stacks(StackName=SAM_MANAGED_STACK)["Stacks"]
        except botocore.exceptions.ClientError:
            return  # sam deploy never got as far as making it
        outputs = stacks[0].get("Outputs", [])
        bucket = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "SourceBucket")
        delete_versions(self.r.client("s3"), bucket, f"{stack}/")

    def delete_function(self, function):
        lam = self.r.client("lambda")
        for mapping in lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]:
            lam.delete_event_source_mapping(UUID=mapping["UUID"])
        lam.delete_function(FunctionName=function)

    def delete_bucket(self, bucket):
        """The stack keeps its bucket (DeletionPolicy: Retain), versioned: every version and delete marker goes
        first."""
        s3 = self.r.client("s3")
        delete_versions(s3, bucket, "")
        s3.delete_bucket(Bucket=bucket)

    def delete_stream(self, stream):
        self.r.client("kinesis").delete_stream(StreamName=stream, EnforceConsumerDeletion=True)

    def delete_key(self, key_id, alias):
        """Deletion scheduled after 7 days, KMS's minimum (not billed meanwhile). By key id: moto 5.2 fails on
        an ARN here."""
        kms = self.r.client("kms")
        if alias:
            kms.delete_alias(AliasName=alias)
        if kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "PendingDeletion":
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    def left_over(self, c):
        """What still exists after the cleanup (a stream being deleted and keys pending deletion do not)."""
        left = []
        if c.stack:
            try:
                status = self.r.client("cloudformation").describe_stacks(StackName=c.stack)["Stacks"][0]["StackStatus"]
                if status != "DELETE_COMPLETE":
                    left.append(f"stack {c.stack} ({status})")
            except botocore.exceptions.ClientError:
                pass
        if c.bucket and bucket_exists(self.r.client("s3"), c.bucket):
            left.append(f"bucket {c.bucket}")
        if c.stream:
            try:
                status = self.r.client("kinesis").describe_stream_summary(
                    StreamName=c.stream)["StreamDescriptionSummary"]["StreamStatus"]
                if status != "DELETING":
                    left.append(f"stream {c.stream} ({status})")
            except botocore.exceptions.ClientError:
                pass
        for key in c.keys.values():
            state = self.r.client("kms").describe_key(KeyId=key["arn"])["KeyMetadata"]["KeyState"]
            if state != "PendingDeletion":
                left.append(f"key {key['arn']} ({state})")
        if c.function:
            try:
                self.r.client("lambda").get_function(FunctionName=c.function)
                left.append(f"function {c.function}")
            except botocore.exceptions.ClientError:
                pass
        return left

    def sweep(self, run_id):
        """--cleanup-only: everything tagged by a smoke run (that run only with --run-id)."""
        def ours(tags):
            return TAG in tags and (run_id is None or tags[TAG] == run_id)

        cfn = self.r.client("cloudformation")
        for page in cfn.get_paginator("describe_stacks").paginate():
            for stack in page["Stacks"]:
                if ours({t["Key"]: t["Value"] for t in stack.get("Tags", [])}):
                    self.attempt(f"stack {stack['StackName']}", lambda s=stack["StackName"]: self.delete_stack(s))
                    self.attempt(f"SAM artifacts of {stack['StackName']}",
                                 lambda s=stack["StackName"]: self.delete_sam_artifacts(s))
        s3 = self.r.client("s3")
        for bucket in s3.list_buckets().get("Buckets", []):
            if bucket["Name"].startswith("das-smoke-") and ours(bucket_tags(s3, bucket["Name"])):
                self.attempt(f"bucket {bucket['Name']}", lambda b=bucket["Name"]: self.delete_bucket(b))
        kinesis = self.r.client("kinesis")
        for page in kinesis.get_paginator("list_streams").paginate():
            for name in page["StreamNames"]:
                if name.startswith("aws-rds-das-"):
                    tags = {t["Key"]: t["Value"] for t in kinesis.list_tags_for_stream(StreamName=name)["Tags"]}
                    if ours(tags):
                        self.attempt(f"stream {name}", lambda n=name: self.delete_stream(n))
        kms = self.r.client("kms")
        prefix = "alias/das-archiver-smoke-" + (f"{run_id}-" if run_id else "")
        for page in kms.get_paginator("list_aliases").paginate():
            for alias in page["Aliases"]:
                if alias["AliasName"].startswith(prefix) and "TargetKeyId" in alias:
                    self.attempt(f"key of {alias['AliasName']}",
                                 lambda a=alias: self.delete_key(a["TargetKeyId"], a["AliasName"]))
        if self.r.local:
            lam = self.r.client("lambda")
            for function in lam.list_functions()["Functions"]:
                name = function["FunctionName"]
                if name.startswith("das-smoke-") and ours(lam.list_tags(Resource=function["FunctionArn"])["Tags"]):
                    self.attempt(f"function {name}", lambda n=name: self.delete_function(n))
                    self.attempt(f"role {name}", lambda n=name: self.r.client("iam").delete_role(RoleName=n))


class IncorrectKeyShim:
    """Local mode only: a proxy in front of moto's KMS for the function, answering what KMS answers where moto
    differs. A Decrypt whose KeyId does not name the key of the ciphertext gets IncorrectKeyException from KMS
    (https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html), AccessDeniedException from moto
    5.2; the function quarantines the first and retries the second, so the rehearsal's poison record would loop
    locally. Every other request and answer passes unchanged."""

    def __init__(self, upstream):
        target = urllib.parse.urlsplit(upstream)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request("POST", self.path, body=body, headers=headers)
                response = connection.getresponse()
                status, payload = response.status, response.read()
                reply_headers = [(k, v) for k, v in response.getheaders()
                                 if k.lower() not in ("content-length", "connection", "transfer-encoding")]
                if self.is_key_mismatch(status, body, payload):
                    payload = json.dumps({"__type": "IncorrectKeyException", "message": "The key ID in the request "
                                          "does not identify a KMS key that can perform this operation."}).encode()
                    reply_headers = [(k, "IncorrectKeyException" if k.lower() == "x-amzn-errortype" else v)
                                     for k, v in reply_headers]
                self.send_response(status)
                for k, v in reply_headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def is_key_mismatch(self, status, body, payload):
                if status != 400 or self.headers.get("X-Amz-Target") != "TrentService.Decrypt":
                    return False
                try:
                    return "KeyId" in json.loads(body) and json.loads(payload).get("__type") == "AccessDeniedException"
                except ValueError:
                    return False

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- small helpers -----------------------------------------------------------------------------------------
def list_keys(s3, bucket, prefix):
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def delete_versions(s3, bucket, prefix):
    """Every version and delete marker under the prefix, 1,000 per DeleteObjects call."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                  for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(doomed), 1000):
            out = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i:i + 1000], "Quiet": True})
            if out.get("Errors"):
                raise RuntimeError(f"DeleteObjects refused {len(out['Errors'])} versions: {out['Errors'][0]}")


def bucket_exists(s3, bucket):
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except botocore.exceptions.ClientError:
        return False


def bucket_tags(s3, bucket):
    try:
        return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}
    except botocore.exceptions.ClientError:
        return {}


def placeholder_zip():
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# placeholder: the rehearsal runs the real binary locally\n")
    return buffer.getvalue()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise CheckFailed(f"nothing listens on 127.0.0.1:{port} after {seconds} s")
            time.sleep(0.1)


def tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def print_table(steps, out, local):
    print(f"\n{'step':<22}{'status':<9}{'seconds':>9}{'est. USD':>12}", file=out)
    for s in steps:
        print(f"{s.name:<22}{s.status:<9}{s.seconds:>9.1f}{s.usd:>12.5f}", file=out)
    total = sum(s.usd for s in steps)
    print(f"{'total':<22}{'':<9}{sum(s.seconds for s in steps):>9.1f}{total:>12.5f}", file=out)
    print("USD: an ESTIMATE from us-east-1 list prices (free tiers ignored), not a bill; see PRICES in "
          "scripts/smoke.py for the pages.", file=out)
    if local:
        print("Local run: nothing was billed; the figures are what these steps would cost in AWS (the stack's "
              "alarms and metrics excepted: there was no stack).", file=out)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
                   help="a local AWS server (moto): run the local steps only (default: AWS_ENDPOINT_URL)")
    p.add_argument("--region", help="default: the SDK's (AWS_REGION, the profile); us-east-1 locally")
    p.add_argument("--timeout", type=int, default=600, help="seconds each wait may take (default 600)")
    p.add_argument("--keep", action="store_true", help="keep everything created (delete later with --cleanup-only)")
    p.add_argument("--cleanup-only", action="store_true",
                   help="delete what earlier runs left (tag das-archiver-smoke), all runs or --run-id's")
    p.add_argument("--run-id", help="with --cleanup-only: only this run; otherwise: name this run")
    p.add_argument("--resource-id", help="the rehearsal's cluster id (default: cluster-SMOKE<random>)")
    p.add_argument("--athena", action="store_true", help="also count the archive's lines with Athena")
    p.add_argument("--athena-workgroup", default="primary")
    p.add_argument("--records", type=int, default=200)
    p.add_argument("--events-per-record", type=int, default=10)
    p.add_argument("--heartbeat-interval", type=int, default=10, help="every Nth record is heartbeat-only")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=100, help="local mode: records per Lambda batch")
    p.add_argument("--architecture", choices=["arm64", "x86_64"], default="arm64")
    p.add_argument("--das", default=str(REPO / "target" / "release" / "das"))
    p.add_argument("--lambda-binary", default=str(REPO / "target" / "release" / "das-archiver-lambda"),
                   help="local mode: the function binary")
    p.add_argument("--sam", default="sam")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.add_argument("--check-credentials", action="store_true", help="only check credentials and region, then exit")
    args = p.parse_args(argv)
    if args.resource_id and not re.fullmatch(r"cluster-[A-Za-z0-9]+", args.resource_id):
        p.error("--resource-id must be cluster-<letters and digits>")
    if args.run_id and not re.fullmatch(r"[a-z0-9]{1,16}", args.run_id):
        p.error("--run-id is lower-case letters and digits")
    return args


def run(r):
    """The rehearsal; the cleanup runs whatever happened (unless --keep)."""
    failure = None
    try:
        r.preflight()
        if r.args.check_credentials:
            return 0
        if r.args.cleanup_only:
            cleaner = Cleaner(r)
            with r.step("cleanup"):
                cleaner.sweep(r.args.run_id)
            r.summary["cleanup"] = {"done": not cleaner.errors, "errors": cleaner.errors, "deleted": cleaner.deleted}
            return 1 if cleaner.errors else 0
        r.find_tools()
        for step in (r.create_stream, r.create_keys, r.deploy, r.wait_for_mapping, r.simulate, r.put_poison,
                     r.deliver, r.wait_for_archive, r.athena, r.redrive, r.fleet):
            step()
    except UsageError:
        raise
    except (CheckFailed, subprocess.CalledProcessError, botocore.exceptions.BotoCoreError,
            botocore.exceptions.ClientError) as e:
        failure = str(e)
        log(f"FAILED: {failure}")
    except Exception as e:  # noqa: BLE001 - a bug here must not skip the cleanup, nor hide the traceback
        failure = f"{type(e).__name__}: {e}"
        log(f"FAILED (a bug in the script?): {traceback.format_exc()}")
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        if not r.args.check_credentials and not r.args.cleanup_only and any(vars(r.created).values()):
            if r.args.keep:
                r.summary["cleanup"] = {"done": False, "kept": True}
                log(f"kept (--keep): stack {r.created.stack}, bucket {r.created.bucket}, stream {r.created.stream}, "
                    f"keys {[k['arn'] for k in r.created.keys.values()]}; they bill by the hour until deleted "
                    f"(the table counts the first hour): delete them with "
                    f"`make smoke ARGS='--cleanup-only --run-id {r.run_id}'`")
            else:
                try:
                    r.cleanup()
                except (CheckFailed, botocore.exceptions.BotoCoreError) as e:
                    failure = failure or str(e)
        shutil.rmtree(r.work, ignore_errors=True)
    r.summary["failure"] = failure
    return 1 if failure else 0


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    r = Rehearsal(args)
    try:
        code = run(r)
    except UsageError as e:
        print(f"smoke: {e}", file=sys.stderr)
        return 2
    if args.check_credentials:
        return code
    r.costs()
    r.summary["steps"] = [vars(s) | {"usd": round(s.usd, 6)} for s in r.steps]
    r.summary["estimated_usd_total"] = round(sum(s.usd for s in r.steps), 4)
    print_table(r.steps, sys.stderr if args.json else sys.stdout, r.local)
    for skipped in r.summary["skipped"]:
        log(f"skipped {skipped['step']}: {skipped['why']}")
    if args.json:
        print(json.dumps(r.summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
