"""Validates OCSF events against the OCSF JSON Schema of their class, version and profiles.

Usage: ocsf_validate.py EVENTS.json  (a JSON array of OCSF events)
Prints a JSON summary: {"validated": n, "errors": ["<event uid>: <path>: <message>", ...]}.
Schemas come from the `ocsf-json-schema` package (compiled OCSF schemas), `jsonschema` validates.
"""

import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema


def main(path):
    with open(path, encoding="utf-8") as f:
        events = json.load(f)
    validators = {}
    errors = []
    for event in events:
        metadata = event.get("metadata", {})
        version = metadata.get("version")
        profiles = tuple(sorted(metadata.get("profiles", [])))
        key = (version, event.get("class_uid"), profiles)
        if key not in validators:
            schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version))
            name = schema.lookup_class_name_from_uid(event.get("class_uid"))
            class_schema = schema.get_class_schema(name, list(profiles))
            validators[key] = Draft202012Validator(class_schema)
        for error in validators[key].iter_errors(event):
            where = "/".join(str(p) for p in error.absolute_path)
            # The message may quote the value; keep it short.
            errors.append(f"{metadata.get('uid')}: {where}: {error.message[:300]}")
    json.dump({"validated": len(events), "schemas": len(validators), "errors": errors[:50]}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
