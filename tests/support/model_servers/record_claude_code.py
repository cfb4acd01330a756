"""Re-record the real Claude Code output that the parser tests replay.

    .venv/bin/python -m tests.support.model_servers.record_claude_code [SCENARIO ...]

Runs the installed `claude` (tests/support/agent_clis.py) with the argv and environment
`ClaudeCodeExecutor.command` builds, against the scripted model server in `anthropic.py`,
and writes its stdout unchanged to `tests/unit/executors/recordings/claude_code/<name>.jsonl`
(its exit code goes to `exit_codes.json` beside it).
Only the model's turns are scripted; every line is what the CLI printed. Re-record after a
Claude Code upgrade, then run tests/unit/executors/test_claude_code.py: a failure there is a
change in the CLI's stream that the parser must follow. `bypass_root` needs root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.executors.claude_code import ClaudeCodeExecutor
from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType, SubAgent
from agentfleet.models.meta import AgentType
from agentfleet.models.run import RunKind
from agentfleet.runner.spec import McpServer, RunSpec

from ..agent_clis import cli_path
from .anthropic import Turn, authentication_error, http_error, serve, text, tool_use

ROOT = Path(__file__).resolve().parents[3]
RECORDINGS = ROOT / "tests" / "unit" / "executors" / "recordings" / "claude_code"
ECHO_MCP = Path(__file__).with_name("echo_mcp.py")
STRUCTURED = {
    "tickets": [
        {
            "id": "T-1",
            "title": "Add a greeting",
            "description": "Write hello.txt so users are greeted.",
            "acceptanceCriteria": ["hello.txt says hello"],
            "complexity": 1,
            "dependencies": [],
            "tags": ["demo"],
            "agentType": "Development",
            "likelyFiles": ["hello.txt"],
        }
    ]
}


@dataclass(frozen=True)
class Scenario:
    turns: list[Turn]
    executor: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Path], None] | None = None


def _scenarios() -> dict[str, Scenario]:
    python = sys.executable
    return {
        "success_tool_use": Scenario(
            turns=[
                tool_use("Write", {"file_path": "hello.txt", "content": "hello\n"}),
                tool_use("Bash", {"command": "cat hello.txt", "description": "Show the file"}),
                text("Wrote hello.txt; it says hello."),
            ],
            agent={"tools_enabled": ["Bash(cat *)", "Write"]},
        ),
        "max_turns": Scenario(
            turns=[tool_use("Bash", {"command": "ls"}) for _ in range(4)],
            executor={"max_turns": 3},
        ),
        "auth_failure": Scenario(turns=[authentication_error()], executor={"max_retries": 0}),
        "permission_denied": Scenario(
            turns=[
                tool_use("Bash", {"command": f"{python} -c 'print(1)'", "description": "Run"}),
                text("I could not run it."),
            ]
        ),
        "api_retry": Scenario(
            turns=[http_error(529, "overloaded_error", "Overloaded"), text("Done.")],
            executor={"max_retries": 1},
        ),
        "subagent": Scenario(
            turns=[
                tool_use(
                    "Agent",
                    {
                        "description": "Review",
                        "prompt": "Review hello.txt",
                        "subagent_type": "reviewer",
                        "run_in_background": False,
                    },
                ),
                text("hello.txt looks right."),  # the sub-agent's answer
                text("Reviewed: fine."),
            ],
            agent={
                "sub_agents": {
                    "reviewer": SubAgent(
                        agent_type=AgentType.CODE_REVIEW,
                        description="Reviews diffs",
                        specialized_prompt="You review code.",
                        tools=["Read"],
                        model="haiku",
                    )
                }
            },
        ),
        "structured_output": Scenario(
            turns=[tool_use("StructuredOutput", STRUCTURED)],
            spec={"kind": RunKind.REFINEMENT},
        ),
        "mcp_echo": Scenario(
            turns=[tool_use("mcp__agentfleet__echo", {"text": "hi"}), text("It echoed.")],
            spec={"mcp": McpServer(command=[python, str(ECHO_MCP)])},
        ),
        "bypass_root": Scenario(
            turns=[text("never asked")], executor={"permission_mode": "bypassPermissions"}
        ),
    }


def _spec(scenario: Scenario, binary: Path, work: Path) -> RunSpec:
    base = BaseExecutor(type=ExecutorType.CLAUDE_CODE, command=[str(binary)], **scenario.executor)
    agent = AgentConfigSpec(
        agent_type=AgentType.DEVELOPMENT,
        base_executor=base,
        specialized_instructions="Write small, tested changes.",
        **scenario.agent,
    )
    values: dict[str, Any] = {
        "name": "record-claude-code",
        "stage": "dev",
        "attempt": 1,
        "agent_name": "recorder",
        "agent": agent,
        "worktree": str(work / "worktree"),
        "context_dir": str(work / "context"),
        **scenario.spec,
    }
    return RunSpec(**values)


def record(name: str, scenario: Scenario, binary: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="claude-record-") as tmp:
        work = Path(tmp)
        spec = _spec(scenario, binary, work)
        Path(spec.worktree).mkdir()
        context = Path(spec.context_dir)
        context.mkdir()
        executor = ClaudeCodeExecutor()
        bypass = name == "bypass_root"
        invocation = executor.command(spec.model_copy(update={"sandboxed": bypass}), "Do it.")
        env = dict(invocation.env)
        if bypass:
            env.pop("IS_SANDBOX")  # record what the CLI prints when the guard trips
        for file, content in invocation.files.items():
            (context / file).write_text(content)
        with serve(scenario.turns) as server:
            completed = subprocess.run(
                invocation.argv,
                input=invocation.stdin_text,
                capture_output=True,
                text=True,
                cwd=spec.worktree,
                env={**os.environ, **env, **server.env(), **scenario.env},
                timeout=120,
                check=False,
            )
    target = RECORDINGS / f"{name}.jsonl"
    target.write_text(completed.stdout)
    codes_file = RECORDINGS / "exit_codes.json"
    codes = json.loads(codes_file.read_text()) if codes_file.exists() else {}
    codes[name] = completed.returncode
    codes_file.write_text(json.dumps(dict(sorted(codes.items())), indent=2) + "\n")
    print(f"{name}: exit {completed.returncode}, {len(completed.stdout.splitlines())} lines")
    if completed.stderr.strip():
        print(f"  stderr: {completed.stderr.strip()[-2000:]}")
    return target


def main(names: list[str]) -> int:
    binary = cli_path("claude-code")
    if binary is None:
        print("claude is not installed: run `python3 dev.py test` first", file=sys.stderr)
        return 1
    scenarios = _scenarios()
    unknown = set(names) - scenarios.keys()
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    RECORDINGS.mkdir(parents=True, exist_ok=True)
    for name in names or scenarios:
        if name == "bypass_root" and os.geteuid() != 0:
            print("bypass_root: skipped (needs root)")
            continue
        record(name, scenarios[name], binary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
