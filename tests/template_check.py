#!/usr/bin/env python3
"""Checks template.yaml's permissions: least privilege, as the README promises.

Parses the template with cfn-lint's CloudFormation YAML loader (it understands !Ref, !Sub, ...), then
also runs the SAM transform (the one CloudFormation applies at deploy time) and checks what it produces:
SAM attaches managed policies of its own to roles it generates (AWSLambdaKinesisExecutionRole reads every
stream), which only shows after the transform. Exits non-zero naming every violated rule. Run by
tests/it/template.rs in `make test`.
"""

import copy
import json
import os
import sys

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

errors = []


def check(condition, message):
    if not condition:
        errors.append(message)


def statements(policy):
    found = policy.get("Statement", [])
    found = found if isinstance(found, list) else [found]
    # A conditional statement (!If) holds its statement in the first branch.
    return [s["Fn::If"][1] if isinstance(s, dict) and "Fn::If" in s else s for s in found]


def flat(value):
    return json.dumps(value, default=str)


def listed(value):
    return value if isinstance(value, list) else [value]


def role_statements(resources):
    """Every statement of every inline policy of every IAM role or policy resource."""
    found = []
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                found += [(name, s) for s in statements(policy["PolicyDocument"])]
        elif resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            found += [(name, s) for s in statements(props["PolicyDocument"])]
    return found


def check_allows(where, allows):
    for name, s in allows:
        actions = listed(s.get("Action", []))
        check(all("*" not in a for a in actions), f"{where}: {name} statement {s.get('Sid')} allows a wildcard action: {actions}")
        check("NotAction" not in s, f"{where}: {name} statement {s.get('Sid')} uses NotAction")


class NoManagedPolicies:
    """The transform asks for the ARNs of AWS managed policies it may attach; it must not need any."""

    def load(self):
        return {}


def sam_transform(template):
    template = copy.deepcopy(json.loads(flat(template)))
    # The transform wants an S3 location for a local CodeUri; `sam build` rewrites it the same way.
    template["Resources"]["ArchiverFunction"]["Properties"]["CodeUri"] = "s3://bucket/archiver.zip"
    parameters = {"ResourceId": "cluster-ABCDEFGHIJ", "DasKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the transform's AWS::Region; nothing is called
    return transform(template, parameters, NoManagedPolicies())


def main(path):
    template, matches = decode(path)
    check(template is not None and not matches, f"template does not parse: {matches}")
    resources = template["Resources"]

    function = resources["ArchiverFunction"]
    fn = function["Properties"]
    check(fn["Runtime"] == "provided.al2023", "function runtime is provided.al2023")
    check(function["Metadata"]["BuildMethod"] == "rust-cargolambda", "BuildMethod rust-cargolambda")
    check("Policies" not in fn and flat(fn.get("Role")) == flat({"Fn::GetAtt": ["ArchiverRole", "Arn"]}),
          "the function uses the template's own ArchiverRole, so SAM adds no managed policies")
    role = resources.get("ArchiverRole", {}).get("Properties", {})
    check("ManagedPolicyArns" not in role, "ArchiverRole has no managed policies")
    trust = statements(role.get("AssumeRolePolicyDocument", {}))
    check(len(trust) == 1 and flat(trust[0].get("Principal")) == flat({"Service": "lambda.amazonaws.com"}),
          "only Lambda can assume ArchiverRole")

    policies = [s for _, s in role_statements({"ArchiverRole": resources.get("ArchiverRole", {})})]
    # Allow statements: no wildcard action anywhere, in the role's policies or the key policy.
    allows = [("ArchiverRole", s) for s in policies if s.get("Effect") == "Allow"]
    allows += [("DasKmsKey", s) for s in statements(resources["DasKmsKey"]["Properties"]["KeyPolicy"])
               if s.get("Effect") == "Allow"]
    check_allows("template", allows)

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
        check('"*"' not in flat(s.get("Resource")), f"statement {s.get('Sid')} has a * resource")

    trigger = fn["Events"]["ActivityStream"]["Properties"]
    check(trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"], "trigger reports batch item failures")
    check("OnFailure" in trigger.get("DestinationConfig", {}), "trigger has an on-failure destination")

    bucket = resources["ArchiveBucket"]["Properties"]
    check(all(bucket["PublicAccessBlockConfiguration"].values()), "bucket blocks public access")
    check(bucket["VersioningConfiguration"]["Status"] == "Enabled", "bucket versioning enabled")
    deny = statements(resources["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"])[0]
    check(deny["Effect"] == "Deny" and "aws:SecureTransport" in flat(deny["Condition"]), "bucket policy denies non-TLS")

    # What CloudFormation deploys: the SAM transform's output.
    deployed = sam_transform(template)["Resources"]
    for name, resource in deployed.items():
        if resource.get("Type") == "AWS::IAM::Role":
            check(not resource["Properties"].get("ManagedPolicyArns"),
                  f"after the SAM transform, role {name} has managed policies: {resource['Properties'].get('ManagedPolicyArns')}")
    deployed_allows = [(n, s) for n, s in role_statements(deployed) if s.get("Effect") == "Allow"]
    check_allows("after the SAM transform", deployed_allows)
    for name, s in deployed_allows:
        check('"*"' not in flat(s.get("Resource")), f"after the SAM transform, {name} statement {s.get('Sid')} has a * resource")
    roles = [n for n, r in deployed.items() if r.get("Type") == "AWS::IAM::Role"]
    check(roles == ["ArchiverRole"], f"the deployed stack has exactly one role, ArchiverRole: {roles}")
    mappings = [r for r in deployed.values() if r.get("Type") == "AWS::Lambda::EventSourceMapping"]
    check(len(mappings) == 1 and mappings[0]["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
          "the deployed event-source mapping reports batch item failures")

    if errors:
        print("template.yaml:\n  " + "\n  ".join(errors))
        sys.exit(1)
    print(f"template.yaml: {len(allows)} allow statements checked, and {len(deployed_allows)} after the SAM transform;"
          " least privilege holds")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
