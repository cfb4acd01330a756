"""Each success criterion against a real folder: what passes, what fails, and why it says so."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from agentfleet.models import criteria as models
from agentfleet.models.criteria import (
    BddTestsPass,
    CoverageThreshold,
    DesignApproved,
    FileCreated,
    IntegrationTestsPass,
    ScenarioCoverage,
)
from agentfleet.runner import criteria as checks
from agentfleet.runner.criteria import (
    bdd_tests_pass,
    check_criterion,
    coverage_threshold,
    describe,
    design_approved,
    file_created,
    scenario_coverage,
)
from agentfleet.runner.deadline import Deadline

COBERTURA = '<?xml version="1.0" ?>\n<coverage line-rate="{rate}" branch-rate="0"></coverage>\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    worktree = tmp_path / "wt"
    (worktree / "src" / "pkg").mkdir(parents=True)
    (worktree / "src" / "pkg" / "mod.py").write_text("x = 1\n")
    (worktree / "docs").mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    return worktree


def no_limit() -> Deadline:
    return Deadline(None)


@pytest.mark.parametrize(
    ("pattern", "passed"),
    [
        ("src/**/*.py", True),
        ("**/mod.py", True),
        ("src/pkg/mod.py", True),
        ("*.py", False),
        ("docs", False),  # a folder is not a file
        ("**/*.rs", False),
    ],
)
def test_file_created_matches_globs_relative_to_the_worktree(
    tree: Path, pattern: str, passed: bool
) -> None:
    outcome = file_created(FileCreated(pattern=pattern), tree)

    assert outcome.passed is passed
    assert outcome.type == "file_created"
    assert pattern in outcome.message


@pytest.mark.parametrize("pattern", ["../secret.txt", "/etc/passwd", "src/../../secret.txt"])
def test_file_created_never_looks_outside_the_worktree(tree: Path, pattern: str) -> None:
    outcome = file_created(FileCreated(pattern=pattern), tree)

    assert not outcome.passed
    assert "worktree" in outcome.message


def test_file_created_does_not_count_a_symlink_to_a_file_outside(tree: Path) -> None:
    os.symlink(tree.parent / "secret.txt", tree / "link.txt")

    assert not file_created(FileCreated(pattern="*.txt"), tree).passed


def test_tests_pass_runs_the_command_without_a_shell_and_keeps_the_output_tail(
    tree: Path,
) -> None:
    script = "import sys; print('\\n'.join(f'line {i}' for i in range(100))); sys.exit(3)"
    command = f"{sys.executable} -c \"{script}\" '$HOME && rm -rf /'"
    outcome = checks.tests_pass(models.TestsPass(command=command), tree, no_limit())

    assert not outcome.passed
    assert "exited 3" in outcome.message
    assert "line 99" in outcome.message
    assert "line 10\n" not in outcome.message


def test_tests_pass_passes_on_exit_0_in_the_worktree(tree: Path) -> None:
    command = f"{sys.executable} -c \"import os; assert os.path.isdir('src/pkg')\""

    assert checks.tests_pass(models.TestsPass(command=command), tree, no_limit()).passed
    assert checks.tests_pass(IntegrationTestsPass(command=command), tree, no_limit()).type == (
        "integration_tests_pass"
    )


def test_tests_pass_reports_a_command_that_does_not_exist(tree: Path) -> None:
    outcome = checks.tests_pass(
        models.TestsPass(command="no-such-test-runner -q"), tree, no_limit()
    )

    assert not outcome.passed
    assert "could not start" in outcome.message


def test_tests_pass_stops_at_the_runs_deadline(tree: Path) -> None:
    outcome = checks.tests_pass(models.TestsPass(command="sleep 30"), tree, Deadline(1))

    assert not outcome.passed
    assert "deadline" in outcome.message


def test_no_criterion_is_checked_once_the_deadline_passed(tree: Path) -> None:
    outcome = check_criterion(FileCreated(pattern="**/*.py"), tree, Deadline(1, started=0))

    assert not outcome.passed
    assert "not checked" in outcome.message


@pytest.mark.parametrize(("rate", "minimum", "passed"), [("0.85", 80, True), ("0.79", 80, False)])
def test_coverage_threshold_reads_a_cobertura_line_rate(
    tree: Path, rate: str, minimum: float, passed: bool
) -> None:
    (tree / "coverage.xml").write_text(COBERTURA.format(rate=rate))
    outcome = coverage_threshold(CoverageThreshold(minimum=minimum), tree)

    assert outcome.passed is passed
    assert f"{float(rate) * 100:.1f}%" in outcome.message


def test_coverage_threshold_reads_a_coverage_py_json_report(tree: Path) -> None:
    report = {"meta": {}, "totals": {"percent_covered": 91.25, "covered_lines": 73}}
    (tree / "cov.json").write_text(json.dumps(report))
    outcome = coverage_threshold(CoverageThreshold(minimum=90, report="cov.json"), tree)

    assert outcome.passed
    assert "91.2" in outcome.message


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "no coverage report"),
        ("<coverage/>", "not a Cobertura report"),
        ("<html><body/></html>", "not a Cobertura report"),
        ('<coverage line-rate="lots"/>', "not a number"),
        ("{broken", "not valid JSON"),
        ('{"totals": {}}', "percent_covered"),
        ("TN:\nSF:lcov", "neither Cobertura XML nor coverage.py JSON"),
    ],
)
def test_coverage_threshold_fails_clearly_on_a_missing_or_invalid_report(
    tree: Path, content: str | None, says: str
) -> None:
    if content is not None:
        (tree / "coverage.xml").write_text(content)
    outcome = coverage_threshold(CoverageThreshold(minimum=1), tree)

    assert not outcome.passed
    assert says in outcome.message


def test_coverage_threshold_refuses_a_report_outside_the_worktree(tree: Path) -> None:
    outcome = coverage_threshold(CoverageThreshold(minimum=1, report="../secret.txt"), tree)

    assert not outcome.passed
    assert "worktree" in outcome.message


def test_bdd_tests_pass_needs_feature_files_and_a_passing_command(tree: Path) -> None:
    criterion = BddTestsPass(features="features", command="true")
    assert not bdd_tests_pass(criterion, tree, no_limit()).passed

    (tree / "features" / "login").mkdir(parents=True)
    (tree / "features" / "login" / "login.feature").write_text("Feature: log in\n")
    assert bdd_tests_pass(criterion, tree, no_limit()).passed
    failing = BddTestsPass(features="features", command="false")
    assert not bdd_tests_pass(failing, tree, no_limit()).passed
    glob = BddTestsPass(features="features/**/*.feature", command="true")
    assert "1 feature file" in bdd_tests_pass(glob, tree, no_limit()).message


def test_scenario_coverage_and_design_approved_say_they_are_not_supported_yet() -> None:
    for outcome in (
        scenario_coverage(ScenarioCoverage(minimum=80)),
        design_approved(DesignApproved()),
    ):
        assert not outcome.passed
        assert outcome.message.startswith("not supported by the local runner yet: needs")


def test_every_criterion_has_a_line_for_the_prompt() -> None:
    criteria = [
        FileCreated(pattern="a"),
        models.TestsPass(command="make test"),
        IntegrationTestsPass(command="make it"),
        CoverageThreshold(minimum=80),
        BddTestsPass(command="behave"),
        ScenarioCoverage(minimum=90),
        DesignApproved(threshold=0.5),
    ]
    lines = [describe(c) for c in criteria]

    assert all(lines)
    assert len(set(lines)) == len(lines)
    assert "50%" in lines[-1]
