"""A local stand-in for the Hugging Face Hub: a real HTTP server on 127.0.0.1 (random port, a thread).

It answers ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}`` the way the Hub does:
``X-Repo-Commit`` (40 hex), ``ETag`` (the git blob id for small files; for ``*.safetensors`` the
sha256, also as ``X-Linked-Etag`` / ``X-Linked-Size`` like an LFS file), ``Content-Length``, and
404s carrying ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound). It records every
request. Standard library only: the tests (``tests/zoo_support.py``) and the demo script
(``scripts/fake_hub.py``, which must run without pytest) share it.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.parse
from dataclasses import dataclass

REPO_ID = "amt-test/toy"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Served:
    data: bytes
    etag: str  # what the server claims the file is


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict[str, dict[str, Served]]] = {}  # repo -> commit -> filename -> Served
        self.refs: dict[tuple[str, str], str] = {}  # (repo, branch) -> commit
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, with_body: bool):
                hub.requests.append((self.command, self.path, dict(self.headers)))
                status, headers, body = hub.respond(urllib.parse.unquote(urllib.parse.urlsplit(self.path).path))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- content
    def add(self, repo_id: str, commit: str, files: dict[str, bytes], *, branch: str | None = "main") -> None:
        repo = self.repos.setdefault(repo_id, {})
        repo[commit] = {name: Served(data, self.etag_for(name, data)) for name, data in files.items()}
        if branch:
            self.refs[(repo_id, branch)] = commit

    @staticmethod
    def etag_for(name: str, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_blob_sha1(data)

    def tamper(self, repo_id: str, commit: str, name: str, *, keep_etag: bool = False) -> None:
        """Flip one byte of a served file (same size). The ETag follows the new bytes unless ``keep_etag``."""
        served = self.repos[repo_id][commit][name]
        data = bytearray(served.data)
        data[len(data) // 2] ^= 0xFF
        etag = served.etag if keep_etag else self.etag_for(name, bytes(data))
        self.repos[repo_id][commit][name] = Served(bytes(data), etag)

    def remove(self, repo_id: str, commit: str, name: str) -> None:
        del self.repos[repo_id][commit][name]

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _, _ in self.requests if method is None or m == method)

    # ---------------------------------------------------------------- protocol
    def respond(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, b"not found"
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo_id not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b"{}"
        commit = self.refs.get((repo_id, revision), revision)
        if commit not in self.repos[repo_id]:
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b"{}"
        served = self.repos[repo_id][commit].get(filename)
        if served is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"{}"
        headers = {"X-Repo-Commit": commit, "ETag": f'"{served.etag}"', "Content-Type": "application/octet-stream"}
        if filename.endswith(".safetensors"):
            headers["X-Linked-Etag"] = f'"{served.etag}"'
            headers["X-Linked-Size"] = str(len(served.data))
        return 200, headers, served.data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
