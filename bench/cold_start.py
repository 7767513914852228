#!/usr/bin/env python3
"""Cold start of the Lambda binary: process start -> ready for the first event.

What is measured
----------------
The time from just before the binary's process is created (``subprocess.Popen``)
to the moment the binary sends its first ``GET /2018-06-01/runtime/invocation/next``
request to the Lambda Runtime API. That request is how a custom runtime tells
Lambda "initialisation is done, give me an event": everything the binary does
once at start-up happens before it (exec and dynamic loading, the tokio
runtime, logging set-up, reading the settings, loading the AWS SDK
configuration, building the S3 and KMS clients and the filter).

This script runs a minimal fake Runtime API (a ``ThreadingHTTPServer`` on
127.0.0.1, on a free port), points the binary at it with
``AWS_LAMBDA_RUNTIME_API`` and records when the first ``/next`` arrives. The
``/next`` request is never answered: once its time is recorded the process is
terminated and the next run starts. One uncounted warm-up run fills the page
cache first, so the figures are for a binary whose file is already in memory.

Why
---
On a real Lambda the "Init Duration" in the REPORT line is essentially this
interval, plus the platform's own work to create the sandbox and start the
process, which cannot be measured here. The child gets a minimal environment
(not this process's) with dummy credentials and an unreachable endpoint, so
any network access during initialisation would show up as a failure or a delay
rather than go unnoticed.

The recorded time includes a little of this script's own overhead (accepting
the connection, starting a handler thread, parsing the request line), well
under a millisecond on an idle machine.

Usage::

    python3 bench/cold_start.py --binary target/release/das-archiver-lambda --runs 20 [--json]

With ``--json`` one object is printed on stdout:
``{"runs": N, "median_ms": x, "min_ms": x, "p90_ms": x, "max_ms": x}``.
Otherwise a one-line summary is printed. Diagnostics go to stderr; the exit
status is non-zero when a run fails.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

NEXT_PATH = "/2018-06-01/runtime/invocation/next"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = "target/release/das-archiver-lambda"
TAIL_LINES = 20


class BenchError(Exception):
    """A run failed; the message says why and carries the child's output."""


class RunState:
    """What the HTTP handler records for one run: the first /next and any error report."""

    def __init__(self) -> None:
        """Start a run with nothing recorded yet."""
        self.lock = threading.Lock()
        self.next_at: float | None = None
        self.ready = threading.Event()
        self.release = threading.Event()
        self.posts: list[str] = []

    def record_next(self, when: float) -> bool:
        """Record the time of a /next request; true only for the run's first one."""
        with self.lock:
            if self.next_at is not None:
                return False
            self.next_at = when
        self.ready.set()
        return True

    def record_post(self, path: str, body: bytes) -> None:
        """Keep a POST (e.g. an init error report) for the failure message."""
        with self.lock:
            self.posts.append(f"POST {path}: {body[:500].decode('utf-8', 'replace')}")


class FakeRuntimeServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer holding the state of the run in progress."""

    daemon_threads = True

    def __init__(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.state = RunState()
        self.hold_seconds = 60.0


class RuntimeApiHandler(http.server.BaseHTTPRequestHandler):
    """The few Runtime API routes a runtime uses before its first event."""

    protocol_version = "HTTP/1.1"
    server: FakeRuntimeServer

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        """Record the first /next and hold the request until the run is over."""
        now = time.perf_counter()
        state = self.server.state
        if self.path != NEXT_PATH:
            self.send_error(404, "not part of the fake Runtime API")
            return
        state.record_next(now)
        # No answer: the process is terminated while it waits for its event. Once released,
        # closing the connection without a response is fine because nobody is listening.
        state.release.wait(self.server.hold_seconds)
        self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        """Accept init/invocation error reports and keep them for diagnostics."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.server.state.record_post(self.path, body)
        reply = b'{"status":"OK"}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        """Keep the server quiet: request lines would drown the summary."""


def child_env(runtime_api: str) -> dict[str, str]:
    """The minimal environment the binary gets: what a Lambda sets, plus the function's settings."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "das-archiver",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/das-archiver",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "DAS_ARCHIVE_BUCKET": "das-archive-bench",
        # Never contacted during initialisation: the point is that init needs no network.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


def tail(stream: IO[bytes], lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a temporary output file, decoded leniently."""
    stream.flush()
    stream.seek(0)
    text = stream.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def stop(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM the child, wait up to `grace` seconds, then SIGKILL it."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def failure(reason: str, state: RunState, stdout: IO[bytes], stderr: IO[bytes]) -> BenchError:
    """A BenchError naming the reason, with the child's output tails and any error reports."""
    parts = [reason]
    for label, stream in (("stderr", stderr), ("stdout", stdout)):
        text = tail(stream)
        parts.append(f"--- last {TAIL_LINES} lines of the child's {label} ---\n{text or '(empty)'}")
    if state.posts:
        parts.append("--- reports the child sent to the Runtime API ---\n" + "\n".join(state.posts))
    return BenchError("\n".join(parts))


def run_once(server: FakeRuntimeServer, binary: Path, timeout: float) -> float:
    """Start the binary once and return milliseconds until its first GET /next."""
    state = RunState()
    server.state = state
    host, port = server.server_address[:2]
    env = child_env(f"{host}:{port}")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO_ROOT
        )
        try:
            deadline = t0 + timeout
            while not state.ready.wait(0.005):
                if proc.poll() is not None:
                    raise failure(
                        f"{binary} exited with status {proc.returncode} before asking for an event",
                        state, out, err,
                    )
                if time.perf_counter() > deadline:
                    raise failure(
                        f"{binary} did not ask for an event (GET {NEXT_PATH}) within {timeout:g} s",
                        state, out, err,
                    )
            assert state.next_at is not None
            return (state.next_at - t0) * 1000.0
        finally:
            stop(proc)
            state.release.set()


def percentile(values: list[float], fraction: float) -> float:
    """Linear-interpolated percentile (the 'inclusive' method: min at 0, max at 1)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: list[float]) -> dict[str, float | int]:
    """Runs, median, min, p90 and max in milliseconds, rounded to 0.01 ms."""
    return {
        "runs": len(samples),
        "median_ms": round(statistics.median(samples), 2),
        "min_ms": round(min(samples), 2),
        "p90_ms": round(percentile(samples, 0.9), 2),
        "max_ms": round(max(samples), 2),
    }


def measure(binary: Path, runs: int, timeout: float) -> list[float]:
    """One uncounted warm-up run, then `runs` counted ones; returns their times in ms."""
    server = FakeRuntimeServer()
    server.hold_seconds = timeout + 5.0
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        warm = run_once(server, binary, timeout)
        print(f"warm-up: {warm:.2f} ms (not counted)", file=sys.stderr)
        samples = []
        for i in range(runs):
            samples.append(run_once(server, binary, timeout))
            print(f"run {i + 1}/{runs}: {samples[-1]:.2f} ms", file=sys.stderr)
        return samples
    finally:
        server.shutdown()
        server.server_close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--binary",
        default=DEFAULT_BINARY,
        help=f"the Lambda binary; relative paths are from the repository root (default {DEFAULT_BINARY})",
    )
    parser.add_argument("--runs", type=int, default=20, help="counted runs after one warm-up (default 20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per run (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, then print the summary; 1 on a failed run, 2 on a missing binary."""
    args = parse_args(argv)
    binary = Path(args.binary)
    if not binary.is_absolute():
        binary = REPO_ROOT / binary
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"cold_start: {binary} is not an executable file (build it with `make build`)", file=sys.stderr)
        return 2
    try:
        samples = measure(binary, args.runs, args.timeout)
    except BenchError as e:
        print(f"cold_start: {e}", file=sys.stderr)
        return 1
    summary = summarize(samples)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"cold start ({summary['runs']} runs, process start -> first GET /next): "
            f"median {summary['median_ms']:.2f} ms, min {summary['min_ms']:.2f} ms, "
            f"p90 {summary['p90_ms']:.2f} ms, max {summary['max_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
