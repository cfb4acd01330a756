"""AgentConfig: executors, limits, environment requirements, sub-agents."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentfleet.models.agent import AgentConfig, BaseExecutor, ExecutorType
from agentfleet.models.meta import AgentType

from .manifests import agent, error_locs, error_messages


def test_agent_config_parses_every_section():
    doc = agent(
        specializedInstructions="Write tests first.",
        maxParallelTasks=2,
        timeoutSeconds=1800,
        toolsEnabled=["Read", "Edit"],
        toolRestrictions=["Bash(rm:*)"],
        credentialsSecretRef={"name": "anthropic"},
        environmentRequirements={
            "isolatedWorktree": False,
            "testDatabase": True,
            "mockExternalServices": True,
            "networkIsolation": {"enabled": True, "allowedEgress": ["api.anthropic.com"]},
            "resourceLimits": {"memoryMb": 2048, "cpuCores": 1.5, "diskMb": 10240},
        },
        subAgents={
            "reviewer": {
                "agentType": "CodeReview",
                "specializedPrompt": "Be strict.",
                "maxSessionDurationSeconds": 600,
                "contextSharing": True,
            }
        },
    )
    doc["spec"]["baseExecutor"] = {
        "type": "claude-code",
        "image": "ghcr.io/example/claude:1",
        "args": ["--verbose"],
        "model": "sonnet",
        "env": {"LOG": "debug"},
    }
    spec = AgentConfig.model_validate(doc).spec
    assert spec.agent_type is AgentType.DEVELOPMENT
    assert spec.base_executor.type is ExecutorType.CLAUDE_CODE
    assert spec.base_executor.image == "ghcr.io/example/claude:1"
    assert spec.base_executor.env == {"LOG": "debug"}
    assert spec.max_parallel_tasks == 2
    assert spec.timeout_seconds == 1800
    env = spec.environment_requirements
    assert env.isolated_worktree is False
    assert env.test_database is True
    assert env.mock_external_services is True
    assert env.network_isolation.allowed_egress == ["api.anthropic.com"]
    assert env.resource_limits.memory_mb == 2048
    assert env.resource_limits.cpu_cores == 1.5
    assert env.resource_limits.disk_mb == 10240
    reviewer = spec.sub_agents["reviewer"]
    assert reviewer.agent_type is AgentType.CODE_REVIEW
    assert reviewer.max_session_duration_seconds == 600
    assert reviewer.context_sharing is True


def test_agent_config_defaults_are_an_isolated_worktree_without_limits():
    spec = AgentConfig.model_validate(agent()).spec
    env = spec.environment_requirements
    assert env.isolated_worktree is True
    assert env.test_database is False
    assert env.network_isolation.enabled is False
    assert env.resource_limits.memory_mb is None
    assert spec.max_parallel_tasks is None
    assert spec.timeout_seconds is None
    assert spec.base_executor.args == []
    assert spec.sub_agents == {}


def test_agent_config_round_trips_through_camel_case_wire_form():
    doc = agent(
        maxParallelTasks=1,
        environmentRequirements={"resourceLimits": {"cpuCores": 0.5}},
        subAgents={"qa": {"agentType": "QualityAssurance"}},
    )
    loaded = AgentConfig.model_validate(doc)
    wire = loaded.to_wire()
    assert wire["spec"]["baseExecutor"] == {
        "type": "claude-code",
        "args": [],
        "env": {},
        "maxRetries": 2,
    }
    assert wire["spec"]["maxParallelTasks"] == 1
    assert wire["spec"]["environmentRequirements"]["resourceLimits"] == {"cpuCores": 0.5}
    assert wire["spec"]["subAgents"]["qa"]["agentType"] == "QualityAssurance"
    assert AgentConfig.model_validate(wire) == loaded


@pytest.mark.parametrize("executor", ["claude-code", "gemini", "codex"])
def test_agent_cli_executors_need_no_command(executor):
    doc = agent()
    doc["spec"]["baseExecutor"] = {"type": executor}
    assert AgentConfig.model_validate(doc).spec.base_executor.type == executor


def test_command_executor_runs_its_argv():
    executor = BaseExecutor.model_validate({"type": "command", "command": ["python", "agent.py"]})
    assert executor.type is ExecutorType.COMMAND
    assert executor.command == ["python", "agent.py"]


@pytest.mark.parametrize("command", [None, []])
def test_command_executor_without_a_command_is_refused(command):
    raw: dict[str, object] = {"type": "command"}
    if command is not None:
        raw["command"] = command
    with pytest.raises(ValidationError) as info:
        BaseExecutor.model_validate(raw)
    assert "the command executor needs `command`" in error_messages(info.value)


def test_unknown_executor_type_is_refused_listing_the_known_ones():
    doc = agent()
    doc["spec"]["baseExecutor"] = {"type": "copilot"}
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(doc)
    assert ("spec", "baseExecutor", "type") in error_locs(info.value)
    assert "'claude-code'" in error_messages(info.value)


def test_unknown_agent_type_is_refused():
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(agent(agentType="Tester"))
    assert ("spec", "agentType") in error_locs(info.value)
    assert "'Development'" in error_messages(info.value)


def test_agent_type_is_case_sensitive():
    with pytest.raises(ValidationError):
        AgentConfig.model_validate(agent(agentType="development"))


@pytest.mark.parametrize("field", ["maxParallelTasks", "timeoutSeconds"])
@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_negative_spec_limits_are_refused(field, value):
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(agent(**{field: value}))
    assert ("spec", field) in error_locs(info.value)
    assert "greater than 0" in error_messages(info.value)


@pytest.mark.parametrize("field", ["memoryMb", "cpuCores", "diskMb"])
@pytest.mark.parametrize("value", [0, -1])
def test_zero_or_negative_resource_limits_are_refused(field, value):
    doc = agent(environmentRequirements={"resourceLimits": {field: value}})
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(doc)
    assert ("spec", "environmentRequirements", "resourceLimits", field) in error_locs(info.value)


def test_fractional_cpu_cores_are_accepted():
    doc = agent(environmentRequirements={"resourceLimits": {"cpuCores": 0.25}})
    limits = AgentConfig.model_validate(doc).spec.environment_requirements.resource_limits
    assert limits.cpu_cores == 0.25


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_infinite_or_nan_cpu_cores_are_refused(value: float) -> None:
    doc = agent(environmentRequirements={"resourceLimits": {"cpuCores": value}})
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(doc)
    assert ("spec", "environmentRequirements", "resourceLimits", "cpuCores") in error_locs(
        info.value
    )


def test_fractional_memory_is_refused():
    doc = agent(environmentRequirements={"resourceLimits": {"memoryMb": 512.5}})
    with pytest.raises(ValidationError):
        AgentConfig.model_validate(doc)


@pytest.mark.parametrize("value", [0, -5])
def test_sub_agent_session_duration_must_be_positive(value):
    doc = agent(
        subAgents={"qa": {"agentType": "QualityAssurance", "maxSessionDurationSeconds": value}}
    )
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(doc)
    assert ("spec", "subAgents", "qa", "maxSessionDurationSeconds") in error_locs(info.value)


def test_sub_agent_needs_an_agent_type():
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(agent(subAgents={"qa": {}}))
    assert ("spec", "subAgents", "qa", "agentType") in error_locs(info.value)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        (("spec", "baseExecutor", "shell"), {"baseExecutor": {"type": "codex", "shell": "bash"}}),
        (("spec", "maxParallel"), {"maxParallel": 2}),
        (
            ("spec", "environmentRequirements", "resourceLimits", "gpus"),
            {"environmentRequirements": {"resourceLimits": {"gpus": 1}}},
        ),
    ],
)
def test_unknown_fields_are_refused_at_any_depth(path, extra):
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(agent(**extra))
    errors = {tuple(e["loc"]): e["type"] for e in info.value.errors()}
    assert errors.get(path) == "extra_forbidden"


def test_credentials_secret_ref_must_be_an_object():
    with pytest.raises(ValidationError) as info:
        AgentConfig.model_validate(agent(credentialsSecretRef="anthropic"))
    assert ("spec", "credentialsSecretRef") in error_locs(info.value)


def test_agent_config_status_counts_active_runs():
    doc = agent()
    doc["status"] = {"phase": "Ready", "activeRuns": 2}
    loaded = AgentConfig.model_validate(doc)
    assert loaded.status is not None
    assert loaded.status.active_runs == 2
    assert loaded.to_wire()["status"]["activeRuns"] == 2
