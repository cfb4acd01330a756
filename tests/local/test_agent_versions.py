"""An agent changed while a batch runs: running runs keep the version they started with,
later runs get the new one, and every attempt records which generation it used."""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import Fleet, agent, batch, git, project, workflow

# Writes the instructions it was given (agent.md) into the worktree, then waits for $GO.
SNAPSHOT_AGENT = """
import os, pathlib, time
e = os.environ
told = pathlib.Path(e["AGENTFLEET_CONTEXT_DIR"], "agent.md").read_text()
pathlib.Path("told.txt").write_text(told)
pathlib.Path(e["STARTED"], e["AGENTFLEET_TASK"]).touch()
while not pathlib.Path(e["GO"]).exists():
    time.sleep(0.05)
"""


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_running_run_keeps_its_agent_version_and_the_next_run_gets_the_new_one(
    fleet: Fleet,
) -> None:
    started, go = fleet.tmp / "started", fleet.tmp / "go"
    started.mkdir()
    dev = agent("dev", "Development", SNAPSHOT_AGENT, env={"STARTED": str(started), "GO": str(go)})
    dev["spec"]["specializedInstructions"] = "version one"
    files = fleet.write(
        [
            project(),
            workflow([{"name": "develop", "agentType": "Development"}]),
            dev,
            batch(
                [
                    {"id": "first", "rawDescription": "one"},
                    {"id": "second", "rawDescription": "two"},
                ],
                parallel_limit=1,
                strategy="Sequential",
            ),
        ]
    )
    driver = fleet.start("run", "-f", str(files))
    try:
        wait_for(started / "b-first")
        changed = fleet.cli("agents", "set", "dev", "--instructions", "version two")
        assert changed.returncode == 0, changed.stderr
        assert "agentconfig/dev: generation 2" in changed.stdout
        go.touch()
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, output

    tasks = fleet.tasks()
    generations = {
        name: task["status"]["stages"][0]["attempts"][0]["agentGeneration"]
        for name, task in tasks.items()
    }
    assert generations == {"b-first": 1, "b-second": 2}
    told = {name: git(fleet.repo, "show", f"agentfleet/b/{name}:told.txt") for name in tasks}
    assert "version one" in told["b-first"]
    assert "version two" not in told["b-first"]
    assert "version two" in told["b-second"]
