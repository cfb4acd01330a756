"""Task worktrees for the local driver, with a warm pool, never touching the user's checkout."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import git

log = logging.getLogger(__name__)

POOL_LOCK_REASON = "agentfleet-pool"
POOL_DIR = ".pool"
TRASH_DIR = ".trash"

# What `git rev-parse --local-env-vars` lists: inherited from a git hook (GIT_INDEX_FILE in a
# pre-commit hook, GIT_DIR in most others) they would point our commands at the user's index
# or HEAD instead of the worktree we run in.
_REPOSITORY_ENV = frozenset(
    {
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
        "GIT_OBJECT_DIRECTORY",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_IMPLICIT_WORK_TREE",
        "GIT_GRAFT_FILE",
        "GIT_INDEX_FILE",
        "GIT_NO_REPLACE_OBJECTS",
        "GIT_REPLACE_REF_BASE",
        "GIT_PREFIX",
        "GIT_SHALLOW_FILE",
        "GIT_COMMON_DIR",
    }
)
_NICE = shutil.which("nice")


class WorktreeError(Exception):
    """Base of every error of this module, so a driver can report them as one kind."""


class NotAGitRepository(WorktreeError):  # noqa: N818
    """Tasks run in worktrees of a repository, so there is nothing to do without one."""


class BaseBranchMissing(WorktreeError):  # noqa: N818
    """A task branch must start from the project's base; guessing another would mislead."""

    def __init__(self, base: str, repo: Path) -> None:
        super().__init__(
            f"base branch {base!r} does not exist in {repo}: create it, fetch it, or set the "
            "project's base branch to one that exists"
        )
        self.base = base
        self.repo = repo


class WorktreeConflict(WorktreeError):  # noqa: N818
    """Something already occupies the branch or folder; it may hold work, so it is not clobbered."""


class InvalidNameError(WorktreeError, ValueError):
    """Task names become folder names: one that climbs out of the state folder is refused."""


class GitError(WorktreeError):
    """A git command failed; its stderr says why better than anything we could add."""

    def __init__(self, args: tuple[str, ...], cwd: Path, returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} (in {cwd}) failed ({returncode}): {stderr.strip()}")
        self.command = args
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class CleanupPolicy:
    """Which worktrees go when a task ends; its branch always stays, the commits are the product."""

    keep_failed: bool = True
    remove_succeeded: bool = True

    def removes(self, *, succeeded: bool) -> bool:
        return self.remove_succeeded if succeeded else not self.keep_failed


DEFAULT_POLICY = CleanupPolicy()


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _REPOSITORY_ENV and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    return env


def _git(cwd: Path, *args: str, check: bool = True, background: bool = False) -> str:
    """Run git with the repository-locating variables removed from its environment.

    GitPython's `Git.execute` can add variables but not remove inherited ones, so commands run
    through subprocess; a call costs the same either way (measured: 2.1 ms via
    `repo.git.rev_parse`, 2.0 ms via subprocess). Background upkeep runs under `nice`, so that
    refilling the pool yields the CPU to the agents and to the next acquire.
    """
    command = [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
    if background and _NICE:
        command = [_NICE, "-n", "10", *command]
    done = subprocess.run(
        command,
        cwd=cwd,
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        check=False,
    )
    if check and done.returncode:
        raise GitError(args, cwd, done.returncode, done.stderr)
    return done.stdout


_exclude_lock = threading.Lock()


def ensure_excluded(repo_path: Path, pattern: str = ".agentfleet/") -> bool:
    """Keep agentfleet's state out of the user's `git status` without editing their .gitignore.

    The exclude file lives in the common git dir, so this works from a linked worktree too.
    Returns whether the pattern was added (False: it was already there).
    """
    repo_path = Path(repo_path)
    try:
        common = _git(repo_path, "rev-parse", "--git-common-dir").strip()
    except (GitError, OSError) as exc:
        raise NotAGitRepository(f"{repo_path} is not in a git repository") from exc
    exclude = (repo_path / common).resolve() / "info" / "exclude"
    with _exclude_lock:
        text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if pattern in (line.strip() for line in text.splitlines()):
            return False
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a", encoding="utf-8") as handle:
            handle.write(("" if not text or text.endswith("\n") else "\n") + pattern + "\n")
    return True


@dataclass
class _Registered:
    """One block of `git worktree list --porcelain`."""

    path: Path
    head: str | None = None
    branch: str | None = None
    detached: bool = False
    locked: str | None = None


def _parse_worktrees(text: str) -> list[_Registered]:
    found: list[_Registered] = []
    for block in text.split("\n\n"):
        current: _Registered | None = None
        for line in block.splitlines():
            key, _, value = line.partition(" ")
            if key == "worktree":
                current = _Registered(Path(value))
                found.append(current)
            elif current is None:
                continue
            elif key == "HEAD":
                current.head = value
            elif key == "branch":
                current.branch = value
            elif key == "detached":
                current.detached = True
            elif key == "locked":
                current.locked = value
    return found


@dataclass
class _Entry:
    """A pool worktree: detached at `commit`, clean, locked."""

    path: Path
    commit: str


@dataclass
class _Plan:
    task: str
    path: Path
    branch: str
    ref: str
    target: str
    new: bool
    entry: _Entry | None


class WorktreeManager:
    """One worktree per task under `<state_dir>/worktrees/<task>`, handed out from a warm pool.

    Checking out a large tree costs seconds, so `pool_size` worktrees wait, checked out detached
    at the base, under `<state_dir>/worktrees/.pool/<n>`; an acquire turns one into the task's
    worktree in milliseconds and a background thread replaces it. Only the pool and the task
    worktrees are ever checked out, reset or switched: the user's HEAD, index, files and stash
    are never touched. Thread-safe; the decisions about branches and folders are serialised,
    the slow checkouts are not.
    """

    def __init__(
        self,
        repo: Path,
        state_dir: Path,
        *,
        pool_size: int = 2,
        policy: CleanupPolicy = DEFAULT_POLICY,
        base: str | None = None,
    ) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, not {pool_size}")
        try:
            self._repo = git.Repo(repo)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise NotAGitRepository(
                f"{repo} is not a git repository: agentfleet runs every task in a worktree of "
                "the project's repository; point it at the repository's top folder (or run "
                "`git init` there)"
            ) from exc
        self.repo = Path(repo).resolve()
        self.state_dir = Path(state_dir).resolve()
        self.root = self.state_dir / "worktrees"
        self.pool_size = pool_size
        self.policy = policy
        self._common_dir = Path(self._repo.common_dir).resolve()
        self._pool_dir = self.root / POOL_DIR
        self._trash_dir = self.root / TRASH_DIR
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._task_locks: dict[str, threading.Lock] = {}
        self._inflight: dict[str, str] = {}
        self._ready: list[_Entry] = []
        self._unverified: list[_Entry] = []
        self._busy: set[str] = set()
        self._preparing = 0
        self._trash: list[Path] = []
        self._base = base
        self._wanted = True
        self._closed = False
        work_tree = self._repo.working_tree_dir
        if work_tree is not None:
            try:
                inside = self.state_dir.relative_to(Path(work_tree).resolve())
            except ValueError:
                pass
            else:
                if inside.parts:
                    ensure_excluded(self.repo, f"/{inside.as_posix()}/")
        with self._lock:
            self._adopt()
        self._worker = threading.Thread(target=self._work, name="agentfleet-worktrees", daemon=True)
        self._worker.start()

    # --- public API ------------------------------------------------------------------------

    def path_for(self, task: str) -> Path:
        """Where a task's worktree lives; refuses names that would land outside the root."""
        if not task or task.startswith(".") or ".." in task or any(c in task for c in "/\\\0"):
            raise InvalidNameError(
                f"task name {task!r} cannot be a folder name under {self.root}: it must not "
                "contain '/', '\\' or '..', nor start with '.'"
            )
        return self.root / task

    def base_commit(self, base: str) -> str:
        """The commit a new task branch starts from, so every caller resolves `base` alike.

        A branch of that name wins over a tag or a path of the same name; a remote-tracking
        branch (`origin/main`) or a commit also works.
        """
        if base and not base.startswith("-"):
            for candidate in (f"refs/heads/{base}", base):
                commit = self._resolve(f"{candidate}^{{commit}}")
                if commit:
                    return commit
        raise BaseBranchMissing(base, self.repo)

    def acquire(self, task: str, branch: str, base: str, *, reuse: bool = True) -> Path:
        """The task's worktree on `branch`, created from `base` if the branch is new.

        Calling it again for the same task returns the same worktree untouched (a resume). A
        branch left by an earlier run is checked out as it is when `reuse`, else refused.
        """
        path = self.path_for(task)
        ref = self._branch_ref(branch)
        with self._task_lock(task):
            with self._lock:
                self._base = base
                plan = self._plan(task, path, branch, ref, base, reuse)
                if plan is None:
                    return path
                self._inflight[branch] = task
            try:
                self._materialise(plan)
            finally:
                with self._lock:
                    del self._inflight[branch]
                    self._wake()
        return path

    def release(self, task: str, *, succeeded: bool) -> bool:
        """Apply the cleanup policy when a task ends; returns whether its worktree was removed."""
        if not self.policy.removes(succeeded=succeeded):
            return False
        return self.remove(task)

    def remove(self, task: str) -> bool:
        """Remove the task's worktree now, keeping its branch; uncommitted changes are lost.

        The folder is moved aside at once (a rename) and deleted in the background, so that a
        large tree does not hold up the caller. Returns False when there was no worktree.
        """
        path = self.path_for(task)
        with self._task_lock(task), self._lock:
            here = self._registered_at(self._list(), path)
            if here is None:
                if path.exists() or path.is_symlink():
                    raise WorktreeConflict(
                        f"{path} is not a worktree of {self.repo}: agentfleet did not create "
                        "it and will not delete it"
                    )
                return False
            if here.locked is not None:
                raise WorktreeConflict(
                    f"worktree {path} is locked ({here.locked or 'no reason given'}); "
                    f"`git worktree unlock {path}` to let agentfleet remove it"
                )
            if path.exists():
                self._discard(path, here.head)
            else:
                self._unregister(path, self._admin_of(path))
        return True

    def refill(self, base: str | None = None) -> int:
        """Do the background upkeep now and wait for it, for a warm start or a benchmark.

        Empties the trash, checks pool worktrees adopted from an earlier process, moves stale
        ones to the current base and fills the pool. Returns how many are ready.
        """
        with self._lock:
            if base is not None:
                self._base = base
        self._maintain(background=False)
        with self._lock:
            while self._preparing or self._busy:
                self._changed.wait()
        self._maintain(background=False)
        with self._lock:
            return len(self._ready)

    def warm(self, base: str) -> None:
        """Fill the pool at `base` in the background now, before the first task asks."""
        with self._lock:
            self._base = base
            self._wanted = True
            self._changed.notify_all()

    def pooled(self) -> list[Path]:
        """The pool worktrees ready to be handed out, for inspection."""
        with self._lock:
            return [e.path for e in self._ready]

    def prune(self) -> None:
        """Drop registrations whose folder is gone, ours (even locked pool entries) and others'."""
        with self._lock:
            for wt in self._list():
                if self._ours(wt.path) and not wt.path.exists():
                    self._unregister(wt.path, self._admin_of(wt.path))
                    self._ready = [e for e in self._ready if e.path != wt.path]
                    self._unverified = [e for e in self._unverified if e.path != wt.path]
                    self._trash = [p for p in self._trash if p != wt.path]
            self._run("worktree", "prune")

    def close(self) -> None:
        """Stop the background thread and delete what waits in the trash.

        The pool stays on disk for the next process. The manager still works afterwards,
        without background upkeep.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._worker.join()
        self._empty_trash(background=False)
        self._repo.close()

    def __enter__(self) -> WorktreeManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- acquiring -------------------------------------------------------------------------
    #
    # Concurrent git commands that create, move or delete worktree registrations make each
    # other fail ("failed to read .git/worktrees/<id>/commondir" while another one is being
    # written), so every such command runs under self._lock. Checkouts only write inside their
    # own worktree and run outside it, in parallel: a new worktree is registered empty
    # (`worktree add --no-checkout`, milliseconds) and filled by `reset --hard` afterwards,
    # which is what `worktree add` itself runs. Every worktree is born a pool entry in
    # .pool/<n>, detached, and becomes a task's by a move; a crash halfway leaves a pool
    # entry that the next process checks and discards, never a half-filled task worktree.

    def _plan(
        self, task: str, path: Path, branch: str, ref: str, base: str, reuse: bool
    ) -> _Plan | None:
        registered = self._list()
        here = self._registered_at(registered, path)
        if here is not None:
            if here.branch == ref and path.is_dir():
                return None
            if not path.exists() and here.locked is None:
                log.info("dropping the stale registration of %s (its folder is gone)", path)
                self._unregister(path, self._admin_of(path))
                registered.remove(here)
            else:
                on = (
                    f"branch {here.branch.removeprefix('refs/heads/')}"
                    if here.branch
                    else "a detached HEAD"
                )
                raise WorktreeConflict(
                    f"{path} is already a worktree, on {on}, not on {branch}: remove it "
                    f"(`git worktree remove {path}`) or rename the batch"
                )
        elif path.exists() or path.is_symlink():
            raise WorktreeConflict(
                f"{path} exists but is not a worktree of {self.repo}: move it away or delete "
                "it; agentfleet will not write into a folder it did not create"
            )
        holder = next((wt for wt in registered if wt.branch == ref), None)
        if holder is not None:
            raise WorktreeConflict(
                f"branch {branch} is checked out in {holder.path}: a task needs the branch in "
                "its own worktree; switch that checkout to another branch first"
            )
        if branch in self._inflight:
            raise WorktreeConflict(
                f"branch {branch} is being checked out for task {self._inflight[branch]}"
            )
        existing = self._resolve(ref)
        if existing is not None and not reuse:
            raise WorktreeConflict(
                f"branch {branch} already exists (at {existing[:12]}, probably from an earlier "
                f"run): delete it with `git branch -D {branch}` or rename the batch"
            )
        target = existing if existing is not None else self.base_commit(base)
        entry = next((e for e in self._ready if e.commit == target), None)
        if entry is None and self._ready:
            entry = self._ready[0]
        if entry is not None:
            self._ready.remove(entry)
            self._busy.add(entry.path.name)
        return _Plan(task, path, branch, ref, target, existing is None, entry)

    def _materialise(self, plan: _Plan) -> None:
        if plan.entry is not None:
            try:
                self._claim(plan, plan.entry)
                return
            except GitError as exc:
                log.warning("pool worktree %s not usable, checking out afresh: %s", plan.entry, exc)
        self._claim(plan, self._make_entry(plan.target, background=False))

    def _claim(self, plan: _Plan, entry: _Entry) -> None:
        """Put a pool entry on the task's branch and move it to the task's folder."""
        message = f"agentfleet: task {plan.task}"
        created = False
        try:
            if entry.commit != plan.target:
                _git(entry.path, "checkout", "-q", "--detach", plan.target)
            # Index and files are now at the branch's commit: pointing HEAD at the branch is
            # all `checkout -b` would still do, in 5 ms instead of 100-270 ms for 50,000 files
            # (checkout rereads and rewrites the whole index). The empty old value makes
            # update-ref refuse a branch that appeared meanwhile.
            if plan.new:
                self._run("update-ref", "-m", message, plan.ref, plan.target, "")
                created = True
            _git(entry.path, "symbolic-ref", "-m", message, "HEAD", plan.ref)
            with self._lock:
                self._run("worktree", "unlock", str(entry.path))
                self._run("worktree", "move", str(entry.path), str(plan.path))
                self._busy.discard(entry.path.name)
        except GitError:
            with self._lock:
                self._discard(entry.path, plan.target)
                self._busy.discard(entry.path.name)
            if created:
                with suppress(GitError):
                    self._run("update-ref", "-d", plan.ref, plan.target)
            raise

    def _make_entry(self, commit: str, *, background: bool) -> _Entry:
        """A new worktree detached at `commit` in the pool folder, marked busy (not ready)."""
        with self._lock:
            used = set(self._busy)
            if self._pool_dir.is_dir():
                used.update(p.name for p in self._pool_dir.iterdir())
            name = str(next(n for n in range(len(used) + 1) if str(n) not in used))
            self._busy.add(name)
            path = self._pool_dir / name
            try:
                self._pool_dir.mkdir(parents=True, exist_ok=True)
                self._run("worktree", "add", "-q", "--no-checkout", "--detach", str(path), commit)
                self._run("worktree", "lock", "--reason", POOL_LOCK_REASON, str(path))
            except GitError:
                self._busy.discard(name)
                with suppress(GitError):
                    self._run("worktree", "remove", "--force", "--force", str(path))
                shutil.rmtree(path, ignore_errors=True)
                raise
        try:
            _git(path, "reset", "-q", "--hard", background=background)
        except GitError:
            with self._lock:
                self._discard(path, commit)
                self._busy.discard(name)
            raise
        return _Entry(path, commit)

    # --- the pool and the trash ------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over the pool and trash a previous process left; discard what is broken."""
        known: set[Path] = set()
        for wt in self._list():
            if wt.path.parent == self._pool_dir:
                known.add(wt.path)
                if wt.path.is_dir() and wt.detached and wt.head:
                    if wt.locked is None:
                        self._run("worktree", "lock", "--reason", POOL_LOCK_REASON, str(wt.path))
                    self._unverified.append(_Entry(wt.path, wt.head))
                else:
                    log.warning("discarding broken pool worktree %s", wt.path)
                    self._discard(wt.path, wt.head)
            elif wt.path.parent == self._trash_dir:
                known.add(wt.path)
                self._trash.append(wt.path)
        for folder in (self._pool_dir, self._trash_dir):
            if not folder.is_dir():
                continue
            for child in folder.iterdir():
                if child in known:
                    continue
                if not self._stray_is_ours(child):
                    log.warning("leaving %s alone: it is not a worktree of %s", child, self.repo)
                elif folder == self._trash_dir:
                    self._trash.append(child)
                else:
                    self._trash_dir.mkdir(parents=True, exist_ok=True)
                    trash = self._trash_dir / uuid.uuid4().hex[:12]
                    child.rename(trash)
                    self._trash.append(trash)

    def _stray_is_ours(self, path: Path) -> bool:
        """A leftover folder without a registration: ours unless its .git points elsewhere."""
        dot_git = path / ".git"
        if path.is_symlink() or not path.is_dir() or not dot_git.exists():
            return True
        if not dot_git.is_file():
            return False
        gitdir = dot_git.read_text(encoding="utf-8").removeprefix("gitdir:").strip()
        return Path(gitdir).resolve().parent == self._common_dir / "worktrees"

    def _discard(self, path: Path, head: str | None) -> None:
        """Lock held. Move a worktree aside for deletion in the background, a rename now.

        Its HEAD is detached first: a folder waiting for deletion must not keep a branch
        checked out, or the branch could not be checked out anywhere else.
        """
        if not path.exists():
            self._unregister(path, self._admin_of(path))
            return
        if head:
            with suppress(GitError):
                _git(path, "update-ref", "--no-deref", "-m", "agentfleet: discard", "HEAD", head)
        self._trash_dir.mkdir(parents=True, exist_ok=True)
        trash = self._trash_dir / uuid.uuid4().hex[:12]
        try:
            self._run("worktree", "move", "--force", "--force", str(path), str(trash))
        except GitError as exc:
            log.warning("could not move %s aside, deleting it now: %s", path, exc)
            admin = self._admin_of(path)
            shutil.rmtree(path, ignore_errors=True)
            self._unregister(path, admin)
            return
        self._trash.append(trash)
        self._wake()

    def _unregister(self, path: Path, admin: Path | None) -> None:
        """Lock held, `path` gone. Drop its registration, by hand if git refuses.

        A `git worktree add` killed halfway leaves an admin folder without HEAD, and git then
        fails to validate the worktree for move and remove alike ("is not a .git file").
        Deleting the admin folder is what `git worktree prune` would do but for the lock.
        """
        try:
            self._run("worktree", "remove", "--force", "--force", str(path))
        except GitError:
            if admin is not None:
                log.warning("dropping the registration of %s by hand (%s)", path, admin)
                shutil.rmtree(admin, ignore_errors=True)

    def _admin_of(self, path: Path) -> Path | None:
        """The folder in <common dir>/worktrees whose gitdir points back at `path`, if any."""
        dot_git = path / ".git"
        folder = self._common_dir / "worktrees"
        candidates: list[Path] = []
        if dot_git.is_file():
            pointer = dot_git.read_text(encoding="utf-8").removeprefix("gitdir:").strip()
            candidates.append(Path(pointer))
        if folder.is_dir():
            candidates.extend(sorted(folder.iterdir()))
        for admin in candidates:
            try:
                back = (admin / "gitdir").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if admin.resolve().parent == folder and Path(back) == dot_git:
                return admin
        return None

    def _wake(self) -> None:
        self._wanted = True
        self._changed.notify_all()

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._wanted and not self._closed:
                    self._changed.wait()
                if self._closed:
                    return
                self._wanted = False
            try:
                self._maintain(background=True)
            except Exception:
                log.exception("worktree pool upkeep failed")

    def _maintain(self, *, background: bool) -> None:
        self._empty_trash(background=background)
        self._verify(background=background)
        self._fill(background=background)

    def _stop(self, background: bool) -> bool:
        """Lock held. Background work stops on close and waits while an acquire is running."""
        if not background:
            return False
        while self._inflight and not self._closed:
            self._changed.wait()
        return self._closed

    def _empty_trash(self, *, background: bool) -> None:
        while True:
            with self._lock:
                if self._stop(background) or not self._trash:
                    return
                path = self._trash.pop(0)
            admin = self._admin_of(path)
            shutil.rmtree(path, ignore_errors=True)
            with self._lock:
                self._unregister(path, admin)

    def _verify(self, *, background: bool) -> None:
        """An adopted entry is used only once proven clean and still detached at its commit."""
        while True:
            with self._lock:
                if self._stop(background) or not self._unverified:
                    return
                entry = self._unverified.pop(0)
                self._busy.add(entry.path.name)
            try:
                head = _git(entry.path, "rev-parse", "HEAD").strip()
                attached = _git(entry.path, "symbolic-ref", "-q", "HEAD", check=False).strip()
                status = _git(
                    entry.path,
                    "status",
                    "--porcelain",
                    "--untracked-files=normal",
                    background=background,
                )
                good = head == entry.commit and not attached and not status
            except GitError:
                good = False
            with self._lock:
                self._busy.discard(entry.path.name)
                if good:
                    self._ready.append(entry)
                else:
                    log.warning("discarding pool worktree %s: not clean", entry.path)
                    self._discard(entry.path, entry.commit)
                self._changed.notify_all()

    def _fill(self, *, background: bool) -> None:
        while True:
            with self._lock:
                if self._stop(background) or self._closed or self._base is None:
                    return
                base = self._base
            try:
                commit = self.base_commit(base)
            except BaseBranchMissing:
                log.warning("not filling the worktree pool: base branch %r is missing", base)
                return
            with self._lock:
                stale = next((e for e in self._ready if e.commit != commit), None)
                if stale is not None:
                    self._ready.remove(stale)
                    self._busy.add(stale.path.name)
                elif len(self._ready) + len(self._unverified) + self._preparing >= self.pool_size:
                    return
                self._preparing += 1
            entry: _Entry | None = None
            try:
                if stale is None:
                    entry = self._make_entry(commit, background=background)
                else:
                    _git(stale.path, "checkout", "-q", "--detach", commit, background=background)
                    entry = _Entry(stale.path, commit)
            except GitError as exc:
                log.warning("could not prepare a pool worktree: %s", exc)
            with self._lock:
                self._preparing -= 1
                if entry is not None:
                    self._ready.append(entry)
                    self._busy.discard(entry.path.name)
                elif stale is not None:
                    self._discard(stale.path, stale.commit)
                    self._busy.discard(stale.path.name)
                self._changed.notify_all()
            if entry is None:
                return

    # --- git -------------------------------------------------------------------------------

    def _run(self, *args: str) -> str:
        return _git(self.repo, *args)

    def _resolve(self, rev: str) -> str | None:
        commit = _git(self.repo, "rev-parse", "--verify", "-q", rev, check=False).strip()
        return commit or None

    def _list(self) -> list[_Registered]:
        """The registered worktrees; retried, as a git process outside this manager may be
        adding or removing one at that very moment."""
        for delay in (0.01, 0.03, 0.1, 0.3):
            try:
                return _parse_worktrees(self._run("worktree", "list", "--porcelain"))
            except GitError as exc:
                log.debug("git worktree list failed, retrying: %s", exc)
                time.sleep(delay)
        return _parse_worktrees(self._run("worktree", "list", "--porcelain"))

    @staticmethod
    def _registered_at(registered: list[_Registered], path: Path) -> _Registered | None:
        return next((wt for wt in registered if wt.path == path), None)

    def _ours(self, path: Path) -> bool:
        return path.parent in (self.root, self._pool_dir, self._trash_dir)

    def _branch_ref(self, branch: str) -> str:
        ref = f"refs/heads/{branch}"
        try:
            if not branch or branch.startswith("-") or branch == "HEAD":
                raise ValueError(branch)
            _git(self.repo, "check-ref-format", ref)
        except (ValueError, GitError):
            raise InvalidNameError(f"{branch!r} is not a valid branch name") from None
        return ref

    @contextmanager
    def _task_lock(self, task: str) -> Iterator[None]:
        with self._lock:
            lock = self._task_locks.setdefault(task, threading.Lock())
        with lock:
            yield
