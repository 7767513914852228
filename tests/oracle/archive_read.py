"""Reads an archive object with one of the readers people query archives with, for
tests/it/archive_readers.rs, and writes what it read to standard output.

    archive_read.py READER FILE

READER is `python-gzip` (gzip.decompress and gzip.open, which must agree; the bytes are written as
read), `duckdb` (DuckDB's read_json, the compression taken from the file's extension, as
`read_json('s3://…/*.ndjson.gz')` takes it) or `pyarrow` (pyarrow.json.read_json over a
CompressedInputStream, the codec taken from the extension). The table readers write one line per row
read: `record<TAB>event<TAB>commandText`, in the order read.
"""

import gzip
import sys


def python_gzip(path):
    with open(path, "rb") as f:
        whole = gzip.decompress(f.read())
    with gzip.open(path, "rb") as f:
        streamed = f.read()
    assert whole == streamed, "gzip.decompress and gzip.open disagree"
    sys.stdout.buffer.write(whole)


def rows_out(rows):
    out = sys.stdout
    for record, event, command in rows:
        out.write(f"{record}\t{event}\t{command}\n")


def duckdb_read(path):
    import duckdb

    quoted = path.replace("'", "''")
    query = f"SELECT record, event, commandText FROM read_json('{quoted}', format = 'newline_delimited')"
    rows_out(duckdb.sql(query).fetchall())


def pyarrow_read(path):
    import pyarrow as pa
    import pyarrow.json as pj

    codec = {"gz": "gzip", "zst": "zstd"}[path.rsplit(".", 1)[-1]]
    with pa.OSFile(path) as raw, pa.CompressedInputStream(raw, codec) as stream:
        table = pj.read_json(stream)
    columns = [table.column(name).to_pylist() for name in ("record", "event", "commandText")]
    rows_out(zip(*columns))


READERS = {"python-gzip": python_gzip, "duckdb": duckdb_read, "pyarrow": pyarrow_read}

if __name__ == "__main__":
    READERS[sys.argv[1]](sys.argv[2])
