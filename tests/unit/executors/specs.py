"""The stage run every executor test builds its command line from."""

from __future__ import annotations

from typing import Any

from agentfleet.models.agent import AgentConfigSpec, BaseExecutor, ExecutorType
from agentfleet.models.meta import AgentType
from agentfleet.models.workflow import Stage
from agentfleet.runner.spec import RunSpec

CONTEXT = "/work/context"


def run_spec(
    executor_type: ExecutorType,
    *,
    executor: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    **fields: Any,
) -> RunSpec:
    """A development stage run of `executor_type`; `executor`/`agent` override their fields."""
    base = BaseExecutor(type=executor_type, **(executor or {}))
    agent_fields: dict[str, Any] = {"specialized_instructions": "Write small, tested changes."}
    agent_fields.update(agent or {})
    values: dict[str, Any] = {
        "name": "t1-dev-1",
        "task": "t1",
        "stage": "dev",
        "attempt": 1,
        "agent_name": "dev-agent",
        "agent": AgentConfigSpec(
            agent_type=AgentType.DEVELOPMENT, base_executor=base, **agent_fields
        ),
        "stage_spec": Stage.model_validate(
            {"name": "dev", "agentType": "Development", "instructions": "Write hello.txt."}
        ),
        "worktree": "/work/tree",
        "context_dir": CONTEXT,
    }
    values.update(fields)
    return RunSpec(**values)
