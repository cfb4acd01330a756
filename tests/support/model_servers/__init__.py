"""Scripted model servers that speak each provider's HTTP API, for the real agent CLIs."""

from __future__ import annotations

from pathlib import Path

ECHO_MCP = Path(__file__).resolve().with_name("echo_mcp.py")
"""A stdio MCP server with one `echo` tool, written with the official `mcp` SDK."""
