"""WorktreeManager against real git repositories: isolation, conflicts, cleanup and the pool."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentfleet.local.worktrees import (
    POOL_LOCK_REASON,
    BaseBranchMissing,
    CleanupPolicy,
    InvalidNameError,
    NotAGitRepository,
    WorktreeConflict,
    WorktreeManager,
    ensure_excluded,
)

BASE_FILES = {
    "README.md": b"# demo\n",
    "src/app.py": b"print('hello')\n",
    "src/util.py": b"X = 1\n",
    "docs/guide.txt": b"guide\n",
}
HIDDEN_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in HIDDEN_ENV}
    clean.update(env or {})
    return subprocess.run(
        ["git", *args], cwd=cwd, env=clean, check=True, capture_output=True, text=True
    ).stdout


def commit_on(repo: Path, branch: str, files: dict[str, bytes | None], parent: str) -> str:
    """Commit on `branch` (created if missing) without touching any checkout: plumbing only."""
    index = repo.parent / f"index-{os.getpid()}-{threading.get_ident()}"
    env = {"GIT_INDEX_FILE": str(index)}
    git(repo, "read-tree", parent, env=env)
    for name, content in files.items():
        if content is None:
            git(repo, "update-index", "--force-remove", name, env=env)
            continue
        blob = (
            subprocess.run(
                ["git", "hash-object", "-w", "--stdin"],
                cwd=repo,
                input=content,
                check=True,
                capture_output=True,
            )
            .stdout.decode()
            .strip()
        )
        git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
    tree = git(repo, "write-tree", env=env).strip()
    index.unlink()
    commit = git(repo, "commit-tree", tree, "-p", parent, "-m", f"change {branch}").strip()
    git(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit


def head_of(path: Path) -> tuple[str, str]:
    return git(path, "symbolic-ref", "HEAD").strip(), git(path, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for key, value in (
        ("user.name", "Test"),
        ("user.email", "test@example.com"),
        ("commit.gpgsign", "false"),
    ):
        git(root, "config", key, value)
    for name, content in BASE_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


@pytest.fixture
def manager(repo: Path) -> Iterator[Callable[..., WorktreeManager]]:
    made: list[WorktreeManager] = []

    def make(**options: Any) -> WorktreeManager:
        made.append(WorktreeManager(repo, repo / ".agentfleet", **options))
        return made[-1]

    yield make
    for m in made:
        m.close()


def registered(repo: Path) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


@pytest.mark.parametrize("pool_size", [0, 2])
def test_acquire_makes_a_worktree_on_a_new_branch_from_base(
    repo: Path, manager: Callable[..., WorktreeManager], pool_size: int
) -> None:
    m = manager(pool_size=pool_size)
    assert m.refill("main") == pool_size
    pooled = {p.stat().st_ino for p in m.pooled()}
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    assert (path.stat().st_ino in pooled) == bool(pool_size)
    assert path == repo.resolve() / ".agentfleet" / "worktrees" / "t1"
    assert path == m.path_for("t1")
    main = git(repo, "rev-parse", "main").strip()
    assert head_of(path) == ("refs/heads/agentfleet/b/t1", main)
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert {n: (path / n).read_bytes() for n in BASE_FILES} == BASE_FILES
    m.refill()
    assert str(path) in registered(repo)
    assert git(path, "rev-parse", "--git-common-dir").strip() == str(repo.resolve() / ".git")


def test_second_acquire_of_a_task_returns_its_worktree_unchanged(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager()
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    (path / "new.txt").write_text("from development\n")
    git(path, "add", "new.txt")
    git(path, "commit", "-q", "-m", "dev stage")
    (path / "scratch.txt").write_text("uncommitted\n")
    before = head_of(path)
    assert m.acquire("t1", "agentfleet/b/t1", "main") == path
    assert m.acquire("t1", "agentfleet/b/t1", "main", reuse=False) == path
    assert head_of(path) == before
    assert (path / "scratch.txt").read_text() == "uncommitted\n"


def user_checkout(repo: Path) -> dict[str, Any]:
    """Everything of the user's checkout, read without letting git refresh the index."""

    def g(*args: str) -> str:
        return git(repo, "--no-optional-locks", *args)

    files = {}
    for p in sorted(repo.rglob("*")):
        rel = p.relative_to(repo)
        if rel.parts[0] in (".git", ".agentfleet") or not p.is_file():
            continue
        files[rel.as_posix()] = (p.read_bytes(), p.stat().st_mtime_ns)
    dot_git = repo / ".git"
    return {
        "status": g("status", "--porcelain=v2", "--branch", "--untracked-files=all"),
        "stash": g("stash", "list"),
        "stash_commit": g("rev-parse", "refs/stash"),
        "head": g("symbolic-ref", "HEAD"),
        "head_commit": g("rev-parse", "HEAD"),
        "ls_files": g("ls-files", "-s"),
        "diff_cached": g("diff", "--cached"),
        "diff": g("diff"),
        "index_bytes": hashlib.sha256((dot_git / "index").read_bytes()).hexdigest(),
        "head_reflog": (dot_git / "logs" / "HEAD").read_bytes(),
        "files": files,
    }


def test_user_checkout_is_never_touched(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "src/feature.py").write_text("feature = True\n")
    git(repo, "add", "src/feature.py")
    git(repo, "commit", "-q", "-m", "feature work")
    (repo / "README.md").write_text("# stashed edit\n")
    git(repo, "stash", "push", "-q", "-m", "user stash")
    (repo / "src/app.py").write_text("print('modified, not staged')\n")
    (repo / "src/util.py").write_text("X = 2  # staged\n")
    git(repo, "add", "src/util.py")
    (repo / "docs/guide.txt").write_text("staged then modified again\n")
    git(repo, "add", "docs/guide.txt")
    (repo / "docs/guide.txt").write_text("modified after staging\n")
    (repo / "untracked.txt").write_text("user's untracked file\n")
    before = user_checkout(repo)

    m = manager(pool_size=2, policy=CleanupPolicy(keep_failed=False))
    m.refill("main")
    paths = [m.acquire(f"t{k}", f"agentfleet/b/t{k}", "main") for k in range(4)]
    for path in paths:
        assert head_of(path)[1] == git(repo, "rev-parse", "main").strip()
        (path / "work.txt").write_text("agent output\n")
        git(path, "add", "work.txt")
        git(path, "commit", "-q", "-m", "agent")
    assert m.release("t0", succeeded=True)
    assert m.release("t1", succeeded=False)
    m.remove("t2")
    commit_on(repo, "main", {"src/app.py": b"print('main moved')\n"}, "main")
    commit_on(repo, "agentfleet/b/old", {"old.txt": b"old\n"}, "main")
    m.acquire("old", "agentfleet/b/old", "main", reuse=True)
    m.acquire("t0", "agentfleet/b/t0", "main")
    m.acquire("t9", "agentfleet/b/t9", "main")
    m.remove("t9")
    m.refill()
    m.prune()
    with pytest.raises(WorktreeConflict):
        m.acquire("t5", "feature", "main")
    m.close()

    assert user_checkout(repo) == before


def test_existing_branch_is_reused_as_it_is(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    kept = commit_on(repo, "agentfleet/b/t1", {"earlier.txt": b"earlier run\n"}, "main")
    m = manager(pool_size=1)
    m.refill("main")
    path = m.acquire("t1", "agentfleet/b/t1", "main", reuse=True)
    assert head_of(path) == ("refs/heads/agentfleet/b/t1", kept)
    assert (path / "earlier.txt").read_text() == "earlier run\n"
    assert git(path, "status", "--porcelain") == ""


def test_existing_branch_is_refused_without_reuse(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    kept = commit_on(repo, "agentfleet/b/t1", {"earlier.txt": b"earlier run\n"}, "main")
    m = manager(pool_size=1)
    with pytest.raises(WorktreeConflict) as refused:
        m.acquire("t1", "agentfleet/b/t1", "main", reuse=False)
    message = str(refused.value)
    assert "agentfleet/b/t1" in message
    assert "git branch -D agentfleet/b/t1" in message
    assert "rename the batch" in message
    assert git(repo, "rev-parse", "agentfleet/b/t1").strip() == kept
    assert not m.path_for("t1").exists()


def test_foreign_folder_at_the_task_path_is_refused(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=0)
    path = m.path_for("t1")
    path.mkdir(parents=True)
    (path / "precious.txt").write_text("mine\n")
    with pytest.raises(WorktreeConflict, match=str(path)):
        m.acquire("t1", "agentfleet/b/t1", "main")
    with pytest.raises(WorktreeConflict, match=str(path)):
        m.remove("t1")
    assert (path / "precious.txt").read_text() == "mine\n"
    assert git(repo, "branch", "--list", "agentfleet/b/t1") == ""


def test_task_worktree_on_another_branch_is_refused(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=0)
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    with pytest.raises(WorktreeConflict, match=str(path)) as refused:
        m.acquire("t1", "agentfleet/other/t1", "main")
    assert "agentfleet/b/t1" in str(refused.value)
    assert head_of(path)[0] == "refs/heads/agentfleet/b/t1"


def test_branch_checked_out_elsewhere_is_refused(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    m = manager(pool_size=1)
    m.refill("main")
    with pytest.raises(WorktreeConflict, match=str(repo.resolve())) as refused:
        m.acquire("t1", "feature", "main")
    assert "feature" in str(refused.value)
    first = m.acquire("t2", "agentfleet/b/shared", "main")
    with pytest.raises(WorktreeConflict, match=str(first)):
        m.acquire("t3", "agentfleet/b/shared", "main")
    assert not m.path_for("t1").exists()
    assert not m.path_for("t3").exists()
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/feature"


def test_missing_base_branch_is_named(repo: Path, manager: Callable[..., WorktreeManager]) -> None:
    m = manager(pool_size=0)
    with pytest.raises(BaseBranchMissing) as missing:
        m.acquire("t1", "agentfleet/b/t1", "develop")
    assert missing.value.base == "develop"
    assert "'develop'" in str(missing.value)
    assert str(repo.resolve()) in str(missing.value)
    with pytest.raises(BaseBranchMissing):
        m.base_commit("develop")
    assert m.base_commit("main") == git(repo, "rev-parse", "main").strip()
    assert git(repo, "branch", "--list", "agentfleet/*") == ""
    assert not m.path_for("t1").exists()


def test_not_a_git_repository_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotAGitRepository, match="not a git repository"):
        WorktreeManager(plain, plain / ".agentfleet")
    with pytest.raises(NotAGitRepository):
        WorktreeManager(tmp_path / "missing", tmp_path / "state")
    with pytest.raises(NotAGitRepository):
        ensure_excluded(plain)


def test_names_that_would_escape_the_state_folder_are_refused(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=0)
    for task in ("", "../escape", "a/b", ".pool", "..", "a\\b"):
        with pytest.raises(InvalidNameError):
            m.path_for(task)
    with pytest.raises(ValueError, match="branch"):
        m.acquire("t1", "bad..branch", "main")
    with pytest.raises(ValueError, match="branch"):
        m.acquire("t1", "-b", "main")


def test_cleanup_policy_keeps_branches_and_follows_the_policy(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=0)
    done = m.acquire("done", "agentfleet/b/done", "main")
    failed = m.acquire("failed", "agentfleet/b/failed", "main")
    (done / "result.txt").write_text("done\n")
    git(done, "add", "result.txt")
    git(done, "commit", "-q", "-m", "result")
    result = git(done, "rev-parse", "HEAD").strip()

    assert m.release("done", succeeded=True)
    assert not m.release("failed", succeeded=False)
    assert not done.exists()
    assert failed.is_dir()
    assert git(repo, "rev-parse", "agentfleet/b/done").strip() == result
    again = m.acquire("done", "agentfleet/b/done", "main", reuse=True)
    assert head_of(again) == ("refs/heads/agentfleet/b/done", result)

    assert m.remove("failed")
    assert not m.remove("failed")
    assert git(repo, "rev-parse", "--verify", "agentfleet/b/failed")
    m.close()
    assert sorted(registered(repo)) == sorted([str(repo.resolve()), str(again)])
    assert not any((m.root / ".trash").iterdir())

    inverse = manager(pool_size=0, policy=CleanupPolicy(keep_failed=False, remove_succeeded=False))
    a = inverse.acquire("a", "agentfleet/c/a", "main")
    b = inverse.acquire("b", "agentfleet/c/b", "main")
    assert not inverse.release("a", succeeded=True)
    assert inverse.release("b", succeeded=False)
    assert a.is_dir()
    assert not b.exists()


def test_prune_drops_registrations_whose_folder_is_gone(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=0)
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    subprocess.run(["rm", "-rf", str(path)], check=True)
    assert path.exists() is False
    assert str(path) in registered(repo)
    m.prune()
    assert str(path) not in registered(repo)
    assert git(repo, "rev-parse", "--verify", "agentfleet/b/t1")
    assert m.acquire("t1", "agentfleet/b/t1", "main").is_dir()


def test_pool_hands_out_a_worktree_at_the_current_base_after_base_moved(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    m = manager(pool_size=2)
    assert m.refill("main") == 2
    pooled = {p.stat().st_ino for p in m.pooled()}
    for p in m.pooled():
        assert f"locked {POOL_LOCK_REASON}" in git(repo, "worktree", "list", "--porcelain")
        assert git(p, "status", "--porcelain") == ""
    moved = commit_on(
        repo,
        "main",
        {"src/app.py": b"print('moved')\n", "new/file.txt": b"new\n", "docs/guide.txt": None},
        "main",
    )
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    assert path.stat().st_ino in pooled
    assert head_of(path) == ("refs/heads/agentfleet/b/t1", moved)
    assert (path / "src/app.py").read_bytes() == b"print('moved')\n"
    assert (path / "new/file.txt").read_bytes() == b"new\n"
    assert not (path / "docs/guide.txt").exists()
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert m.refill() == 2
    for p in m.pooled():
        assert git(p, "rev-parse", "HEAD").strip() == moved


def test_pool_survives_a_new_manager_and_broken_entries_are_discarded(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    first = manager(pool_size=3)
    assert first.refill("main") == 3
    clean, dirty, gone = sorted(first.pooled())
    inode = clean.stat().st_ino
    first.close()
    (dirty / "stray.txt").write_text("someone wrote here\n")
    subprocess.run(["rm", "-rf", str(gone)], check=True)
    leftover = clean.parent / "half-made"
    leftover.mkdir()
    (leftover / "file.txt").write_text("a crash left this\n")

    second = manager(pool_size=3)
    assert second.refill() == 1
    assert second.pooled() == [clean]
    listed = registered(repo)
    assert str(dirty) not in listed
    assert str(gone) not in listed
    assert not dirty.exists()
    assert not leftover.exists()
    path = second.acquire("t1", "agentfleet/b/t1", "main")
    assert path.stat().st_ino == inode
    assert head_of(path)[0] == "refs/heads/agentfleet/b/t1"
    assert second.refill() == 3


@pytest.mark.parametrize("pool_size", [0, 3, 8])
def test_parallel_acquires_from_threads_all_succeed(
    repo: Path, manager: Callable[..., WorktreeManager], pool_size: int
) -> None:
    m = manager(pool_size=pool_size)
    m.refill("main")
    start = threading.Barrier(8)

    def one(k: int) -> Path:
        start.wait()
        return m.acquire(f"t{k}", f"agentfleet/b/t{k}", "main")

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(one, range(8)))
    assert len(set(paths)) == 8
    main = git(repo, "rev-parse", "main").strip()
    for k, path in enumerate(paths):
        assert head_of(path) == (f"refs/heads/agentfleet/b/t{k}", main)
        assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    m.refill()  # the background refill must be done: a git outside the manager races it
    listed = registered(repo)
    assert all(str(p) in listed for p in paths)
    assert git(repo, "fsck", "--no-dangling", "--connectivity-only") == ""


def test_exclude_entry_is_added_once(repo: Path, manager: Callable[..., WorktreeManager]) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    assert ensure_excluded(repo)
    assert not ensure_excluded(repo)
    m = manager(pool_size=0)
    manager(pool_size=0)
    path = m.acquire("t1", "agentfleet/b/t1", "main")
    assert not ensure_excluded(path, "/.agentfleet/")
    assert not ensure_excluded(repo)
    lines = exclude.read_text().splitlines()
    assert lines.count(".agentfleet/") == 1
    assert lines.count("/.agentfleet/") == 1
    assert ensure_excluded(path, "/from-linked/")
    assert exclude.read_text().splitlines().count("/from-linked/") == 1
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


def test_git_variables_inherited_from_a_hook_are_ignored(
    repo: Path, manager: Callable[..., WorktreeManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = repo / ".git" / "index"
    before = index.read_bytes()
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(repo))
    monkeypatch.setenv("GIT_INDEX_FILE", str(index))
    m = manager(pool_size=1)
    m.refill("main")
    pooled = m.acquire("t1", "agentfleet/b/t1", "main")
    cold = m.acquire("t2", "agentfleet/b/t2", "main")
    assert index.read_bytes() == before
    for k, path in enumerate((pooled, cold), start=1):
        assert head_of(path)[0] == f"refs/heads/agentfleet/b/t{k}"
        assert git(path, "status", "--porcelain") == ""
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"


@pytest.mark.parametrize(
    ("kept", "empty_head"), [(("commondir", "gitdir"), False), (("gitdir",), True)]
)
def test_pool_entry_half_made_by_a_killed_git_is_discarded(
    repo: Path,
    manager: Callable[..., WorktreeManager],
    caplog: pytest.LogCaptureFixture,
    kept: tuple[str, ...],
    empty_head: bool,
) -> None:
    m = manager(pool_size=1)
    half = m.root / ".pool" / "9"
    git(repo, "worktree", "add", "-q", "--no-checkout", "--detach", str(half), "HEAD")
    admin = Path((half / ".git").read_text().removeprefix("gitdir:").strip())
    for child in admin.iterdir():
        if child.name not in kept:
            subprocess.run(["rm", "-rf", str(child)], check=True)
    if empty_head:
        (admin / "HEAD").write_text("")
    (admin / "locked").write_text("initializing")
    m.close()

    restarted = manager(pool_size=1)
    assert restarted.refill("main") == 1
    restarted.close()
    assert str(half) not in registered(repo)
    assert not half.exists()
    assert not admin.exists()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    for path in registered(repo):
        assert git(Path(path), "rev-parse", "--verify", "HEAD")


def test_warm_fills_the_pool_in_the_background_before_any_acquire(
    repo: Path, manager: Callable[..., WorktreeManager]
) -> None:
    import time

    wt = manager(pool_size=1)
    assert wt.pooled() == []
    wt.warm("main")
    deadline = time.monotonic() + 30
    while not wt.pooled() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(wt.pooled()) == 1
