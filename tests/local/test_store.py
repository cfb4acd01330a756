"""The SQLite store: applied resources keep their status, runs and events survive a restart."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

from agentfleet.local.store import RunRecord, Store
from agentfleet.models import Project, TicketBatch
from agentfleet.models.batch import TicketBatchStatus
from agentfleet.models.run import RunKind, RunPhase, RunResult

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _project(base: str = "main") -> Project:
    return Project.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {"repository": {"url": ".", "baseBranch": base}},
        }
    )


def _batch(description: str = "Add x") -> TicketBatch:
    return TicketBatch.model_validate(
        {
            "metadata": {"name": "b"},
            "spec": {
                "projectRef": {"name": "p"},
                "tickets": [{"id": "t1", "rawDescription": description}],
            },
        }
    )


def test_apply_creates_then_reports_unchanged_then_bumps_generation_on_spec_change(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    assert store.apply([_project()], NOW) == ["Project/p created"]
    assert store.apply([_project()], NOW) == ["Project/p unchanged"]
    assert store.apply([_project("develop")], NOW) == ["Project/p configured"]
    stored = store.get("Project", "p")
    assert stored is not None
    assert stored.metadata.generation == 2
    assert stored.metadata.creation_timestamp == NOW
    assert stored.spec.repository.base_branch == "develop"


def test_apply_keeps_the_status_the_engine_wrote(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.apply([_batch()], NOW)
    store.set_status("TicketBatch", "b", TicketBatchStatus(phase="Processing", progress="1/3"))
    store.apply([_batch("Add y")], NOW)
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.status is not None
    assert batch.status.phase == "Processing"
    assert batch.spec.tickets[0].raw_description == "Add y"


def test_annotations_are_set_and_removed_without_touching_status(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.apply([_batch()], NOW)
    store.set_status("TicketBatch", "b", TicketBatchStatus(phase="Processing"))
    assert store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", "abort")
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.status is not None
    assert batch.metadata.annotations == {"agentfleet.dev/action": "abort"}
    assert batch.status.phase == "Processing"
    store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", None)
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.metadata.annotations == {}
    assert not store.set_annotation("TicketBatch", "missing", "k", "v")


def test_versions_change_only_for_the_object_written(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.apply([_project(), _batch()], NOW)
    before = store.versions()
    store.set_status("TicketBatch", "b", TicketBatchStatus(phase="Processing"))
    after = store.versions()
    assert after[("Project", "p")] == before[("Project", "p")]
    assert after[("TicketBatch", "b")] == before[("TicketBatch", "b")] + 1


def test_runs_and_events_survive_reopening(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = RunRecord(
        name="b-t1-develop-1",
        kind=RunKind.STAGE,
        batch="b",
        task="b-t1",
        stage="develop",
        attempt=1,
        agent="dev",
        project="p",
    )
    assert store.add_run(record)
    assert not store.add_run(record), "a run is recorded once"
    record.phase = RunPhase.SUCCEEDED
    record.result = RunResult.model_validate({"outcome": "Succeeded", "commit": "abc"})
    store.save_run(record)
    store.add_events([(NOW, "AgentTask", "b-t1", "Normal", "RunStarted", "started")])
    store.close()
    again = Store(tmp_path)
    [run] = again.runs()
    assert run.phase is RunPhase.SUCCEEDED
    assert run.result is not None
    assert run.result.commit == "abc"
    assert run.observed().name == "b-t1-develop-1"
    [event] = again.events("AgentTask", "b-t1")
    assert event.reason == "RunStarted"


def test_deleting_a_batch_deletes_its_tasks(tmp_path: Path) -> None:
    from agentfleet.models import AgentTask

    store = Store(tmp_path)
    store.apply([_batch()], NOW)
    task = AgentTask.model_validate(
        {"metadata": {"name": "b-t1"}, "spec": {"title": "x", "batchRef": {"name": "b"}}}
    )
    assert store.create(task, NOW)
    assert not store.create(task, NOW)
    assert store.delete("TicketBatch", "b") == ["TicketBatch/b", "AgentTask/b-t1"]
    assert store.list("AgentTask") == []


def _write_forever(state_dir: str, ready: multiprocessing.synchronize.Event) -> None:
    store = Store(Path(state_dir))
    index = 0
    while True:
        with store.transaction() as db:
            for _ in range(50):
                index += 1
                db.execute(
                    "INSERT INTO events (time, kind, name, type, reason, message) "
                    "VALUES ('2026-01-01T00:00:00+00:00', 'AgentTask', ?, 'Normal', 'R', 'm')",
                    (f"t{index}",),
                )
        ready.set()


def test_a_writer_killed_mid_transaction_leaves_whole_transactions_only(tmp_path: Path) -> None:
    Store(tmp_path).close()
    ready = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(
        target=_write_forever, args=(str(tmp_path), ready)
    )
    writer.start()
    assert ready.wait(10)
    os.kill(writer.pid or 0, signal.SIGKILL)
    writer.join()
    store = Store(tmp_path)
    assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = len(store.events())
    assert count > 0
    assert count % 50 == 0, "only whole transactions are visible"


def test_reapplying_a_manifest_keeps_a_pending_human_request(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.apply([_batch()], NOW)
    store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", "abort")
    store.apply([_batch("Add y")], NOW)
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.metadata.annotations == {"agentfleet.dev/action": "abort"}


def test_clearing_a_request_spares_a_newer_one_set_meanwhile(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.apply([_batch()], NOW)
    store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", "abort")
    store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", None, expected="retry")
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.metadata.annotations == {"agentfleet.dev/action": "abort"}
    store.set_annotation("TicketBatch", "b", "agentfleet.dev/action", None, expected="abort")
    batch = store.get("TicketBatch", "b")
    assert batch is not None
    assert batch.metadata.annotations == {}
