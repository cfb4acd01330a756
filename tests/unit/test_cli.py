"""The `agentfleet` console script as a user runs it: a real process, its exit code and output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agentfleet.models import GROUP, KINDS

from .models import manifests as m

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
QUICKSTART = ROOT / "examples" / "quickstart"
_BESIDE_PYTHON = Path(sys.executable).with_name("agentfleet")
AGENTFLEET = (
    _BESIDE_PYTHON
    if _BESIDE_PYTHON.is_file()
    else Path(shutil.which("agentfleet") or _BESIDE_PYTHON)
)
EXIT_BAD_INPUT = 2


def agentfleet(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; a wide terminal so rich wraps no message."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [str(AGENTFLEET), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dump(*docs: dict[str, object]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def test_the_console_script_is_installed() -> None:
    assert AGENTFLEET.is_file(), f"no console script at {AGENTFLEET}"


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = agentfleet("--help", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    listed = {line.strip(" │|").split(" ", 1)[0] for line in result.stdout.splitlines()}
    assert {"crds", "simulate"} <= listed, result.stdout


# --- crds ----------------------------------------------------------------------------------


def test_crds_writes_one_file_per_kind_identical_to_the_committed_ones(tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = agentfleet("crds", "--output", out, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    expected = sorted(f"{kind.PLURAL}.{GROUP}.yaml" for kind in KINDS.values())
    assert len(expected) == 5
    assert sorted(p.name for p in out.iterdir()) == expected
    assert sorted(p.name for p in CRD_DIR.glob("*.yaml")) == expected
    for name in expected:
        assert (out / name).read_bytes() == (CRD_DIR / name).read_bytes(), (
            f"{name} differs from crds/{name}: run `agentfleet crds` and commit the result"
        )


# --- simulate ------------------------------------------------------------------------------


def test_simulate_the_quickstart_prints_every_ticket_and_the_makespan(tmp_path: Path) -> None:
    batch = yaml.safe_load((QUICKSTART / "batch.yaml").read_text(encoding="utf-8"))
    assert batch["metadata"]["name"] == "textkit"
    tickets = [t["id"] for t in batch["spec"]["tickets"]]

    result = agentfleet("simulate", "-f", QUICKSTART, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]] for line in lines if line.count("│") > 2
    ]
    assert sorted(row[0] for row in rows) == sorted(tickets)
    assert all(row[1] == "Succeeded" for row in rows)
    summary = [line for line in lines if "makespan" in line]
    assert len(summary) == 1
    assert summary[0].startswith("textkit: Succeeded")


CYCLE_BATCH = m.batch("b1", [m.ticket("a", "b"), m.ticket("b", "a")])
COLOURED_BATCH = m.batch("b1", [{**m.ticket("T-1"), "colour": "red"}])


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        pytest.param(
            "apiVersion: agentfleet.dev/v1alpha1\nkind: Project\nmetadata:\n  name: demo\n"
            "\tspec: {}\n",
            ["bad.yaml", "invalid YAML", "line 5, column 1"],
            id="malformed-yaml",
        ),
        pytest.param(
            dump(m.project(), {**m.project("other"), "kind": "Gizmo"}),
            ["bad.yaml", "(document 2)", "kind", "unknown kind 'Gizmo'"],
            id="unknown-kind",
        ),
        pytest.param(
            dump(m.project(), COLOURED_BATCH),
            ["bad.yaml", "(document 2)", "spec.tickets[0].colour", "unknown field"],
            id="unknown-field",
        ),
        pytest.param(
            dump(CYCLE_BATCH),
            ["bad.yaml", "(document 1)", "spec.tickets", "dependency cycle", "a -> b -> a"],
            id="dependency-cycle",
        ),
    ],
)
def test_simulate_rejects_bad_manifests_with_exit_2_and_says_where_and_why(
    tmp_path: Path, content: str, fragments: list[str]
) -> None:
    (tmp_path / "bad.yaml").write_text(content, encoding="utf-8")

    result = agentfleet("simulate", "-f", "bad.yaml", cwd=tmp_path)

    assert result.returncode == EXIT_BAD_INPUT, (result.stdout, result.stderr)
    assert "error" in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert result.stdout == "", "no result is printed for bad input"
    assert "Traceback" not in result.stderr


def test_simulate_of_a_missing_file_exits_2_and_names_it(tmp_path: Path) -> None:
    result = agentfleet("simulate", "-f", "missing.yaml", cwd=tmp_path)

    assert result.returncode == EXIT_BAD_INPUT, (result.stdout, result.stderr)
    assert "missing.yaml" in result.stderr
    assert "no such file or folder" in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_simulate_exits_1_naming_what_a_batch_that_cannot_run_waits_for(tmp_path: Path) -> None:
    for manifest in QUICKSTART.glob("*.yaml"):
        (tmp_path / manifest.name).write_text(manifest.read_text(encoding="utf-8"))
    project = tmp_path / "project.yaml"
    project.write_text(
        project.read_text(encoding="utf-8").replace(
            "defaultWorkflowRef:\n    name: develop-then-qa", "defaultWorkflowRef:\n    name: nope"
        )
    )

    result = agentfleet("simulate", "-f", tmp_path, cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "textkit: Pending: WorkflowNotFound: workflow 'nope' not found" in result.stdout
