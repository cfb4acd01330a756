"""`agentfleet run` takes a small batch from manifests to committed branches."""

from __future__ import annotations

from .conftest import WRITE_FILE, Fleet, agent, batch, git, project, workflow


def test_a_batch_ends_with_one_commit_per_stage_on_each_task_branch(fleet: Fleet) -> None:
    manifests = fleet.write(
        [
            project(),
            workflow(
                [
                    {
                        "name": "develop",
                        "agentType": "Development",
                        "successCriteria": [{"type": "file_created", "pattern": "develop.txt"}],
                    },
                    {"name": "qa", "agentType": "QualityAssurance", "dependencies": ["develop"]},
                ]
            ),
            agent("dev", "Development", WRITE_FILE),
            agent("qa", "QualityAssurance", WRITE_FILE),
            batch(
                [
                    {"id": "a", "rawDescription": "Add a"},
                    {"id": "b", "rawDescription": "Add b", "dependencies": ["a"]},
                ]
            ),
        ]
    )
    result = fleet.run(manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = fleet.tasks()
    assert {n: t["status"]["phase"] for n, t in tasks.items()} == {
        "b-a": "Succeeded",
        "b-b": "Succeeded",
    }
    log = git(fleet.repo, "log", "--format=%s", "agentfleet/b/b-a")
    assert log.splitlines() == ["Add a", "Add a", "initial"]
    assert git(fleet.repo, "status", "--porcelain") == ""
    assert "b-a" in result.stdout
