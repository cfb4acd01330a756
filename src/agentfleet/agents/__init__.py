"""The agent registry: discover, validate, load and modify AgentConfigs.

Kept empty on purpose: the pure core imports `agents.registry`, and importing this package
must not pull in YAML parsing, the file system or the CLI along with it.
"""
