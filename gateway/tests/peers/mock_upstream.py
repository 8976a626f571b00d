"""A scripted OpenAI Chat Completions upstream for the agent-CLI scenarios
(cli/tests/it/serve.rs). The gateway converts whatever its client speaks (Claude Code's
Anthropic Messages, Codex's Responses API) into Chat Completions for this server, so this is
the one dialect it needs: whole answers and SSE streams with `stream_options.include_usage`.

    python3 mock_upstream.py PORT SCENARIO LOG

Scenarios (the tool and its arguments come from MOCK_TOOL and MOCK_ARGS, JSON):
  roundtrip     call the tool once; after its result, answer `ROUNDTRIP-OK: <the result>`
  loop-same     call the tool with the same arguments every time tools are offered
  loop-distinct call it with different (useless) arguments every time
  block         call the tool (the gateway's policy blocks it)
Whenever no tools are offered (a finalize turn), answer `FINALIZED: wrapping up.`
Every request body is appended to LOG as one JSON line.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
SCENARIO = sys.argv[2]
LOG = sys.argv[3]
TOOL = os.environ.get("MOCK_TOOL", "Read")
ARGS = json.loads(os.environ.get("MOCK_ARGS", "{}"))
LOCK = threading.Lock()
COUNT = [0]


def tool_result_text(messages):
    """The content of the tool results that end the conversation, if it ends with some."""
    texts = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(content or "")
    return "\n".join(reversed(texts)) if texts else None


def decide(body):
    """(text, tool call or None) for a request."""
    messages = body.get("messages", [])
    tools = [t.get("function", {}).get("name") for t in body.get("tools", []) or []]
    with LOCK:
        COUNT[0] += 1
        n = COUNT[0]
    if not tools:
        return "FINALIZED: wrapping up.", None
    result = tool_result_text(messages)
    if SCENARIO == "roundtrip":
        if result is not None:
            return "ROUNDTRIP-OK: " + result.strip().replace("\n", " ")[:400], None
        return "", (TOOL, ARGS)
    if SCENARIO == "loop-distinct":
        args = {k: (f"{v}-{n}" if isinstance(v, str) else v) for k, v in ARGS.items()}
        return "", (TOOL, args)
    # loop-same and block
    return "", (TOOL, ARGS)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "probe-model", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps(body) + "\n")
        text, call = decide(body)
        finish = "tool_calls" if call else "stop"
        usage = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()

            def chunk(delta, finish_reason=None):
                data = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": "probe-model",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")

            chunk({"role": "assistant", "content": ""})
            if text:
                half = len(text) // 2
                chunk({"content": text[:half]})
                chunk({"content": text[half:]})
            if call:
                chunk({"tool_calls": [{"index": 0, "id": f"call_{COUNT[0]}", "type": "function",
                                       "function": {"name": call[0], "arguments": json.dumps(call[1])}}]})
            chunk({}, finish)
            tail = {"id": "cmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            self.wfile.write(b"data: " + json.dumps(tail).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        message = {"role": "assistant", "content": text or None}
        if call:
            message["tool_calls"] = [{"id": f"call_{COUNT[0]}", "type": "function",
                                      "function": {"name": call[0], "arguments": json.dumps(call[1])}}]
        out = json.dumps({"id": "cmpl-1", "object": "chat.completion", "model": "probe-model",
                          "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                          "usage": usage}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
