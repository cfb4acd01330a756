"""The resource models: the API users write, and the single source of the CRD schemas."""

from .agent import AgentConfig, AgentConfigSpec, ExecutorType
from .batch import BatchPhase, ExecutionStrategy, Ticket, TicketBatch, TicketBatchSpec
from .meta import API_VERSION, GROUP, VERSION, AgentType, Condition, ObjectMeta, Priority
from .project import Project, ProjectSpec
from .task import AgentTask, AgentTaskSpec, StagePhase, TaskPhase
from .workflow import FailureStrategy, Stage, Workflow, WorkflowSpec

KINDS: dict[str, type[Project | AgentConfig | Workflow | TicketBatch | AgentTask]] = {
    cls.KIND: cls for cls in (Project, AgentConfig, Workflow, TicketBatch, AgentTask)
}

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
