#!/usr/bin/env python3
"""A small LSP client (stdio) for yaml-language-server, used by tests/lsp.rs.

Usage: client.py SERVER_JS SCHEMA_JSON REQUESTS_JSON

SERVER_JS is yaml-language-server's bin script (run with `node SERVER_JS --stdio`).
SCHEMA_JSON is copied to `schemas/playbook.schema.json` in a temporary workspace and
associated with every `*.yml` document there, through the settings (and through the
`# yaml-language-server: $schema=../schemas/playbook.schema.json` modeline that
playbooks under `playbooks/` carry). REQUESTS_JSON is a list of documents, written
into the workspace under their names:

    [{"name": "playbooks/a.yml", "text": "...", "complete": [line, character] | null}, ...]

For each document the client opens it, waits for the server's diagnostics, then asks
for completion at the given position (0-based, as LSP counts) when one is given.
It prints one JSON object: {"a.yml": {"completion": [labels], "diagnostics":
[{"line": L, "character": C, "message": M}]}, ...} (positions 0-based).
Exits 1 with a message on stderr when the server misbehaves or times out.
"""

import json
import os
import pathlib
import select
import subprocess
import sys
import tempfile
import time

TIMEOUT = 30.0


class Server:
    def __init__(self, server_js, settings):
        self.settings = settings
        self.proc = subprocess.Popen(
            ["node", server_js, "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 1
        self.buffer = b""
        self.diagnostics = {}

    def send(self, message):
        message["jsonrpc"] = "2.0"
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method, params):
        self.send({"method": method, "params": params})

    def read_message(self, deadline):
        while True:
            header_end = self.buffer.find(b"\r\n\r\n")
            if header_end >= 0:
                length = None
                for line in self.buffer[:header_end].split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is None:
                    raise RuntimeError("LSP message without Content-Length")
                start = header_end + 4
                if len(self.buffer) >= start + length:
                    body = self.buffer[start : start + length]
                    self.buffer = self.buffer[start + length :]
                    return json.loads(body)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("yaml-language-server did not answer in time")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("yaml-language-server exited")
                self.buffer += chunk

    def handle(self, message):
        """Answers the server's own requests and records diagnostics."""
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            params = message["params"]
            self.diagnostics[params["uri"]] = params["diagnostics"]
        elif method is not None and "id" in message:
            if method == "workspace/configuration":
                result = [
                    self.settings.get(item.get("section", ""), None)
                    for item in message["params"]["items"]
                ]
            else:
                result = None
            self.send({"id": message["id"], "result": result})

    def request(self, method, params):
        request_id = self.next_id
        self.next_id += 1
        self.send({"id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT
        while True:
            message = self.read_message(deadline)
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result")
            self.handle(message)

    def wait_diagnostics(self, uri):
        deadline = time.monotonic() + TIMEOUT
        while uri not in self.diagnostics:
            self.handle(self.read_message(deadline))
        return self.diagnostics[uri]


def main():
    server_js, schema, requests_file = sys.argv[1:4]
    documents = json.loads(pathlib.Path(requests_file).read_text())
    work = tempfile.TemporaryDirectory()
    root = pathlib.Path(work.name)
    (root / "schemas").mkdir()
    schema_copy = root / "schemas" / "playbook.schema.json"
    schema_copy.write_bytes(pathlib.Path(schema).read_bytes())
    schema_uri = schema_copy.as_uri()
    settings = {
        "yaml": {
            "schemas": {schema_uri: "*.yml"},
            "validate": True,
            "completion": True,
            "hover": True,
            "schemaStore": {"enable": False},
        }
    }
    with work:
        server = Server(server_js, settings)
        try:
            server.request(
                "initialize",
                {
                    "processId": os.getpid(),
                    "rootUri": root.as_uri(),
                    "capabilities": {
                        "workspace": {"configuration": True},
                        "textDocument": {
                            "completion": {"completionItem": {"snippetSupport": True}},
                            "publishDiagnostics": {},
                        },
                    },
                },
            )
            server.notify("initialized", {})
            server.notify("workspace/didChangeConfiguration", {"settings": settings})
            out = {}
            for doc in documents:
                path = root / doc["name"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(doc["text"])
                uri = path.as_uri()
                server.notify(
                    "textDocument/didOpen",
                    {
                        "textDocument": {
                            "uri": uri,
                            "languageId": "yaml",
                            "version": 1,
                            "text": doc["text"],
                        }
                    },
                )
                # Diagnostics come once the schema is loaded and applied: only then is
                # completion meaningful (asking earlier races the schema fetch).
                diagnostics = server.wait_diagnostics(uri)
                result = {"completion": None}
                if doc.get("complete") is not None:
                    line, character = doc["complete"]
                    items = server.request(
                        "textDocument/completion",
                        {
                            "textDocument": {"uri": uri},
                            "position": {"line": line, "character": character},
                        },
                    )
                    if isinstance(items, dict):
                        items = items.get("items", [])
                    result["completion"] = sorted(i["label"] for i in items or [])
                result["diagnostics"] = [
                    {
                        "line": d["range"]["start"]["line"],
                        "character": d["range"]["start"]["character"],
                        "message": d["message"],
                    }
                    for d in diagnostics
                ]
                out[doc["name"]] = result
            server.request("shutdown", None)
            server.notify("exit", None)
        except (TimeoutError, RuntimeError) as e:
            print(f"lsp client: {e}", file=sys.stderr)
            server.proc.kill()
            return 1
        finally:
            try:
                server.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.proc.kill()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
