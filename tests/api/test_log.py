"""The application log never stalls the server: `serve` writes it from a thread of its own
(`log.Lines`), and past `log_buffer` waiting lines drops and counts them.

A stderr nobody reads (a pipe whose reader is stuck, a terminal on hold) fills up after 64
KiB; a server writing its log on the event loop then stops answering anything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from groupgate.log import JsonFormatter, Lines
from tests.support.servers import demo_check, free_port, wait_for_port


class Held:
    """A stream whose writes wait until released (a pipe nobody reads)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.release.wait()
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        return None


def record(n: int) -> logging.LogRecord:
    return logging.LogRecord("groupgate.api", logging.WARNING, "f.py", 1, "line %d", (n,), None)


def test_lines_never_wait_for_the_stream_and_count_what_they_drop() -> None:
    stream = Held()
    lines = Lines(stream, JsonFormatter(), buffer=10)  # type: ignore[arg-type]
    lines.handler.handle(record(0))
    while not lines.queue.empty():  # the writer took it and is held writing it
        time.sleep(0.001)
    started = time.monotonic()
    for n in range(1, 100):  # 10 wait, 89 are dropped
        lines.handler.handle(record(n))
    assert time.monotonic() - started < 5  # never waited for the held stream
    assert lines.dropped == 89
    stream.release.set()
    lines.stop()
    written = [json.loads(line) for line in stream.lines]
    notices = [line for line in written if line["message"].startswith("log: ")]
    kept = [line["message"] for line in written if line not in notices]
    assert kept == [f"line {n}" for n in range(11)]  # in order: the one held, the 10 queued
    assert [line["message"] for line in notices] == [
        f"log: {lines.dropped} lines dropped, the log stream was not read as fast as they came"
    ]
    assert notices[0]["level"] == "warning" and notices[0]["logger"] == "groupgate"


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - ours
        return response.status, response.read()


def test_serve_answers_while_nobody_reads_its_stderr() -> None:
    port, decision_port = free_port(), free_port()
    env = {**os.environ, "GROUPGATE_LOG_LEVEL": "debug", "GROUPGATE_LOG_BUFFER": "100"}
    command = ["serve", "--demo", "--port", str(port), "--decision-port", str(decision_port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "groupgate.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,  # read only at the end
        env=env,
    )
    try:
        wait_for_port(port, process, timeout=20)
        # Each malformed request is a debug line of about 200 bytes: 2,000 of them are six
        # times what the pipe holds.
        for _ in range(2000):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                assert sock.recv(65536).split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
        assert demo_check(port)["allow"] is True  # answered, the log's writer held
        assert demo_check(decision_port)["allow"] is True
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        dropped = [
            line for line in metrics.decode().splitlines()
            if line.startswith("groupgate_log_lines_dropped_total ")
        ]  # fmt: skip
        assert status == 200 and dropped and float(dropped[0].split()[1]) > 1000
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    assert b"lines dropped, the log stream was not read as fast as they came" in err
    assert b"malformed HTTP request" in err  # what fitted was written, once read
