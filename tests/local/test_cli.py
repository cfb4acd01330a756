"""The kubectl-like commands around `agentfleet run`: apply, get, describe, delete, logs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import WRITE_FILE, Fleet, agent, batch, git, kill_leftovers, project, workflow

STAGES = [
    {"name": "develop", "agentType": "Development"},
    {"name": "qa", "agentType": "QualityAssurance", "dependencies": ["develop"]},
]

CHATTY = (
    "import os, pathlib; "
    "print('hello from', os.environ['AGENTFLEET_STAGE'], flush=True); "
    "pathlib.Path(os.environ['AGENTFLEET_STAGE'] + '.txt').write_text('x\\n')"
)
"""Says which stage it is in (a log line to look for) and writes `<stage>.txt`."""

SLOW = (
    "import os, pathlib, time; "
    "print('begin', flush=True); "
    "time.sleep(float(os.environ.get('SLEEP', '3'))); "
    "print('end', flush=True); "
    "pathlib.Path(os.environ['AGENTFLEET_STAGE'] + '.txt').write_text('x\\n')"
)
"""Prints `begin`, works a few seconds, prints `end`: a run to watch while it runs."""

# kind word -> (stored kind, the object the shared fleet has of it)
KINDS = {
    "projects": ("Project", "demo"),
    "agents": ("AgentConfig", "dev"),
    "workflows": ("Workflow", "flow"),
    "batches": ("TicketBatch", "b"),
    "tasks": ("AgentTask", "b-a"),
}

ALL_NAMES = {
    "projects": ["demo"],
    "agents": ["dev", "qa"],
    "workflows": ["flow"],
    "batches": ["b"],
    "tasks": ["b-a", "b-b"],
}


def documents(code: str = CHATTY, tickets: int = 2) -> list[dict[str, Any]]:
    return [
        project(),
        workflow(STAGES),
        agent("dev", "Development", code),
        agent("qa", "QualityAssurance", code),
        batch([{"id": chr(ord("a") + i), "rawDescription": f"Ticket {i}"} for i in range(tickets)]),
    ]


def new_fleet(tmp: Path) -> Fleet:
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("demo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    return Fleet(repo=repo, tmp=tmp)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A fleet whose manifests were applied, then run to the end: two tasks, two stages each."""
    fleet = new_fleet(tmp_path_factory.mktemp("cli"))
    files = fleet.write(documents())
    applied = fleet.cli("apply", "-f", str(files))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.split("\n")[:5] == [
        "Project/demo created",
        "Workflow/flow created",
        "AgentConfig/dev created",
        "AgentConfig/qa created",
        "TicketBatch/b created",
    ]
    result = fleet.run(files)
    assert result.returncode == 0, result.stdout + result.stderr
    yield fleet
    kill_leftovers(fleet.repo)


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def running(fleet: Fleet, run: str) -> bool:
    if not (fleet.state_dir / "state.db").exists():
        return False
    try:
        return any(r["name"] == run and r["phase"] == "Running" for r in fleet.runs())
    except sqlite3.OperationalError:  # the driver is still creating the tables
        return False


def header(text: str, label: str) -> str | None:
    """The value of `Label:  value` in the head of a `describe` page."""
    for line in text.splitlines():
        if line.startswith(f"{label}:"):
            return line[len(label) + 1 :].strip()
    return None


# --- apply ----------------------------------------------------------------------------------


def test_apply_again_reports_unchanged_and_a_changed_spec_as_configured(fleet: Fleet) -> None:
    files = fleet.write(documents())
    assert fleet.cli("apply", "-f", str(files)).returncode == 0
    again = fleet.cli("apply", "-f", str(files))
    assert again.returncode == 0, again.stderr
    assert "Project/demo unchanged" in again.stdout
    changed = documents()
    changed[1] = workflow(STAGES, max_retries=2)
    third = fleet.cli("apply", "-f", str(fleet.write(changed)))
    assert third.returncode == 0, third.stderr
    assert "Workflow/flow configured" in third.stdout
    stored = fleet.get("workflows", "flow")
    assert stored["spec"]["maxRetries"] == 2
    assert stored["metadata"]["generation"] == 2


# --- get ------------------------------------------------------------------------------------


@pytest.mark.parametrize("word", list(KINDS))
def test_get_lists_each_kind_as_a_table(finished: Fleet, word: str) -> None:
    out = finished.cli("get", word)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[0] == "NAME"
    assert [line.split()[0] for line in lines[1:]] == ALL_NAMES[word]
    if word in ("batches", "tasks"):
        assert all("Succeeded" in line.split() for line in lines[1:]), out.stdout
    if word == "tasks":
        assert "agentfleet/b/b-a" in lines[1].split(), out.stdout


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("word", list(KINDS))
def test_get_output_is_a_list_of_a_kind_and_one_object_by_name(
    finished: Fleet, word: str, fmt: str
) -> None:
    kind, name = KINDS[word]
    parse = json.loads if fmt == "json" else yaml.safe_load

    listed = finished.cli("get", word, "-o", fmt)
    assert listed.returncode == 0, listed.stderr
    data = parse(listed.stdout)
    assert data["apiVersion"] == "v1"
    assert data["kind"] == "List"
    assert [item["metadata"]["name"] for item in data["items"]] == ALL_NAMES[word]
    assert {item["kind"] for item in data["items"]} == {kind}

    one = finished.cli("get", word, name, "-o", fmt)
    assert one.returncode == 0, one.stderr
    obj = parse(one.stdout)
    assert obj["kind"] == kind
    assert obj["apiVersion"] == "agentfleet.dev/v1alpha1"
    assert obj["metadata"]["name"] == name
    assert "spec" in obj
    if word in ("batches", "tasks"):
        assert obj["status"]["phase"] == "Succeeded"


def test_get_an_unknown_kind_exits_2(finished: Fleet) -> None:
    out = finished.cli("get", "gadgets")
    assert out.returncode == 2
    assert "unknown kind 'gadgets'" in out.stderr


def test_get_a_missing_name_exits_1(finished: Fleet) -> None:
    out = finished.cli("get", "tasks", "missing-name")
    assert out.returncode == 1
    assert "AgentTask 'missing-name' not found" in out.stderr


# --- describe -------------------------------------------------------------------------------


@pytest.mark.parametrize("word", list(KINDS))
def test_describe_shows_each_kind(finished: Fleet, word: str) -> None:
    kind, name = KINDS[word]
    out = finished.cli("describe", word, name)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert header(text, "Name") == name
    assert header(text, "Kind") == kind
    assert "spec:" in text
    if word == "tasks":
        assert header(text, "Phase") == "Succeeded"
        assert header(text, "Branch") == "agentfleet/b/b-a"
        assert "Attempts" in text
        assert "RunSucceeded" in text
        attempts = [line.split() for line in text.splitlines()]
        assert ["develop", "1", "dev", "1", "Succeeded"] in [row[:5] for row in attempts], (
            "stage, attempt, agent, the agent's generation, phase"
        )
        assert ["qa", "1", "qa", "1", "Succeeded"] in [row[:5] for row in attempts]
    if word == "batches":
        assert header(text, "Phase") == "Succeeded"
        assert header(text, "Progress") == "2/2"
        assert "Tickets" in text
        assert "BatchSucceeded" in text
    if word == "agents":
        assert header(text, "Active runs") == "none"


def test_describe_a_missing_object_exits_1(finished: Fleet) -> None:
    out = finished.cli("describe", "tasks", "missing-name")
    assert out.returncode == 1
    assert "not found" in out.stderr


# --- logs -----------------------------------------------------------------------------------


def test_logs_of_a_finished_task_show_the_chosen_stage_and_attempt(finished: Fleet) -> None:
    develop = finished.cli("logs", "b-a", "--stage", "develop", "--attempt", "1")
    assert develop.returncode == 0, develop.stderr
    assert "hello from develop" in develop.stdout
    assert "hello from qa" not in develop.stdout
    assert "finished: Succeeded" in develop.stdout

    latest = finished.cli("logs", "b-a")
    assert latest.returncode == 0, latest.stderr
    assert "hello from qa" in latest.stdout

    missing = finished.cli("logs", "b-a", "--stage", "develop", "--attempt", "2")
    assert missing.returncode == 1
    assert "--attempt: no attempt 2" in missing.stderr
    unknown = finished.cli("logs", "b-a", "--stage", "deploy")
    assert unknown.returncode == 1
    assert "--stage: no run of stage 'deploy'" in unknown.stderr


def test_logs_follow_streams_a_running_task_and_returns_when_the_run_ends(fleet: Fleet) -> None:
    files = fleet.write(documents(SLOW, tickets=1))
    driver = fleet.start("run", "-f", str(files))
    try:
        wait_for(lambda: running(fleet, "b-a-develop-1"), 60, "the first run to start")
        follow = subprocess.Popen(
            fleet.command("logs", "b-a", "-f", "--repo", str(fleet.repo)),
            cwd=fleet.tmp,
            env=fleet.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        assert follow.poll() is None, "logs -f returned while the run was still running"
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        phase = {r["name"]: r["phase"] for r in fleet.runs()}["b-a-develop-1"]
        assert phase == "Succeeded", "logs -f returned before the run ended"
        lines = out.splitlines()
        texts = [line.split(None, 2)[2] for line in lines if len(line.split(None, 2)) == 3]
        assert "begin" in texts, out
        assert "end" in texts, out
        assert texts.index("begin") < texts.index("end")
        assert "finished: Succeeded" in out
        assert driver.wait(timeout=120) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


# --- delete ---------------------------------------------------------------------------------


def test_delete_batch_removes_its_tasks_and_keeps_their_branches(fleet: Fleet) -> None:
    files = fleet.write(documents(WRITE_FILE, tickets=1))
    assert fleet.run(files).returncode == 0
    assert set(fleet.tasks()) == {"b-a"}

    out = fleet.cli("delete", "batch", "b")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["TicketBatch/b deleted", "AgentTask/b-a deleted"]
    assert fleet.get("batches")["items"] == []
    assert fleet.get("tasks")["items"] == []
    assert fleet.cli("get", "tasks", "b-a").returncode == 1
    assert [p["metadata"]["name"] for p in fleet.get("projects")["items"]] == ["demo"]
    assert git(fleet.repo, "branch", "--list", "agentfleet/b/b-a").strip()

    again = fleet.cli("delete", "batch", "b")
    assert again.returncode == 1
    assert "not found" in again.stderr


# --- run ------------------------------------------------------------------------------------


def test_a_second_run_on_the_same_repository_exits_1_while_one_is_running(fleet: Fleet) -> None:
    files = fleet.write(documents(SLOW, tickets=1))
    driver = fleet.start("run", "-f", str(files))
    try:
        wait_for(lambda: running(fleet, "b-a-develop-1"), 60, "the first run to start")
        second = fleet.run(files, timeout=60)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another `agentfleet run`" in second.stderr
        assert "drives this store" in second.stderr
        assert driver.wait(timeout=120) == 0, driver.stdout.read() if driver.stdout else ""
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    runs = fleet.runs()
    assert sorted(r["name"] for r in runs) == ["b-a-develop-1", "b-a-qa-1"]
    assert {r["phase"] for r in runs} == {"Succeeded"}


def test_a_run_excludes_its_state_from_git_and_leaves_the_checkout_clean(finished: Fleet) -> None:
    exclude = (finished.repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert "/.agentfleet/" in exclude
    assert git(finished.repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(finished.repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
