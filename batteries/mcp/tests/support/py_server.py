"""A small MCP server (Python `mcp` package) for the executus-mcp tests, over stdio.

Tools: echo, big (a hostile text result of N bytes), picture (an image), die (exits mid-call),
slow (sleeps), grow (adds a tool and sends notifications/tools/list_changed).

Modes (first argument): `serve` (default), `hang` (never answers: a server stuck at startup),
`crash-at-start` (writes a reason on stderr and exits before the handshake).
"""

import asyncio
import os
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "serve"
if mode == "hang":
    if os.environ.get("PIDFILE"):
        with open(os.environ["PIDFILE"], "a") as f:
            f.write(f"{os.getpid()}\n")
    print("hanging before the handshake", file=sys.stderr, flush=True)
    while True:
        import time

        time.sleep(3600)
if mode == "crash-at-start":
    print("cannot open the database: /nonexistent/db", file=sys.stderr, flush=True)
    sys.exit(2)

from mcp.server.mcpserver import Context, Image, MCPServer  # noqa: E402 (after the early modes)

server = MCPServer("executus-test")
if os.environ.get("PIDFILE"):
    with open(os.environ["PIDFILE"], "a") as f:
        f.write(f"{os.getpid()}\n")

# A tiny valid PNG (1x1, red).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)


@server.tool()
def echo(text: str, suffix: str = "") -> str:
    """Echoes its text (and the optional suffix, which may not be null)."""
    return f"echo: {text}" + (f" {suffix}" if suffix else "")


@server.tool(name="twin.tool")
def twin_dot() -> str:
    """Named so that sanitising gives the name of twin_tool."""
    return "dot"


@server.tool(name="twin_tool")
def twin_underscore() -> str:
    """The plain twin."""
    return "underscore"


@server.tool(structured_output=False)
def big(n: int) -> str:
    """Returns n bytes of text."""
    return "x" * n


@server.tool()
def big_twice(n: int) -> str:
    """Returns n bytes of text, as text and again as structured content (2n on the wire)."""
    return "x" * n


@server.tool()
def picture() -> list:
    """Returns a caption and a 1x1 PNG."""
    return ["a red pixel", Image(data=PNG, format="png")]


@server.tool()
def die() -> str:
    """Exits the server in the middle of the call."""
    print(f"dying now (pid {os.getpid()})", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds tool `late` and announces the change."""

    def late() -> str:
        """Added after the start."""
        return "late"

    server.add_tool(late)
    server.remove_tool("big")
    await ctx.session.send_tool_list_changed()
    return "grown"


server.run("stdio")
