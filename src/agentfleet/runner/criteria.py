"""Success criteria checked in the worktree after the agent: one function per criterion type.

Each returns a `CriterionOutcome` and never raises for a failed check: a failed criterion is
an answer, not an error. Commands run without a shell, in their own process group, within
the time the run has left.
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

from ..models.criteria import (
    BddTestsPass,
    CoverageThreshold,
    DesignApproved,
    FileCreated,
    IntegrationTestsPass,
    ScenarioCoverage,
    TestsPass,
)
from ..models.run import CriterionOutcome
from .deadline import Deadline
from .process_group import run_command

Criterion = (
    FileCreated
    | TestsPass
    | IntegrationTestsPass
    | CoverageThreshold
    | BddTestsPass
    | ScenarioCoverage
    | DesignApproved
)

SHOWN_MATCHES = 5


class _OutsideWorktreeError(ValueError):
    """A pattern or path that would reach outside the worktree."""


def _relative_parts(pattern: str) -> list[str]:
    path = Path(pattern)
    if path.is_absolute() or pattern.startswith("~"):
        raise _OutsideWorktreeError(f"`{pattern}` is not relative to the worktree")
    if ".." in path.parts:
        raise _OutsideWorktreeError(f"`{pattern}` climbs out of the worktree with `..`")
    return list(path.parts)


def _within(worktree: Path, path: Path) -> bool:
    """True when `path`, symlinks resolved, is inside the worktree (and not in its .git)."""
    try:
        relative = path.resolve().relative_to(worktree.resolve())
    except ValueError:
        return False
    return not relative.parts or relative.parts[0] != ".git"


def _glob_files(worktree: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` under the worktree, `**` allowed, never outside it."""
    parts = _relative_parts(pattern)
    if not parts:
        return []
    found = [
        p
        for p in worktree.glob(pattern)
        if p.relative_to(worktree).parts[:1] != (".git",) and p.is_file() and _within(worktree, p)
    ]
    return sorted(found)


def _listing(worktree: Path, paths: list[Path]) -> str:
    names = [str(p.relative_to(worktree)) for p in paths[:SHOWN_MATCHES]]
    more = f", +{len(paths) - SHOWN_MATCHES} more" if len(paths) > SHOWN_MATCHES else ""
    return ", ".join(names) + more


def file_created(criterion: FileCreated, worktree: Path) -> CriterionOutcome:
    """Passes when at least one file matches the glob; a directory alone does not count."""
    try:
        matches = _glob_files(worktree, criterion.pattern)
    except _OutsideWorktreeError as exc:
        return CriterionOutcome(type=criterion.type, passed=False, message=str(exc))
    if not matches:
        return CriterionOutcome(
            type=criterion.type, passed=False, message=f"no file matches `{criterion.pattern}`"
        )
    count = "1 file matches" if len(matches) == 1 else f"{len(matches)} files match"
    return CriterionOutcome(
        type=criterion.type,
        passed=True,
        message=f"{count} `{criterion.pattern}`: {_listing(worktree, matches)}",
    )


def _command_outcome(
    type_: str, command: str, worktree: Path, deadline: Deadline
) -> CriterionOutcome:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        message = f"cannot split `{command}`: {exc}"
        return CriterionOutcome(type=type_, passed=False, message=message)
    if not argv:
        return CriterionOutcome(type=type_, passed=False, message="the command is empty")
    result = run_command(argv, str(worktree), deadline.remaining())
    if result.error:
        return CriterionOutcome(type=type_, passed=False, message=f"`{command}`: {result.error}")
    if result.timed_out:
        return CriterionOutcome(
            type=type_,
            passed=False,
            message=f"`{command}` did not finish before the run's deadline\n{result.output_tail}",
        )
    message = f"`{command}` exited {result.exit_code}"
    if result.output_tail:
        message += "\n" + result.output_tail
    return CriterionOutcome(type=type_, passed=result.ok, message=message)


def tests_pass(
    criterion: TestsPass | IntegrationTestsPass, worktree: Path, deadline: Deadline
) -> CriterionOutcome:
    """Passes iff the command exits 0; the end of its output goes into the message."""
    return _command_outcome(criterion.type, criterion.command, worktree, deadline)


def read_coverage_percent(report: Path) -> float:
    """Line coverage in percent from a Cobertura XML or a coverage.py JSON report.

    Raises ValueError with a message a human can act on when the report is unusable.
    """
    try:
        raw = report.read_bytes()
    except FileNotFoundError:
        raise ValueError("no coverage report") from None
    except OSError as exc:
        raise ValueError(f"cannot read the report: {exc.strerror}") from None
    head = raw.lstrip()[:1]
    if head == b"<":
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as exc:
            raise ValueError(f"not valid XML: {exc}") from None
        if root.tag != "coverage" or "line-rate" not in root.attrib:
            raise ValueError("not a Cobertura report: no <coverage line-rate=...> root")
        try:
            return float(root.attrib["line-rate"]) * 100
        except ValueError:
            raise ValueError(f"line-rate {root.attrib['line-rate']!r} is not a number") from None
    if head == b"{":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        percent = (data.get("totals") or {}).get("percent_covered")
        if isinstance(percent, bool) or not isinstance(percent, int | float):
            raise ValueError("not a coverage.py JSON report: no totals.percent_covered")
        return float(percent)
    raise ValueError("neither Cobertura XML nor coverage.py JSON")


def coverage_threshold(criterion: CoverageThreshold, worktree: Path) -> CriterionOutcome:
    """Passes when the report's line coverage is at least `minimum` percent."""
    try:
        parts = _relative_parts(criterion.report)
    except _OutsideWorktreeError as exc:
        return CriterionOutcome(type=criterion.type, passed=False, message=str(exc))
    report = worktree.joinpath(*parts)
    if not _within(worktree, report):
        return CriterionOutcome(
            type=criterion.type, passed=False, message=f"`{criterion.report}` leaves the worktree"
        )
    try:
        percent = read_coverage_percent(report)
    except ValueError as exc:
        return CriterionOutcome(
            type=criterion.type, passed=False, message=f"`{criterion.report}`: {exc}"
        )
    passed = percent >= criterion.minimum
    relation = ">=" if passed else "<"
    return CriterionOutcome(
        type=criterion.type,
        passed=passed,
        message=f"line coverage {percent:.1f}% {relation} {criterion.minimum:g}% "
        f"(`{criterion.report}`)",
    )


def _feature_files(worktree: Path, features: str) -> list[Path]:
    parts = _relative_parts(features)
    folder = worktree.joinpath(*parts)
    if folder.is_dir():
        return _glob_files(worktree, str(Path(*parts, "**", "*.feature")))
    return [p for p in _glob_files(worktree, features) if p.suffix == ".feature"]


def bdd_tests_pass(criterion: BddTestsPass, worktree: Path, deadline: Deadline) -> CriterionOutcome:
    """Passes iff there is at least one `.feature` file and the BDD command exits 0."""
    try:
        features = _feature_files(worktree, criterion.features)
    except _OutsideWorktreeError as exc:
        return CriterionOutcome(type=criterion.type, passed=False, message=str(exc))
    if not features:
        return CriterionOutcome(
            type=criterion.type,
            passed=False,
            message=f"no .feature file in `{criterion.features}`",
        )
    outcome = _command_outcome(criterion.type, criterion.command, worktree, deadline)
    count = f"{len(features)} feature file{'s' if len(features) != 1 else ''}"
    return outcome.model_copy(update={"message": f"{count}; {outcome.message}"})


# --- not checkable by this runner yet: the lead decides what they become ----------------------

NOT_SUPPORTED = "not supported by the local runner yet: needs"


def scenario_coverage(criterion: ScenarioCoverage) -> CriterionOutcome:
    """UNSUPPORTED: needs a BDD runner's report of scenarios run and passed; always fails."""
    return CriterionOutcome(
        type=criterion.type, passed=False, message=f"{NOT_SUPPORTED} a BDD report"
    )


def design_approved(criterion: DesignApproved) -> CriterionOutcome:
    """UNSUPPORTED: needs reviewers' verdicts, which no run produces yet; always fails."""
    return CriterionOutcome(
        type=criterion.type, passed=False, message=f"{NOT_SUPPORTED} reviewers' verdicts"
    )


# --- dispatch -----------------------------------------------------------------------------------


def check_criterion(criterion: Criterion, worktree: Path, deadline: Deadline) -> CriterionOutcome:
    if deadline.passed:
        return not_checked(criterion, "the run's deadline passed")
    match criterion:
        case FileCreated():
            return file_created(criterion, worktree)
        case TestsPass() | IntegrationTestsPass():
            return tests_pass(criterion, worktree, deadline)
        case CoverageThreshold():
            return coverage_threshold(criterion, worktree)
        case BddTestsPass():
            return bdd_tests_pass(criterion, worktree, deadline)
        case ScenarioCoverage():
            return scenario_coverage(criterion)
        case DesignApproved():
            return design_approved(criterion)
    raise TypeError(f"unknown criterion {criterion!r}")  # pragma: no cover


def not_checked(criterion: Criterion, why: str) -> CriterionOutcome:
    return CriterionOutcome(type=criterion.type, passed=False, message=f"not checked: {why}")


def describe(criterion: Criterion) -> str:
    """One line for the prompt: what the agent's work will be checked against."""
    match criterion:
        case FileCreated():
            return f"a file matching `{criterion.pattern}` exists in the worktree"
        case TestsPass():
            return f"`{criterion.command}` exits 0"
        case IntegrationTestsPass():
            return f"the integration tests `{criterion.command}` exit 0"
        case CoverageThreshold():
            return (
                f"line coverage in `{criterion.report}` (Cobertura XML or coverage.py JSON) "
                f"is at least {criterion.minimum:g}%"
            )
        case BddTestsPass():
            return (
                f"Gherkin `.feature` files exist in `{criterion.features}` and "
                f"`{criterion.command}` exits 0"
            )
        case ScenarioCoverage():
            return f"at least {criterion.minimum:g}% of the BDD scenarios run and pass"
        case DesignApproved():
            return f"at least {criterion.threshold:.0%} of the reviewers approve the design"
    raise TypeError(f"unknown criterion {criterion!r}")  # pragma: no cover
