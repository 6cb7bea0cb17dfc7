"""Benchmark reconciler against the sandbox PBX with an injected round trip.

For each size it measures `validate`, `plan` and `apply` as a user runs them
(a separate process each, so wall time includes start-up), the tool's own CPU
time and peak memory from the kernel's accounting of that process, and the
HTTP requests of each kind the sandbox served. A naive apply (a new token per
request, no connection reuse) runs beside ours for a wall-time ratio.

Run from the repository root:

    python bench/run.py --sizes 100,1000,10000 --latency-ms 20 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from reconciler.sandbox.exchange import HttpRequest, HttpResponse  # noqa: E402
from reconciler.sandbox.faults import Faults  # noqa: E402
from reconciler.sandbox.server import SandboxServer, _Handler  # noqa: E402

NAIVE_CLIENT = Path(__file__).resolve().parent / "naive_apply.py"
TOOL = [sys.executable, "-m", "reconciler"]


class TimedSandbox(SandboxServer):
    """The sandbox, adding up the time it spends on each request.

    A request's time runs from reading its request line to writing the last
    byte of its response. So it contains the added delay as the sandbox slept
    it, the HTTP parsing and the PBX's work, which is all a client waits for.
    """

    def __init__(self, *args: Any, reload_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, reload_seconds=reload_seconds, **kwargs)
        self.reload_seconds = reload_seconds
        self.server_seconds = 0.0
        # (monotonic time the answer was ready, operation) of each request.
        self.answered: list[tuple[float, str | None]] = []

    def start(self) -> None:
        super().start()
        # The HTTP server is private to the sandbox. The benchmark swaps in a
        # handler that times each request, before any client connects.
        assert self._httpd is not None
        self._httpd.RequestHandlerClass = _TimedHandler

    def handle(self, request: HttpRequest) -> HttpResponse:
        response = super().handle(request)
        self.answered.append((time.monotonic(), response.operation))
        return response

    def poll_lag(self, reload_seconds: float) -> float | None:
        """Return how long after the reload finished the last status poll came."""
        reloads = [t for t, operation in self.answered if operation == "doreload"]
        polls = [t for t, operation in self.answered if operation == "fetchApiStatus"]
        if not reloads or not polls:
            return None
        return polls[-1] - (reloads[-1] + reload_seconds)


class _TimedHandler(_Handler):
    """The sandbox's request handler, timing each request it serves."""

    server: Any
    started: float | None = None

    def handle_one_request(self) -> None:
        # On a kept-alive connection this first waits for the next request,
        # which is not the server's time, so the clock starts in parse_request.
        self.started = None
        super().handle_one_request()
        if self.started is not None:
            self.server.sandbox.server_seconds += time.perf_counter() - self.started

    def parse_request(self) -> bool:
        self.started = time.perf_counter()
        return super().parse_request()


@dataclass
class Run:
    """One command's measurements."""

    wall: float
    cpu: float
    peak_mb: float
    exit_code: int
    requests: Counter[str] = field(default_factory=Counter)
    server_seconds: float = 0.0
    poll_lag: float | None = None
    # Minimum and maximum CPU of the repeated runs the median run came from.
    cpu_spread: tuple[float, float] | None = None

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


def run_tool(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run one command in its own process; measure its wall, CPU and peak memory."""
    started = time.perf_counter()
    process = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code not in (0, 2) and process.stderr is not None:
        sys.stderr.write(process.stderr.read().decode("utf-8", "replace")[-2000:])
    return Run(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_mb=usage.ru_maxrss / 1024,
        exit_code=exit_code,
    )


def write_extensions(path: Path, count: int) -> None:
    """Write a realistic file of `count` entries with defaults and overrides."""
    lines = [
        "# yaml-language-server: $schema=schema/extensions.schema.json",
        "version: 1",
        "defaults:",
        "  outbound_cid: '\"{name}\" <+4930123{extension}>'",
        "  voicemail: {enabled: true, pin: random}",
        '  user_manager: {enabled: true, groups: ["1"], password: random}',
        "extensions:",
    ]
    for index in range(count):
        number = 100000 + index
        lines += [
            f'  - extension: "{number}"',
            f"    name: Zoë Person {index}",
            f"    email: person{index}@example.com",
        ]
        if index % 10 == 0:
            lines.append("    voicemail: false")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def measure(
    server: TimedSandbox, args: list[str], env: dict[str, str], cwd: Path
) -> Run:
    """Run a command against `server` and attach the requests it caused."""
    first = len(server.requests)
    server.server_seconds = 0.0
    result = run_tool(args, env, cwd)
    result.requests = Counter(str(r.operation) for r in server.requests[first:])
    result.server_seconds = server.server_seconds
    if "doreload" in result.requests:
        result.poll_lag = server.poll_lag(server.reload_seconds)
    return result


def bench_size(count: int, latency_ms: float, reload_seconds: float) -> dict[str, Run]:
    """Measure every command at one size, each apply on a fresh sandbox."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        desired = directory / "extensions.yaml"
        write_extensions(desired, count)
        env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
        validate = [*TOOL, "validate", "-f", str(desired)]
        results = {
            "validate": median_run(
                [run_tool(validate, env, directory) for _ in range(REPEATS)]
            )
        }

        common = ["-f", str(desired), "--allow-http"]
        ours = {
            "plan (empty PBX)": [*TOOL, "plan", *common],
            "apply": [*TOOL, "apply", "--yes", *common],
            "plan (in sync)": [*TOOL, "plan", *common],
        }
        naive = {"naive apply": [sys.executable, str(NAIVE_CLIENT), str(desired)]}
        faults = Faults(latency_ms=latency_ms)
        for name, commands in (("ours", ours), ("naive", naive)):
            state = directory / f"{name}.sqlite3"
            pbx = TimedSandbox(state, reload_seconds=reload_seconds, faults=faults)
            with pbx:
                pbx_env = {
                    **env,
                    "FREEPBX_URL": pbx.url,
                    "FREEPBX_CLIENT_ID": pbx.client_id,
                    "FREEPBX_CLIENT_SECRET": pbx.client_secret,
                }
                for label, command in commands.items():
                    times = 1 if "apply" in label else REPEATS
                    runs = [
                        measure(pbx, command, pbx_env, directory) for _ in range(times)
                    ]
                    results[label] = median_run(runs)
        return results


# validate and plan run this many times and report the run of median CPU:
# single runs of one command vary by a quarter on this kind of virtual machine.
REPEATS = 5


def median_run(runs: list[Run]) -> Run:
    """Return the run of median CPU, with the minimum and maximum CPU of all."""
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda run: run.cpu)
    median = ordered[len(ordered) // 2]
    median.cpu_spread = (ordered[0].cpu, ordered[-1].cpu)
    return median


EXAMPLE_RUNS = 10


def bench_example() -> list[Run]:
    """Validate the repository's example file as a pre-commit hook would, 10 times."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    validate = [*TOOL, "validate", "-f", str(REPOSITORY / "extensions.yaml")]
    return [run_tool(validate, env, REPOSITORY) for _ in range(EXAMPLE_RUNS)]


def render_example(runs: list[Run]) -> str:
    walls = sorted(run.wall for run in runs)
    median = walls[len(walls) // 2]
    return (
        f"\n`reconciler validate` of the example extensions.yaml, {len(runs)} runs: "
        f"wall {walls[0]:.3f} s minimum, {median:.3f} s median, {walls[-1]:.3f} s "
        "maximum.\n"
    )


def render(
    results: dict[int, dict[str, Run]],
    latency_ms: float,
    reload_seconds: float,
    command: str,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}.",
        f"Sandbox PBX in the benchmark's process with {latency_ms:g} ms added to every "
        f"request and a {reload_seconds:g} s apply config; each command runs in its "
        "own process, so wall time includes Python's start-up. CPU and peak memory "
        "are the tool process's own (getrusage of the child). validate and plan "
        f"ran {REPEATS} times each: the row is the run of median CPU, with the "
        "minimum and maximum CPU of the five in brackets.",
        "",
        "| extensions | command | wall s | tool CPU s | peak MB | requests "
        "| expected s | wall / expected | beyond expected, ms per request |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for count, runs in results.items():
        for name, run in runs.items():
            expected = ""
            ratio = ""
            extra = ""
            if run.requests:
                seconds = run.server_seconds
                if "apply" in name:
                    seconds += reload_seconds
                expected = f"{seconds:.2f}"
                ratio = f"{run.wall / seconds:.3f}"
                per_request = (run.wall - seconds) / run.request_count * 1000
                extra = f"{per_request:.2f}"
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(run.requests.items()))
            cpu = f"{run.cpu:.2f}"
            if run.cpu_spread is not None:
                cpu += f" ({run.cpu_spread[0]:.2f}-{run.cpu_spread[1]:.2f})"
            lines.append(
                f"| {count:,} | {name} | {run.wall:.2f} | {cpu} | "
                f"{run.peak_mb:.0f} | {kinds} | {expected} | {ratio} | {extra} |"
            )
        ours, naive = runs.get("apply"), runs.get("naive apply")
        if ours and naive:
            speedup = naive.wall / ours.wall
            lines.append(f"| {count:,} | naive / ours (wall) | {speedup:.2f}x ||||||")
    lags = [
        f"{count:,}: {run.poll_lag:.2f} s"
        for count, runs in results.items()
        for name, run in runs.items()
        if name == "apply" and run.poll_lag is not None
    ]
    lines += [
        "",
        "Last status poll after the apply config finished (ours): " + ", ".join(lags),
    ]
    lines += [
        "",
        "expected = the time the sandbox spent on the requests, each from reading "
        f"its request line to writing its response ({latency_ms:g} ms added delay, "
        "HTTP parsing and the PBX's work), plus the apply config time for applies. "
        "It is what a client with no cost of its own would wait. beyond expected = "
        "(wall - expected) / requests: the tool's start-up, its own work per "
        "request and the loopback network. The naive apply requests a new token "
        "for every request and opens a new connection each time.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--reload-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]

    # pip compiles a package's bytecode when it installs it. A source checkout
    # run with PYTHONDONTWRITEBYTECODE would compile every module on every run.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPOSITORY / "reconciler")],
        check=True,
    )
    example = bench_example()
    results = {}
    for count in sizes:
        print(f"benchmarking {count} extensions...", file=sys.stderr)
        results[count] = bench_size(count, options.latency_ms, options.reload_seconds)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    text = render(results, options.latency_ms, options.reload_seconds, command)
    text += render_example(example)
    if options.out:
        options.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
