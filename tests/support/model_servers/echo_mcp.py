"""A tiny stdio MCP server with one `echo` tool, for tests that check an agent CLI connects to MCP.

Run by path: `python tests/support/model_servers/echo_mcp.py`. The `mcp` package renamed
FastMCP to MCPServer in 2.x; both are accepted so the tests do not pin one SDK generation.
"""

from __future__ import annotations

import importlib
from typing import Any


def echo(text: str) -> str:
    """Return the text unchanged."""
    return f"echo: {text}"


def build() -> Any:
    try:
        module = importlib.import_module("mcp.server.mcpserver")
        server = module.MCPServer("echo")
    except ImportError:  # mcp 1.x
        module = importlib.import_module("mcp.server.fastmcp")
        server = module.FastMCP("echo")
    server.tool()(echo)
    return server


if __name__ == "__main__":
    build().run("stdio")
