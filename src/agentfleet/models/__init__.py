"""The resource models: the API users write, and the single source of the CRD schemas."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import AgentConfig, AgentConfigSpec, ExecutorType
    from .batch import BatchPhase, ExecutionStrategy, Ticket, TicketBatch, TicketBatchSpec
    from .meta import API_VERSION, GROUP, VERSION, AgentType, Condition, ObjectMeta, Priority
    from .project import Project, ProjectSpec
    from .task import AgentTask, AgentTaskSpec, StagePhase, TaskPhase
    from .workflow import FailureStrategy, Stage, Workflow, WorkflowSpec

    KINDS: dict[str, type[Project | AgentConfig | Workflow | TicketBatch | AgentTask]]

# Loaded on first use: a runner needs a few of these modules, and every model costs it time.
_HOMES = {
    "agent": ("AgentConfig", "AgentConfigSpec", "ExecutorType"),
    "batch": ("BatchPhase", "ExecutionStrategy", "Ticket", "TicketBatch", "TicketBatchSpec"),
    "meta": (
        "API_VERSION",
        "GROUP",
        "VERSION",
        "AgentType",
        "Condition",
        "ObjectMeta",
        "Priority",
    ),
    "project": ("Project", "ProjectSpec"),
    "task": ("AgentTask", "AgentTaskSpec", "StagePhase", "TaskPhase"),
    "workflow": ("FailureStrategy", "Stage", "Workflow", "WorkflowSpec"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name == "KINDS":
        kinds = {
            cls.KIND: cls
            for cls in (
                __getattr__("Project"),
                __getattr__("AgentConfig"),
                __getattr__("Workflow"),
                __getattr__("TicketBatch"),
                __getattr__("AgentTask"),
            )
        }
        globals()["KINDS"] = kinds
        return kinds
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "AgentConfig",
    "AgentConfigSpec",
    "AgentTask",
    "AgentTaskSpec",
    "AgentType",
    "BatchPhase",
    "Condition",
    "ExecutionStrategy",
    "ExecutorType",
    "FailureStrategy",
    "ObjectMeta",
    "Priority",
    "Project",
    "ProjectSpec",
    "Stage",
    "StagePhase",
    "TaskPhase",
    "Ticket",
    "TicketBatch",
    "TicketBatchSpec",
    "Workflow",
    "WorkflowSpec",
]
