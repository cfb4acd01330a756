"""What the runner writes: log lines a LogEvent reads back, and results that fit a Pod."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentfleet.executors import CommandExecutor, executor_for, ignored_settings
from agentfleet.models.agent import AgentConfigSpec, ExecutorType
from agentfleet.models.log import LogEvent, LogEventType
from agentfleet.models.run import AttemptPhase, CriterionOutcome, RunResult
from agentfleet.runner.events import EventSink, started_line
from agentfleet.runner.result import TERMINATION_MESSAGE_BYTES, fit, to_json, write_result


def test_the_hand_written_first_event_has_the_wire_shape_of_a_log_event() -> None:
    line = started_line("r-1", {"pid": 7})
    event = LogEvent.model_validate_json(line)

    assert (event.run, event.type, event.text, event.data) == (
        "r-1",
        "runner",
        "started",
        {"pid": 7},
    )
    assert list(json.loads(line)) == list(json.loads(event.model_dump_json(by_alias=True)))
    assert event.time.tzinfo is not None


def test_the_sink_writes_one_flushed_json_line_per_event() -> None:
    out = io.StringIO()
    EventSink("r-1", out).emit(LogEventType.TEXT, "héllo\nworld", data={"stream": "stderr"})

    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert LogEvent.model_validate_json(lines[0]).text == "héllo\nworld"


def _huge_result() -> RunResult:
    return RunResult(
        outcome=AttemptPhase.FAILED,
        reason="CriteriaFailed",
        message="x" * 10_000,
        criteria=[
            CriterionOutcome(type="tests_pass", passed=False, message=f"{i} " + "y" * 5000)
            for i in range(12)
        ],
        commit="a" * 40,
    )


def test_a_result_is_cut_to_fit_a_termination_message_keeping_both_ends() -> None:
    fitted = fit(_huge_result())

    assert len(to_json(fitted).encode()) <= TERMINATION_MESSAGE_BYTES
    assert len(fitted.message) <= 500
    assert fitted.message.startswith("x")
    assert fitted.message.endswith("x")
    assert len(fitted.criteria) == 12
    assert fitted.commit == "a" * 40


def test_the_result_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "result.json"
    write_result(target, RunResult(outcome=AttemptPhase.SUCCEEDED, reason="Succeeded"))
    write_result(target, _huge_result())

    assert json.loads(target.read_text())["reason"] == "CriteriaFailed"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_usage_lines_that_are_not_quite_usage_are_plain_text() -> None:
    executor = CommandExecutor()
    lines = [
        '{"type": "usage", "tokens": {"input": 5, "cacheRead": 2}, "costUsd": 0.1}',
        '{"type": "usage", "tokens": "many"}',
        '{"type": "note", "usage": 1}',
        '{not json but mentions "usage"}',
        '{"type": "usage", "tokens": {"input": -3, "output": true}, "costUsd": -1}',
    ]
    texts = [event.text for line in lines for event in executor.parse_line(line)]
    outcome = executor.finish(0)

    assert texts == lines[1:4]
    assert outcome.tokens is not None
    assert (outcome.tokens.input, outcome.tokens.cache_read, outcome.tokens.output) == (5, 2, 0)
    assert outcome.cost_usd == 0.1
    assert outcome.text == "\n".join(lines[1:4])


def test_an_agent_reporting_no_usage_has_unknown_tokens_not_zero() -> None:
    executor = CommandExecutor()
    executor.parse_line("done")

    outcome = executor.finish(1)
    assert (outcome.tokens, outcome.cost_usd, outcome.ok) == (None, None, False)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        (ExecutorType.CLAUDE_CODE, "ClaudeCodeExecutor"),
        (ExecutorType.GEMINI, "GeminiExecutor"),
        (ExecutorType.CODEX, "CodexExecutor"),
        (ExecutorType.COMMAND, "CommandExecutor"),
    ],
)
def test_each_executor_type_gets_its_own_fresh_executor(kind: ExecutorType, cls: str) -> None:
    first, second = executor_for(kind), executor_for(kind)

    assert type(first).__name__ == cls
    assert first is not second, "executors keep per-run parsing state"


def test_settings_a_cli_cannot_honour_are_named_not_dropped() -> None:
    spec = AgentConfigSpec.model_validate(
        {
            "agentType": "Development",
            "baseExecutor": {"type": "codex", "maxTurns": 5},
            "subAgents": {"helper": {"agentType": "QualityAssurance"}},
        }
    )

    ignored = ignored_settings(spec)

    assert [s.split(" ")[0] for s in ignored] == ["subAgents", "maxTurns"]
    claude = spec.model_copy(
        update={"base_executor": spec.base_executor.model_copy(update={"type": "claude-code"})}
    )
    assert ignored_settings(claude) == []
