"""Reads OCSF Parquet objects back with pyarrow.

Usage: ocsf_parquet_read.py DIR
For every *.parquet under DIR prints, as one JSON object keyed by the path relative to DIR:
{"rows": [...events, nulls removed, maps as objects...], "class_uids": [...distinct...],
 "event_days": [...distinct UTC days of `time`, YYYYMMDD...], "compression": [...], "partition": {k: v}}.
"""

import datetime
import json
import pathlib
import sys

import pyarrow.parquet as pq


def clean(value):
    """Drops nulls; turns pyarrow's map (a list of (key, value) pairs) into an object."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: clean(v) for k, v in value}
        return [clean(v) for v in value]
    return value


def read(path):
    pf = pq.ParquetFile(path)
    table = pf.read()
    rows = [clean(r) for r in table.to_pylist()]
    codecs = sorted({pf.metadata.row_group(g).column(c).compression
                     for g in range(pf.metadata.num_row_groups)
                     for c in range(pf.metadata.num_columns)})
    days = sorted({datetime.datetime.fromtimestamp(r["time"] / 1000, tz=datetime.timezone.utc).strftime("%Y%m%d")
                   for r in rows})
    partition = dict(part.split("=", 1) for part in path.parent.parts if "=" in part)
    return {
        "rows": rows,
        "class_uids": sorted({r["class_uid"] for r in rows}),
        "event_days": days,
        "compression": codecs,
        "partition": partition,
    }


def main(root):
    root = pathlib.Path(root)
    out = {str(p.relative_to(root)): read(p) for p in sorted(root.rglob("*.parquet"))}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
