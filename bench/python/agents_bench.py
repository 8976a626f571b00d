"""P1 through the OpenAI Agents SDK: the bench's 3-step agent (system prompt, one `lookup`
tool, two tool calls then an answer) on the Chat Completions API of the bench's mock server,
at a fixed concurrency. Prints one JSON line:
{"runs": N, "ok": M, "secs": S, "cpu_s": C, "error": null | "first error"}.
"""

import argparse
import asyncio
import json
import os
import time

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

# The same text as the executus agent's (bench/src/harness.rs).
SYSTEM = "You look keys up with the lookup tool, then answer."


@function_tool
def lookup(key: str) -> str:
    """Looks a key up and returns its value.

    Args:
        key: The key to look up.
    """
    return f"value of {key}"


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--key-base", type=int, default=0)
    a = p.parse_args()

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=a.url, api_key="bench-key", max_retries=0)
    model = OpenAIChatCompletionsModel(model="bench-model", openai_client=client)
    agent = Agent(name="bench", instructions=SYSTEM, tools=[lookup], model=model)
    first_error = None

    async def batch(count: int, base: int) -> int:
        nonlocal first_error
        next_i = 0
        ok = 0

        async def worker() -> None:
            nonlocal next_i, ok, first_error
            while next_i < count:
                i = next_i
                next_i += 1
                try:
                    r = await Runner.run(agent, f"Look up two keys, then answer. #run={base + i}", max_turns=5)
                    if str(r.final_output).startswith("done after 2"):
                        ok += 1
                    elif first_error is None:
                        first_error = f"unexpected answer {r.final_output!r}"
                except Exception as e:  # noqa: BLE001 - reported, counted as a failed run
                    if first_error is None:
                        first_error = repr(e)

        await asyncio.gather(*(worker() for _ in range(max(1, a.concurrency))))
        return ok

    if a.warmup:
        await batch(a.warmup, a.key_base + 5_000_000)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    ok = await batch(a.runs, a.key_base)
    secs = time.perf_counter() - t0
    print(json.dumps({"runs": a.runs, "ok": ok, "secs": secs, "cpu_s": cpu_seconds() - cpu0, "error": first_error}))


if __name__ == "__main__":
    asyncio.run(main())
