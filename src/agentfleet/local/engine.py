"""The local driver: observe processes, ask `decide()`, apply its actions. No scheduling here.

Every step is safe to repeat and to interrupt: a run is recorded before its process starts,
its process outlives the driver, and a restarted driver finds, adopts or ends what it left.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from ..core.actions import (
    Action,
    CancelRun,
    ClearAnnotation,
    CreateTask,
    RecordEvent,
    RunRequest,
    SetStatus,
    StartRun,
)
from ..core.planning import task_workflow
from ..core.reconcile import decide
from ..core.snapshot import Snapshot
from ..models import AgentConfig, AgentTask, Project, TicketBatch
from ..models.meta import Resource
from ..models.run import AttemptPhase, RunKind, RunPhase, RunResult
from ..models.task import TaskPhase
from ..runner.spec import build_run_spec
from .launcher import Launcher, Limits, ProcessExit, ProcessHandle
from .repository import export_tree
from .store import RunRecord, Store
from .workspace import exclude_state_dir
from .worktrees import CleanupPolicy, WorktreeError, WorktreeManager

LOCK_NAME = "driver.lock"
RUNNER_DEADLINE_SLACK_SECONDS = 15


class EngineBusyError(RuntimeError):
    """Another `agentfleet run` drives this store; two drivers would start every run twice."""


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunFiles:
    """Where one run's files live: under the state folder, never inside a worktree."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path, run: str) -> RunFiles:
        return cls(state_dir / "runs" / run)

    @property
    def spec(self) -> Path:
        return self.root / "spec.json"

    @property
    def result(self) -> Path:
        return self.root / "result.json"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def stderr(self) -> Path:
        return self.root / "stderr.log"

    @property
    def context(self) -> Path:
        return self.root / "context"


def read_result(path: Path) -> RunResult | None:
    try:
        return RunResult.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class EngineOptions:
    tick_seconds: float = 0.25
    pool_size: int = 2
    policy: CleanupPolicy = field(default_factory=CleanupPolicy)
    grace_seconds: float = 5.0


class LocalEngine:
    """One repository, one store, one driver at a time (a lock file says so)."""

    def __init__(self, repo: Path, state_dir: Path, options: EngineOptions | None = None) -> None:
        self.repo = repo
        self.state_dir = state_dir.resolve()
        self.options = options or EngineOptions()
        self.store = Store(self.state_dir)
        self._lock_file = (self.state_dir / LOCK_NAME).open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            self._lock_file.close()
            self.store.close()
            raise EngineBusyError(
                f"{self.state_dir}: another `agentfleet run` (pid {holder}) drives this store; "
                "wait for it or stop it"
            ) from exc
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()
        exclude_state_dir(repo, self.state_dir)
        self.launcher = Launcher(self.state_dir, grace_seconds=self.options.grace_seconds)
        self.worktrees = WorktreeManager(
            repo, self.state_dir, pool_size=self.options.pool_size, policy=self.options.policy
        )
        self.records: dict[str, RunRecord] = {r.name: r for r in self.store.runs()}
        self.handles: dict[str, ProcessHandle] = {}
        self.starting: dict[str, Future[ProcessHandle]] = {}
        self._threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agentfleet-start")
        self._cache: dict[tuple[str, str], tuple[int, Resource[Any, Any]]] = {}
        self._released: set[str] = set()
        self.on_event: Callable[[RecordEvent], None] | None = None
        self.recover()

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop driving; runs go on in their own process groups and are adopted next time."""
        self._threads.shutdown(wait=True)
        self._collect_started(closing=True)
        self.worktrees.close()
        self.launcher.close()
        self.store.close()
        self._lock_file.close()

    def recover(self) -> None:
        """After a restart: adopt live runs, collect the ones that ended, end strangers."""
        for record in self.records.values():
            if record.phase.finished:
                continue
            handle = self._handle_of(record)
            if handle is not None and self.launcher.adopt(handle):
                self.handles[record.name] = handle
                if record.cancel_reason:
                    self.launcher.kill(handle)  # a cancel the crash kept from being delivered
                continue
            files = RunFiles.of(self.state_dir, record.name)
            never_ran = not files.events.exists() or files.events.stat().st_size == 0
            if handle is None and never_ran:
                # Recorded but never launched (the runner writes a line before its agent
                # starts): forget it, and the engine asks for it again.
                self.store.forget_run(record.name)
                record.phase = RunPhase.FAILED
                continue
            self._finish(record, ProcessExit(exit_code=None, signal=None, oom_killed=False))
        self.records = {n: r for n, r in self.records.items() if self.store.run(n) is not None}
        known = {n for n, r in self.records.items() if not r.phase.finished}
        for run, pid in self.launcher.find_orphans(known):
            record = self.records.get(run)
            if record is not None and not record.phase.finished:
                continue
            try:
                create_time = psutil.Process(pid).create_time()
            except psutil.Error:
                continue
            self.launcher.kill(ProcessHandle(run, pid, create_time, None, None))

    def _handle_of(self, record: RunRecord) -> ProcessHandle | None:
        if record.pid is not None and record.create_time is not None:
            return ProcessHandle(
                record.name, record.pid, record.create_time, record.cgroup, record.cores
            )
        for run, pid in self.launcher.find_orphans(()):
            if run == record.name:
                try:
                    create_time = psutil.Process(pid).create_time()
                except psutil.Error:
                    return None
                record.pid, record.create_time = pid, create_time
                self.store.save_run(record)
                return ProcessHandle(record.name, pid, create_time, None, None)
        return None

    # --- the loop --------------------------------------------------------------------------

    def step(self) -> list[Action]:
        """One observe-decide-apply round."""
        self.observe()
        actions = decide(self.snapshot(now_utc()))
        for action in actions:
            self.apply(action)
        self._collect_garbage()
        self._cleanup_worktrees()
        return actions

    def _collect_garbage(self) -> None:
        """A run whose task or batch was deleted has no one to report to: end it."""
        for record in list(self.records.values()):
            if record.phase.finished or record.cancel_reason:
                continue
            owner = ("AgentTask", record.task) if record.task else ("TicketBatch", record.batch)
            if owner[1] is not None and owner not in self._cache:
                self._cancel(record.name, "Deleted", f"{owner[0]} {owner[1]} was deleted")

    def observe(self) -> None:
        self._collect_started()
        for name, handle in list(self.handles.items()):
            exit_ = self.launcher.poll(handle)
            if exit_ is not None:
                del self.handles[name]
                self._finish(self.records[name], exit_)

    def _collect_started(self, closing: bool = False) -> None:
        for name, future in list(self.starting.items()):
            if not future.done():
                continue
            del self.starting[name]
            record = self.records[name]
            try:
                handle = future.result()
            except Exception as exc:
                if closing or isinstance(exc, KeyboardInterrupt):
                    # Interrupted while starting: not the run's failure; asked for again later.
                    self.store.forget_run(name)
                    del self.records[name]
                    continue
                record.phase = RunPhase.FAILED
                record.reason = getattr(exc, "reason", None) or type(exc).__name__
                record.message = str(exc)
                record.finish_time = now_utc()
                self.store.save_run(record)
                continue
            record.pid, record.create_time = handle.pid, handle.create_time
            record.cgroup, record.cores = handle.cgroup, handle.cores
            record.phase = RunPhase.RUNNING
            record.start_time = record.start_time or now_utc()
            self.store.save_run(record)
            self.handles[name] = handle
            if record.cancel_reason:
                self.launcher.kill(handle)

    def _finish(self, record: RunRecord, exit_: ProcessExit) -> None:
        result = read_result(RunFiles.of(self.state_dir, record.name).result)
        record.result = result
        record.exit_code = (
            exit_.exit_code
            if exit_.exit_code is not None
            else (result.exit_code if result else None)
        )
        record.finish_time = now_utc()
        ok = result is not None and result.outcome == AttemptPhase.SUCCEEDED
        if record.cancel_reason:
            ok = False
            record.reason = record.cancel_reason
            record.message = record.cancel_message or ""
        elif exit_.oom_killed:
            ok = False
            record.reason, record.message = "OOMKilled", "the run passed its memory limit"
        elif result is not None:
            record.reason, record.message = result.reason, result.message
        elif exit_.signal is not None:
            record.reason, record.message = "Error", f"killed by signal {exit_.signal}"
        else:
            record.reason = "ResultMissing"
            record.message = f"the runner ended (exit code {record.exit_code}) with no result"
        record.phase = RunPhase.SUCCEEDED if ok else RunPhase.FAILED
        self.store.save_run(record)

    def snapshot(self, now: datetime) -> Snapshot:
        """The store as models; unchanged objects keep their identity (the core memoises on it)."""
        versions = self.store.versions()
        for key in list(self._cache):
            if key not in versions:
                del self._cache[key]
        for key, version in versions.items():
            cached = self._cache.get(key)
            if cached is None or cached[0] != version:
                found = self.store.get_versioned(*key)
                if found is not None:
                    self._cache[key] = (found[1], found[0])
        by_kind: dict[str, dict[str, Any]] = {}
        for (kind, name), (_, model) in self._cache.items():
            by_kind.setdefault(kind, {})[name] = model
        return Snapshot(
            now=now,
            batches=list(by_kind.get("TicketBatch", {}).values()),
            tasks=list(by_kind.get("AgentTask", {}).values()),
            workflows=by_kind.get("Workflow", {}),
            agents=by_kind.get("AgentConfig", {}),
            projects=by_kind.get("Project", {}),
            runs=[r.observed() for r in self.records.values() if not self._stale(r)],
        )

    def cached(self, kind: str) -> list[Any]:
        """Objects of `kind` as of the last step, without touching the store."""
        return [model for (k, _), (_, model) in self._cache.items() if k == kind]

    def _model(self, kind: str, name: str | None) -> Any:
        cached = self._cache.get((kind, name or ""))
        return cached[1] if cached else None

    # --- applying actions ------------------------------------------------------------------

    def apply(self, action: Action) -> None:
        match action:
            case CreateTask(task=task):
                self.store.create(task, now_utc())
            case StartRun(run=request):
                self._start(request)
            case CancelRun(name=name, reason=reason, message=message):
                self._cancel(name, reason, message)
            case SetStatus(kind=kind, name=name, status=status):
                self.store.set_status(kind, name, status)
            case RecordEvent(kind=kind, name=name, type=type_, reason=reason, message=message):
                self.store.add_events([(now_utc(), kind, name, type_, reason, message)])
                if self.on_event is not None:
                    self.on_event(action)
            case ClearAnnotation(kind=kind, name=name, key=key):
                # Only the request decide() saw: one a human set since then stays for next time.
                seen = self._model(kind, name)
                value = seen.metadata.annotations.get(key) if seen is not None else None
                self.store.set_annotation(kind, name, key, None, expected=value)

    def _cancel(self, name: str, reason: str, message: str) -> None:
        record = self.records.get(name)
        if record is None or record.phase.finished:
            return
        if not record.cancel_reason:
            record.cancel_reason, record.cancel_message = reason, message
            self.store.save_run(record)
        handle = self.handles.get(name)
        if handle is not None:
            self.launcher.kill(handle)

    def _task_busy(self, task: str | None) -> bool:
        """One process works in a task's worktree at a time: stages in parallel would commit
        each other's half-written files. A run that must wait is asked for again next step."""
        return task is not None and any(
            r.task == task and not r.phase.finished for r in self.records.values()
        )

    def _stale(self, record: RunRecord) -> bool:
        """A record older than its task (or batch) belongs to a deleted namesake of it."""
        owner = (
            self._model("AgentTask", record.task)
            if record.task
            else self._model("TicketBatch", record.batch)
        )
        created = owner.metadata.creation_timestamp if owner is not None else None
        return created is not None and record.created < created

    def _start(self, request: RunRequest) -> None:
        old = self.records.get(request.name)
        if old is not None and old.phase.finished and self._stale(old):
            self.store.forget_run(old.name)
            shutil.rmtree(RunFiles.of(self.state_dir, old.name).root, ignore_errors=True)
            del self.records[old.name]
        if request.name in self.records or self._task_busy(request.task):
            return
        record = RunRecord(
            name=request.name,
            kind=request.kind,
            batch=request.batch,
            task=request.task,
            stage=request.stage,
            attempt=request.attempt,
            agent=request.agent,
            project=request.project,
        )
        agent = self._model("AgentConfig", request.agent)
        if agent is None:
            return
        if not self.store.add_run(record):
            return
        self.records[request.name] = record
        self.starting[request.name] = self._threads.submit(self._launch, request, record, agent)

    def _launch(self, request: RunRequest, record: RunRecord, agent: AgentConfig) -> ProcessHandle:
        """In a worker thread: worktree, spec file, process. The loop goes on meanwhile."""
        files = RunFiles.of(self.state_dir, request.name)
        files.context.mkdir(parents=True, exist_ok=True)
        task: AgentTask | None = self._model("AgentTask", request.task)
        batch: TicketBatch | None = self._model("TicketBatch", request.batch)
        project: Project | None = self._model("Project", request.project)
        workflow = task_workflow(task, batch, project, self._models("Workflow")) if task else None
        limits = agent.spec.environment_requirements.resource_limits
        memory_rlimit = None
        if limits.memory_mb is not None and not self.launcher.memory_by_cgroup:
            memory_rlimit = limits.memory_mb * 1024 * 1024
        # Built before the worktree is made: a run that cannot start leaves nothing behind.
        spec = build_run_spec(
            request,
            agent=agent,
            task=task,
            batch=batch,
            workflow=workflow,
            worktree=str(files.root),
            context_dir=str(files.context),
            # The engine ends a run at its deadline (the whole process group); the runner's
            # own deadline is a backstop for when no driver is watching.
            timeout_slack_seconds=RUNNER_DEADLINE_SLACK_SECONDS,
            memory_limit_bytes=memory_rlimit,
        )
        worktree = files.root
        base = project.spec.repository.base_branch if project else "main"
        if task is not None and spec.branch is not None:
            worktree = self.worktrees.acquire(task.name, spec.branch, base, reuse=True)
            spec = spec.model_copy(update={"worktree": str(worktree)})
        elif request.kind is RunKind.REFINEMENT:
            worktree = files.root / "repository"
            if not worktree.exists():
                export_tree(self.repo, base, worktree)
            spec = spec.model_copy(update={"worktree": str(worktree)})
        tmp = files.spec.with_suffix(".tmp")
        tmp.write_text(spec.model_dump_json(by_alias=True, exclude_none=True))
        os.replace(tmp, files.spec)
        files.result.unlink(missing_ok=True)
        record.worktree = str(worktree)
        argv = [
            sys.executable,
            "-m",
            "agentfleet",
            "runner",
            "--spec",
            str(files.spec),
            "--result",
            str(files.result),
        ]
        # The wall clock at spawn; a process's create_time drifts with the boot-time estimate.
        record.start_time = now_utc()
        return self.launcher.start(
            request.name,
            argv,
            cwd=Path(worktree),
            env=dict(os.environ),
            limits=Limits(memory_mb=limits.memory_mb, cpu_cores=limits.cpu_cores),
            stdout=files.events,
            stderr=files.stderr,
        )

    def _models(self, kind: str) -> dict[str, Any]:
        return {name: model for (k, name), (_, model) in self._cache.items() if k == kind}

    def _cleanup_worktrees(self) -> None:
        """Apply the cleanup policy once a task is final and none of its runs is alive."""
        for (kind, name), (_, task) in list(self._cache.items()):
            if kind != "AgentTask" or task.status is None:
                continue
            phase = TaskPhase(task.status.phase or TaskPhase.PENDING)
            if not phase.terminal:
                self._released.discard(name)  # a human's retry brings it back
                continue
            if name in self._released:
                continue
            if any(r.task == name and not r.phase.finished for r in self.records.values()):
                continue
            self._released.add(name)
            try:
                self.worktrees.release(name, succeeded=phase == TaskPhase.SUCCEEDED)
            except WorktreeError:
                continue

    # --- driving ---------------------------------------------------------------------------

    def batch_phases(self, names: list[str]) -> dict[str, str | None]:
        phases: dict[str, str | None] = {}
        for name in names:
            batch = self._model("TicketBatch", name)
            phases[name] = batch.status.phase if batch is not None and batch.status else None
        return phases

    def finished(self, names: list[str]) -> bool:
        """Every batch is final: Succeeded, Failed, or Refined when it was not to execute."""
        for name in names:
            batch: TicketBatch | None = self._model("TicketBatch", name)
            phase = batch.status.phase if batch is not None and batch.status else None
            done = (
                ("Succeeded", "Failed")
                if batch is None or batch.spec.execute
                else (
                    "Succeeded",
                    "Failed",
                    "Refined",
                )
            )
            if phase not in done:
                return False
        return True
