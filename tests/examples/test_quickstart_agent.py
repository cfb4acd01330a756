"""The quickstart's scripted agent and sample repo, run for real: git, subprocesses, pytest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfleet.models.loader import load_manifests

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
MAKE_SAMPLE_REPO = QUICKSTART / "make_sample_repo.py"
AGENT_SOURCE = QUICKSTART / "agent" / "scripted_agent.py"


def _docs(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((QUICKSTART / name).read_text(encoding="utf-8")))


TICKETS: list[dict[str, Any]] = _docs("batch.yaml")[0]["spec"]["tickets"]
STAGES = {
    s["name"]: s
    for d in _docs("workflow.yaml")
    if d["kind"] == "Workflow"
    for s in d["spec"]["stages"]
}
AGENTS = {d["metadata"]["name"]: d["spec"] for d in _docs("agents.yaml")}
ROLE_AGENT = {"develop": "dev-scripted", "qa": "qa-scripted"}


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would steer the inner programs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTFLEET_", "PYTEST_", "GIT_")) and k != "PYTHONPATH"
    }
    # The sample repo needs no plugin; skipping the venv's (hypothesis...) saves a second a run.
    return {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}


def run(
    argv: list[str], cwd: Path, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, input=stdin, capture_output=True, text=True, env=_env(**env), timeout=60
    )


def git(cwd: Path, *args: str) -> str:
    result = run(["git", *args], cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_sample_repo(dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(MAKE_SAMPLE_REPO), str(dest), *flags], ROOT)


def prompt(ticket_id: str, raw: str, stage: str) -> str:
    """A prompt shaped like the runner's: task, stage and agent instructions in markdown."""
    title = raw.strip().splitlines()[0]
    name = ROLE_AGENT[stage]
    return (
        f"# Task: {title}\n\nTicket: {ticket_id}\n\n## Description\n\n{raw.strip()}\n\n"
        "## Acceptance criteria\n\n(none given)\n\n"
        f"# Stage: {stage}\n\n## Instructions\n\n{STAGES[stage]['instructions']}\n\n"
        f"# Agent: {name} ({AGENTS[name]['agentType']})\n\n"
        f"{AGENTS[name]['specializedInstructions']}\n"
    )


def agent(
    worktree: Path, role: str, raw: str, ticket: str = "T-1", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the agent's command from agents.yaml, with this interpreter for `python`."""
    command = AGENTS[ROLE_AGENT[role]]["baseExecutor"]["command"]
    assert command[0] == "python"
    env = {"AGENTFLEET_TASK": f"textkit-{ticket}", "AGENTFLEET_STAGE": role, **env}
    return run([sys.executable, *command[1:]], worktree, prompt(ticket, raw, role), **env)


def pytest_in(worktree: Path) -> int:
    """Run the stage's tests_pass command there; the number of tests that passed."""
    command = STAGES["qa"]["successCriteria"][0]["command"].split()
    assert command[:1] == ["python"]
    result = run([sys.executable, *command[1:]], worktree)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout
    return int(passed.group(1))


def status(worktree: Path) -> str:
    return git(worktree, "status", "--porcelain")


@pytest.fixture(scope="module")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("quickstart") / "textkit"
    result = make_sample_repo(dest)
    assert result.returncode == 0, result.stderr
    return dest


@pytest.fixture
def worktree(sample_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A task's worktree on its own branch from main, as the runner makes one."""
    path = tmp_path / "worktree"
    branch = "task/" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    git(sample_repo, "worktree", "add", "-q", "-b", branch, str(path), "main")
    return path


def test_the_manifests_load_and_the_sample_repo_adds_none(tmp_path: Path) -> None:
    kinds = sorted(r.resource.kind for r in load_manifests([QUICKSTART]))
    assert kinds == ["AgentConfig", "AgentConfig", "Project", "TicketBatch", "Workflow"]


def test_the_sample_repo_is_committed_on_main_and_its_tests_pass(sample_repo: Path) -> None:
    assert git(sample_repo, "branch", "--show-current").strip() == "main"
    assert status(sample_repo) == ""
    files = git(sample_repo, "ls-files").split()
    assert {".agentfleet-demo", ".gitignore", "tools/scripted_agent.py"} <= set(files)
    assert not any("__pycache__" in f for f in files)
    copied = (sample_repo / "tools" / "scripted_agent.py").read_bytes()
    assert copied == AGENT_SOURCE.read_bytes()
    assert pytest_in(sample_repo) == 2


def test_the_agents_commands_resolve_from_a_worktree(worktree: Path) -> None:
    for role, name in ROLE_AGENT.items():
        command = AGENTS[name]["baseExecutor"]["command"]
        assert command == ["python", "tools/scripted_agent.py", role]
        assert (worktree / command[1]).is_file()


@pytest.mark.parametrize("ticket", TICKETS, ids=[t["id"] for t in TICKETS])
def test_every_ticket_is_developed_then_tested(ticket: dict[str, Any], worktree: Path) -> None:
    raw, ticket_id = ticket["rawDescription"], ticket["id"]

    developed = agent(worktree, "develop", raw, ticket_id, AGENTFLEET_ATTEMPT="1")
    assert developed.returncode == 0, developed.stdout + developed.stderr
    assert "a scripted stand-in for an AI agent: no model, no network" in developed.stdout
    assert f"role develop, task textkit-{ticket_id}, attempt 1" in developed.stdout
    assert "writing src/textkit/" in developed.stdout
    usage = [json.loads(line) for line in developed.stdout.splitlines() if line.startswith("{")]
    assert usage == [{"type": "usage", "tokens": {"input": 0, "output": 0}, "costUsd": 0.0}]
    assert pytest_in(worktree) == 2

    tested = agent(worktree, "qa", raw, ticket_id, AGENTFLEET_ATTEMPT="1")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    written = re.findall(r"writing (tests/test_\w+\.py)", tested.stdout)
    assert len(written) == 1
    assert (worktree / written[0]).is_file()
    assert pytest_in(worktree) > 2
    assert {line[3:] for line in status(worktree).splitlines()} == {
        "src/textkit/__init__.py",
        *re.findall(r"writing (src/textkit/\w+\.py)", developed.stdout),
        *written,
    }


def test_all_tickets_in_one_worktree_export_everything_sorted(worktree: Path) -> None:
    for ticket in TICKETS:
        for role in ("develop", "qa"):
            result = agent(worktree, role, ticket["rawDescription"])
            assert result.returncode == 0, result.stdout
    assert pytest_in(worktree) > 2 * len(TICKETS)
    init = (worktree / "src/textkit/__init__.py").read_text(encoding="utf-8")
    imports = [line for line in init.splitlines() if line.startswith("from textkit.")]
    assert imports == sorted(imports)
    assert len(imports) == len(TICKETS) + 1
    names = [line.split()[-1] for line in imports]
    assert re.findall(r'"(\w+)"', init) == sorted(names)


def test_develop_and_qa_twice_change_nothing_more(worktree: Path) -> None:
    raw = "Add unique_slug(text, taken): slugify, then append -2, -3, ... until unused."

    def snapshot() -> dict[str, str]:
        return {
            p.relative_to(worktree).as_posix(): p.read_text(encoding="utf-8")
            for p in worktree.rglob("*.py")
            if "__pycache__" not in p.parts
        }

    for role in ("develop", "qa"):
        assert agent(worktree, role, raw).returncode == 0
        first = snapshot()
        again = agent(worktree, role, raw)
        assert again.returncode == 0
        assert "writing" not in again.stdout
        assert "already up to date" in again.stdout
        assert snapshot() == first
    init = (worktree / "src/textkit/__init__.py").read_text(encoding="utf-8")
    assert init.count("from textkit.unique import unique_slug") == 1
    assert init.count('"unique_slug"') == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(
            "Add frobnicate(text): make it better.", "no recipe for 'frobnicate'", id="unknown"
        ),
        pytest.param("Make the README friendlier.", "names no function", id="no-function"),
        pytest.param("Add slugify(text, separator): ...", "takes (text), not", id="other-params"),
    ],
)
def test_a_ticket_without_a_recipe_fails_and_changes_nothing(
    raw: str, message: str, worktree: Path
) -> None:
    for role in ("develop", "qa"):
        result = agent(worktree, role, raw)
        assert result.returncode == 1
        assert "cannot do this ticket" in result.stdout
        assert message in result.stdout
    assert status(worktree) == ""


def test_the_ticket_is_read_from_task_md_when_the_context_has_one(
    worktree: Path, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "task.md").write_text("# Add word_count(text)\n", encoding="utf-8")
    result = agent(worktree, "develop", "Add slugify(text)", AGENTFLEET_CONTEXT_DIR=str(context))
    assert result.returncode == 0, result.stdout
    assert "task.md" in result.stdout
    assert (worktree / "src/textkit/words.py").is_file()
    assert not (worktree / "src/textkit/slug.py").exists()


def test_shell_metacharacters_in_a_ticket_are_never_run(worktree: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    touch = f"touch {canary}"
    hostile = [
        f"Add slugify(text): $({touch}) `{touch}`; {touch} && {touch} | {touch} > {canary}",
        f"Add __import__('os').system('{touch}')(text)",
        f"Add $({touch})(text) and eval(open('{canary}'))",
    ]
    codes = [agent(worktree, "develop", raw).returncode for raw in hostile]
    assert codes == [0, 1, 1]
    assert not canary.exists()
    assert not list(worktree.rglob("canary"))


# --- make_sample_repo.py -------------------------------------------------------------------


def test_make_sample_repo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me", encoding="utf-8")
    for flags in ((), ("--force",)):
        result = make_sample_repo(dest, *flags)
        assert result.returncode == 2
        assert "not made by this script" in result.stderr
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    assert (dest / "notes.txt").read_text(encoding="utf-8") == "keep me"

    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    assert make_sample_repo(a_file).returncode == 2
    assert a_file.read_text(encoding="utf-8") == "x"


def test_make_sample_repo_fills_an_empty_folder_and_force_remakes_its_own(tmp_path: Path) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    assert make_sample_repo(dest).returncode == 0
    (dest / "scratch.txt").write_text("agent leftovers", encoding="utf-8")

    again = make_sample_repo(dest)
    assert again.returncode == 2
    assert "--force" in again.stderr
    assert (dest / "scratch.txt").exists()

    assert make_sample_repo(dest, "--force").returncode == 0
    assert not (dest / "scratch.txt").exists()
    assert status(dest) == ""
    assert len(git(dest, "log", "--oneline").splitlines()) == 1
