#!/usr/bin/env python3
"""Checks what template.yaml and source-account.yaml deploy: least privilege, one mapping and one set of alarms
per stream, finite trigger defaults, parameters that refuse what AWS would refuse.

The template is read as CloudFormation reads it: cfn-lint's YAML loader (it understands !Ref, !Sub, ...), then
the AWS::LanguageExtensions transform with cfn-lint's own implementation (it expands Fn::ForEach; the
collections come from the parameters given here), then the SAM transform (the one CloudFormation applies next:
SAM attaches managed policies of its own to roles it generates, which only shows after it). What is left is
resolved with concrete parameter values: conditions evaluated, resources whose condition is false dropped,
Fn::If / Fn::Sub / Fn::Join / Fn::Split / Fn::Select computed, so every check reads the exact policy, mapping
and alarm that CloudFormation would create. Nothing here calls AWS.

Usage: template_check.py GROUP [template.yaml] [source-account.yaml]; GROUP is one of the keys of GROUPS.
Exits non-zero naming every violated rule. Run by tests/it/template.rs in `make test`.
"""

import copy
import logging
import json
import os
import re
import sys

from cfnlint.decode import decode
from cfnlint.template import Template
from cfnlint.template.transforms._language_extensions import language_extension
from samtranslator.translator.transform import transform

errors = []
logging.getLogger("samtranslator").setLevel(logging.ERROR)

KEY = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee"
OTHER_KEY = "arn:aws:kms:us-east-1:111122223333:key/6666ffff-77aa-88bb-99cc-000000111111"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "AWS::StackName": "mystack", "AWS::URLSuffix": "amazonaws.com"}
NO_VALUE = object()
STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-"
BUCKET = "<Ref:ArchiveBucket>"
READ_ACTIONS = {"kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                "kinesis:GetShardIterator", "kinesis:ListShards"}


def check(condition, message):
    if not condition:
        errors.append(message)


def listed(value):
    return value if isinstance(value, list) else [value]


def flat(value):
    return json.dumps(value, default=str)


# ---- reading the template as CloudFormation does -------------------------------------------------------------

def load(path):
    template, matches = decode(path)
    check(template is not None and not matches, f"{path} does not parse: {matches}")
    return template


def parameter_values(template, given):
    """Every parameter's value: the given one, else its default; a CommaDelimitedList is split as CloudFormation
    splits it ("" gives [""])."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        value = given.get(name, spec.get("Default"))
        if value is None:
            continue
        value = str(value)
        values[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
    return values


def expand_language_extensions(path, template, params):
    """Fn::ForEach expanded by cfn-lint's AWS::LanguageExtensions code, with the collections' parameters given
    (cfn-lint reads a collection's Ref from the parameter's default, so the values are set as defaults)."""
    template = json.loads(flat(template))  # plain dicts: cfn-lint's YAML nodes are slow to copy
    for name, value in params.items():
        if name in template.get("Parameters", {}):
            template["Parameters"][name]["Default"] = ",".join(value) if isinstance(value, list) else value
    matches, expanded = language_extension(Template(path, template, ["us-east-1"]))
    check(not matches and expanded is not None, f"{path}: Fn::ForEach does not expand: {matches}")
    expanded = json.loads(flat(expanded))
    transforms = listed(expanded.get("Transform", []))
    expanded["Transform"] = [t for t in transforms if t != "AWS::LanguageExtensions"] or None
    if expanded["Transform"] is None:
        del expanded["Transform"]
    return expanded


class NoManagedPolicies:
    """The transform asks for the ARNs of AWS managed policies it may attach; it must not need any."""

    def load(self):
        return {}


def sam_transform(template, params):
    template = copy.deepcopy(template)
    # The transform wants an S3 location for a local CodeUri; `sam build` rewrites it the same way.
    for name, r in template["Resources"].items():
        if r.get("Type") == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = f"s3://bucket/{name}.zip"
    flat_params = {k: ",".join(v) if isinstance(v, list) else v for k, v in params.items()}
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the transform's AWS::Region; nothing is called
    return transform(template, flat_params, NoManagedPolicies())


class Resolver:
    """Computes intrinsic functions with concrete parameters; resources stay symbolic (<Ref:X>, <GetAtt:X.Y>)."""

    def __init__(self, template, params):
        self.params = params
        self.conditions = template.get("Conditions", {})
        self.cache = {}

    def condition(self, name):
        if name not in self.cache:
            self.cache[name] = bool(self.value(self.conditions[name]))
        return self.cache[name]

    def ref(self, name):
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        return self.params.get(name, f"<Ref:{name}>")

    def sub(self, text, variables):
        def one(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return f"<GetAtt:{name}>"
            value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)
        return re.sub(r"\$\{([^}]+)\}", one, text)

    def function(self, name, arg):
        if name == "Ref":
            return self.ref(arg)
        if name == "Fn::GetAtt":
            return "<GetAtt:" + ".".join(listed(arg) if isinstance(arg, list) else arg.split(".", 1)) + ">"
        if name == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if name == "Condition":
            return self.condition(arg)
        if name == "Fn::Equals":
            a, b = (self.value(v) for v in arg)
            return str(a) == str(b)
        if name == "Fn::Not":
            return not self.value(arg[0])
        if name == "Fn::Or":
            return any(self.value(v) for v in arg)
        if name == "Fn::And":
            return all(self.value(v) for v in arg)
        if name == "Fn::Join":
            return arg[0].join(str(v) for v in listed(self.value(arg[1])))
        if name == "Fn::Split":
            return str(self.value(arg[1])).split(arg[0])
        if name == "Fn::Select":
            return listed(self.value(arg[1]))[int(self.value(arg[0]))]
        if name == "Fn::Sub":
            if isinstance(arg, str):
                return self.sub(arg, {})
            return self.sub(arg[0], {k: self.value(v) for k, v in arg[1].items()})
        raise ValueError(f"the check does not know {name}")

    def value(self, node):
        if isinstance(node, dict):
            if len(node) == 1:
                (key, arg), = node.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self.function(key, arg)
            out = {k: self.value(v) for k, v in node.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in (self.value(v) for v in node) if v is not NO_VALUE]
        return node


_deployed = {}


def deployed(path, given):
    """The resources CloudFormation would create for these parameters, fully resolved (a fresh copy each call)."""
    key = (path, json.dumps(given, sort_keys=True))
    if key not in _deployed:
        _deployed[key] = resolve_deployed(path, given)
    return copy.deepcopy(_deployed[key])


def resolve_deployed(path, given):
    template = load(path)
    params = parameter_values(template, given)
    expanded = expand_language_extensions(path, template, params)
    if "AWS::Serverless-2016-10-31" in listed(expanded.get("Transform", [])):
        expanded = sam_transform(expanded, params)
    resolver = Resolver(expanded, params)
    return {name: resolver.value({k: v for k, v in r.items() if k != "Condition"})
            for name, r in expanded["Resources"].items()
            if "Condition" not in r or resolver.condition(r["Condition"])}


def of_type(resources, kind):
    return {n: r for n, r in resources.items() if r["Type"] == kind}


def statements(policy):
    return listed(policy.get("Statement", []))


def role_allows(resources):
    """(resource name, statement) of every Allow in every inline policy of the stack's roles."""
    found = []
    for name, r in resources.items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            found += [(name, s) for p in props.get("Policies", []) for s in statements(p["PolicyDocument"])]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            found += [(name, s) for s in statements(props["PolicyDocument"])]
    return [(n, s) for n, s in found if s.get("Effect") == "Allow"]


def check_no_wildcards(where, allows):
    for name, s in allows:
        actions = listed(s.get("Action", []))
        check(all("*" not in a for a in actions), f"{where}: {name} {s.get('Sid')} allows a wildcard action: {actions}")
        check("NotAction" not in s and "NotResource" not in s, f"{where}: {name} {s.get('Sid')} uses NotAction/NotResource")
        for resource in listed(s.get("Resource", [])):
            check(resource != "*" and not resource.endswith(":*") and "*" not in resource.split("/", 1)[0],
                  f"{where}: {name} {s.get('Sid')} has a wildcard resource: {resource}")


# ---- the scenarios --------------------------------------------------------------------------------------------

THREE = {"ResourceIds": "cluster-AAAAAAAAAA,cluster-BBBBBBBBBB,db-CCCCCCCCCC", "DasKmsKeyArn": KEY}
ONE = {"ResourceIds": "cluster-AAAAAAAAAA", "DasKmsKeyArn": KEY}
EXTERNAL_ARN = "arn:aws:kinesis:us-east-1:111122223333:stream/aws-rds-das-cluster-XXXXXXXXXX"
CROSS_ACCOUNT = {"ResourceIds": "cluster-AAAAAAAAAA,cluster-XXXXXXXXXX", "ExternalStreamArns": EXTERNAL_ARN,
                 "DasKmsKeyArn": f"{KEY},{OTHER_KEY}"}


def mappings(resources):
    return sorted(r["Properties"]["EventSourceArn"] for r in of_type(resources, "AWS::Lambda::EventSourceMapping").values())


def as_evaluated(resource):
    """A resource ARN as IAM reads it for a call in the stack's region by the stack's role: the policy variables
    the template uses filled in; any other variable is left (and fails the comparisons)."""
    return (resource.replace("${aws:RequestedRegion}", PSEUDO["AWS::Region"])
            .replace("${aws:PrincipalAccount}", PSEUDO["AWS::AccountId"]))


def stream_reads(resources):
    """Stream ARN -> actions, over every Kinesis statement of the role (consumers excluded)."""
    found = {}
    for _, s in role_allows(resources):
        actions = set(listed(s["Action"]))
        if actions & READ_ACTIONS:
            for resource in listed(s["Resource"]):
                found.setdefault(as_evaluated(resource), set()).update(actions)
    return found


PSEUDONYM_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/7777abab-88cd-99ef-aabb-ccccdddd0000"
KEYED = {"RedactFields": "dbUserName", "PseudonymKey": "AQIDBA==", "PseudonymKmsKeyArn": PSEUDONYM_KMS_KEY}
PURPOSE = {"StringEquals": {"kms:EncryptionContext:das-archiver:purpose": "pseudonym-key"}}


def is_pseudonym_statement(statement):
    return "kms:EncryptionContext:das-archiver:purpose" in flat(statement.get("Condition", {}))


def check_pseudonym_key(where, allows, env, given):
    """With PseudonymKey: one statement, exactly kms:Decrypt on PseudonymKmsKeyArn under the purpose context, and the
    blob in DAS_PSEUDONYM_KEY; without it: neither."""
    found = [s for _, s in allows if is_pseudonym_statement(s)]
    if not given.get("PseudonymKey"):
        check(not found and "DAS_PSEUDONYM_KEY" not in env, f"{where}: no pseudonym key, no statement nor variable for it")
        return
    check(len(found) == 1, f"{where}: one statement opens the pseudonym key: {found}")
    for s in found:
        check(s["Action"] == "kms:Decrypt" and listed(s["Resource"]) == [given["PseudonymKmsKeyArn"]]
              and s["Condition"] == PURPOSE,
              f"{where}: the pseudonym statement is kms:Decrypt on {given['PseudonymKmsKeyArn']} only, under "
              f"das-archiver:purpose=pseudonym-key only: {s}")
    check(env.get("DAS_PSEUDONYM_KEY") == given["PseudonymKey"], f"{where}: DAS_PSEUDONYM_KEY holds the blob")


def check_least_privilege(template_path, _source):
    for label, given in (("three ids", THREE), ("one id", ONE), ("a created key", {"ResourceIds": "db-CCCCCCCCCC",
                         "CreateDasKmsKey": "true"}), ("a stream in another account", CROSS_ACCOUNT),
                         ("a pseudonym key", {**ONE, **KEYED})):
        stack = deployed(template_path, given)
        where = f"{label}, after both transforms"
        roles = of_type(stack, "AWS::IAM::Role")
        check(list(roles) == ["ArchiverRole"], f"{where}: exactly one role, ArchiverRole: {list(roles)}")
        role = roles.get("ArchiverRole", {}).get("Properties", {})
        check(not role.get("ManagedPolicyArns"), f"{where}: ArchiverRole has managed policies {role.get('ManagedPolicyArns')}")
        trust = statements(role.get("AssumeRolePolicyDocument", {}))
        check(len(trust) == 1 and trust[0].get("Principal") == {"Service": "lambda.amazonaws.com"},
              f"{where}: only Lambda can assume ArchiverRole")
        function = stack["ArchiverFunction"]["Properties"]
        check(function["Role"] == "<GetAtt:ArchiverRole.Arn>", f"{where}: the function runs as ArchiverRole")
        allows = role_allows(stack)
        check_no_wildcards(where, allows)
        for name, r in of_type(stack, "AWS::IAM::RolePolicy").items():
            check(r["Properties"]["RoleName"] == "<Ref:ArchiverRole>", f"{where}: {name} is attached to ArchiverRole only")
        check_kms(where, allows, given)
        check_pseudonym_key(where, allows, function.get("Environment", {}).get("Variables", {}), given)
        check_s3(where, allows)
        by_sid = {s.get("Sid"): s for _, s in allows}
        check(by_sid.get("WriteOwnLogs", {}).get("Resource") == "<GetAtt:ArchiverLogGroup.Arn>",
              f"{where}: log writes only to the function's log group")
        key_policy = stack.get("DasKmsKey", {}).get("Properties", {}).get("KeyPolicy")
        if key_policy:
            for s in statements(key_policy):
                check(all("*" not in a for a in listed(s["Action"])), f"{where}: key policy {s['Sid']} allows a wildcard action")
    lake = deployed(template_path, {**THREE, **LAKE, **KEYED})
    for role, function in (("ArchiverRole", "ArchiverFunction"), ("SecurityLakeRole", "SecurityLakeFunction")):
        allows = [(role, s) for s in statements(lake[role]["Properties"]["Policies"][0]["PolicyDocument"])
                  if s.get("Effect") == "Allow"]
        env = lake[function]["Properties"]["Environment"]["Variables"]
        check_pseudonym_key(f"with Security Lake and a pseudonym key, {role}", allows, env, KEYED)
    template = load(template_path)
    check(not rules_pass(template["Rules"], template, {**ONE, "RedactFields": "dbUserName"}),
          "a rule refuses RedactFields without PseudonymKey")
    check(not rules_pass(template["Rules"], template, {**ONE, **KEYED, "PseudonymKmsKeyArn": ""}),
          "a rule refuses PseudonymKey without PseudonymKmsKeyArn")
    check(not rules_pass(template["Rules"], template, {**ONE, "PseudonymKmsKeyArn": PSEUDONYM_KMS_KEY}),
          "a rule refuses PseudonymKmsKeyArn without PseudonymKey")
    check(rules_pass(template["Rules"], template, {**ONE, **KEYED}), "the rules pass with a pseudonym key and its KMS key")
    return (f"{template_path}: least privilege holds for three ids, one id, a created key, a stream in another account, "
            "a pseudonym key")


def check_kms(where, allows, given):
    ids = given["ResourceIds"].split(",")
    keys = ["<GetAtt:DasKmsKey.Arn>"] if given.get("CreateDasKmsKey") == "true" else given["DasKmsKeyArn"].split(",")
    decrypts = [s for _, s in allows if "kms:Decrypt" in listed(s["Action"]) and not is_pseudonym_statement(s)]
    check(len(decrypts) == 2, f"{where}: two kms:Decrypt statements (clusters, instances): {len(decrypts)}")
    for context_key, pattern, other in (("aws:rds:dbc-id", "cluster-*", "aws:rds:db-id"),
                                        ("aws:rds:db-id", "db-*", "aws:rds:dbc-id")):
        wanted = {"StringEquals": {f"kms:EncryptionContext:{context_key}": ids},
                  "StringLike": {f"kms:EncryptionContext:{context_key}": pattern},
                  "Null": {f"kms:EncryptionContext:{other}": "true"}}
        found = [s for s in decrypts if s.get("Condition") == wanted]
        check(len(found) == 1, f"{where}: a Decrypt statement conditioned exactly on {context_key} in {ids}, "
                               f"{pattern}, {other} absent: {[s.get('Condition') for s in decrypts]}")
        for s in found:
            check(s["Action"] == "kms:Decrypt" and listed(s["Resource"]) == keys,
                  f"{where}: the {context_key} statement allows exactly kms:Decrypt on {keys}: {s['Action']} {s['Resource']}")


def check_s3(where, allows):
    puts = sorted(r for _, s in allows if listed(s["Action"]) == ["s3:PutObject"] for r in listed(s["Resource"]))
    check(puts == sorted([f"arn:aws:s3:::{BUCKET}/activity/*", f"arn:aws:s3:::{BUCKET}/aws/lambda/*"]),
          f"{where}: s3:PutObject only under the archive prefix and the on-failure prefix aws/lambda/: {puts}")
    lists = [s["Resource"] for _, s in allows if "s3:ListBucket" in listed(s["Action"])]
    check(lists == [f"arn:aws:s3:::{BUCKET}"], f"{where}: s3:ListBucket (on-failure destination) on the bucket only: {lists}")
    s3_actions = {a for _, s in allows for a in listed(s["Action"]) if a.startswith("s3:")}
    check(s3_actions == {"s3:PutObject", "s3:ListBucket"}, f"{where}: no other S3 action: {s3_actions}")


def check_streams(template_path, _source):
    three = deployed(template_path, THREE)
    arns = [STREAM + i for i in THREE["ResourceIds"].split(",")]
    check(mappings(three) == sorted(arns), f"three ids: one mapping per stream: {mappings(three)}")
    check(stream_reads(three) == {a: READ_ACTIONS | {"kinesis:SubscribeToShard"} for a in arns},
          f"three ids: Kinesis read on exactly the three streams: {stream_reads(three)}")
    check(not of_type(three, "AWS::IAM::RolePolicy"), "three ids: the reads are in the role's own policy, not one policy per stream")
    functions = {r["Properties"]["FunctionName"] for r in of_type(three, "AWS::Lambda::EventSourceMapping").values()}
    check(functions == {"<Ref:ArchiverFunction>"}, f"three ids: every mapping feeds the one function: {functions}")
    check(len(of_type(three, "AWS::Lambda::Function")) == 1, "three ids: one function")
    env = three["ArchiverFunction"]["Properties"]["Environment"]["Variables"]
    check(env.get("DAS_RESOURCE_IDS") == THREE["ResourceIds"], f"DAS_RESOURCE_IDS lists the ids: {env.get('DAS_RESOURCE_IDS')}")
    check(env.get("DAS_KMS_KEY_ARN") == KEY, f"DAS_KMS_KEY_ARN is the key: {env.get('DAS_KMS_KEY_ARN')}")
    check(env.get("DAS_GIVE_UP_AFTER_SECONDS") == "43200", f"DAS_GIVE_UP_AFTER_SECONDS defaults to 43200: {env}")
    check("DAS_RESOURCE_ID" not in env, "the function derives each batch's id from its stream: no DAS_RESOURCE_ID")
    created = deployed(template_path, {"ResourceIds": "db-CCCCCCCCCC", "CreateDasKmsKey": "true"})
    created_env = created["ArchiverFunction"]["Properties"]["Environment"]["Variables"]
    check(created_env.get("DAS_KMS_KEY_ARN") == "<GetAtt:DasKmsKey.Arn>", "DAS_KMS_KEY_ARN is the created key")

    one = deployed(template_path, ONE)
    check(mappings(one) == [STREAM + "cluster-AAAAAAAAAA"], f"one id: one mapping, as before: {mappings(one)}")
    check(set(stream_reads(one)) == {STREAM + "cluster-AAAAAAAAAA"}, "one id: Kinesis read on that stream only")
    kinds = {}
    for r in one.values():
        kinds[r["Type"]] = kinds.get(r["Type"], 0) + 1
    check(all(kinds.get(k) == 1 for k in ("AWS::Lambda::Function", "AWS::IAM::Role", "AWS::Lambda::EventSourceMapping",
                                           "AWS::S3::Bucket", "AWS::Glue::Table"))
          and "AWS::Kinesis::StreamConsumer" not in kinds and "AWS::IAM::RolePolicy" not in kinds,
          f"one id: the shape of a single-stream stack (one function, role, mapping, bucket, table): {kinds}")

    efo = deployed(template_path, {**ONE, "UseEnhancedFanOut": "true"})
    check(mappings(efo) == ["<GetAtt:StreamConsumerclusterAAAAAAAAAA.ConsumerARN>"], f"enhanced fan-out: the mapping reads the consumer: {mappings(efo)}")
    consumer_reads = [(listed(s["Action"]), s["Resource"]) for _, s in role_allows(efo) if "kinesis:DescribeStreamConsumer" in listed(s["Action"])]
    check(consumer_reads == [(["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"], "<GetAtt:StreamConsumerclusterAAAAAAAAAA.ConsumerARN>")],
          f"enhanced fan-out: the role reads exactly its consumer: {consumer_reads}")
    efo_mapping = next(iter(of_type(efo, "AWS::Lambda::EventSourceMapping").values()))["Properties"]
    check(efo_mapping["FunctionName"] == "<Ref:ArchiverFunction>", "enhanced fan-out: the mapping feeds the function")

    cross = deployed(template_path, CROSS_ACCOUNT)
    check(mappings(cross) == sorted([STREAM + "cluster-AAAAAAAAAA", EXTERNAL_ARN]),
          f"a stream in another account: its mapping reads its ARN, and no local mapping is made for its id: {mappings(cross)}")
    # The external id also appears with this account's prefix: a stream that does not exist here, and that no
    # mapping reads (the template explains why a list cannot leave it out).
    check(set(stream_reads(cross)) == {STREAM + "cluster-AAAAAAAAAA", STREAM + "cluster-XXXXXXXXXX", EXTERNAL_ARN},
          f"a stream in another account: Kinesis read on exactly the listed streams and the external ARN: {set(stream_reads(cross))}")
    check(not of_type(deployed(template_path, {**CROSS_ACCOUNT, "UseEnhancedFanOut": "true"}), "AWS::Kinesis::StreamConsumer").keys()
          - {"StreamConsumerclusterAAAAAAAAAA"}, "enhanced fan-out: consumers only for streams of this account")

    for name, stack in (("three ids", three), ("a stream in another account", cross)):
        for mapping_name, m in of_type(stack, "AWS::Lambda::EventSourceMapping").items():
            p = m["Properties"]
            check(p["FunctionResponseTypes"] == ["ReportBatchItemFailures"], f"{name}: {mapping_name} reports batch item failures")
            check(p["DestinationConfig"] == {"OnFailure": {"Destination": f"arn:aws:s3:::{BUCKET}"}},
                  f"{name}: {mapping_name} sends exhausted batches to the archive bucket: {p['DestinationConfig']}")
    return f"{template_path}: one mapping per stream (three ids, one id, enhanced fan-out, another account), one role, one function"


def check_defaults_and_rules(template_path, _source):
    template = load(template_path)
    parameters = template["Parameters"]
    mapping = next(iter(of_type(deployed(template_path, ONE), "AWS::Lambda::EventSourceMapping").values()))["Properties"]
    age, retries = int(mapping["MaximumRecordAgeInSeconds"]), int(mapping["MaximumRetryAttempts"])
    give_up = int(parameters["GiveUpAfterSeconds"]["Default"])
    check(give_up < age < 86400, f"default MaximumRecordAgeInSeconds {age} lies between the give-up age {give_up} and the 24 h retention")
    check(0 <= retries <= 10000, f"default MaximumRetryAttempts is finite: {retries}")
    check("zstd" in parameters["Compression"]["AllowedValues"], "Compression offers zstd")
    check("FATAL" not in parameters["LogLevel"]["AllowedValues"], "LogLevel does not offer FATAL (it would drop the metrics line)")

    refused = [("MaximumRecordAgeInSeconds", v) for v in ("-1", "0", "59", "604801", "1e5")]
    refused += [("TransitionToInfrequentAccessDays", v) for v in ("1", "29", "-1")]
    refused += [("ResourceIds", "cluster-AAA,foo"), ("ResourceIds", "cluster-A B"), ("DasKmsKeyArn", "alias/x"),
                ("ExternalStreamArns", "arn:aws:kinesis:us-east-1:111122223333:stream/other"),
                ("GiveUpAfterSeconds", "-1"), ("SilenceMinutes", "1"), ("ObjectLockMode", "LEGAL")]
    accepted = [("MaximumRecordAgeInSeconds", v) for v in ("60", "64800", "86399", "599999", "604800")]
    accepted += [("TransitionToInfrequentAccessDays", v) for v in ("0", "30", "365")]
    accepted += [("ResourceIds", "cluster-AAA,db-BBB"), ("DasKmsKeyArn", f"{KEY},{OTHER_KEY}"), ("ExternalStreamArns", EXTERNAL_ARN),
                 ("ExternalStreamArns", "")]
    for name, value in refused:
        check(not parameter_accepts(parameters[name], value), f"parameter {name} refuses {value!r}")
    for name, value in accepted:
        check(parameter_accepts(parameters[name], value), f"parameter {name} accepts {value!r}")

    rules = template["Rules"]
    base = {"ResourceIds": "cluster-AAA", "DasKmsKeyArn": KEY}
    check(rules_pass(rules, template, base), "the rules pass for an ordinary deploy")
    check(not rules_pass(rules, template, {**base, "ObjectLockMode": "COMPLIANCE", "ExistingBucketName": "b"}),
          "a rule refuses Object Lock on an existing bucket")
    check(rules_pass(rules, template, {**base, "ObjectLockMode": "GOVERNANCE"}), "Object Lock on the created bucket passes")
    check(not rules_pass(rules, template, {"ResourceIds": "cluster-AAA"}), "a rule refuses a deploy with no key")
    check(not rules_pass(rules, template, {**base, "CreateDasKmsKey": "true"}), "a rule refuses a created key and a given one")

    locked = deployed(template_path, {**ONE, "ObjectLockMode": "COMPLIANCE", "ObjectLockRetentionDays": "2555"})
    bucket = locked["ArchiveBucket"]["Properties"]
    check(bucket.get("ObjectLockEnabled") is True and bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
          == {"Mode": "COMPLIANCE", "Days": "2555"}, f"WORM: Object Lock with the chosen mode and days: {bucket.get('ObjectLockConfiguration')}")
    check("ObjectLockEnabled" not in deployed(template_path, ONE)["ArchiveBucket"]["Properties"], "no Object Lock by default")

    table = deployed(template_path, THREE)["ActivityTable"]["Properties"]["TableInput"]
    serde = table["StorageDescriptor"]["SerdeInfo"]["Parameters"]
    check("ignore.malformed.json" not in serde, "the Glue table does not hide malformed lines")
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    check(columns.get("kinesisshardid") == "string" and columns.get("kinesissequencenumber") == "string"
          and columns.get("eventindex") == "int", f"the Glue table has the provenance columns: {columns}")
    check(columns.get("commandfingerprint") == "string"
          and serde.get("mapping.commandfingerprint") == "commandFingerprint",
          f"the Glue table has the statement fingerprint column: {columns}")
    check(table["Parameters"]["projection.resource_id.values"] == THREE["ResourceIds"], "the table projects every resource id")
    return f"{template_path}: finite trigger defaults, parameter ranges, rules, WORM, Glue table"


def parameter_accepts(spec, value):
    values = value.split(",") if spec.get("Type") == "CommaDelimitedList" else [value]
    for v in values:
        if "AllowedValues" in spec and v not in [str(a) for a in spec["AllowedValues"]]:
            return False
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], v):
            return False
        if spec.get("Type") == "Number":
            try:
                number = float(v)
            except ValueError:
                return False
            if number < spec.get("MinValue", number) or number > spec.get("MaxValue", number):
                return False
    return True


def rules_pass(rules, template, given):
    resolver = Resolver({}, parameter_values(template, given))
    for rule in rules.values():
        if "RuleCondition" in rule and not resolver.value(rule["RuleCondition"]):
            continue
        if not all(resolver.value(a["Assert"]) for a in rule["Assertions"]):
            return False
    return True


def check_alarms(template_path, _source):
    for label, given in (("three ids", THREE), ("a stream in another account", CROSS_ACCOUNT)):
        stack = deployed(template_path, given)
        alarms = of_type(stack, "AWS::CloudWatch::Alarm")
        for alarm_name, a in alarms.items():
            check(len(a["Properties"].get("AlarmDescription", "")) > 80,
                  f"{label}: {alarm_name}'s description says what the operator should do")
        for rid in given["ResourceIds"].split(","):
            mine = {a["Properties"]["MetricName"]: a["Properties"] for a in alarms.values()
                    if a["Properties"].get("Dimensions") == [{"Name": "ResourceId", "Value": rid}]
                    and a["Properties"].get("Namespace") == "DasArchiver"}
            check(set(mine) == {"RecordsQuarantined", "RecordsGivenUp", "RecordsRetried", "OldestRecordAgeSeconds", "RecordsIn"},
                  f"{label}: {rid} has its own alarms on quarantined, given up, retried, oldest record age, silence: {sorted(mine)}")
            silence = mine.get("RecordsIn", {})
            check(silence.get("TreatMissingData") == "breaching" and silence.get("EvaluationPeriods") == "10"
                  and silence.get("Period") == 60 and silence.get("Namespace") == "DasArchiver",
                  f"{label}: {rid}'s silence alarm fires after 10 minutes without RecordsIn, missing data breaching: {silence}")
            for metric, props in mine.items():
                check(props.get("Namespace") == "DasArchiver", f"{label}: {rid} {metric} reads the DasArchiver namespace")
        on_failure = [a["Properties"] for a in alarms.values() if a["Properties"].get("MetricName") == "MatchedEvents"]
        check(len(on_failure) == 1 and on_failure[0]["Dimensions"] == [{"Name": "RuleName", "Value": "<Ref:OnFailureRecordsRule>"}],
              f"{label}: an alarm on on-failure records arriving in S3")
        rule = stack["OnFailureRecordsRule"]["Properties"]["EventPattern"]
        check(rule["detail"] == {"bucket": {"name": [BUCKET]}, "object": {"key": [{"prefix": "aws/lambda/"}]}},
              f"{label}: the on-failure rule matches objects under aws/lambda/ in the archive bucket: {rule}")
    check(of_type(deployed(template_path, ONE), "AWS::S3::Bucket")["ArchiveBucket"]["Properties"]
          ["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
          "the created bucket sends its events to EventBridge")
    return f"{template_path}: per-stream alarms (quarantined, given up, retried, oldest record age, silence) for every id"


TOPIC = "arn:aws:sns:us-east-1:123456789012:das-alarms"


def function_alarms(stack):
    """(function, metric) → the alarm's properties, for the AWS/Lambda alarms on one function."""
    return {(a["Properties"]["Dimensions"][0]["Value"], a["Properties"]["MetricName"]): a["Properties"]
            for a in of_type(stack, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Namespace") == "AWS/Lambda"
            and [d["Name"] for d in a["Properties"]["Dimensions"]] == ["FunctionName"]}


def check_function_alarms(template_path, _source):
    """Errors and IteratorAge on the archive function always, on the Security Lake function only when Security
    Lake parameters are given; both functions' alarms alike and notifying the same topic."""
    archive = "<Ref:ArchiverFunction>"
    lake = "<Ref:SecurityLakeFunction>"
    wanted = {"Errors", "IteratorAge"}
    for label, given, functions in (("without Security Lake", {**THREE, "AlarmTopicArn": TOPIC}, [archive]),
                                    ("with Security Lake", {**CROSS_ACCOUNT, **LAKE, "AlarmTopicArn": TOPIC},
                                     [archive, lake]),
                                    ("with Security Lake through its role",
                                     {**THREE, **LAKE, "SecurityLakeRoleArn": LAKE_ROLE}, [archive, lake])):
        alarms = function_alarms(deployed(template_path, given))
        check(set(alarms) == {(f, m) for f in functions for m in wanted},
              f"{label}: Errors and IteratorAge alarms on exactly {functions}: {sorted(alarms)}")
        for (function, metric), props in alarms.items():
            topic = [TOPIC] if "AlarmTopicArn" in given else None
            check(props.get("AlarmActions") == topic, f"{label}: {function} {metric} notifies {topic}: {props}")
        if all((f, m) in alarms for f in (archive, lake) for m in wanted):
            for metric in wanted:
                same = {k: v for k, v in alarms[(lake, metric)].items() if k not in ("AlarmDescription", "Dimensions")}
                main = {k: v for k, v in alarms[(archive, metric)].items() if k not in ("AlarmDescription", "Dimensions")}
                check(same == main, f"{label}: the Security Lake function's {metric} alarm is the archive's: {same} != {main}")
    return f"{template_path}: Errors and IteratorAge per function, the Security Lake function's only with Security Lake"


def stream_alarms(stack, namespace):
    """(resource id, metric) → the alarm's properties, for the per-stream alarms under `namespace`."""
    return {(a["Properties"]["Dimensions"][0]["Value"], a["Properties"]["MetricName"]): a["Properties"]
            for a in of_type(stack, "AWS::CloudWatch::Alarm").values()
            if a["Properties"].get("Namespace") == namespace
            and [d["Name"] for d in a["Properties"].get("Dimensions", [])] == ["ResourceId"]}


def check_security_lake_stream_alarms(template_path, _source):
    """The Security Lake function's quarantines and give-ups are alarmed per stream it reads, like the archive's:
    the same metric, statistic, period, threshold and topic, under its own namespace; only with Security Lake."""
    lake_namespace = "DasArchiver/SecurityLake"
    wanted = ("RecordsQuarantined", "RecordsGivenUp")
    for label, given, ids in (("without Security Lake", {**THREE, "AlarmTopicArn": TOPIC}, []),
                              ("with Security Lake and a stream in another account",
                               {**CROSS_ACCOUNT, **LAKE, "AlarmTopicArn": TOPIC}, ["cluster-AAAAAAAAAA"]),
                              ("with Security Lake through its role", {**THREE, **LAKE, "SecurityLakeRoleArn": LAKE_ROLE},
                               THREE["ResourceIds"].split(","))):
        stack = deployed(template_path, given)
        lake = stream_alarms(stack, lake_namespace)
        archive = stream_alarms(stack, "DasArchiver")
        check(set(lake) == {(i, m) for i in ids for m in wanted},
              f"{label}: quarantine and give-up alarms on exactly the streams the Security Lake function reads "
              f"(this account's): {sorted(lake)}")
        for (rid, metric), props in lake.items():
            check(len(props.get("AlarmDescription", "")) > 80 and "security-lake" in props["AlarmDescription"],
                  f"{label}: {rid} {metric}: the description says what to do, naming the Security Lake function")
            mine = {k: v for k, v in props.items() if k not in ("AlarmDescription", "Namespace")}
            theirs = {k: v for k, v in archive.get((rid, metric), {}).items() if k not in ("AlarmDescription", "Namespace")}
            check(mine == theirs, f"{label}: {rid} {metric}: alarmed like the archive's: {mine} != {theirs}")
    # CloudFormation allows 500 resources per stack
    # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html); the role's
    # inline-policy quota caps a stack at about 40 streams (README, Deploy): with every per-stream option on, 40
    # streams must still fit.
    forty = ",".join(f"cluster-A{i:09d}" for i in range(40))
    everything = deployed(template_path, {"ResourceIds": forty, "DasKmsKeyArn": KEY, "UseEnhancedFanOut": "true", **LAKE,
                                          "ArchiveObjectQueue": "true", "AlarmTopicArn": TOPIC,
                                          "DatadogForwarderArn": "arn:aws:lambda:us-east-1:123456789012:function:dd"})
    check(len(everything) < 500, f"40 streams with every option make {len(everything)} resources, not under 500")
    return (f"{template_path}: the Security Lake function's quarantines and give-ups alarmed per stream, only with "
            f"Security Lake; 40 streams with every option make {len(everything)} resources (< 500)")


def check_source_account(_template, source_path):
    ids = "cluster-XXXXXXXXXX,db-YYYYYYYYYY"
    role = "arn:aws:iam::123456789012:role/mystack-ArchiverRole-ABC"
    stack = deployed(source_path, {"ResourceIds": ids, "CentralRoleArn": role})
    policies = of_type(stack, "AWS::Kinesis::ResourcePolicy")
    streams = sorted(p["Properties"]["ResourceArn"] for p in policies.values())
    check(streams == sorted(f"arn:aws:kinesis:us-east-1:123456789012:stream/aws-rds-das-{i}" for i in ids.split(",")),
          f"source account: one stream policy per id: {streams}")
    for name, p in policies.items():
        for s in statements(p["Properties"]["ResourcePolicy"]):
            check(s["Principal"] == {"AWS": role} and set(s["Action"]) == READ_ACTIONS
                  and s["Resource"] == p["Properties"]["ResourceArn"],
                  f"source account: {name} lets exactly the central role read exactly its stream: {s}")
    key = statements(stack["DasKmsKey"]["Properties"]["KeyPolicy"])
    central = [s for s in key if s.get("Principal") == {"AWS": role}]
    check(len(central) == 2 and all(s["Action"] == "kms:Decrypt" for s in central),
          "source account: the central role may only kms:Decrypt with the key")
    conditions = [s.get("Condition") for s in central]
    for context_key, pattern, other in (("aws:rds:dbc-id", "cluster-*", "aws:rds:db-id"), ("aws:rds:db-id", "db-*", "aws:rds:dbc-id")):
        check({"StringEquals": {f"kms:EncryptionContext:{context_key}": ids.split(",")},
               "StringLike": {f"kms:EncryptionContext:{context_key}": pattern},
               "Null": {f"kms:EncryptionContext:{other}": "true"}} in conditions,
              f"source account: the central role decrypts only with {context_key} one of the ids: {conditions}")
    first = deployed(source_path, {"CentralRoleArn": role})
    check(not of_type(first, "AWS::Kinesis::ResourcePolicy") and "DasKmsKey" in first,
          "source account: the first deploy (no ids yet) creates only the key")
    return f"{source_path}: stream policies and key policy scoped to the central role and the listed ids"


# ---- what CloudFormation does with the KMS resources ----------------------------------------------------------
# Every KMS action CloudFormation performs on each KMS resource type of the two templates, per handler operation.
# Sources: the resource types' schemas, whose `handlers.<operation>.permissions` list what the caller (the
# deploying principal, or the stack's service role) must be allowed
# (https://github.com/aws-cloudformation/aws-cloudformation-resource-providers-kms/blob/master/key/aws-kms-key.json,
# .../alias/aws-kms-alias.json; the same schemas as `aws cloudformation describe-type --type RESOURCE --type-name
# AWS::KMS::Key`, and cfn-lint ships a copy, which table_matches_the_schemas compares), and the handlers' code: the
# key's create and update handlers end by running its read handler
# (https://github.com/aws-cloudformation/aws-cloudformation-resource-providers-kms/blob/master/key/src/main/java/software/amazon/kms/key/CreateHandler.java),
# so create and update need the read permissions too. Read also runs for drift detection.
CFN_KMS_ACTIONS = {
    "AWS::KMS::Key": {
        "create": {"kms:CreateKey", "kms:EnableKeyRotation", "kms:DisableKey", "kms:TagResource", "kms:PutKeyPolicy",
                   "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"},
        "read": {"kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"},
        "update": {"kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey",
                   "kms:EnableKeyRotation", "kms:PutKeyPolicy", "kms:TagResource", "kms:UntagResource",
                   "kms:UpdateKeyDescription", "kms:ListResourceTags", "kms:GetKeyPolicy",
                   "kms:GetKeyRotationStatus"},
        "delete": {"kms:DescribeKey", "kms:ScheduleKeyDeletion"},
    },
    # An alias operation needs the permission on the alias (IAM policy) and on its key (key policy, or an IAM
    # policy the key policy delegates to); UpdateAlias on the current and the new key:
    # https://docs.aws.amazon.com/kms/latest/developerguide/alias-access.html
    # https://docs.aws.amazon.com/kms/latest/APIReference/API_DeleteAlias.html
    "AWS::KMS::Alias": {
        "create": {"kms:CreateAlias"},
        "read": {"kms:ListAliases"},
        "update": {"kms:UpdateAlias"},
        "delete": {"kms:DeleteAlias"},
    },
}
# KMS authorizes these by IAM policy alone: they act on no key, so no key policy is consulted
# (https://docs.aws.amazon.com/kms/latest/developerguide/kms-api-permissions-reference.html, "Policy type").
KMS_IAM_ONLY = {"kms:CreateKey", "kms:ListKeys", "kms:ListAliases"}
ACCOUNT_ROOT = {f"arn:aws:iam::{PSEUDO['AWS::AccountId']}:root", PSEUDO["AWS::AccountId"]}


def table_matches_the_schemas():
    """Every KMS permission that cfn-lint's copy of the resource schemas lists is in the table: a newer schema
    that adds one fails here, and the table (and the key policies) must follow."""
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
    for kind, operations in CFN_KMS_ACTIONS.items():
        handlers = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", kind).schema.get("handlers", {})
        for operation, actions in operations.items():
            listed_ = {a for a in handlers.get(operation, {}).get("permissions", []) if a.startswith("kms:")}
            check(listed_ <= actions, f"the table misses what the {kind} schema's {operation} handler lists: "
                                      f"{sorted(listed_ - actions)}")


def key_policy_allows_the_account(policy, action):
    """The key policy lets the account's IAM policies grant `action` on the key: an unconditional Allow to the
    account root on Resource "*", and no Deny of the action."""
    import fnmatch

    def matches(s):
        return any(fnmatch.fnmatchcase(action, a) for a in listed(s.get("Action", [])))

    def to_account(s):
        principal = s.get("Principal", {})
        return isinstance(principal, dict) and bool(set(listed(principal.get("AWS", []))) & ACCOUNT_ROOT)
    allowed = any(s.get("Effect") == "Allow" and to_account(s) and matches(s) and "Condition" not in s
                  and listed(s.get("Resource")) == ["*"] for s in statements(policy))
    denied = any(s.get("Effect") == "Deny" and matches(s) for s in statements(policy))
    return allowed and not denied


def check_kms_key_policies(template_path, source_path):
    """Every key the templates create lets the account (CloudFormation acts as one of the account's IAM
    principals) perform every key-scoped action of the table on it, so create, update and delete of the key and
    its alias succeed; and passes KMS's lock-out safety check."""
    table_matches_the_schemas()
    root = f"arn:aws:iam::{PSEUDO['AWS::AccountId']}:root"
    to_root = {"Effect": "Allow", "Principal": {"AWS": root}, "Resource": "*"}
    for what, policy, expected in (
            ("the default key policy's kms:*", [{**to_root, "Action": "kms:*"}], True),
            ("a list without it", [{**to_root, "Action": ["kms:DescribeKey", "kms:GetKeyPolicy"]}], False),
            ("a conditional grant", [{**to_root, "Action": "kms:PutKeyPolicy", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}], False),
            ("a grant to another principal", [{**to_root, "Principal": {"AWS": "arn:aws:iam::123456789012:role/x"}, "Action": "kms:PutKeyPolicy"}], False),
            ("a grant overruled by a Deny", [{**to_root, "Action": "kms:*"}, {**to_root, "Effect": "Deny", "Action": "kms:Put*"}], False)):
        check(key_policy_allows_the_account({"Statement": policy}, "kms:PutKeyPolicy") == expected,
              f"the check reads {what} as {'allowing' if expected else 'not allowing'} kms:PutKeyPolicy")
    role = "arn:aws:iam::123456789012:role/mystack-ArchiverRole-ABC"
    for label, path, given in (("template.yaml with CreateDasKmsKey=true", template_path,
                                {"ResourceIds": "db-CCCCCCCCCC", "CreateDasKmsKey": "true"}),
                               ("source-account.yaml, first deploy", source_path, {"CentralRoleArn": role}),
                               ("source-account.yaml with ids", source_path,
                                {"CentralRoleArn": role, "ResourceIds": "cluster-XXXXXXXXXX,db-YYYYYYYYYY"})):
        stack = deployed(path, given)
        kms = {n: r for n, r in stack.items() if r["Type"] in CFN_KMS_ACTIONS}
        check(sorted(r["Type"] for r in kms.values()) == ["AWS::KMS::Alias", "AWS::KMS::Key"],
              f"{label}: one key and its alias: {sorted(kms)}")
        for name, r in kms.items():
            key = name if r["Type"] == "AWS::KMS::Key" else r["Properties"]["TargetKeyId"][len("<Ref:"):-1]
            policy = stack.get(key, {}).get("Properties", {}).get("KeyPolicy", {})
            for operation, actions in CFN_KMS_ACTIONS[r["Type"]].items():
                missing = sorted(a for a in actions - KMS_IAM_ONLY if not key_policy_allows_the_account(policy, a))
                check(not missing, f"{label}: CloudFormation's {operation} of {name} ({r['Type']}) needs {missing} "
                                   f"on {key}, and its key policy does not let the account's IAM policies grant it")
        # KMS's lock-out safety check: CreateKey (and PutKeyPolicy) refuse a policy that does not let the
        # principal making the request call PutKeyPolicy afterwards
        # (https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html, Policy and
        # BypassPolicyLockoutSafetyCheck). With CloudFormation that principal is the deploying principal or the
        # stack's role, an IAM principal of the account: the policy must let the account root (IAM) grant it.
        for key in of_type(stack, "AWS::KMS::Key"):
            check(key_policy_allows_the_account(stack[key]["Properties"]["KeyPolicy"], "kms:PutKeyPolicy"),
                  f"{label}: {key}'s key policy fails KMS's lock-out safety check (no kms:PutKeyPolicy for the account)")
    return (f"{template_path}, {source_path}: the created keys' policies allow every KMS action CloudFormation "
            "performs on them and their aliases, and pass the lock-out safety check")


LAKE = {"SecurityLakeBucket": "aws-security-data-lake-us-east-1-abc", "SecurityLakeSourceName": "das-activity"}
LAKE_ROLE = "arn:aws:iam::123456789012:role/AmazonSecurityLake-Provider-das-activity-us-east-1"


def check_security_lake(template_path, _source):
    plain = deployed(template_path, THREE)
    check(not [n for n in plain if n.startswith("SecurityLake")],
          f"without SecurityLakeBucket: no Security Lake resource: {[n for n in plain if n.startswith('SecurityLake')]}")
    check(not rules_pass(load(template_path).get("Rules", {}), load(template_path),
                         {**THREE, "SecurityLakeBucket": LAKE["SecurityLakeBucket"]}),
          "SecurityLakeBucket without SecurityLakeSourceName is refused")

    check(not [k for k in function_alarms(plain) if k[0] == "<Ref:SecurityLakeFunction>"],
          "without SecurityLakeBucket: no alarm on a Security Lake function")

    stack = deployed(template_path, {**CROSS_ACCOUNT, **LAKE, "UseEnhancedFanOut": "true"})
    where = "with Security Lake"
    lake_alarms = sorted(m for f, m in function_alarms(stack) if f == "<Ref:SecurityLakeFunction>")
    check(lake_alarms == ["Errors", "IteratorAge"], f"{where}: the lake function has Errors and IteratorAge alarms: {lake_alarms}")
    roles = of_type(stack, "AWS::IAM::Role")
    check(sorted(roles) == ["ArchiverRole", "SecurityLakeRole"], f"{where}: the lake function has its own role: {list(roles)}")
    lake_fn = stack.get("SecurityLakeFunction", {}).get("Properties", {})
    check(lake_fn.get("Role") == "<GetAtt:SecurityLakeRole.Arn>", f"{where}: the lake function runs as SecurityLakeRole")
    env = lake_fn.get("Environment", {}).get("Variables", {})
    check(env.get("DAS_OUTPUT") == "ocsf-parquet" and env.get("DAS_SECURITY_LAKE_SOURCE") == "das-activity"
          and env.get("DAS_SECURITY_LAKE_BUCKET") == LAKE["SecurityLakeBucket"],
          f"{where}: the lake function writes OCSF Parquet to the custom source: {env}")
    archiver_env = stack["ArchiverFunction"]["Properties"]["Environment"]["Variables"]
    check("DAS_OUTPUT" not in archiver_env, f"{where}: the archive function stays NDJSON")
    lake_mappings = {n: m["Properties"] for n, m in of_type(stack, "AWS::Lambda::EventSourceMapping").items()
                     if m["Properties"]["FunctionName"] == "<Ref:SecurityLakeFunction>"}
    check(sorted(p["EventSourceArn"] for p in lake_mappings.values()) == [STREAM + "cluster-AAAAAAAAAA"],
          f"{where}: one lake mapping per stream of this account, reading the stream itself: {lake_mappings}")
    for name, p in lake_mappings.items():
        check(int(p["MaximumBatchingWindowInSeconds"]) == 300 and int(p["BatchSize"]) == 10000,
              f"{where}: {name} waits 300 s for up to 10,000 records: {p}")
        check(p["FunctionResponseTypes"] == ["ReportBatchItemFailures"], f"{where}: {name} reports batch item failures")

    def allows_of(role):
        return [(role, s) for s in statements(roles[role]["Properties"]["Policies"][0]["PolicyDocument"])
                if s.get("Effect") == "Allow"]
    lake_allows = allows_of("SecurityLakeRole")
    check_no_wildcards(where, lake_allows)
    puts = sorted(r for _, s in lake_allows if listed(s["Action"]) == ["s3:PutObject"] for r in listed(s["Resource"]))
    check(puts == sorted([f"arn:aws:s3:::{LAKE['SecurityLakeBucket']}/ext/das-activity/*",
                          f"arn:aws:s3:::{BUCKET}/activity/quarantine/*", f"arn:aws:s3:::{BUCKET}/aws/lambda/*"]),
          f"{where}: the lake role puts only under ext/<source>/, the quarantine and the on-failure prefix: {puts}")
    actions = {a for _, s in lake_allows for a in listed(s["Action"])}
    check(actions == READ_ACTIONS | {"kms:Decrypt", "s3:PutObject", "s3:ListBucket", "logs:CreateLogStream",
                                     "logs:PutLogEvents"}, f"{where}: the lake role's actions: {sorted(actions)}")
    check_kms(where, lake_allows, {**CROSS_ACCOUNT})
    check(not any(LAKE["SecurityLakeBucket"] in flat(s) for _, s in allows_of("ArchiverRole")),
          f"{where}: the archive role cannot write to the lake")

    through_role = deployed(template_path, {**THREE, **LAKE, "SecurityLakeRoleArn": LAKE_ROLE})
    role_allows_ = [s for s in statements(through_role["SecurityLakeRole"]["Properties"]["Policies"][0]["PolicyDocument"])]
    assumes = [s["Resource"] for s in role_allows_ if "sts:AssumeRole" in listed(s["Action"])]
    check(assumes == [LAKE_ROLE], f"with SecurityLakeRoleArn: the function may assume exactly that role: {assumes}")
    check(not any(LAKE["SecurityLakeBucket"] in flat(s) for s in role_allows_),
          "with SecurityLakeRoleArn: no direct write to the lake (the custom source's role writes)")
    lake_env = through_role["SecurityLakeFunction"]["Properties"]["Environment"]["Variables"]
    check(lake_env.get("DAS_SECURITY_LAKE_ROLE_ARN") == LAKE_ROLE, "with SecurityLakeRoleArn: the function is told the role")
    return f"{template_path}: Security Lake resources only when asked, with their own role and least privilege"


# ---- the SIEM queue ---------------------------------------------------------------------------------------------
# An Object Created event as S3 sends it to EventBridge
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html), for an archive object.
ARCHIVE_OBJECT_KEY = "activity/cluster-AAAAAAAAAA/dt=2026-11-22/hour=03/shardId-000000000000-4960-4961.ndjson.gz"
OBJECT_CREATED = {
    "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
    "source": "aws.s3", "account": "123456789012", "time": "2026-11-22T03:00:07Z", "region": "us-east-1",
    "resources": ["arn:aws:s3:::amzn-s3-demo-bucket"],
    "detail": {"version": "0", "bucket": {"name": "amzn-s3-demo-bucket"},
               "object": {"key": ARCHIVE_OBJECT_KEY, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                          "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189"},
               "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "source-ip-address": "1.2.3.4",
               "reason": "PutObject"}}


def json_path(event, path):
    value = event
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def transformed(transformer, event):
    """The target input EventBridge makes of `event`: a placeholder outside quotes becomes the value as JSON, inside
    a string its raw text (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html)."""
    values = {name: json_path(event, path) for name, path in transformer["InputPathsMap"].items()}
    out, in_string, i, text = [], False, 0, transformer["InputTemplate"]
    while i < len(text):
        c = text[i]
        match = re.match(r"<([A-Za-z0-9_.-]+)>", text[i:])
        if match and match.group(1) in values:
            value = values[match.group(1)]
            out.append(str(value) if in_string else json.dumps(value))
            i += len(match.group(0))
            continue
        if c == '"' and (i == 0 or text[i - 1] != "\\"):
            in_string = not in_string
        out.append(c)
        i += 1
    return json.loads("".join(out))


def wildcard_matches(pattern, value):
    """EventBridge's wildcard operator: '*' matches any run of characters."""
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


def read_as_s3_notification(message):
    """What the readers take from a message: Filebeat's aws-s3 input and the Splunk Add-on's S3 parser keep
    records with eventSource aws:s3 / eventName ObjectCreated:*, and read bucket, key (URL-decoded), region, size;
    the Datadog Forwarder reads Records[0].s3."""
    from urllib.parse import unquote_plus
    return [(r["awsRegion"], r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]), r["s3"]["object"]["size"])
            for r in message["Records"]
            if r.get("eventSource") == "aws:s3" and r.get("eventName", "").startswith("ObjectCreated:")]


def check_s3_notification(where, target):
    """The target gets each Object Created event as an S3 event notification naming the object."""
    if "InputTransformer" not in target:
        check(False, f"{where}: the target transforms the event into an S3 event notification: {target}")
        return
    message = transformed(target["InputTransformer"], OBJECT_CREATED)
    check(read_as_s3_notification(message) == [("us-east-1", "amzn-s3-demo-bucket", ARCHIVE_OBJECT_KEY, 5)],
          f"{where}: the message is an S3 event notification naming the object: {message}")
    check(set(message) == {"Records"} and message["Records"][0]["s3"]["object"]["eTag"]
          == OBJECT_CREATED["detail"]["object"]["etag"], f"{where}: the message carries the object's ETag: {message}")


def check_datadog_forwarder(template_path):
    """With DatadogForwarderArn, the same rule invokes the Forwarder with the same S3 notification, and only that
    rule may invoke it; with the queue too, both are targets."""
    forwarder = "arn:aws:lambda:us-east-1:123456789012:function:datadog-forwarder"
    for label, given, targets_wanted in (("the Datadog Forwarder alone", {**THREE, "DatadogForwarderArn": forwarder},
                                          ["datadog-forwarder"]),
                                         ("the Forwarder and the queue", {**THREE, "DatadogForwarderArn": forwarder,
                                          "ArchiveObjectQueue": "true"}, ["new-archive-object-queue", "datadog-forwarder"])):
        stack = deployed(template_path, given)
        where = f"with {label}"
        targets = stack.get("NewObjectRule", {}).get("Properties", {}).get("Targets", [])
        check([t["Id"] for t in targets] == targets_wanted, f"{where}: the rule's targets: {targets}")
        check(bool(of_type(stack, "AWS::SQS::Queue")) == ("ArchiveObjectQueue" in given), f"{where}: a queue only when asked")
        for t in targets:
            if t["Id"] == "datadog-forwarder":
                check(t["Arn"] == forwarder, f"{where}: the target is the Forwarder: {t}")
                check_s3_notification(where, t)
        permissions = [p["Properties"] for p in of_type(stack, "AWS::Lambda::Permission").values()]
        check(permissions == [{"Action": "lambda:InvokeFunction", "FunctionName": forwarder,
                               "Principal": "events.amazonaws.com", "SourceArn": "<GetAtt:NewObjectRule.Arn>"}],
              f"{where}: EventBridge may invoke the Forwarder for this rule only: {permissions}")


def check_archive_object_queue(template_path, _source):
    plain = deployed(template_path, THREE)
    check(not of_type(plain, "AWS::SQS::Queue") and "NewObjectRule" not in plain
          and not of_type(plain, "AWS::Lambda::Permission"),
          "without ArchiveObjectQueue or DatadogForwarderArn: no queue, no rule, no invoke permission")
    check_datadog_forwarder(template_path)
    for label, given, bucket in (("the created bucket", {**THREE, "ArchiveObjectQueue": "true", "AlarmTopicArn": TOPIC}, BUCKET),
                                 ("an existing bucket", {**THREE, "ArchiveObjectQueue": "true", "ExistingBucketName": "my-archive"},
                                  "my-archive")):
        stack = deployed(template_path, given)
        where = f"ArchiveObjectQueue with {label}"
        queues = of_type(stack, "AWS::SQS::Queue")
        check(sorted(queues) == ["NewObjectDeadLetterQueue", "NewObjectQueue"], f"{where}: a queue and its dead-letter queue: {sorted(queues)}")
        for name, q in queues.items():
            p = q["Properties"]
            check(p.get("SqsManagedSseEnabled") is True and int(p.get("MessageRetentionPeriod", 0)) == 1209600,
                  f"{where}: {name} is encrypted (SSE-SQS) and keeps messages 14 days: {p}")
        queue = queues.get("NewObjectQueue", {}).get("Properties", {})
        check(queue.get("RedrivePolicy") == {"deadLetterTargetArn": "<GetAtt:NewObjectDeadLetterQueue.Arn>", "maxReceiveCount": 10},
              f"{where}: a message received 10 times moves to the dead-letter queue: {queue.get('RedrivePolicy')}")
        check(int(queue.get("VisibilityTimeout", 0)) >= 300 and int(queue.get("ReceiveMessageWaitTimeSeconds", 0)) == 20,
              f"{where}: 300 s visibility, long polling: {queue}")

        # Least privilege: only the rule sends, over TLS; no one else is allowed anything by the queue policy.
        policies = of_type(stack, "AWS::SQS::QueuePolicy")
        check(list(policies) == ["NewObjectQueuePolicy"], f"{where}: one queue policy: {list(policies)}")
        policy = policies.get("NewObjectQueuePolicy", {}).get("Properties", {})
        check(sorted(policy.get("Queues", [])) == ["<Ref:NewObjectDeadLetterQueue>", "<Ref:NewObjectQueue>"],
              f"{where}: the policy is on both queues")
        arns = ["<GetAtt:NewObjectQueue.Arn>", "<GetAtt:NewObjectDeadLetterQueue.Arn>"]
        allows = [s for s in statements(policy.get("PolicyDocument", {})) if s["Effect"] == "Allow"]
        check(allows == [{"Sid": "OnlyTheNewObjectRuleSends", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                          "Action": "sqs:SendMessage", "Resource": arns,
                          "Condition": {"ArnEquals": {"aws:SourceArn": "<GetAtt:NewObjectRule.Arn>"}}}],
              f"{where}: the only Allow is sqs:SendMessage to EventBridge, from the rule alone (aws:SourceArn): {allows}")
        denies = [s for s in statements(policy.get("PolicyDocument", {})) if s["Effect"] == "Deny"]
        check([s.get("Condition") for s in denies] == [{"Bool": {"aws:SecureTransport": "false"}}],
              f"{where}: requests without TLS are denied: {denies}")

        rule = stack.get("NewObjectRule", {}).get("Properties", {})
        pattern = rule.get("EventPattern", {})
        check(pattern.get("source") == ["aws.s3"] and pattern.get("detail-type") == ["Object Created"]
              and pattern.get("detail", {}).get("bucket") == {"name": [bucket]},
              f"{where}: the rule matches objects created in the archive bucket: {pattern}")
        keys = [m.get("wildcard") for m in pattern.get("detail", {}).get("object", {}).get("key", [])]
        check(keys == [f"activity/{kind}-*.ndjson{ext}" for kind in ("cluster", "db") for ext in (".gz", ".zst", "")],
              f"{where}: the rule matches archive objects by prefix, resource id and extension: {keys}")
        for key, wanted in ((ARCHIVE_OBJECT_KEY, True), (ARCHIVE_OBJECT_KEY.replace(".gz", ".zst"), True),
                            (ARCHIVE_OBJECT_KEY.removesuffix(".gz"), True),
                            (ARCHIVE_OBJECT_KEY.replace("/cluster-", "/db-"), True),
                            ("activity/quarantine/cluster-AAAAAAAAAA/dt=2026-11-22/shardId-000000000000-4960.json", False),
                            (ORIGINALS_KEY, False),
                            ("aws/lambda/9f1c-uuid/shardId-000000000000/2026/11/22/2026-11-22T03.00.07-uuid", False),
                            ("other/cluster-AAAAAAAAAA/dt=2026-11-22/hour=03/x.ndjson.gz", False),
                            ("activity/cluster-AAAAAAAAAA/dt=2026-11-22/hour=03/x.ndjson.gz.tmp", False)):
            check(any(wildcard_matches(k, key) for k in keys) == wanted,
                  f"{where}: the rule {'matches' if wanted else 'does not match'} {key}")
        targets = rule.get("Targets", [])
        check(len(targets) == 1 and targets[0]["Arn"] == "<GetAtt:NewObjectQueue.Arn>"
              and targets[0].get("DeadLetterConfig") == {"Arn": "<GetAtt:NewObjectDeadLetterQueue.Arn>"},
              f"{where}: the rule's one target is the queue, undeliverable events to the dead-letter queue: {targets}")
        check_s3_notification(where, targets[0] if targets else {})

        alarms = {a["Properties"]["MetricName"]: a["Properties"] for a in of_type(stack, "AWS::CloudWatch::Alarm").values()
                  if a["Properties"].get("Namespace") == "AWS/SQS"}
        check(alarms.get("ApproximateNumberOfMessagesVisible", {}).get("Dimensions")
              == [{"Name": "QueueName", "Value": "<GetAtt:NewObjectDeadLetterQueue.QueueName>"}],
              f"{where}: an alarm on messages in the dead-letter queue: {alarms}")
        check(alarms.get("ApproximateAgeOfOldestMessage", {}).get("Dimensions")
              == [{"Name": "QueueName", "Value": "<GetAtt:NewObjectQueue.QueueName>"}],
              f"{where}: an alarm on a queue the SIEM stopped reading: {alarms}")
        topic = [TOPIC] if "AlarmTopicArn" in given else None
        check(all(a.get("AlarmActions") == topic for a in alarms.values()), f"{where}: the queue alarms notify {topic}")
        check(not of_type(stack, "AWS::IAM::Role").keys() - {"ArchiverRole"}, f"{where}: no new role")
    outputs = load(template_path)["Outputs"]
    check(all(outputs.get(o, {}).get("Condition") == "MakeArchiveObjectQueue"
              for o in ("NewObjectQueueUrl", "NewObjectQueueArn", "NewObjectDeadLetterQueueArn")),
          "the queue's URL and ARNs are outputs, only with ArchiveObjectQueue")
    return (f"{template_path}: the SIEM queue and the Datadog Forwarder only when asked, fed by the rule alone with archive "
            "objects, as S3 notifications")


# ---- sealed originals -------------------------------------------------------------------------------------------
ORIGINALS_KEY = "activity/originals/cluster-AAAAAAAAAA/dt=2026-11-22/hour=03/shardId-000000000000-4960-4961.ndjson.gz"
BREAK_GLASS = "arn:aws:iam::123456789012:role/security/das-break-glass"
ARCHIVER = "arn:aws:iam::123456789012:role/mystack-ArchiverRole-1A2B3C4D5E6F"
READERS = {
    "the archive function's role": ARCHIVER,
    "the Security Lake function's role": "arn:aws:iam::123456789012:role/mystack-SecurityLakeRole-6F5E4D3C2B1A",
    "an Athena analyst": "arn:aws:iam::123456789012:role/athena-analyst",
    "a Glue crawler": "arn:aws:iam::123456789012:role/service-role/AWSGlueServiceRole-das",
    "the account root": "arn:aws:iam::123456789012:root",
    "a role of the break-glass name on another path": "arn:aws:iam::123456789012:role/das-break-glass",
    "the break-glass role of another account": "arn:aws:iam::111122223333:role/security/das-break-glass",
}


def condition_holds(condition, request):
    """The condition operators the bucket policy uses, for one request's context keys (an absent condition holds)."""
    for operator, tests in (condition or {}).items():
        for key, wanted in tests.items():
            value, wanted = request.get(key), [str(w) for w in listed(wanted)]
            if operator == "Bool" and str(value).lower() not in [w.lower() for w in wanted]:
                return False
            if operator == "ArnEquals" and value not in wanted:
                return False
            if operator == "ArnNotEquals" and value in wanted:
                return False
            check(operator in ("Bool", "ArnEquals", "ArnNotEquals"), f"the checker does not know the operator {operator}")
    return True


def denied(policy, principal, action, resource):
    """Whether an explicit Deny of the bucket policy matches a TLS request (the only kind the SDKs send)."""
    request = {"aws:PrincipalArn": principal, "aws:SecureTransport": "true"}
    for s in statements(policy):
        if s.get("Effect") != "Deny" or s.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if any(wildcard_matches(a, action) for a in listed(s["Action"])) \
                and any(wildcard_matches(r.replace("<GetAtt:ArchiveBucket.Arn>", f"arn:aws:s3:::{BUCKET}"), resource)
                        for r in listed(s["Resource"])) \
                and condition_holds(s.get("Condition"), request):
            return True
    return False


def check_sealed_originals(template_path, _source):
    originals = f"arn:aws:s3:::{BUCKET}/{ORIGINALS_KEY}"
    archive = f"arn:aws:s3:::{BUCKET}/{ARCHIVE_OBJECT_KEY}"
    for label, given, reader in (("a break-glass role", {**THREE, "KeepOriginals": "true", "BreakGlassRoleArn": BREAK_GLASS},
                                  BREAK_GLASS),
                                 ("no break-glass role", {**THREE, "KeepOriginals": "true"}, None),
                                 ("KeepOriginals false", {**THREE, "BreakGlassRoleArn": BREAK_GLASS}, BREAK_GLASS)):
        stack = deployed(template_path, given)
        where = f"sealed originals with {label}"
        env = stack["ArchiverFunction"]["Properties"]["Environment"]["Variables"]
        check(env.get("DAS_KEEP_ORIGINALS") == given.get("KeepOriginals", "false"),
              f"{where}: the archive function gets DAS_KEEP_ORIGINALS={given.get('KeepOriginals', 'false')}: {env.get('DAS_KEEP_ORIGINALS')}")
        policy = stack.get("ArchiveBucketPolicy", {}).get("Properties", {}).get("PolicyDocument", {})
        principals = {**READERS, "the break-glass role": BREAK_GLASS}
        for who, principal in principals.items():
            for action in ("s3:GetObject", "s3:GetObjectVersion"):
                wanted = principal != reader
                check(denied(policy, principal, action, originals) == wanted,
                      f"{where}: {action} of originals/ by {who} must {'be denied' if wanted else 'not be denied'}")
            check(not denied(policy, principal, "s3:GetObject", archive),
                  f"{where}: {who} may still be allowed to read the archive itself")
        # The function writes originals under its PutObject on the archive prefix, and reads nothing.
        allows = [s for n, s in role_allows(stack) if n == "ArchiverRole"]
        check(any("s3:PutObject" in listed(s["Action"]) and any(wildcard_matches(r, originals) for r in listed(s["Resource"]))
                  for s in allows), f"{where}: ArchiverRole may put originals objects")
        check(not denied(policy, ARCHIVER, "s3:PutObject", originals), f"{where}: the bucket policy lets the function write originals")
        check(not any(a.startswith("s3:Get") for s in allows for a in listed(s["Action"])), f"{where}: ArchiverRole gets nothing")
    existing = deployed(template_path, {**THREE, "KeepOriginals": "true", "ExistingBucketName": "my-archive"})
    check("ArchiveBucketPolicy" not in existing, "with ExistingBucketName the stack writes no bucket policy (README says what to add)")
    params = load(template_path)["Parameters"]
    check(params["KeepOriginals"].get("Default") == "false" and params["BreakGlassRoleArn"].get("Default") == "",
          "KeepOriginals defaults to false, BreakGlassRoleArn to empty (nobody reads originals)")
    return f"{template_path}: originals/ is read by the break-glass role alone (nobody without one) and written by the function"


GROUPS = {
    "least-privilege": check_least_privilege,
    "streams": check_streams,
    "defaults-and-rules": check_defaults_and_rules,
    "alarms": check_alarms,
    "function-alarms": check_function_alarms,
    "security-lake-alarms": check_security_lake_stream_alarms,
    "source-account": check_source_account,
    "kms-key-policies": check_kms_key_policies,
    "security-lake": check_security_lake,
    "archive-object-queue": check_archive_object_queue,
    "sealed-originals": check_sealed_originals,
}


def main(argv):
    group = argv[1] if len(argv) > 1 else "all"
    template_path = argv[2] if len(argv) > 2 else "template.yaml"
    source_path = argv[3] if len(argv) > 3 else "source-account.yaml"
    for name, run in GROUPS.items():
        if group in (name, "all"):
            before = len(errors)
            summary = run(template_path, source_path)
            if len(errors) == before:
                print(summary)
    if group not in GROUPS and group != "all":
        errors.append(f"unknown group {group}; one of {', '.join(GROUPS)}, all")
    if errors:
        print("template checks failed:\n  " + "\n  ".join(errors))
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv)
