"""Benchmark `make serve` against scoring in process and against `mlflow models serve`.

A default project (MLflow) runs its pipeline and promotes its model. Then, on
the same raw test rows, for batches of 1 and 100 rows:

- the floor: ``inference.predict`` of the loaded pipeline, in this process's
  sibling (the project's interpreter), no HTTP;
- the service: ``python -m <package>.commands.serve`` (what ``make serve``
  runs), over one keep-alive HTTP connection;
- the peer: ``mlflow models serve`` of the registered champion
  (``--env-manager local``), over one keep-alive connection.

Each request is timed REQUESTS times after WARMUP; the table gives the median
and the 99th percentile, and the throughput (rows a second) with one client
thread per core sending 100-row batches. Figures for a report, never asserts.

Usage: .venv/bin/python bench/bench_serve.py [--requests 300] [--project PATH]
"""

from __future__ import annotations

import argparse
import http.client
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import (  # noqa: E402
    commit_all,
    free_port,
    git_init_commit,
    render,
    run,
    tool_env,
)

MODEL = "claims-fraud-detection"
WARMUP = 20

FLOOR = """
import json, statistics, sys, time
import pandas
from claims_fraud_detection.commands.predict import load_model, validate
from claims_fraud_detection.shared import inference

requests, sizes = int(sys.argv[1]), [int(size) for size in sys.argv[2].split(",")]
loaded = load_model("champion")
rows = pandas.read_parquet("data/interim/test.parquet")
columns = inference.columns(loaded.model)
found = {}
for size in sizes:
    batch = rows.head(size)
    times = []
    for index in range(requests + 20):
        start = time.perf_counter()
        inference.predict(loaded.model, validate(batch, columns, "bench", 0, unit="row"))
        if index >= 20:
            times.append(time.perf_counter() - start)
    found[size] = times
print(json.dumps(found))
"""


def percentile(times: list[float], share: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def body(project: Path, size: int) -> bytes:
    code = (
        "import pandas, sys\n"
        "rows = pandas.read_parquet('data/interim/test.parquet').drop(columns=['fraud'])\n"
        f"print(rows.head({size}).to_json(orient='split', index=False))\n"
    )
    out = run(["uv", "run", "--locked", "python", "-c", code], project).stdout.splitlines()[-1]
    return json.dumps({"dataframe_split": json.loads(out)}).encode()


def wait(port: int, process: subprocess.Popen[str], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped: {process.stdout and process.stdout.read()}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"nothing answered on port {port}")


def timed_requests(port: int, payload: bytes, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    times = []
    for index in range(count + WARMUP):
        start = time.perf_counter()
        connection.request("POST", "/invocations", body=payload, headers=headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"status {answer.status}")
        if index >= WARMUP:
            times.append(time.perf_counter() - start)
    return times


def throughput(port: int, payload: bytes, rows: int, clients: int, count: int) -> float:
    threads = [
        threading.Thread(target=timed_requests, args=(port, payload, count))
        for _ in range(clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * (count + WARMUP) * rows / (time.perf_counter() - start)


def serve(project: Path, command: list[str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        cwd=project,
        env={**tool_env(), "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def measure(project: Path, command: list[str], payloads: dict[int, bytes], count: int) -> dict:
    port = free_port()
    process = serve(project, [*command, "--port", str(port)], port)
    try:
        wait(port, process)
        found = {size: timed_requests(port, payload, count) for size, payload in payloads.items()}
        clients = os.cpu_count() or 1
        found["throughput"] = throughput(port, payloads[100], 100, clients, count // 2)
        return found
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--project", type=Path, help="a promoted default project to reuse")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = arguments.project
        if project is None:
            project = render(Path(folder) / MODEL)
            git_init_commit(project)
            run(["make", "setup"], project)
            run(["make", "repro"], project)
            commit_all(project, "Run the pipeline")
            run(["make", "promote", "EXP=HEAD"], project)
        payloads = {size: body(project, size) for size in (1, 100)}
        python = ["uv", "run", "--locked", "python"]
        floor = json.loads(
            run([*python, "-c", FLOOR, str(arguments.requests), "1,100"], project).stdout
        )
        ours = measure(
            project,
            [*python, "-m", "claims_fraud_detection.commands.serve"],
            payloads,
            arguments.requests,
        )
        peer_command = [
            "uv",
            "run",
            "--locked",
            "mlflow",
            "models",
            "serve",
            "--env-manager",
            "local",
            "-m",
            f"models:/{MODEL}@champion",
            "--host",
            "127.0.0.1",
        ]
        peer = measure(project, peer_command, payloads, arguments.requests)
    columns = ["in process", "make serve", "mlflow models serve"]
    heading = " | ".join(f"{name}: median, p99 (ms)" for name in columns)
    print(f"| rows | {heading} | serve / floor | serve / peer |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in (1, 100):
        base = floor[str(size)]
        cells = [
            f"{statistics.median(times) * 1000:.2f}, {percentile(times, 0.99) * 1000:.2f}"
            for times in (base, ours[size], peer[size])
        ]
        ratio_floor = statistics.median(ours[size]) / statistics.median(base)
        ratio_peer = statistics.median(ours[size]) / statistics.median(peer[size])
        print(f"| {size} | {' | '.join(cells)} | {ratio_floor:.2f}x | {ratio_peer:.2f}x |")
    print(
        f"throughput, 100-row batches, {os.cpu_count()} clients: make serve "
        f"{ours['throughput']:.0f} rows/s, mlflow models serve {peer['throughput']:.0f} rows/s"
    )


if __name__ == "__main__":
    main()
