"""The local store: applied resources, run records and events in one SQLite file.

WAL mode and one transaction per write mean a crash at any instant leaves the last committed
state, never half of one; several processes (a running `agentfleet run`, an `agentfleet approve`
from another terminal) share the file safely.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..models import KINDS
from ..models.meta import Resource, Status
from ..models.run import ObservedRun, RunKind, RunPhase, RunResult

DB_NAME = "state.db"
HUMAN_ANNOTATION_PREFIX = "agentfleet.dev/"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT,
    version INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    batch TEXT,
    task TEXT,
    stage TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    agent TEXT NOT NULL,
    project TEXT,
    phase TEXT NOT NULL,
    pid INTEGER,
    create_time REAL,
    cgroup TEXT,
    cores TEXT,
    worktree TEXT,
    start_time TEXT,
    finish_time TEXT,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    cancel_reason TEXT,
    cancel_message TEXT,
    result TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_task ON runs (task);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_object ON events (kind, name);
"""


class StoreError(RuntimeError):
    pass


@dataclass
class RunRecord:
    """A run as the local driver knows it: what was asked, the process, and how it ended."""

    name: str
    kind: RunKind
    batch: str | None
    task: str | None
    stage: str
    attempt: int
    agent: str
    project: str | None
    phase: RunPhase = RunPhase.PENDING
    pid: int | None = None
    create_time: float | None = None
    cgroup: str | None = None
    cores: tuple[int, ...] | None = None
    worktree: str | None = None
    start_time: datetime | None = None
    finish_time: datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    cancel_reason: str | None = None
    cancel_message: str | None = None
    result: RunResult | None = None
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    def observed(self) -> ObservedRun:
        return ObservedRun(
            name=self.name,
            kind=self.kind,
            batch=self.batch,
            task=self.task,
            stage=self.stage,
            attempt=self.attempt,
            agent=self.agent,
            phase=self.phase,
            exit_code=self.exit_code,
            reason=self.reason,
            message=self.message,
            result=self.result,
            start_time=self.start_time or self.created,
            finish_time=self.finish_time,
        )


@dataclass(frozen=True)
class EventRecord:
    id: int
    time: datetime
    kind: str
    name: str
    type: str
    reason: str
    message: str


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_RUN_COLUMNS = (
    "name, kind, batch, task, stage, attempt, agent, project, phase, pid, create_time, cgroup, "
    "cores, worktree, start_time, finish_time, exit_code, reason, message, cancel_reason, "
    "cancel_message, result, created"
)


_RUN_PARAMS = ", ".join("?" * len(_RUN_COLUMNS.split(",")))


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.name,
        str(run.kind),
        run.batch,
        run.task,
        run.stage,
        run.attempt,
        run.agent,
        run.project,
        str(run.phase),
        run.pid,
        run.create_time,
        run.cgroup,
        json.dumps(list(run.cores)) if run.cores is not None else None,
        run.worktree,
        _time(run.start_time),
        _time(run.finish_time),
        run.exit_code,
        run.reason,
        run.message,
        run.cancel_reason,
        run.cancel_message,
        run.result.model_dump_json(by_alias=True, exclude_none=True) if run.result else None,
        _time(run.created),
    )


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        name=row["name"],
        kind=RunKind(row["kind"]),
        batch=row["batch"],
        task=row["task"],
        stage=row["stage"],
        attempt=row["attempt"],
        agent=row["agent"],
        project=row["project"],
        phase=RunPhase(row["phase"]),
        pid=row["pid"],
        create_time=row["create_time"],
        cgroup=row["cgroup"],
        cores=tuple(json.loads(row["cores"])) if row["cores"] else None,
        worktree=row["worktree"],
        start_time=_parse_time(row["start_time"]),
        finish_time=_parse_time(row["finish_time"]),
        exit_code=row["exit_code"],
        reason=row["reason"],
        message=row["message"],
        cancel_reason=row["cancel_reason"],
        cancel_message=row["cancel_message"],
        result=RunResult.model_validate_json(row["result"]) if row["result"] else None,
        created=_parse_time(row["created"]) or datetime.now(UTC),
    )


class Store:
    """One SQLite file; every method is one transaction."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row["value"]) > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer agentfleet (schema {row['value']}, this "
                    f"one reads {SCHEMA_VERSION}); upgrade agentfleet"
                )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front, so read-modify-write cannot interleave."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- resources -------------------------------------------------------------------------

    def versions(self) -> dict[tuple[str, str], int]:
        """Every object's version: a driver re-reads only what changed since its last look."""
        rows = self._db.execute("SELECT kind, name, version FROM resources").fetchall()
        return {(r["kind"], r["name"]): r["version"] for r in rows}

    @staticmethod
    def _model(kind: str, body: str, status: str | None) -> Resource[Any, Any]:
        data = json.loads(body)
        if status:
            data["status"] = json.loads(status)
        return KINDS[kind].model_validate(data)

    def get(self, kind: str, name: str) -> Resource[Any, Any] | None:
        row = self._db.execute(
            "SELECT body, status FROM resources WHERE kind=? AND name=?", (kind, name)
        ).fetchone()
        return self._model(kind, row["body"], row["status"]) if row else None

    def list(self, kind: str) -> list[Resource[Any, Any]]:
        rows = self._db.execute(
            "SELECT body, status FROM resources WHERE kind=? ORDER BY name", (kind,)
        ).fetchall()
        return [self._model(kind, r["body"], r["status"]) for r in rows]

    def get_versioned(self, kind: str, name: str) -> tuple[Resource[Any, Any], int] | None:
        row = self._db.execute(
            "SELECT body, status, version FROM resources WHERE kind=? AND name=?", (kind, name)
        ).fetchone()
        return (self._model(kind, row["body"], row["status"]), row["version"]) if row else None

    def apply(self, resources: Sequence[Resource[Any, Any]], now: datetime) -> list[str]:
        """Create or update every resource in one transaction; a spec change bumps generation.

        Status is never taken from a manifest: it is the engine's, and it is kept.
        """
        outcomes = []
        with self.transaction() as db:
            for resource in resources:
                kind, name = resource.kind, resource.name
                row = db.execute(
                    "SELECT body, version FROM resources WHERE kind=? AND name=?", (kind, name)
                ).fetchone()
                body = resource.to_wire()
                body.pop("status", None)
                meta = body["metadata"]
                if row is None:
                    meta["generation"] = 1
                    meta["creationTimestamp"] = now.isoformat()
                    db.execute(
                        "INSERT INTO resources VALUES (?, ?, ?, NULL, 1)",
                        (kind, name, json.dumps(body)),
                    )
                    outcomes.append(f"{kind}/{name} created")
                    continue
                old = json.loads(row["body"])
                old_meta = old["metadata"]
                meta["creationTimestamp"] = old_meta.get("creationTimestamp")
                # A human's pending request (approve, retry, skip, abort) survives a re-apply.
                kept = {
                    k: v
                    for k, v in old_meta.get("annotations", {}).items()
                    if k.startswith(HUMAN_ANNOTATION_PREFIX)
                }
                if kept:
                    meta["annotations"] = kept | meta.get("annotations", {})
                meta["generation"] = old_meta.get("generation", 1)
                if old.get("spec") != body.get("spec"):
                    meta["generation"] += 1
                if old == body:
                    outcomes.append(f"{kind}/{name} unchanged")
                    continue
                db.execute(
                    "UPDATE resources SET body=?, version=version+1 WHERE kind=? AND name=?",
                    (json.dumps(body), kind, name),
                )
                outcomes.append(f"{kind}/{name} configured")
        return outcomes

    def create(self, resource: Resource[Any, Any], now: datetime) -> bool:
        """Create if absent (what an engine-made task needs); False when it already existed."""
        body = resource.to_wire()
        status = body.pop("status", None)
        body["metadata"].setdefault("generation", 1)
        body["metadata"]["creationTimestamp"] = now.isoformat()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO resources VALUES (?, ?, ?, ?, 1)",
                (
                    resource.kind,
                    resource.name,
                    json.dumps(body),
                    json.dumps(status) if status else None,
                ),
            )
            return cursor.rowcount == 1

    def set_status(self, kind: str, name: str, status: Status) -> bool:
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE resources SET status=?, version=version+1 WHERE kind=? AND name=?",
                (json.dumps(status.to_wire()), kind, name),
            )
            return cursor.rowcount == 1

    def set_annotation(
        self,
        kind: str,
        name: str,
        key: str,
        value: str | None,
        *,
        expected: str | None = None,
        merge: Callable[[str | None], str] | None = None,
    ) -> bool:
        """Set (or, with None, remove) one annotation; False when the object does not exist.

        `expected`: remove only while the value is still that one. `merge`: the new value from
        the current one, read and written in one transaction (approvers add up, none is lost).
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT body FROM resources WHERE kind=? AND name=?", (kind, name)
            ).fetchone()
            if row is None:
                return False
            body = json.loads(row["body"])
            annotations = body["metadata"].setdefault("annotations", {})
            if merge is not None:
                value = merge(annotations.get(key))
            if value is None and expected is not None and annotations.get(key) != expected:
                return True
            if value is None:
                if key not in annotations:
                    return True
                del annotations[key]
            else:
                annotations[key] = value
            db.execute(
                "UPDATE resources SET body=?, version=version+1 WHERE kind=? AND name=?",
                (json.dumps(body), kind, name),
            )
            return True

    def delete(self, kind: str, name: str) -> list[str]:
        """Delete the object and what it owns: a batch's tasks go with it, as ownerReferences do."""
        deleted = []
        with self.transaction() as db:
            if db.execute("DELETE FROM resources WHERE kind=? AND name=?", (kind, name)).rowcount:
                deleted.append(f"{kind}/{name}")
            if kind == "AgentTask":
                db.execute(
                    "DELETE FROM runs WHERE task=? AND phase IN ('Succeeded','Failed')", (name,)
                )
            if kind == "TicketBatch":
                rows = db.execute("SELECT name, body FROM resources WHERE kind='AgentTask'")
                for row in rows.fetchall():
                    ref = json.loads(row["body"]).get("spec", {}).get("batchRef") or {}
                    if ref.get("name") == name:
                        db.execute(
                            "DELETE FROM resources WHERE kind='AgentTask' AND name=?",
                            (row["name"],),
                        )
                        db.execute(
                            "DELETE FROM runs WHERE task=? AND phase IN ('Succeeded','Failed')",
                            (row["name"],),
                        )
                        deleted.append(f"AgentTask/{row['name']}")
        return deleted

    # --- runs ------------------------------------------------------------------------------

    def add_run(self, run: RunRecord) -> bool:
        """Record a run before its process starts; False when a run of that name exists."""
        with self.transaction() as db:
            cursor = db.execute(
                f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}) VALUES ({_RUN_PARAMS})",
                _run_row(run),
            )
            return cursor.rowcount == 1

    def save_run(self, run: RunRecord) -> None:
        with self.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) VALUES ({_RUN_PARAMS})",
                _run_row(run),
            )

    def forget_run(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM runs WHERE name=?", (name,))

    def runs(self, task: str | None = None) -> list[RunRecord]:
        if task is None:
            rows = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created, name")
        else:
            rows = self._db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE task=? ORDER BY created, name", (task,)
            )
        return [_record(r) for r in rows.fetchall()]

    def run(self, name: str) -> RunRecord | None:
        row = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE name=?", (name,)).fetchone()
        return _record(row) if row else None

    # --- events ----------------------------------------------------------------------------

    def add_events(self, events: Sequence[tuple[datetime, str, str, str, str, str]]) -> None:
        if not events:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO events (time, kind, name, type, reason, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(t.isoformat(), *rest) for t, *rest in events],
            )

    def events(
        self, kind: str | None = None, name: str | None = None, after: int = 0
    ) -> list[EventRecord]:
        query = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after]
        if kind is not None:
            query += " AND kind=?"
            args.append(kind)
        if name is not None:
            query += " AND name=?"
            args.append(name)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [
            EventRecord(
                id=r["id"],
                time=datetime.fromisoformat(r["time"]),
                kind=r["kind"],
                name=r["name"],
                type=r["type"],
                reason=r["reason"],
                message=r["message"],
            )
            for r in rows
        ]
