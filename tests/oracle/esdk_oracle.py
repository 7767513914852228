#!/usr/bin/env python3
"""Reference oracle: the official Python AWS Encryption SDK (aws-encryption-sdk 4.x).

das-archiver has its own Rust ESDK decoder/encoder. This script runs the
official Python SDK on the same inputs so that tests can check the two agree
byte for byte. It does the same thing as the AWS Database Activity Streams
Python sample (Aurora User Guide, "Processing a database activity stream using
the AWS SDK"), except for the KMS call: the 32-byte wrapping key (the KMS
plaintext) is passed in.

The script works in batches, because importing the SDK takes a while: each
subcommand reads a JSON manifest listing many cases.

    esdk_oracle.py encrypt     MANIFEST   # plaintext files -> raw ESDK messages
    esdk_oracle.py decrypt     MANIFEST   # raw ESDK messages -> plaintext files
    esdk_oracle.py decrypt-das MANIFEST   # DAS Kinesis record JSON -> payload JSON
    esdk_oracle.py bench       MANIFEST   # ms/message of encrypt/decrypt (reference figures)

Each case may give "provider_id" (default "BC") and "key_name" (default
"DataKey"). These are the raw AES key namespace and key name, as DAS uses them.

encrypt manifest:
    {"cases": [{"name", "wrapping_key_hex" (64 hex), "suite" ("0178", "0378", ... 4 hex),
                "frame_length" (int, 0 = non-framed), "plaintext": path, "ciphertext": path,
                "encryption_context": {str: str} (optional)}]}
  Every case must succeed. The first failure ends the run with exit code 1.
  On success the script prints {"ok": [names], "headers": {name: {...}}}.

decrypt manifest:
    {"cases": [{"name", "wrapping_key_hex", "ciphertext": path, "plaintext_out": path}]}
decrypt-das manifest:
    {"cases": [{"name", "wrapping_key_hex", "record": path, "payload_out": path}]}
  A case that fails writes nothing: a stale output file from an earlier run is
  removed. At the end the script prints to stdout
    {"ok": [names], "failed": {name: "error text"},
     "headers": {name: {"suite": "0178", "frame_length": 4096,
                        "content_type": "framed"|"non-framed",
                        "encryption_context": {...}}}}
  and exits 0. A failed case is data for the caller, not a script error.
  "headers" has an entry for each ok case only.

bench manifest:
    {"cases": [{"name", "op": "encrypt"|"decrypt", "wrapping_key_hex", "iterations": int,
                encrypt: "suite", "frame_length", "plaintext"; decrypt: "ciphertext"}]}
  Prints {"results": {name: {"iterations", "total_s", "ms_per_message"}}}. Only
  the SDK call is timed, in a loop that rebuilds the key provider every time, as
  the sample does for each record.

Any other error (bad manifest, I/O error, failed encrypt) ends the run with a
message on stderr and exit code 1 (exit code 2 for bad usage).

Run it with the project's virtualenv (.venv/bin/python; see requirements.txt).
How the SDK behaves (aws-encryption-sdk 4.0.7):
  * frame_length 0 gives a non-framed message (content type 0x01, header frame
    length 0). Any other frame length must be a multiple of 128 (the SDK checks
    it against the AES block size in bits), or encrypt fails.
  * If the plaintext length is a multiple of the frame length (also for an empty
    plaintext), the SDK writes full frames and then an empty final frame.
  * Signing suites add "aws-crypto-public-key" to the encryption context. The
    footer signature is always padded to 103 bytes (P-384) or 71 bytes (P-256).
  * Encrypting needs FORBID_ENCRYPT_ALLOW_DECRYPT for non-committing suites and
    REQUIRE_ENCRYPT_* for 0478/0578. encrypt_client() picks the right one.
  * decrypt-das decodes base64 with base64.b64decode's default (validate=False),
    as the sample does, so characters outside the base64 alphabet are skipped.
"""

import base64
import json
import logging
import os
import sys
import time
import zlib

import aws_encryption_sdk
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.identifiers import Algorithm, ContentType, EncryptionKeyType, WrappingAlgorithm
from aws_encryption_sdk.internal.crypto import WrappingKey
from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider
from aws_encryption_sdk.materials_managers.default import DefaultCryptoMaterialsManager

DEFAULT_PROVIDER_ID = "BC"
DEFAULT_KEY_NAME = "DataKey"
WRAPPING_KEY_LEN = 32
# The SDK logs "Error on closing" with a traceback to stderr whenever a decrypt
# fails; the error is already reported in the summary, so that log is muted.
SDK_LOGGER = "aws_encryption_sdk"


class OracleError(Exception):
    """A script error: bad manifest, unreadable input, failed encrypt."""


class DasRawMasterKeyProvider(RawMasterKeyProvider):
    """The raw AES master key provider of the AWS DAS Python sample.

    The only change from the sample: the provider id can be set for each
    instance. It defaults to the sample's "BC", so that official test vectors
    with other namespaces can be decrypted as well.
    """

    provider_id = DEFAULT_PROVIDER_ID

    def __new__(cls, *args, **kwargs):  # pylint: disable=unused-argument
        # As in the sample: skip MasterKeyProvider.__new__'s kwargs handling.
        return super(RawMasterKeyProvider, cls).__new__(cls)

    def __init__(self, plain_key, provider_id=DEFAULT_PROVIDER_ID):  # pylint: disable=super-init-not-called
        RawMasterKeyProvider.__init__(self)
        if provider_id != DEFAULT_PROVIDER_ID:
            self.provider_id = provider_id
        self.wrapping_key = WrappingKey(
            wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
            wrapping_key=plain_key,
            wrapping_key_type=EncryptionKeyType.SYMMETRIC,
        )

    def _get_raw_key(self, key_id):
        return self.wrapping_key


# ---------------------------------------------------------------- manifest helpers


def load_manifest(path):
    """Read a manifest and return its list of cases (each a dict with a unique "name")."""
    try:
        with open(path, "rb") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise OracleError(f"cannot read manifest {path}: {e}") from e
    cases = manifest.get("cases") if isinstance(manifest, dict) else None
    if not isinstance(cases, list):
        raise OracleError(f"manifest {path}: top level must be an object with a \"cases\" list")
    names = set()
    for i, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("name"), str):
            raise OracleError(f"manifest {path}: case #{i} must be an object with a string \"name\"")
        if case["name"] in names:
            raise OracleError(f"manifest {path}: duplicate case name {case['name']!r}")
        names.add(case["name"])
    return cases


def field(case, key, kind, default=None):
    """Return case[key] checked to be of type kind; a missing key gives default, or an error if None."""
    if key not in case:
        if default is None:
            raise OracleError(f"case {case['name']!r}: missing field {key!r}")
        return default
    value = case[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise OracleError(f"case {case['name']!r}: field {key!r} has the wrong type")
    return value


def wrapping_key(case):
    """The 32-byte wrapping key of a case (field "wrapping_key_hex")."""
    text = field(case, "wrapping_key_hex", str)
    try:
        key = bytes.fromhex(text)
    except ValueError as e:
        raise OracleError(f"case {case['name']!r}: wrapping_key_hex is not hex") from e
    if len(key) != WRAPPING_KEY_LEN:
        raise OracleError(f"case {case['name']!r}: wrapping key is {len(key)} bytes, expected {WRAPPING_KEY_LEN}")
    return key


def algorithm(case):
    """The Algorithm member whose id is case["suite"] (4 hex digits)."""
    text = field(case, "suite", str)
    try:
        return Algorithm.get_by_id(int(text, 16))
    except (ValueError, KeyError) as e:
        raise OracleError(f"case {case['name']!r}: unknown algorithm suite {text!r}") from e


def encryption_context(case):
    """The optional str->str encryption context of a case."""
    ctx = field(case, "encryption_context", dict, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()):
        raise OracleError(f"case {case['name']!r}: encryption_context must map strings to strings")
    return ctx


def read_bytes(path):
    """Read a whole file as bytes, raising OracleError."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise OracleError(f"cannot read {path}: {e}") from e


def write_bytes(path, data):
    """Write a file atomically (temp file + rename), raising OracleError."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise OracleError(f"cannot write {path}: {e}") from e


def remove_stale(path):
    """Remove an output file left by an earlier run, so a failed case leaves nothing behind."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise OracleError(f"cannot remove stale output {path}: {e}") from e


def describe(error):
    """Error text for the summary: exception class (e.g. zlib.error), then its message if it has one."""
    kind = type(error)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    text = str(error)
    return f"{name}: {text}" if text else name


def header_summary(header):
    """What the caller needs from a decrypted (or written) message header."""
    return {
        "suite": f"{header.algorithm.algorithm_id:04x}",
        "frame_length": header.frame_length,
        "content_type": "framed" if header.content_type == ContentType.FRAMED_DATA else "non-framed",
        "encryption_context": dict(header.encryption_context),
    }


# ---------------------------------------------------------------- ESDK calls


def materials_manager(key, case):
    """The sample's CMM: DasRawMasterKeyProvider with one master key, wrapped in the default CMM."""
    provider = DasRawMasterKeyProvider(key, field(case, "provider_id", str, default=DEFAULT_PROVIDER_ID))
    provider.add_master_key(field(case, "key_name", str, default=DEFAULT_KEY_NAME))
    return DefaultCryptoMaterialsManager(master_key_provider=provider)


def encrypt_client(alg):
    """A client whose commitment policy lets it encrypt with alg.

    Non-committing suites (all DAS suites) need FORBID_ENCRYPT_ALLOW_DECRYPT;
    committing suites (0478, 0578) need a REQUIRE_ENCRYPT_* policy.
    """
    policy = (
        CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
        if alg.is_committing()
        else CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT
    )
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)


def decrypt_client():
    """The client of the AWS DAS Python sample."""
    return aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)


def esdk_encrypt(client, case, key, alg, plaintext):
    """Encrypt plaintext for a case; returns (message bytes, header)."""
    return client.encrypt(
        source=plaintext,
        materials_manager=materials_manager(key, case),
        algorithm=alg,
        frame_length=field(case, "frame_length", int),
        encryption_context=encryption_context(case),
    )


def esdk_decrypt(client, case, key, message):
    """Decrypt a raw ESDK message for a case, as the sample's decrypt_payload does; returns (plaintext, header)."""
    return client.decrypt(source=message, materials_manager=materials_manager(key, case))


def das_decrypt(client, case, key, record_bytes):
    """The DAS sample's per-record steps, without KMS; returns (payload object, header)."""
    record = json.loads(record_bytes)
    payload_decoded = base64.b64decode(record["databaseActivityEvents"])
    decrypted, header = esdk_decrypt(client, case, key, payload_decoded)
    payload = json.loads(zlib.decompress(decrypted, zlib.MAX_WBITS + 16))
    return payload, header


# ---------------------------------------------------------------- subcommands


def cmd_encrypt(manifest_path):
    """Encrypt every case; any failure is a script error."""
    ok, headers = [], {}
    for case in load_manifest(manifest_path):
        name = case["name"]
        key, alg = wrapping_key(case), algorithm(case)
        out_path = field(case, "ciphertext", str)
        plaintext = read_bytes(field(case, "plaintext", str))
        try:
            message, header = esdk_encrypt(encrypt_client(alg), case, key, alg, plaintext)
        except OracleError:
            raise
        except Exception as e:  # pylint: disable=broad-except
            raise OracleError(f"case {name!r}: encrypt failed: {describe(e)}") from e
        write_bytes(out_path, message)
        ok.append(name)
        headers[name] = header_summary(header)
    return {"ok": ok, "headers": headers}


def run_decrypt_cases(manifest_path, input_field, output_field, decrypt_one):
    """Shared loop of decrypt and decrypt-das: per-case failures are collected, not raised.

    decrypt_one(client, case, key, input_bytes) returns (output bytes, header).
    """
    client = decrypt_client()
    ok, failed, headers = [], {}, {}
    for case in load_manifest(manifest_path):
        name = case["name"]
        key = wrapping_key(case)
        out_path = field(case, output_field, str)
        data = read_bytes(field(case, input_field, str))
        remove_stale(out_path)
        try:
            output, header = decrypt_one(client, case, key, data)
        except OracleError:
            raise
        except Exception as e:  # pylint: disable=broad-except
            failed[name] = describe(e)
            continue
        write_bytes(out_path, output)
        ok.append(name)
        headers[name] = header_summary(header)
    return {"ok": ok, "failed": failed, "headers": headers}


def cmd_decrypt(manifest_path):
    """Decrypt raw ESDK messages to plaintext files."""
    return run_decrypt_cases(manifest_path, "ciphertext", "plaintext_out", esdk_decrypt)


def cmd_decrypt_das(manifest_path):
    """Decrypt DAS Kinesis records to payload JSON files (json.dumps of the parsed payload)."""

    def one(client, case, key, record_bytes):
        payload, header = das_decrypt(client, case, key, record_bytes)
        return json.dumps(payload).encode("utf-8"), header

    return run_decrypt_cases(manifest_path, "record", "payload_out", one)


def bench_loop(iterations, call):
    """Run call() iterations times; returns (total seconds, ms per call)."""
    start = time.perf_counter()
    for _ in range(iterations):
        call()
    total = time.perf_counter() - start
    return total, total * 1000.0 / iterations


def cmd_bench(manifest_path):
    """Time encrypt or decrypt of one message, repeated; the reference figures for benchmarks."""
    results = {}
    for case in load_manifest(manifest_path):
        key, op = wrapping_key(case), field(case, "op", str)
        iterations = field(case, "iterations", int)
        if iterations < 1:
            raise OracleError(f"case {case['name']!r}: iterations must be >= 1")
        if op == "encrypt":
            alg = algorithm(case)
            client, data = encrypt_client(alg), read_bytes(field(case, "plaintext", str))
            call = lambda: esdk_encrypt(client, case, key, alg, data)  # noqa: E731
        elif op == "decrypt":
            client, data = decrypt_client(), read_bytes(field(case, "ciphertext", str))
            call = lambda: esdk_decrypt(client, case, key, data)  # noqa: E731
        else:
            raise OracleError(f"case {case['name']!r}: op must be \"encrypt\" or \"decrypt\"")
        try:
            call()  # warm-up, and fail early
            total, per = bench_loop(iterations, call)
        except OracleError:
            raise
        except Exception as e:  # pylint: disable=broad-except
            raise OracleError(f"case {case['name']!r}: {op} failed: {describe(e)}") from e
        results[case["name"]] = {"iterations": iterations, "total_s": round(total, 4), "ms_per_message": round(per, 4)}
    return {"results": results}


COMMANDS = {
    "encrypt": cmd_encrypt,
    "decrypt": cmd_decrypt,
    "decrypt-das": cmd_decrypt_das,
    "bench": cmd_bench,
}


def main(argv):
    if len(argv) != 3 or argv[1] not in COMMANDS:
        print(f"usage: {argv[0]} {{{'|'.join(COMMANDS)}}} MANIFEST.json", file=sys.stderr)
        return 2
    logging.getLogger(SDK_LOGGER).setLevel(logging.CRITICAL)
    try:
        summary = COMMANDS[argv[1]](argv[2])
    except OracleError as e:
        print(f"esdk_oracle {argv[1]}: error: {e}", file=sys.stderr)
        return 1
    json.dump(summary, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
