"""`agentfleet runner prepare`: a Pod's worktree made ready on a shared workspace volume."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentfleet.runner.prepare import PrepareError, prepare
from agentfleet.runner.spec import RunSpec

from .conftest import git


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def _spec(workspace: Path, task: str, branch: str | None) -> RunSpec:
    return RunSpec.model_validate(
        {
            "name": f"{task}-dev-1",
            "task": task,
            "stage": "dev",
            "attempt": 1,
            "agentName": "dev",
            "agent": {
                "agentType": "Development",
                "baseExecutor": {"type": "command", "command": ["true"]},
            },
            "worktree": str(workspace / "worktrees" / task),
            "contextDir": str(workspace / "contexts" / f"{task}-dev-1"),
            "branch": branch,
        }
    )


def test_a_new_task_gets_a_worktree_on_its_branch_from_the_base(
    origin: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    spec = _spec(workspace, "b-t1", "agentfleet/b/b-t1")
    path = prepare(spec, workspace=workspace, url=str(origin), base="main")
    assert (path / "README.md").read_text() == "hello\n"
    assert git(path, "symbolic-ref", "--short", "HEAD").strip() == "agentfleet/b/b-t1"
    assert Path(spec.context_dir).is_dir()


def test_a_retried_pod_reuses_the_worktree_and_keeps_its_work(origin: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    spec = _spec(workspace, "b-t1", "agentfleet/b/b-t1")
    path = prepare(spec, workspace=workspace, url=str(origin), base="main")
    (path / "work.txt").write_text("in progress\n")
    again = prepare(spec, workspace=workspace, url=str(origin), base="main")
    assert again == path
    assert (again / "work.txt").read_text() == "in progress\n"


def test_a_worktree_on_another_branch_is_refused(origin: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    prepare(_spec(workspace, "b-t1", "agentfleet/b/b-t1"), workspace=workspace,
            url=str(origin), base="main")  # fmt: skip
    with pytest.raises(PrepareError, match="not on 'agentfleet/b/other'"):
        prepare(_spec(workspace, "b-t1", "agentfleet/b/other"), workspace=workspace,
                url=str(origin), base="main")  # fmt: skip


def test_pods_of_one_batch_prepare_side_by_side(origin: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    tasks = [f"b-t{i}" for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        paths = list(
            pool.map(
                lambda t: prepare(
                    _spec(workspace, t, f"agentfleet/b/{t}"),
                    workspace=workspace,
                    url=str(origin),
                    base="main",
                ),
                tasks,
            )
        )
    for task, path in zip(tasks, paths, strict=True):
        assert git(path, "symbolic-ref", "--short", "HEAD").strip() == f"agentfleet/b/{task}"


def test_a_refinement_without_a_repository_gets_a_plain_folder(
    origin: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    path = prepare(_spec(workspace, "b", None), workspace=workspace, url="", base="main")
    assert path.is_dir()
    assert not (workspace / "repo").exists()


def test_a_refinement_reads_the_base_branch_detached_and_makes_no_branch(
    origin: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    spec = _spec(workspace, "b", None)

    path = prepare(spec, workspace=workspace, url=str(origin), base="main")
    again = prepare(spec, workspace=workspace, url=str(origin), base="main")

    assert again == path
    assert sorted(p.name for p in path.iterdir() if p.name != ".git") == sorted(
        p.name for p in origin.iterdir() if p.name != ".git"
    )
    head = subprocess.run(
        ["git", "-C", str(path), "symbolic-ref", "-q", "HEAD"], capture_output=True, check=False
    )
    assert head.returncode != 0, "detached: a refinement commits nothing"
    branches = git(workspace / "repo", "branch", "--format=%(refname:short)").split()
    assert branches == ["main"]


def test_the_command_reports_an_unreachable_repository_on_stderr(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    spec_file = tmp_path / "run.json"
    spec_file.write_text(_spec(workspace, "b-t1", "agentfleet/b/b-t1").model_dump_json())
    env = dict(os.environ, AGENTFLEET_REPOSITORY_URL=str(tmp_path / "missing"))
    done = subprocess.run(
        [sys.executable, "-m", "agentfleet", "runner", "prepare", "--spec", str(spec_file)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "git clone" in done.stderr


def test_the_command_makes_the_worktree_from_the_environment(origin: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    spec_file = tmp_path / "run.json"
    spec_file.write_text(_spec(workspace, "b-t1", "agentfleet/b/b-t1").model_dump_json())
    env = dict(os.environ, AGENTFLEET_REPOSITORY_URL=str(origin), AGENTFLEET_BASE_BRANCH="main")
    done = subprocess.run(
        [sys.executable, "-m", "agentfleet", "runner", "prepare", "--spec", str(spec_file)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (workspace / "worktrees" / "b-t1" / "README.md").exists()


def test_the_credential_helper_answers_git_with_the_token_from_the_environment() -> None:
    import os
    import subprocess

    from agentfleet.runner.prepare import CREDENTIAL_HELPER

    env = {
        **os.environ,
        "AGENTFLEET_GIT_USERNAME": "bot",
        "AGENTFLEET_GIT_TOKEN": "t0k'en $HOME `x`",
        "GIT_TERMINAL_PROMPT": "0",
    }
    done = subprocess.run(
        ["git", "-c", f"credential.helper={CREDENTIAL_HELPER}", "credential", "fill"],
        input="protocol=https\nhost=git.example.com\n\n",
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "username=bot\n" in done.stdout
    assert "password=t0k'en $HOME `x`\n" in done.stdout
