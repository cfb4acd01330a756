"""Scheduling, failure strategies, human actions and limits, through a real `agentfleet run`.

Every test drives the CLI as a subprocess on a real repository: agents are small Python
programs, and what the tests assert comes from the store (run records, task statuses), from
`agentfleet get|describe|logs`, and from the processes left (or not) on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from .conftest import WRITE_FILE, Fleet, agent, batch, project, workflow

DEVELOP = {"name": "develop", "agentType": "Development"}
RUN_TIMEOUT = 90.0


# --- helpers -----------------------------------------------------------------------------------


def code(text: str, *more: str) -> str:
    """An agent's `python -c` program: an indented block, then more lines (e.g. WRITE_FILE)."""
    return "\n".join([textwrap.dedent(text).strip(), *more]) + "\n"


def when(value: str | None) -> datetime:
    assert value, "a run record without this timestamp"
    return datetime.fromisoformat(value)


def phases(fleet: Fleet) -> dict[str, str]:
    return {name: t["status"]["phase"] for name, t in fleet.tasks().items()}


def attempts(task: dict[str, Any], stage: str = "develop") -> list[dict[str, Any]]:
    return next(s for s in task["status"]["stages"] if s["name"] == stage)["attempts"]


def runs_of(fleet: Fleet, task: str) -> list[dict[str, Any]]:
    return [r for r in fleet.runs() if r["task"] == task]


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The most runs in flight at once, from their [start_time, finish_time] intervals.

    At equal times an end counts before a start: a run starting as another ends is no overlap.
    """
    points = sorted(
        [(when(r["start_time"]), 1) for r in runs] + [(when(r["finish_time"]), -1) for r in runs]
    )
    busy = peak = 0
    for _, delta in points:
        busy += delta
        peak = max(peak, busy)
    return peak


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_under(path: Path) -> list[str]:
    """Live processes whose working folder is inside `path` (worktrees are under it)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.Error):
            if Path(proc.cwd()).is_relative_to(path):
                found.append(f"{proc.pid} {proc.info['cmdline']}")
    return found


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path} appeared:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)
    return path.read_text().strip()


def wait_for_tasks(
    fleet: Fleet,
    proc: subprocess.Popen[str],
    check: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll `agentfleet get tasks` until `check` holds, the run ends, or time is up."""
    deadline = time.monotonic() + timeout
    tasks: dict[str, Any] = {}
    while True:
        tasks = fleet.tasks()
        if check(tasks):
            return tasks
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}:\n{proc.stdout.read()}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            seen = {n: t.get("status", {}).get("phase") for n, t in tasks.items()}
            raise AssertionError(f"not {what} within {timeout} s; tasks: {seen}")
        time.sleep(0.3)


def phase_is(task: str, phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda tasks: (tasks.get(task, {}).get("status") or {}).get("phase") == phase


@contextlib.contextmanager
def background(fleet: Fleet, manifests: Path) -> Iterator[subprocess.Popen[str]]:
    """`agentfleet run` in the background; killed (its own group) if the test leaves early."""
    proc = fleet.start("run", "-f", str(manifests))
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def finish(proc: subprocess.Popen[str], timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def fails_for(suffix: str, then: str = WRITE_FILE) -> str:
    """An agent that exits 1 on tasks whose name ends with `suffix`, else runs `then`."""
    return code(
        f"""
        import os, sys
        if os.environ['AGENTFLEET_TASK'].endswith({suffix!r}):
            print('this ticket is beyond me', file=sys.stderr)
            sys.exit(1)
        """,
        then,
    )


def sleeps_then_writes(seconds: float) -> str:
    return code(f"import time; time.sleep({seconds})", WRITE_FILE)


# --- scheduling --------------------------------------------------------------------------------


def test_dependents_start_after_their_dependencies_finish_and_parallel_limit_caps_runs(
    fleet: Fleet,
) -> None:
    tickets = [
        {"id": "a", "rawDescription": "Add a"},
        {"id": "b", "rawDescription": "Add b", "dependencies": ["a"]},
        {"id": "c", "rawDescription": "Add c", "dependencies": ["b"]},
        {"id": "d", "rawDescription": "Add d"},
        {"id": "e", "rawDescription": "Add e"},
    ]
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", sleeps_then_writes(1)),
            batch(tickets, parallel_limit=2),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(phases(fleet).values()) == {"Succeeded"}

    runs = fleet.runs()
    assert sorted(r["task"] for r in runs) == ["b-a", "b-b", "b-c", "b-d", "b-e"]
    by_task = {r["task"]: r for r in runs}
    for ticket in tickets:
        run = by_task[f"b-{ticket['id']}"]
        for dep in ticket.get("dependencies", []):
            before = by_task[f"b-{dep}"]
            assert when(run["start_time"]) >= when(before["finish_time"]), (
                f"{run['name']} started at {run['start_time']}, before {before['name']} "
                f"finished at {before['finish_time']}"
            )
    assert max_overlap(runs) == 2


def test_an_agents_max_parallel_tasks_caps_its_runs_below_the_batch_limit(fleet: Fleet) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", sleeps_then_writes(0.5), max_parallel=1),
            batch(
                [{"id": x, "rawDescription": f"Add {x}"} for x in ("a", "b", "c")],
                parallel_limit=3,
            ),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    runs = fleet.runs()
    assert len(runs) == 3
    assert max_overlap(runs) == 1


# --- failure strategies ------------------------------------------------------------------------


def test_continue_others_fails_the_task_and_its_dependents_while_the_others_succeed(
    fleet: Fleet,
) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP], strategy="ContinueOthers"),
            agent("dev", "Development", fails_for("-bad")),
            batch(
                [
                    {"id": "ok", "rawDescription": "Add ok"},
                    {"id": "bad", "rawDescription": "Add bad"},
                    {"id": "child", "rawDescription": "Use bad", "dependencies": ["bad"]},
                    {"id": "grandchild", "rawDescription": "Use it", "dependencies": ["child"]},
                ]
            ),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 1, result.stdout + result.stderr
    assert phases(fleet) == {
        "b-ok": "Succeeded",
        "b-bad": "Failed",
        "b-child": "DependencyFailed",
        "b-grandchild": "DependencyFailed",
    }
    assert fleet.get("batches", "b")["status"]["phase"] == "Failed"
    bad = attempts(fleet.tasks()["b-bad"])
    assert [a["reason"] for a in bad] == ["AgentFailed"]
    assert sorted(r["task"] for r in fleet.runs()) == ["b-bad", "b-ok"]


def test_abort_all_cancels_a_running_sibling_and_ends_its_process(fleet: Fleet) -> None:
    pids = fleet.tmp / "pids"
    pids.mkdir()
    # The sibling records its pid and sleeps; the failing task waits for that pid first, so
    # the failure always lands while the sibling's agent is running.
    program = code(
        f"""
        import os, pathlib, sys, time
        pids = pathlib.Path({str(pids)!r})
        task = os.environ['AGENTFLEET_TASK']
        if task.endswith('-slow'):
            (pids / task).write_text(str(os.getpid()))
            time.sleep(60)
        deadline = time.monotonic() + 60
        while not (pids / 'b-slow').exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        sys.exit(1)
        """
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP], strategy="AbortAll"),
            agent("dev", "Development", program),
            batch(
                [
                    {"id": "slow", "rawDescription": "Take long"},
                    {"id": "bad", "rawDescription": "Fail"},
                    {"id": "later", "rawDescription": "After", "dependencies": ["slow"]},
                ],
                parallel_limit=2,
            ),
        ]
    )
    started = time.monotonic()
    result = fleet.run(manifests, timeout=RUN_TIMEOUT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 45, "the sibling ran on instead of being cancelled"
    assert phases(fleet) == {"b-slow": "Aborted", "b-bad": "Failed", "b-later": "Aborted"}
    assert fleet.get("batches", "b")["status"]["phase"] == "Failed"
    slow = runs_of(fleet, "b-slow")
    assert [(r["phase"], r["reason"]) for r in slow] == [("Failed", "AbortAll")]
    assert attempts(fleet.tasks()["b-slow"])[0]["reason"] == "AbortAll"
    assert not runs_of(fleet, "b-later")
    pid = int((pids / "b-slow").read_text())
    assert not alive(pid), f"the aborted agent (pid {pid}) still runs"
    assert processes_under(fleet.state_dir) == []


def test_retry_with_different_agent_gives_the_failed_stage_to_the_next_agent(
    fleet: Fleet,
) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP], strategy="RetryWithDifferentAgent"),
            # The assigned agent goes first though its name sorts last.
            agent("dev-z", "Development", "import sys; sys.exit(1)"),
            agent("dev-a", "Development", WRITE_FILE),
            batch([{"id": "x", "rawDescription": "Add x"}], assignments={"Development": "dev-z"}),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    task = fleet.tasks()["b-x"]
    assert task["status"]["phase"] == "Succeeded"
    assert [(a["agent"], a["phase"]) for a in attempts(task)] == [
        ("dev-z", "Failed"),
        ("dev-a", "Succeeded"),
    ]
    assert [(r["agent"], r["attempt"]) for r in fleet.runs()] == [("dev-z", 1), ("dev-a", 2)]


def test_escalate_to_human_waits_and_a_retry_with_the_agent_fixed_succeeds(fleet: Fleet) -> None:
    broken = fleet.tmp / "agent-is-broken"
    broken.write_text("yes\n")
    program = code(
        f"""
        import os, sys
        if os.path.exists({str(broken)!r}):
            sys.exit(1)
        """,
        WRITE_FILE,
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP], strategy="EscalateToHuman"),
            agent("dev", "Development", program),
            batch([{"id": "x", "rawDescription": "Add x"}]),
        ]
    )
    with background(fleet, manifests) as proc:
        wait_for_tasks(fleet, proc, phase_is("b-x", "Escalated"), "b-x is Escalated")
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended instead of waiting for a human"
        assert fleet.get("batches", "b")["status"]["phase"] == "Processing"
        broken.unlink()
        retried = fleet.cli("retry", "b-x")
        assert retried.returncode == 0, retried.stderr
        code_, out = finish(proc)
    assert code_ == 0, out
    task = fleet.tasks()["b-x"]
    assert task["status"]["phase"] == "Succeeded"
    assert [(a["attempt"], a["phase"]) for a in attempts(task)] == [
        (1, "Failed"),
        (2, "Succeeded"),
    ]


def test_escalate_to_human_then_skip_lets_the_dependents_run(fleet: Fleet) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP], strategy="EscalateToHuman"),
            agent("dev", "Development", fails_for("-bad")),
            batch(
                [
                    {"id": "bad", "rawDescription": "Fail"},
                    {"id": "child", "rawDescription": "After", "dependencies": ["bad"]},
                ]
            ),
        ]
    )
    with background(fleet, manifests) as proc:
        tasks = wait_for_tasks(fleet, proc, phase_is("b-bad", "Escalated"), "b-bad is Escalated")
        assert tasks["b-child"]["status"]["phase"] == "Pending"
        assert not runs_of(fleet, "b-child")
        skipped = fleet.cli("skip", "b-bad")
        assert skipped.returncode == 0, skipped.stderr
        code_, out = finish(proc)
    assert code_ == 0, out
    assert phases(fleet) == {"b-bad": "Skipped", "b-child": "Succeeded"}
    assert [r["task"] for r in fleet.runs()] == ["b-bad", "b-child"]


def test_abort_batch_during_a_run_cancels_its_runs_and_aborts_its_tasks(fleet: Fleet) -> None:
    pid_file = fleet.tmp / "agent.pid"
    program = code(
        f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        time.sleep(60)
        """
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", program),
            batch(
                [
                    {"id": "slow", "rawDescription": "Take long"},
                    {"id": "next", "rawDescription": "After", "dependencies": ["slow"]},
                ]
            ),
        ]
    )
    with background(fleet, manifests) as proc:
        pid = int(wait_for_file(pid_file, proc))
        aborted = fleet.cli("abort", "b")
        assert aborted.returncode == 0, aborted.stderr
        code_, out = finish(proc, timeout=45)
    assert code_ == 1, out
    assert phases(fleet) == {"b-slow": "Aborted", "b-next": "Aborted"}
    assert fleet.get("batches", "b")["status"]["phase"] == "Failed"
    assert [(r["name"], r["phase"], r["reason"]) for r in fleet.runs()] == [
        ("b-slow-develop-1", "Failed", "Aborted")
    ]
    assert not alive(pid), f"the aborted agent (pid {pid}) still runs"
    assert processes_under(fleet.state_dir) == []


# --- approvals ---------------------------------------------------------------------------------


def test_a_stage_waiting_for_approval_holds_its_dependent_stage_until_approved(
    fleet: Fleet,
) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow(
                [
                    {**DEVELOP, "requiredApprovals": 1},
                    {"name": "qa", "agentType": "QualityAssurance", "dependencies": ["develop"]},
                ]
            ),
            agent("dev", "Development", WRITE_FILE),
            agent("qa", "QualityAssurance", WRITE_FILE),
            batch([{"id": "x", "rawDescription": "Add x"}]),
        ]
    )
    with background(fleet, manifests) as proc:
        wait_for_tasks(fleet, proc, phase_is("b-x", "AwaitingApproval"), "b-x is AwaitingApproval")
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended instead of waiting for the approval"
        assert [r["stage"] for r in fleet.runs()] == ["develop"]
        approved_at = datetime.now(UTC)
        approved = fleet.cli("approve", "b-x", "--stage", "develop", "--by", "alice")
        assert approved.returncode == 0, approved.stderr
        code_, out = finish(proc)
    assert code_ == 0, out
    task = fleet.tasks()["b-x"]
    assert task["status"]["phase"] == "Succeeded"
    develop = next(s for s in task["status"]["stages"] if s["name"] == "develop")
    assert develop["approvals"] == ["alice"]
    qa = [r for r in fleet.runs() if r["stage"] == "qa"]
    assert len(qa) == 1
    assert when(qa[0]["start_time"]) >= approved_at


# --- limits ------------------------------------------------------------------------------------


def test_a_run_past_its_timeout_is_killed_with_its_grandchildren(fleet: Fleet) -> None:
    child_pid = fleet.tmp / "grandchild.pid"
    program = code(
        f"""
        import pathlib, subprocess, time
        child = subprocess.Popen(['sleep', '60'])
        pathlib.Path({str(child_pid)!r}).write_text(str(child.pid))
        time.sleep(60)
        """
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", program, timeout_seconds=2),
            batch([{"id": "x", "rawDescription": "Add x"}]),
        ]
    )
    started = time.monotonic()
    result = fleet.run(manifests, timeout=RUN_TIMEOUT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 40, "the run was not ended at its deadline"
    task = fleet.tasks()["b-x"]
    assert task["status"]["phase"] == "Failed"
    assert [a["reason"] for a in attempts(task)] == ["DeadlineExceeded"]
    assert [r["reason"] for r in fleet.runs()] == ["DeadlineExceeded"]
    # The engine's deadline, not only the runner's own, ended it: only the driver's
    # cancel path records a cancel reason.
    assert [r["cancel_reason"] for r in fleet.runs()] == ["DeadlineExceeded"]
    pid = int(child_pid.read_text())
    assert not alive(pid), f"the agent's `sleep 60` (pid {pid}) outlived the run"
    assert processes_under(fleet.state_dir) == []


def test_a_run_past_its_memory_limit_fails_as_oom_killed(fleet: Fleet) -> None:
    program = code(
        """
        b = bytearray(600 * 1024 * 1024)
        print('allocated', len(b))
        """
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", program, memory_mb=200),
            batch([{"id": "x", "rawDescription": "Add x"}]),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 1, result.stdout + result.stderr
    task = fleet.tasks()["b-x"]
    assert task["status"]["phase"] == "Failed"
    assert [a["reason"] for a in attempts(task)] == ["OOMKilled"]
    assert [r["reason"] for r in fleet.runs()] == ["OOMKilled"]


# --- logs and describe -------------------------------------------------------------------------


def test_logs_print_the_agents_output_and_describe_shows_attempts_and_events(
    fleet: Fleet,
) -> None:
    program = code(
        """
        import sys
        print('hello from the agent')
        print('second line of work')
        print('a warning on stderr', file=sys.stderr)
        """,
        WRITE_FILE,
    )
    manifests = fleet.write(
        [
            project(),
            workflow([DEVELOP]),
            agent("dev", "Development", program),
            batch([{"id": "x", "rawDescription": "Add x"}]),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 0, result.stdout + result.stderr

    logs = fleet.cli("logs", "b-x", "--stage", "develop")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    for expected in ("hello from the agent", "second line of work", "a warning on stderr"):
        assert any(line.endswith(expected) for line in lines), logs.stdout
    first = next(i for i, line in enumerate(lines) if line.endswith("hello from the agent"))
    second = next(i for i, line in enumerate(lines) if line.endswith("second line of work"))
    assert first < second

    missing = fleet.cli("logs", "b-x", "--stage", "qa")
    assert missing.returncode == 1
    assert "no run of stage 'qa'" in missing.stderr

    described = fleet.cli("describe", "task", "b-x")
    assert described.returncode == 0, described.stderr
    page = described.stdout
    assert "Attempts" in page
    attempt_rows = [line for line in page.splitlines() if line.lstrip().startswith("develop")]
    assert any("dev" in row and "Succeeded" in row for row in attempt_rows), page
    assert "Events" in page
    for reason in ("RunStarted", "RunSucceeded", "Succeeded"):
        assert reason in page


@pytest.fixture(autouse=True)
def _no_agent_outlives_its_test(fleet: Fleet) -> Iterator[None]:
    """A test that left an agent behind would slow the others down on two cores."""
    yield
    leftovers = processes_under(fleet.state_dir)
    assert leftovers == [], f"processes left in the worktrees: {leftovers}"
