#!/usr/bin/env python3
"""Checks template.yaml's permissions: least privilege, as the README promises.

Parses the template with cfn-lint's CloudFormation YAML loader (it understands !Ref, !Sub, ...) and
exits non-zero naming every violated rule. Run by tests/template.rs in `make test`.
"""

import json
import sys

from cfnlint.decode import decode

errors = []


def check(condition, message):
    if not condition:
        errors.append(message)


def statements(policy):
    found = policy.get("Statement", [])
    return found if isinstance(found, list) else [found]


def flat(value):
    return json.dumps(value, default=str)


def main(path):
    template, matches = decode(path)
    check(template is not None and not matches, f"template does not parse: {matches}")
    resources = template["Resources"]

    fn = resources["ArchiverFunction"]["Properties"]
    check(fn["Runtime"] == "provided.al2023", "function runtime is provided.al2023")
    check(resources["ArchiverFunction"]["Metadata"]["BuildMethod"] == "rust-cargolambda", "BuildMethod rust-cargolambda")
    # A conditional statement (!If) holds its statement in the first branch.
    policies = [s["Fn::If"][1] if isinstance(s, dict) and "Fn::If" in s else s
                for p in fn["Policies"] for s in statements(p)]
    # Allow statements: no wildcard action anywhere, in the function's policies or the key policy.
    allows = [s for s in policies if isinstance(s, dict) and s.get("Effect") == "Allow"]
    allows += [s for s in statements(resources["DasKmsKey"]["Properties"]["KeyPolicy"]) if s.get("Effect") == "Allow"]
    for s in allows:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        check(all("*" not in a for a in actions), f"statement {s.get('Sid')} allows a wildcard action: {actions}")
    def by_sid(sid):
        return next((s for s in policies if s.get("Sid") == sid), None)

    kms = by_sid("DecryptDasDataKeysOfThisDatabaseOnly")
    check(kms is not None and kms["Action"] == "kms:Decrypt", "KMS statement allows exactly kms:Decrypt")
    if kms:
        condition = flat(kms.get("Condition"))
        check("kms:EncryptionContext:aws:rds:dbc-id" in condition and "kms:EncryptionContext:aws:rds:db-id" in condition,
              "KMS Decrypt is conditioned on the DAS encryption context (cluster and instance forms)")
        check('"Ref": "ResourceId"' in condition, "the encryption-context condition is the stack's ResourceId")
        check("*" not in flat(kms["Resource"]), "KMS Decrypt is scoped to the key, not *")
    s3 = by_sid("WriteTheArchiveUnderItsPrefixOnly")
    check(s3 is not None and s3["Action"] == "s3:PutObject", "S3 statement allows exactly s3:PutObject")
    if s3:
        check("${ArchivePrefix}*" in flat(s3["Resource"]), "S3 PutObject is scoped to the archive prefix")
    kinesis = by_sid("ReadTheActivityStream")
    check(kinesis is not None and "aws-rds-das-${ResourceId}" in flat(kinesis["Resource"]), "Kinesis read is scoped to the DAS stream")
    sqs = by_sid("SendExhaustedBatchesToTheFailureQueue")
    check(sqs is not None and sqs["Action"] == "sqs:SendMessage", "SQS statement allows exactly sqs:SendMessage")
    for s in policies:
        resource = flat(s.get("Resource"))
        check('"*"' not in resource, f"statement {s.get('Sid')} has a * resource")

    trigger = fn["Events"]["ActivityStream"]["Properties"]
    check(trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"], "trigger reports batch item failures")
    check("OnFailure" in trigger.get("DestinationConfig", {}), "trigger has an on-failure destination")

    bucket = resources["ArchiveBucket"]["Properties"]
    check(all(bucket["PublicAccessBlockConfiguration"].values()), "bucket blocks public access")
    check(bucket["VersioningConfiguration"]["Status"] == "Enabled", "bucket versioning enabled")
    deny = statements(resources["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"])[0]
    check(deny["Effect"] == "Deny" and "aws:SecureTransport" in flat(deny["Condition"]), "bucket policy denies non-TLS")

    if errors:
        print("template.yaml:\n  " + "\n  ".join(errors))
        sys.exit(1)
    print(f"template.yaml: {len(allows)} allow statements checked, least privilege holds")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
