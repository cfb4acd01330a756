"""What a run of an agent would execute: its argv, environment and stdin, built by the same
executor code a real run uses, so users can read (and run by hand) what agentfleet will run.

Secrets never appear: a variable whose name looks like a credential is shown as `***`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.naming import run_name
from ..executors import executor_for, ignored_settings
from ..executors.versions import pinned_versions
from ..models.agent import ExecutorType
from ..models.task import AgentTaskSpec
from ..models.workflow import Stage
from ..runner.context import write_context
from ..runner.prompt import full_prompt
from ..runner.spec import RunSpec

if TYPE_CHECKING:
    from ..models.agent import AgentConfig
    from ..models.task import AgentTask
    from ..models.workflow import Workflow

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|AUTH", re.IGNORECASE)
MASK = "***"
INHERITED: dict[ExecutorType, tuple[str, ...]] = {
    ExecutorType.CLAUDE_CODE: (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "CLAUDE_CODE_USE_BEDROCK",
        "CLAUDE_CODE_USE_VERTEX",
        "HTTPS_PROXY",
    ),
    ExecutorType.GEMINI: (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_CLOUD_PROJECT",
        "HTTPS_PROXY",
    ),
    # Codex 0.169.0 with its own CODEX_HOME reads CODEX_API_KEY, not OPENAI_API_KEY; a
    # custom provider reads the variable its `env_key` names.
    ExecutorType.CODEX: ("CODEX_API_KEY", "HTTPS_PROXY"),
    ExecutorType.COMMAND: (),
}
"""Variables each CLI reads from the environment agentfleet runs in (credentials, endpoints)."""

EXAMPLE_TASK = AgentTaskSpec(
    title="Example task",
    ticket_id="EXAMPLE-1",
    description="(the task's description goes here)",
    acceptance_criteria=["(the task's acceptance criteria go here)"],
)


URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def shown(name: str, value: str) -> str:
    """A value as printed: masked when its name looks secret, without a URL's user:password."""
    if SECRET_NAME.search(name):
        return MASK
    return URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", value)


@dataclass
class Preview:
    agent: str
    generation: int | None
    executor: str
    cli_version: str | None
    run: str
    cwd: str
    argv: list[str]
    env: dict[str, str]
    inherited_env: dict[str, str]
    stdin_file: str
    stdin_chars: int
    files: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "generation": self.generation,
            "executor": self.executor,
            "cliVersion": self.cli_version,
            "run": self.run,
            "cwd": self.cwd,
            "argv": self.argv,
            "env": self.env,
            "inheritedEnv": self.inherited_env,
            "stdin": self.stdin_file,
            "stdinChars": self.stdin_chars,
            "files": self.files,
            "ignored": self.ignored,
        }


def stage_for(agent: AgentConfig, workflow: Workflow | None, stage: str | None) -> Stage:
    """The named stage, else the workflow's first stage this agent may take, else an example."""
    if workflow is not None:
        if stage is not None:
            return workflow.spec.stage(stage)
        for candidate in workflow.spec.stages:
            by_ref = candidate.agent_ref is not None and candidate.agent_ref.name == agent.name
            if by_ref or candidate.agent_type == agent.spec.agent_type:
                return candidate
    if stage is not None:
        raise KeyError(stage)
    return Stage.model_validate(
        {
            "name": "example",
            "agentType": agent.spec.agent_type,
            "instructions": "(the stage's instructions go here)",
        }
    )


def preview(
    agent: AgentConfig,
    *,
    task: AgentTask | None,
    stage: Stage,
    worktree: Path,
    state_dir: Path,
    attempt: int = 1,
    write_files: bool = False,
) -> Preview:
    """Build the run's spec and invocation as a real run would; write its files if asked."""
    owner = task.name if task is not None else "example"
    name = run_name(owner, stage.name, attempt)
    # Its own folder: writing the files must not touch a real run's context (or its session).
    context = state_dir / "preview" / name / "context"
    spec = RunSpec(
        name=name,
        batch=task.spec.batch_ref.name if task and task.spec.batch_ref else None,
        task=task.name if task else None,
        stage=stage.name,
        attempt=attempt,
        agent_name=agent.name,
        agent=agent.spec,
        task_spec=task.spec if task else EXAMPLE_TASK,
        stage_spec=stage,
        worktree=str(worktree),
        context_dir=str(context),
        branch=(task.status.branch if task and task.status else None)
        or (task.spec.branch if task else None),
        agent_generation=agent.metadata.generation,
    )
    executor_type = agent.spec.base_executor.type
    prompt = full_prompt(spec)
    invocation = executor_for(executor_type).command(spec, prompt)
    if write_files:
        write_context(spec, prompt, invocation.files)
    # Names only: whatever they hold (a key, a proxy with a password) is not agentfleet's.
    inherited = {
        name: MASK
        for name in INHERITED[executor_type]
        if name in os.environ and name not in invocation.env
    }
    return Preview(
        agent=agent.name,
        generation=agent.metadata.generation,
        executor=executor_type.value,
        cli_version=pinned_versions().get(executor_type.value),
        run=name,
        cwd=str(worktree),
        argv=list(invocation.argv),
        env={k: shown(k, v) for k, v in sorted(invocation.env.items())},
        inherited_env=inherited,
        stdin_file=str(context / "prompt.md"),
        stdin_chars=len(invocation.stdin_text),
        files=sorted(str(context / name) for name in invocation.files),
        ignored=ignored_settings(agent.spec),
    )
