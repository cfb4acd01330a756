"""Runs again after a delete, odd agent output, and batches that only plan."""

from __future__ import annotations

from pathlib import Path

from .conftest import Fleet, agent, batch, project, workflow

TRACE = (
    "import os; open(os.environ['TRACE'], 'a').write(os.environ['AGENTFLEET_RUN'] + '\\n'); "
    "open('out.txt', 'a').write('x\\n')"
)


def _docs(trace: Path, code: str = TRACE, **batch_fields: object) -> list[dict[str, object]]:
    spec = batch([{"id": "one", "rawDescription": "Add one"}])
    spec["spec"].update(batch_fields)  # type: ignore[union-attr]
    return [
        project(),
        workflow([{"name": "develop", "agentType": "Development"}]),
        agent("dev", "Development", code, env={"TRACE": str(trace)}),
        spec,
    ]


def test_a_deleted_and_recreated_batch_runs_its_agent_again(fleet: Fleet) -> None:
    trace = fleet.tmp / "trace.log"
    manifests = fleet.write(_docs(trace))
    first = fleet.run(manifests)
    assert first.returncode == 0, first.stdout + first.stderr
    deleted = fleet.cli("delete", "batch", "b")
    assert deleted.returncode == 0, deleted.stderr
    again = fleet.run(manifests)
    assert again.returncode == 0, again.stdout + again.stderr
    assert trace.read_text().splitlines() == ["b-one-develop-1", "b-one-develop-1"]
    [task] = fleet.tasks().values()
    assert task["status"]["phase"] == "Succeeded"


def test_agent_output_that_looks_like_markup_is_shown_as_it_is(fleet: Fleet) -> None:
    code = "import sys; print('[/bold] shout [red]', file=sys.stderr); sys.exit(1)"
    manifests = fleet.write(_docs(fleet.tmp / "trace.log", code=code))
    result = fleet.run(manifests)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "[/bold] shout [red]" in result.stdout
    described = fleet.cli("describe", "task", "b-one")
    assert described.returncode == 0, described.stderr
    assert "[/bold] shout [red]" in described.stdout


def test_a_batch_that_does_not_execute_ends_once_planned(fleet: Fleet) -> None:
    trace = fleet.tmp / "trace.log"
    manifests = fleet.write(_docs(trace, execute=False))
    result = fleet.run(manifests, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fleet.get("batches", "b")["status"]["phase"] == "Refined"
    assert not trace.exists(), "no agent runs for a batch that only plans"


def test_running_a_finished_batch_again_says_it_does_not_run_again(fleet: Fleet) -> None:
    trace = fleet.tmp / "trace.log"
    manifests = fleet.write(_docs(trace))
    assert fleet.run(manifests).returncode == 0
    again = fleet.run(manifests)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "TicketBatch/b already ended Succeeded" in again.stdout
    assert trace.read_text().splitlines() == ["b-one-develop-1"]
