"""A small Hugging Face Hub look-alike for tests: real HTTP on 127.0.0.1, real git-like commits.

It serves the endpoints the installed `huggingface_hub` client calls, so tests exercise the
client's real download and upload code:

- HEAD/GET `/{owner}/{name}/resolve/{revision}/{path}` with `ETag`, `X-Repo-Commit` and
  `Content-Length` (404s carry `X-Error-Code`: RepoNotFound / RevisionNotFound / EntryNotFound);
- GET `/api/models/{owner}/{name}[/revision/{revision}]` (repo info with `sha` and `siblings`);
- POST `/api/repos/create`, `/api/validate-yaml`, `/api/models/{repo}/preupload/{rev}`,
  `/api/models/{repo}/commit/{rev}` (NDJSON, every file sent inline as "regular" base64) and
  `/api/models/{repo}/branch/{branch}`;
- GET `/files/{path}` for plain downloads (original checkpoints).

Every request is recorded in `hub.requests` as (method, path, headers with lower-case names) so tests can check what
the client did. Private repos answer 401/404 unless the `Authorization` header carries `token`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

__all__ = ["FakeHub"]


class FakeHub:
    """Repos with branches, tags and commits, served over HTTP once `start()` is called."""

    def __init__(self, token: str = "hf_test_token") -> None:
        self.token = token
        self.repos: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_paths: set[str] = set()  # request paths answered with 500
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # ---- state -----------------------------------------------------------------------------
    def create_repo(self, repo_id: str, private: bool = False) -> str:
        with self._lock:
            if repo_id in self.repos:
                raise ValueError(f"{repo_id} exists")
            self.repos[repo_id] = {"private": private, "refs": {}, "tags": {}, "commits": {}}
        return self.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, message="initial commit")

    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", message: str = "", deletions=()) -> str:
        with self._lock:
            repo = self.repos[repo_id]
            parent = repo["refs"].get(branch)
            tree = dict(repo["commits"][parent]["files"]) if parent else {}
            tree.update(files)
            for path in deletions:
                tree.pop(path, None)
            self._counter += 1
            digest = hashlib.sha1(f"{repo_id}|{parent}|{message}|{self._counter}".encode())
            for path in sorted(tree):
                digest.update(path.encode() + hashlib.sha256(tree[path]).digest())
            sha = digest.hexdigest()
            repo["commits"][sha] = {"files": tree, "message": message, "parent": parent}
            repo["refs"][branch] = sha
            return sha

    def commit_folder(self, repo_id: str, folder: str | Path, branch: str = "main", message: str = "upload") -> str:
        if repo_id not in self.repos:
            self.create_repo(repo_id)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
        return self.commit(repo_id, files, branch=branch, message=message)

    def add_tag(self, repo_id: str, tag: str, sha: str) -> None:
        self.repos[repo_id]["tags"][tag] = sha

    def resolve(self, repo_id: str, revision: str) -> str | None:
        repo = self.repos[repo_id]
        if revision in repo["refs"]:
            return repo["refs"][revision]
        if revision in repo["tags"]:
            return repo["tags"][revision]
        return revision if revision in repo["commits"] else None

    def tree(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return self.repos[repo_id]["commits"][self.resolve(repo_id, revision)]["files"]

    # ---- server ----------------------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.requests if method is None or m == method]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    # ---- helpers ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}, head)

    def _error(self, status: int, code: str | None, message: str, head: bool = False, extra: dict | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers, head)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorised(self, repo_id: str) -> bool:
        repo = self.hub.repos[repo_id]
        return not repo["private"] or self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _record(self) -> str:
        path = urlsplit(self.path).path
        with self.hub._lock:
            self.hub.requests.append((self.command, path, {k.lower(): v for k, v in self.headers.items()}))
        return path

    # ---- routes ----------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def _route(self, head: bool) -> None:
        path = self._record()
        if path in self.hub.fail_paths:
            return self._error(500, None, "injected server error", head)
        parts = [unquote(p) for p in path.split("/")[1:]]
        if parts[:1] == ["files"]:
            data = self.hub.files.get("/".join(parts[1:]))
            if data is None:
                return self._error(404, None, "no such file", head)
            return self._send(200, data, {"Content-Type": "application/octet-stream"}, head)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = f"{parts[2]}/{parts[3]}"
            revision = parts[5] if len(parts) >= 6 and parts[4] == "revision" else "main"
            return self._repo_info(repo_id, revision, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
        self._error(404, None, f"no route for {path}", head)

    def _repo_info(self, repo_id: str, revision: str, head: bool) -> None:
        if repo_id not in self.hub.repos or not self._authorised(repo_id):
            return self._error(404, "RepoNotFound", "Repository not found", head)
        sha = self.hub.resolve(repo_id, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id", head)
        files = self.hub.repos[repo_id]["commits"][sha]["files"]
        self._json(200, {
            "id": repo_id,
            "sha": sha,
            "private": self.hub.repos[repo_id]["private"],
            "siblings": [{"rfilename": p, "size": len(b)} for p, b in sorted(files.items())],
        }, head=head)

    def _resolve(self, repo_id: str, revision: str, filename: str, head: bool) -> None:
        if repo_id not in self.hub.repos or not self._authorised(repo_id):
            return self._error(401, "RepoNotFound", "Repository not found", head)
        sha = self.hub.resolve(repo_id, revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id", head)
        files = self.hub.repos[repo_id]["commits"][sha]["files"]
        if filename not in files:
            return self._error(404, "EntryNotFound", "Entry not found", head, {"X-Repo-Commit": sha})
        data = files[filename]
        self._send(200, data, {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "X-Repo-Commit": sha,
            "Accept-Ranges": "none",
        }, head)

    def do_POST(self) -> None:
        path = self._record()
        body = self._body()
        parts = [unquote(p) for p in path.split("/")[1:]]
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in self.hub.repos:
                # like the Hub, a 409 still carries the repo url (create_repo(exist_ok=True) reads it)
                return self._json(409, {"error": "You already created this model repo", "url": f"{self.hub.url}/{repo_id}"})
            self.hub.create_repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
            return self._json(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id})
        if path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            try:
                front = content.split("---")[1] if content.startswith("---") else ""
                meta = yaml.safe_load(front) if front else {}
                if meta is not None and not isinstance(meta, dict):
                    raise ValueError("metadata must be a mapping")
            except Exception as err:  # noqa: BLE001 - report what the Hub would
                return self._json(400, {"errors": [{"message": str(err)}]})
            return self._json(200, {"errors": [], "warnings": []})
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo_id, action, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
            if repo_id not in self.hub.repos or not self._authorised(repo_id):
                return self._error(404, "RepoNotFound", "Repository not found")
            if action == "preupload":
                files = json.loads(body)["files"]
                return self._json(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files
                ]})
            if action == "commit":
                return self._commit(repo_id, revision, body)
            if action == "branch":
                repo = self.hub.repos[repo_id]
                if revision in repo["refs"]:
                    return self._error(409, None, "Reference already exists")
                start = (json.loads(body) if body else {}).get("startingPoint") or "main"
                repo["refs"][revision] = self.hub.resolve(repo_id, start)
                return self._json(200, {})
        self._error(404, None, f"no route for POST {path}")

    def _commit(self, repo_id: str, revision: str, body: bytes) -> None:
        if revision not in self.hub.repos[repo_id]["refs"]:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        message, files, deletions = "", {}, []
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "header":
                message = item["value"].get("summary", "")
            elif item["key"] == "file":
                assert item["value"].get("encoding") == "base64"
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deletions.append(item["value"]["path"])
            else:
                return self._error(400, None, f"unsupported commit operation {item['key']}")
        sha = self.hub.commit(repo_id, files, branch=revision, message=message, deletions=deletions)
        self._json(200, {"commitUrl": f"{self.hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "success": True})


# ---------------------------------------------------------------------------------------------
# A tiny registered zoo model for the hub tests (shared by tests/test_hub*.py)
# ---------------------------------------------------------------------------------------------

import torch  # noqa: E402
from torch import nn  # noqa: E402

from mmzoo import registry  # noqa: E402
from mmzoo.models.base import ZooModule  # noqa: E402

TINY_ID = "zootest-mlp"
TINY_DEFAULTS = {"in_dim": 6, "hidden": 8, "num_classes": 3}


class TinyMLP(ZooModule):
    """A two-layer MLP with BatchNorm (buffers), a non-contiguous buffer and an optional tied head.

    Args:
        in_dim: input features.
        hidden: hidden width.
        num_classes: output classes.
        act: "relu" or "gelu".
        tied_head: also expose the output layer as `aux` (two state-dict names, one tensor).
    """

    def __init__(self, in_dim: int = 6, hidden: int = 8, num_classes: int = 3, act: str = "relu", tied_head: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mix", torch.randn(in_dim, in_dim).t())  # transposed: not contiguous
        self.fc1 = nn.Linear(in_dim, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        if tied_head:
            self.aux = self.fc2
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.norm(self.fc1(x @ self.mix))))

    def example_input(self, batch_size: int = 2) -> dict:
        return {"x": torch.randn(batch_size, self.hparams.in_dim)}

    def training_step(self, batch, batch_idx):
        return nn.functional.cross_entropy(self(batch["x"]), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def register_tiny(weights=(), model_id: str = TINY_ID, **defaults) -> None:
    """(Re-)register `model_id` as TinyMLP with these Weights records."""
    registry.register_model(
        model_id,
        defaults={**TINY_DEFAULTS, **defaults},
        task="classification",
        paper="mmzoo hub tests",
        input=registry.InputConfig(shapes={"x": "B,in_dim"}),
        weights=list(weights),
        reported={"top1": 50.0},
    )(TinyMLP)


def unregister(*model_ids: str) -> None:
    """Remove test ids so they do not leak into other test modules' view of the registry."""
    for model_id in model_ids:
        registry._REGISTRY.pop(model_id, None)


def trained_tiny(seed: int = 0, **kwargs) -> TinyMLP:
    """A TinyMLP with non-trivial BatchNorm statistics, in eval mode."""
    import mmzoo

    torch.manual_seed(seed)
    model = mmzoo.create(TINY_ID, **kwargs)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, model.hparams.in_dim) * 2 + 1)
    return model.eval()


def write_authors_checkpoint(model: TinyMLP, path) -> None:
    """Save `model`'s weights the way "the original authors" did: a pickled dict with their names."""
    sd = model.state_dict()
    theirs = {k.replace("fc1.", "encoder.").replace("fc2.", "classifier.").replace("norm.", "bn."): v for k, v in sd.items()}
    torch.save({"epoch": 30, "model": theirs}, path)


def convert_authors_checkpoint(path: str) -> dict:
    """Converter for `write_authors_checkpoint` files (registered as 'hf_server:convert_authors_checkpoint')."""
    theirs = torch.load(path, map_location="cpu", weights_only=True)["model"]
    return {k.replace("encoder.", "fc1.").replace("classifier.", "fc2.").replace("bn.", "norm."): v for k, v in theirs.items()}


def convert_wrong_keys(path: str) -> dict:
    """A broken converter: leaves the authors' names in place."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]
