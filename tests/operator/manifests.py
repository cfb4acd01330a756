"""What the operator tests apply: a project, two agents, a develop -> qa workflow, batches."""

from __future__ import annotations

from typing import Any

from agentfleet.models import API_VERSION

JSON = dict[str, Any]


def project(name: str = "shop") -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "Project",
        "metadata": {"name": name},
        "spec": {
            "repository": {"url": "https://git.example.com/shop.git", "baseBranch": "main"},
            "defaultWorkflowRef": {"name": "develop-then-qa"},
        },
    }


def agent(name: str, agent_type: str, max_parallel: int | None = None, **extra: Any) -> JSON:
    spec: JSON = {
        "agentType": agent_type,
        "baseExecutor": {"type": "command", "command": ["python", "agent.py"]},
        "environmentRequirements": {"resourceLimits": {"memoryMb": 512, "cpuCores": 1}},
        **extra,
    }
    if max_parallel is not None:
        spec["maxParallelTasks"] = max_parallel
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentConfig",
        "metadata": {"name": name},
        "spec": spec,
    }


def workflow(
    failure_strategy: str = "ContinueOthers",
    max_retries: int = 0,
    qa_approvals: int = 0,
    timeout_minutes: int | None = None,
) -> JSON:
    develop: JSON = {"name": "develop", "agentType": "Development", "action": "implement"}
    if timeout_minutes is not None:
        develop["timeoutMinutes"] = timeout_minutes
    qa: JSON = {
        "name": "qa",
        "agentType": "QualityAssurance",
        "action": "test",
        "dependencies": ["develop"],
    }
    if qa_approvals:
        qa["requiredApprovals"] = qa_approvals
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": "develop-then-qa"},
        "spec": {
            "stages": [develop, qa],
            "failureStrategy": failure_strategy,
            "maxRetries": max_retries,
        },
    }


def batch(name: str, tickets: list[JSON], parallel_limit: int = 3, **spec: Any) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "TicketBatch",
        "metadata": {"name": name},
        "spec": {
            "projectRef": {"name": "shop"},
            "parallelLimit": parallel_limit,
            "tickets": tickets,
            **spec,
        },
    }


def ticket(ticket_id: str, *depends_on: str) -> JSON:
    return {
        "id": ticket_id,
        "rawDescription": f"Do {ticket_id}.",
        "dependencies": list(depends_on),
    }


def base(failure_strategy: str = "ContinueOthers", **workflow_options: Any) -> list[JSON]:
    """Everything a batch needs but the batch."""
    return [
        project(),
        agent("dev", "Development"),
        agent("qa", "QualityAssurance"),
        workflow(failure_strategy, **workflow_options),
    ]
