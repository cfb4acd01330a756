"""A driver killed at any moment picks up where it stopped: nothing done twice, nothing lost.

The driver is SIGKILLed in its own process group (the fixture starts it as a session leader);
runs live in their own sessions, so they outlive it exactly as they would a real crash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from .conftest import Fleet, agent, batch, git, project, workflow

TRACE_AGENT = """
import os, pathlib, time
e = os.environ
with open(e["TRACE"], "a") as trace:
    trace.write(f"{e['AGENTFLEET_TASK']} {e['AGENTFLEET_STAGE']} {e['AGENTFLEET_ATTEMPT']}\\n")
time.sleep(0.5 + sum(map(ord, e["AGENTFLEET_TASK"] + e["AGENTFLEET_STAGE"])) % 3 * 0.5)
pathlib.Path(e["AGENTFLEET_STAGE"] + ".txt").write_text(e["AGENTFLEET_TASK"] + "\\n")
"""
"""Appends `<task> <stage> <attempt>` to $TRACE, works 0.5-1.5 s, writes `<stage>.txt`."""

STAGES = [
    {
        "name": "develop",
        "agentType": "Development",
        "successCriteria": [{"type": "file_created", "pattern": "develop.txt"}],
    },
    {"name": "qa", "agentType": "QualityAssurance", "dependencies": ["develop"]},
]

RUN_VAR = "AGENTFLEET_RUN"
STATE_DIR_VAR = "AGENTFLEET_STATE_DIR"


def manifests(
    fleet: Fleet, trace: Path, tickets: list[dict[str, Any]], max_retries: int | None = None
) -> Path:
    env = {"TRACE": str(trace)}
    return fleet.write(
        [
            project(),
            workflow(STAGES, max_retries=max_retries),
            agent("dev", "Development", TRACE_AGENT, env=env),
            agent("qa", "QualityAssurance", TRACE_AGENT, env=env),
            batch(tickets, parallel_limit=3),
        ]
    )


def read_trace(trace: Path) -> list[tuple[str, str, int]]:
    if not trace.exists():
        return []
    lines = [line.split() for line in trace.read_text().splitlines() if line.strip()]
    return [(task, stage, int(attempt)) for task, stage, attempt in lines]


def marked(state_dir: Path) -> dict[int, str]:
    """pid -> run of every live process (runner or agent) carrying this state dir's markers."""
    found: dict[int, str] = {}
    for proc in psutil.process_iter(["environ", "status"]):
        try:
            environ = proc.info["environ"] or {}
            if (
                environ.get(STATE_DIR_VAR) == str(state_dir)
                and proc.info["status"] != psutil.STATUS_ZOMBIE
            ):
                found[proc.pid] = environ.get(RUN_VAR, "")
        except psutil.Error:
            continue
    return found


def kill_driver(proc: subprocess.Popen[str]) -> str:
    """SIGKILL the driver's process group: the driver and its git children, not its runs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    return out or ""


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def commits_by_stage(repo: Path, branch: str, ticket: str) -> list[str]:
    """Stages of the commits for `ticket` on `branch` since main, from their trailers."""
    log = git(
        repo,
        "log",
        "--format=%(trailers:key=Ticket,valueonly,separator=)|"
        "%(trailers:key=Stage,valueonly,separator=)",
        f"main..{branch}",
    )
    pairs = [line.split("|") for line in log.splitlines() if line.strip()]
    return sorted(stage for t, stage in pairs if t == ticket)


def registered_worktrees(repo: Path) -> list[Path]:
    listing = git(repo, "worktree", "list", "--porcelain")
    return [
        Path(line.removeprefix("worktree "))
        for line in listing.splitlines()
        if line.startswith("worktree ")
    ]


def assert_worktrees_sound(repo: Path) -> None:
    """Every worktree git knows of exists and has a HEAD: none is left half made."""
    for path in registered_worktrees(repo):
        assert path.is_dir(), f"{path} is registered but gone"
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "HEAD"], cwd=path, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{path} is a broken worktree: {done.stderr}"


def assert_no_process_left(state_dir: Path) -> None:
    left = marked(state_dir)
    assert not left, f"processes of {state_dir} outlived the run: {left}"


def test_driver_killed_repeatedly_resumes_without_running_a_stage_twice(
    fleet: Fleet, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.log"
    tickets = [
        {"id": "a", "rawDescription": "Add a"},
        {"id": "b", "rawDescription": "Add b"},
        {"id": "c", "rawDescription": "Add c"},
        {"id": "d", "rawDescription": "Add d", "dependencies": ["a"]},
    ]
    files = manifests(fleet, trace, tickets)
    state_dir = fleet.state_dir.resolve()
    alive_at_kill: dict[str, set[int]] = {}
    outputs = []
    for delay in (0.3, 1.0, 1.5, 2.5, 4.0):
        driver = fleet.start("run", "-f", str(files))
        time.sleep(delay)
        outputs.append(kill_driver(driver))
        for pid, run in marked(state_dir).items():
            alive_at_kill.setdefault(run, set()).add(pid)

    result = fleet.run(files)
    assert result.returncode == 0, "\n".join(outputs) + result.stdout + result.stderr

    tasks = fleet.tasks()
    assert {n: t["status"]["phase"] for n, t in tasks.items()} == {
        "b-a": "Succeeded",
        "b-b": "Succeeded",
        "b-c": "Succeeded",
        "b-d": "Succeeded",
    }
    executions = Counter((task, stage) for task, stage, _ in read_trace(trace))
    expected = {(f"b-{t['id']}", s["name"]) for t in tickets for s in STAGES}
    assert set(executions) == expected
    repeated = {key: n for key, n in executions.items() if n != 1}
    assert not repeated, f"stages executed more than once: {repeated}"
    assert {attempt for _, _, attempt in read_trace(trace)} == {1}

    # Runs alive when their driver died were adopted: the same process saw them to the end.
    assert alive_at_kill, "no kill caught a run in flight: the test proves nothing"
    runs = {r["name"]: r for r in fleet.runs()}
    for run, pids in alive_at_kill.items():
        record = runs[run]
        assert record["phase"] == "Succeeded", record
        assert record["attempt"] == 1, record
        assert record["pid"] is None or record["pid"] in pids, (run, record["pid"], pids)
    assert all(r["phase"] == "Succeeded" for r in runs.values()), runs

    for ticket in tickets:
        branch = f"agentfleet/b/b-{ticket['id']}"
        assert commits_by_stage(fleet.repo, branch, ticket["id"]) == ["develop", "qa"], branch
    assert git(fleet.repo, "status", "--porcelain") == ""
    assert_worktrees_sound(fleet.repo)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert_no_process_left(state_dir)


def test_a_runner_killed_with_its_driver_is_failed_and_retried_after_the_restart(
    fleet: Fleet, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.log"
    tickets = [
        {"id": "a", "rawDescription": "Add a"},
        {"id": "b", "rawDescription": "Add b"},
        {"id": "c", "rawDescription": "Add c"},
    ]
    files = manifests(fleet, trace, tickets, max_retries=1)
    state_dir = fleet.state_dir.resolve()

    driver = fleet.start("run", "-f", str(files))
    # Kill while agents run: their trace line is written, their work is not done yet.
    wait_for(lambda: read_trace(trace), 60, "a first agent to start")
    kill_driver(driver)
    victims = marked(state_dir)
    for pid in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    wait_for(lambda: not marked(state_dir), 10, "the killed runs to be gone")
    killed = {run for run in victims.values() if run}
    assert killed, "no run was in flight at the kill"

    result = fleet.run(files)
    assert result.returncode == 0, result.stdout + result.stderr

    tasks = fleet.tasks()
    assert {t["status"]["phase"] for t in tasks.values()} == {"Succeeded"}
    assert len(tasks) == 3
    runs = {r["name"]: r for r in fleet.runs()}
    for run in killed:
        record = runs[run]
        assert record["attempt"] == 1, record
        assert record["phase"] == "Failed", record
        retry = f"{record['task']}-{record['stage']}-2"
        assert runs[retry]["phase"] == "Succeeded", runs[retry]
        stage = next(
            s for s in tasks[record["task"]]["status"]["stages"] if s["name"] == record["stage"]
        )
        assert [a["phase"] for a in stage["attempts"]] == ["Failed", "Succeeded"], stage
    executions = read_trace(trace)
    for run in killed:
        task, stage = runs[run]["task"], runs[run]["stage"]
        assert (task, stage, 2) in executions, (run, executions)
    assert Counter(executions).most_common(1)[0][1] == 1, executions
    assert git(fleet.repo, "status", "--porcelain") == ""
    assert_no_process_left(state_dir)


def test_a_stray_runner_process_of_the_store_is_killed_on_restart(
    fleet: Fleet, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.log"
    files = manifests(fleet, trace, [{"id": "a", "rawDescription": "Add a"}])
    state_dir = fleet.state_dir.resolve()
    state_dir.mkdir()
    env = dict(os.environ, **{RUN_VAR: "b-zz-develop-1", STATE_DIR_VAR: str(state_dir)})
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env=env,
        start_new_session=True,
    )
    try:
        result = fleet.run(files)
        assert result.returncode == 0, result.stdout + result.stderr
        assert stray.wait(timeout=15) == -signal.SIGTERM or stray.returncode == -signal.SIGKILL
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
    assert_no_process_left(state_dir)


@pytest.mark.parametrize(
    "left_behind",
    [
        pytest.param("nothing", id="before-its-files"),
        pytest.param("empty-log", id="after-opening-its-log"),
    ],
)
def test_a_run_recorded_but_never_started_is_requested_again_on_restart(
    fleet: Fleet, tmp_path: Path, left_behind: str
) -> None:
    """The driver died between recording a run and starting its process.

    `_launch` opens the run's log files (`Launcher._spawn`) before it forks the runner: a
    driver killed between the two (or with the child still in its process group, before its
    setsid) leaves empty logs and no process. The agent never ran: the run must be requested
    again, not failed.
    """
    from agentfleet.local.store import RunRecord, Store
    from agentfleet.models.run import RunKind

    trace = tmp_path / "trace.log"
    files = manifests(fleet, trace, [{"id": "a", "rawDescription": "Add a"}])
    applied = fleet.cli("apply", "-f", str(files))
    assert applied.returncode == 0, applied.stderr
    store = Store(fleet.state_dir)
    try:
        assert store.add_run(
            RunRecord(
                name="b-a-develop-1",
                kind=RunKind.STAGE,
                batch="b",
                task="b-a",
                stage="develop",
                attempt=1,
                agent="dev",
                project="demo",
            )
        )
    finally:
        store.close()
    if left_behind == "empty-log":
        run_dir = fleet.state_dir / "runs" / "b-a-develop-1"
        (run_dir / "context").mkdir(parents=True)
        (run_dir / "events.jsonl").touch()
        (run_dir / "stderr.log").touch()

    result = fleet.run(files, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(read_trace(trace)) == [("b-a", "develop", 1), ("b-a", "qa", 1)]
    phases = {r["name"]: r["phase"] for r in fleet.runs()}
    assert phases == {"b-a-develop-1": "Succeeded", "b-a-qa-1": "Succeeded"}


@pytest.mark.parametrize(
    ("kept", "empty_head"),
    [
        pytest.param(("commondir", "gitdir"), False, id="killed-before-head"),
        pytest.param(("gitdir",), True, id="killed-writing-head"),
    ],
)
def test_a_pool_worktree_half_made_by_a_killed_git_is_discarded_on_restart(
    fleet: Fleet, tmp_path: Path, kept: tuple[str, ...], empty_head: bool
) -> None:
    """A driver killed during `git worktree add` of a pool entry leaves what git had written.

    Both states were seen after a SIGKILL of the driver: the worktree's `.git` file and an
    admin folder locked "initializing" with `commondir` and `gitdir` but no HEAD yet, or with
    `gitdir` and an empty HEAD. git refuses to move or remove such a worktree
    ("validation failed ... is not a .git file"); the next driver must still clean it up.
    """
    trace = tmp_path / "trace.log"
    first = fleet.run(manifests(fleet, trace, [{"id": "a", "rawDescription": "Add a"}]))
    assert first.returncode == 0, first.stdout + first.stderr
    half = fleet.state_dir / "worktrees" / ".pool" / "9"
    git(fleet.repo, "worktree", "add", "-q", "--no-checkout", "--detach", str(half), "HEAD")
    admin = Path((half / ".git").read_text().removeprefix("gitdir:").strip())
    for child in admin.iterdir():
        if child.name not in kept:
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    if empty_head:
        (admin / "HEAD").write_text("")
    (admin / "locked").write_text("initializing")
    assert str(half) in git(fleet.repo, "worktree", "list", "--porcelain")

    docs = yaml.safe_load_all(manifests(fleet, trace, []).read_text())
    second = [d for d in docs if d["kind"] != "TicketBatch"]
    second.append(batch([{"id": "a", "rawDescription": "Add a"}], name="b2"))
    result = fleet.run(fleet.write(second, "second.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr

    assert half not in registered_worktrees(fleet.repo)
    assert not half.exists()
    assert_worktrees_sound(fleet.repo)
    assert git(fleet.repo, "status", "--porcelain") == ""


@pytest.fixture(autouse=True)
def _nothing_marked_survives(fleet: Fleet) -> Any:
    """Whatever a test leaves running, runners and agents included, ends with it."""
    yield
    for pid in marked(fleet.state_dir.resolve()):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
