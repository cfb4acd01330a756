"""Refinement with `agentfleet run`: the agent reads a copy of the base branch, answers for
every ticket, and the refined tickets become the tasks; the user's checkout is untouched."""

from __future__ import annotations

import json

from .conftest import WRITE_FILE, Fleet, agent, batch, git, project, workflow

# A refinement agent without a model: it looks at the repository it was given, then answers
# for the tickets it was asked about, naming the files it saw.
REFINER = """
import json, os, pathlib, sys
prompt = sys.stdin.read()
context = pathlib.Path(os.environ["AGENTFLEET_CONTEXT_DIR"])
ids = [t["id"] for t in json.loads((context / "tickets.json").read_text())]
files = sorted(p.name for p in pathlib.Path(".").iterdir() if p.is_file())
pathlib.Path("scribble.txt").write_text("a refinement's writes go nowhere")
answer = {"tickets": [{
    "id": i, "title": f"Refined {i}", "description": f"Do {i} well.",
    "acceptanceCriteria": [f"{i} works"], "complexity": 2,
    "dependencies": ["first"] if i == "second" else [], "tags": [],
    "agentType": "Development", "likelyFiles": files} for i in ids]}
print(json.dumps(answer))
"""


def test_refined_tickets_become_tasks_and_the_refiner_reads_the_base_branch(
    fleet: Fleet,
) -> None:
    refiner = agent("refiner", "Development", REFINER)
    tickets = [
        {"id": "first", "rawDescription": "make it work"},
        {"id": "second", "rawDescription": "then make it fast"},
    ]
    doc = batch(tickets, parallel_limit=2)
    doc["spec"]["refinement"] = {"enabled": True, "agentRef": {"name": "refiner"}}
    files = fleet.write(
        [
            project(),
            workflow([{"name": "develop", "agentType": "Development"}]),
            agent("dev", "Development", WRITE_FILE),
            refiner,
            doc,
        ]
    )
    status_before = git(fleet.repo, "status", "--porcelain")

    ran = fleet.run(files)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    tasks = fleet.tasks()
    second = tasks["b-second"]["spec"]
    assert second["title"] == "Refined second"
    assert second["dependencies"] == ["b-first"], "inferred by the refinement"
    assert second["likelyFiles"] == ["README.md"], "it saw the base branch's files"
    assert git(fleet.repo, "status", "--porcelain") == status_before
    assert not (fleet.repo / "scribble.txt").exists()
    assert "/runs/" not in git(fleet.repo, "worktree", "list"), "a copy, not a worktree"
    batch_status = fleet.get("batch", "b")["status"]
    assert json.dumps(batch_status["refinementAttempts"][0]["tickets"]) == '["first", "second"]'
