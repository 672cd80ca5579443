"""A local OpenAI-compatible HTTP endpoint for tests of plugins that call an LLM server.

    with FakeEndpoint(lambda body: "<answer>5</answer>") as ep:
        ... point the plugin at f"{ep.url}/v1" ...
        assert ep.requests[0]["path"] == "/v1/chat/completions"

``reply(body)`` returns the text of the single choice; the server wraps it as
``/v1/chat/completions`` (``choices[0].message.content``) or ``/v1/completions``
(``choices[0].text``) asks. It listens on 127.0.0.1 only, answers requests
concurrently, and records each one (path, JSON body, Authorization header).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEndpoint:
    def __init__(self, reply: Callable[[dict], str]):
        self.reply = reply
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                text = endpoint.reply(body)
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop"}
                data = json.dumps({"object": "chat.completion", "choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
