"""agentfleet: run fleets of AI coding agents, locally or as a Kubernetes operator."""

__version__ = "0.1.0"
