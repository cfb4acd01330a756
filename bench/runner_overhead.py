"""Runner overhead benchmark: what `agentfleet runner` costs around an agent that does nothing.

Runs the runner N times with a no-op `command` agent (`true`) and no criteria on a real
temporary git repository and worktree, and measures, per run, the time from spawn to the
first event line on stdout, the time to exit, and the maximum RSS of the runner process (from
`os.wait4` on its pid). A bare `python -c pass` is measured the same way in the same run as
the baseline. See bench/README.md.

    .venv/bin/python bench/runner_overhead.py [--runs N]

Progress goes to stdout; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNNER = [sys.executable, "-m", "agentfleet", "runner"]
BARE_PYTHON = [sys.executable, "-c", "pass"]
BRANCH = "agentfleet/bench/noop"
AGENT_STARTED = b'"agent started"'


def out(line: str = "") -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class Sample:
    any_line_s: float | None
    first_line_s: float | None
    exit_s: float
    max_rss_mb: float
    exit_code: int


def spawn(argv: list[str], marker: bytes | None = None) -> Sample:
    """Run `argv` once: seconds to its first stdout line (holding `marker`), to its exit, max RSS.

    `os.wait4` reaps the child itself, so `ru_maxrss` is that process's peak. On Linux it is
    never below `spawn_floor_rss_mb`: the kernel keeps the high-water mark of the memory the
    child had before exec, which after a vfork is this benchmark's. It also covers the
    children the process reaped (`git`, `true`), all far smaller than the runner.
    """
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first_line_s = any_line_s = None
    for line in proc.stdout:
        if any_line_s is None:
            any_line_s = time.perf_counter() - began
        if first_line_s is None and (marker is None or marker in line):
            first_line_s = time.perf_counter() - began
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    exit_s = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    return Sample(any_line_s, first_line_s, exit_s, usage.ru_maxrss / 1024, proc.returncode)


def git(cwd: Path, *args: str) -> None:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True)


def make_run(folder: Path) -> Path:
    """A repository with one commit, a task worktree, and the spec of a no-op run in it."""
    repo = folder / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    worktree = folder / "worktree"
    git(repo, "worktree", "add", "-q", "-b", BRANCH, str(worktree), "main")
    spec = {
        "name": "noop-dev-1",
        "stage": "dev",
        "attempt": 1,
        "agentName": "noop",
        "agent": {
            "agentType": "Development",
            "baseExecutor": {"type": "command", "command": ["true"]},
        },
        "taskSpec": {"title": "Do nothing"},
        "stageSpec": {"name": "dev", "agentType": "Development"},
        "worktree": str(worktree),
        "contextDir": str(folder / "context"),
        "branch": BRANCH,
    }
    path = folder / "run.json"
    path.write_text(json.dumps(spec))
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)


def bench_python_start(runs: int, folder: Path) -> dict[str, Any]:
    spawn(BARE_PYTHON)  # warm the page cache
    samples = [spawn(BARE_PYTHON) for _ in range(runs)]
    return {"python_start_s": round(median([s.exit_s for s in samples]), 4)}


def bench_runner(runs: int, folder: Path) -> dict[str, Any]:
    spec = make_run(folder)
    argv = [*RUNNER, "--spec", str(spec), "--result", str(folder / "result.json")]
    spawn(argv)  # warm-up, not counted
    samples: list[Sample] = []
    for index in range(runs):
        # Start = until the runner hands over to the agent: its imports, spec and context done.
        sample = spawn(argv, marker=AGENT_STARTED)
        samples.append(sample)
        first = f"{sample.first_line_s:.3f}s" if sample.first_line_s is not None else "-"
        out(
            f"  run {index + 1:>3}: agent started {first}, exit {sample.exit_s:.3f}s, "
            f"max RSS {sample.max_rss_mb:.1f} MB, exit code {sample.exit_code}"
        )
    result = json.loads((folder / "result.json").read_text())
    starts = [s.first_line_s for s in samples if s.first_line_s is not None]
    firsts = [s.any_line_s for s in samples if s.any_line_s is not None]
    return {
        "runner_start_s": round(median(starts), 4),
        "runner_first_event_s": round(median(firsts), 4),
        "runner_total_s": round(median([s.exit_s for s in samples]), 4),
        "runner_rss_mb": round(max(s.max_rss_mb for s in samples), 1),
        "runner_rss_mb_median": round(median([s.max_rss_mb for s in samples]), 1),
        "runner_failures": sum(1 for s in samples if s.exit_code != 0),
        "last_result_reason": result.get("reason"),
    }


def bench_driver(runs: int, folder: Path) -> dict[str, Any]:
    """The local driver's own cost per run: CPU time of the driving process per no-op run.

    A batch of `runs` one-stage tasks with the no-op agent goes through `LocalEngine` in this
    process; the driver's CPU time (store writes, `decide()`, worktrees, spawning, polling;
    threads included) over the whole batch, divided by the runs, is its overhead per run.
    The runners' own time is spent in their processes and not counted.
    """
    from datetime import UTC, datetime

    import yaml

    from agentfleet.local.engine import EngineOptions, LocalEngine
    from agentfleet.models.loader import parse_document

    repo = folder / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    api = "agentfleet.dev/v1alpha1"
    docs = [
        {
            "apiVersion": api,
            "kind": "Project",
            "metadata": {"name": "bench"},
            "spec": {"repository": {"url": "."}, "defaultWorkflowRef": {"name": "one"}},
        },
        {
            "apiVersion": api,
            "kind": "Workflow",
            "metadata": {"name": "one"},
            "spec": {"stages": [{"name": "dev", "agentType": "Development"}]},
        },
        {
            "apiVersion": api,
            "kind": "AgentConfig",
            "metadata": {"name": "noop"},
            "spec": {
                "agentType": "Development",
                "baseExecutor": {"type": "command", "command": ["true"]},
            },
        },
        {
            "apiVersion": api,
            "kind": "TicketBatch",
            "metadata": {"name": "bench"},
            "spec": {
                "projectRef": {"name": "bench"},
                "parallelLimit": 2,
                "tickets": [{"id": f"t{i}", "rawDescription": f"noop {i}"} for i in range(runs)],
            },
        },
    ]
    resources = [parse_document(yaml.safe_load(yaml.safe_dump(d)), "bench", 1) for d in docs]
    engine = LocalEngine(repo, repo / ".agentfleet", EngineOptions(tick_seconds=0.05))
    try:
        engine.store.apply(resources, datetime.now(UTC))
        cpu_before = time.process_time()
        began = time.perf_counter()
        while not engine.finished(["bench"]):
            engine.step()
            time.sleep(0.05)
        wall = time.perf_counter() - began
        cpu = time.process_time() - cpu_before
        phases = engine.batch_phases(["bench"])
    finally:
        engine.close()
    out(f"  {runs} runs in {wall:.2f}s wall, driver CPU {cpu:.2f}s, batch {phases['bench']}")
    return {
        "driver_overhead_per_run_ms": round(cpu / runs * 1000, 1),
        "driver_batch_wall_s": round(wall, 2),
        "driver_batch_phase": phases["bench"],
    }


# One function per measurement, each returning its keys of the JSON line.
MEASUREMENTS: list[Callable[[int, Path], dict[str, Any]]] = [
    bench_python_start,
    bench_runner,
    bench_driver,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each (default 20)")
    args = parser.parse_args(argv)
    out(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}; {args.runs} runs each"
    )
    result: dict[str, Any] = {"runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="agentfleet-bench-") as tmp:
        for measure in MEASUREMENTS:
            out(f"{measure.__name__}:")
            folder = Path(tmp) / measure.__name__
            folder.mkdir()
            result.update(measure(args.runs, folder))
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # a high-water mark
    result["spawn_floor_rss_mb"] = round(floor, 1)
    result["runner_start_vs_python_ratio"] = round(
        result["runner_start_s"] / result["python_start_s"], 2
    )
    result["driver_overhead_vs_runner_ratio"] = round(
        result["driver_overhead_per_run_ms"] / (result["runner_total_s"] * 1000), 3
    )
    out(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
