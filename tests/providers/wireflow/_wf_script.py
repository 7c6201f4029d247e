"""The request sequences of Wireflow's published client script (``wf.sh`` in wireflowINC's
skill repository, spec source G3), replayed as plain HTTP.

Written from the spec's description of the script, verb by verb: each method sends what the
verb sends, in the same order, reads the answer the way the script reads it (its ``jq`` and
``python3 -c`` expressions, in Python), and returns what the script would print and its exit
status. The script itself is not copied here. Verbs with no API call (``layout``, ``see``) and
the script's local helpers (``layout.py``, ``organize.py``) are left out: ``organize`` sends the
graph back as read.

Where the script sleeps (``wait`` polls every 6 s), the replay calls ``sleep``, which a test
points at a fake clock's ``advance``, so nothing really waits.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

#: Hosts the script sends through the site's download proxy; others it fetches directly.
PROXIED = ("cdn.wireflow.ai/", "cdn.atomu.ai/", "fal.media/", "replicate.delivery/", "storage.googleapis.com/",
           "oaidalleapiprodscus.blob.core.windows.net/")


@dataclass
class Outcome:
    """What a verb printed and its exit status (0 success, 1 failure, 2 could-not-verify/usage)."""

    status: int
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    body: Any = None


class WfScript:
    """One configured client: ``WIREFLOW_BASE_URL`` and ``WIREFLOW_API_KEY``."""

    def __init__(self, base: str, key: str, *, sleep: Callable[[float], object] = lambda s: None) -> None:
        self.base = base.rstrip("/")
        # curl -sS -L: follow 301/308 keeping the method and body
        self.http = httpx.Client(follow_redirects=True, timeout=30)
        self.auth = {"Authorization": f"Bearer {key}"}
        self.json_headers = {**self.auth, "Content-Type": "application/json"}
        self.sleep = sleep

    def close(self) -> None:
        self.http.close()

    # -- the script's helpers ----------------------------------------------------------------

    def _lint(self, graph: dict[str, Any]) -> tuple[int, bool, list[str]]:
        """``wf_lint``: POST /workflows/lint; (return code, unverified, messages)."""
        response = self.http.post(f"{self.base}/workflows/lint", headers=self.json_headers, content=json.dumps(graph))
        if response.status_code != 200:
            return 0, True, [f"server-side lint returned HTTP {response.status_code} — graph is UNVERIFIED."]
        body = response.json()
        data = body.get("data")
        ok = data["ok"] if isinstance(data, dict) and "ok" in data else body.get("ok")
        if ok is None:
            return 0, True, ["server-side lint returned an unrecognized response — graph is UNVERIFIED."]
        messages = [f"✗ {v.get('rule', 'error')}: {v.get('message', '')}"
                    for v in (data or {}).get("violations") or body.get("violations") or []]
        return (0 if ok is True else 1), False, messages

    def _updated_at(self, workflow_id: str) -> str:
        """``((d.get("data") or d) or {}).get("updatedAt") or ""`` on GET /workflows/{id}."""
        try:
            d = self.http.get(f"{self.base}/workflows/{workflow_id}", headers=self.auth).json()
        except ValueError:
            return ""
        return str(((d.get("data") or d) or {}).get("updatedAt") or "")

    def _get(self, path: str, **params: str) -> Outcome:
        response = self.http.get(f"{self.base}{path}", headers=self.auth, params=params or None)
        return Outcome(0, [response.text], body=response.json())

    # -- verbs ---------------------------------------------------------------------------------

    def templates(self) -> Outcome:
        return self._get("/remotion/templates")

    def template(self, template_id: str) -> Outcome:
        return self._get(f"/remotion/templates/{template_id}")

    def nodes(self) -> Outcome:
        return self._get("/nodes")

    def blocks(self, use: str | None = None, renderable: bool = False) -> Outcome:
        query = "&".join([*([f"use={use}"] if use else []), *(["renderable=1"] if renderable else [])])
        response = self.http.get(f"{self.base}/blocks" + (f"?{query}" if query else ""), headers=self.auth)
        return Outcome(0, [response.text], body=response.json())

    def block(self, block_id: str) -> Outcome:
        response = self.http.get(f"{self.base}/blocks?id={block_id}", headers=self.auth)
        return Outcome(0, [response.text], body=response.json())

    def generate(self, prompt: str) -> Outcome:
        """curl -N: the event stream printed as it arrives."""
        lines = []
        with self.http.stream("POST", f"{self.base}/workflows/generate/stream", headers=self.json_headers,
                              content=json.dumps({"prompt": prompt})) as response:
            lines = [line for line in response.iter_lines() if line]
        events = [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]
        return Outcome(0, lines, body=events)

    def check(self, graph: dict[str, Any]) -> Outcome:
        code, unverified, messages = self._lint(graph)
        if code == 0 and unverified:
            return Outcome(2, err=[*messages, "✗ check could NOT verify the graph"])
        return Outcome(code, err=messages)

    def create(self, graph: dict[str, Any]) -> Outcome:
        code, _, messages = self._lint(graph)
        if code != 0:
            return Outcome(1, err=[*messages, "✗ create blocked"])
        response = self.http.post(f"{self.base}/workflows", headers=self.json_headers, content=json.dumps(graph))
        return Outcome(0, [response.text], body=response.json())

    def update(self, workflow_id: str, graph: dict[str, Any]) -> Outcome:
        code, _, messages = self._lint(graph)
        if code != 0:
            return Outcome(1, err=[*messages, "✗ update blocked"])
        send = dict(graph)
        if base_ts := self._updated_at(workflow_id):
            send["baseUpdatedAt"] = base_ts
        response = self.http.put(f"{self.base}/workflows/{workflow_id}", headers=self.json_headers,
                                 content=json.dumps(send))
        if response.status_code == 409:
            return Outcome(2, [response.text], ["✗ CONFLICT (409)"], response.json())
        return Outcome(0 if response.is_success else 1, [response.text], body=response.json())

    def patch_node(self, workflow_id: str, node_id: str, patch: dict[str, Any]) -> Outcome:
        body = dict(patch)
        if "baseUpdatedAt" not in patch and (base_ts := self._updated_at(workflow_id)):
            body["baseUpdatedAt"] = base_ts
        response = self.http.patch(f"{self.base}/workflows/{workflow_id}/nodes/{node_id}",
                                   headers=self.json_headers, content=json.dumps(body))
        payload = response.json()
        if response.is_success:
            patched = ((payload.get("data") or {}).get("node") or {}).get("id")
            if not patched:
                return Outcome(1, err=["✗ patch-node returned no node"], body=payload)
            node = payload["data"]["node"]
            out = [f"patched node: {patched}"]
            if label := (node.get("data") or {}).get("label") or node.get("label"):
                out.append(f"label:        {label}")
            if new_ts := payload["data"].get("updatedAt"):
                out.append(f"updatedAt:    {new_ts}")
            return Outcome(0, out, body=payload)
        err = [f"✗ patch-node failed (HTTP {response.status_code})"]
        if response.status_code == 409:
            err = ["✗ CONFLICT (409)", f"current updatedAt:  {payload.get('currentUpdatedAt')}"]
        return Outcome(1, err=err, body=payload)

    def organize(self, workflow_id: str) -> Outcome:
        d = self.http.get(f"{self.base}/workflows/{workflow_id}", headers=self.auth).json()
        full = d.get("workflow") or d.get("data") or d  # jq '(.workflow // .data // .)'
        if not isinstance(full.get("nodes"), list):
            return Outcome(1, err=["✗ organize — could not read nodes/edges"])
        put = {k: full.get(k) for k in ("name", "description", "tags", "isActive", "nodes", "edges")}
        put = {k: v for k, v in put.items() if v is not None}
        code, _, messages = self._lint(put)
        if code != 0:
            return Outcome(1, err=[*messages, "✗ organize blocked"])
        response = self.http.put(f"{self.base}/workflows/{workflow_id}", headers=self.json_headers,
                                 content=json.dumps(put))
        return Outcome(0, [response.text], body=response.json())

    def run(self, workflow_id: str, inputs: dict[str, Any]) -> Outcome:
        response = self.http.post(f"{self.base}/workflows/{workflow_id}/run", headers=self.json_headers,
                                  content=json.dumps(inputs))
        return Outcome(0, [response.text], body=response.json())

    def run_node(self, workflow_id: str, node_id: str) -> Outcome:
        wf = self.http.get(f"{self.base}/workflows/{workflow_id}", headers=self.auth).json()
        body = {"nodes": wf.get("nodes", []), "edges": wf.get("edges", []), "targetNodeId": node_id}
        return self._execute(workflow_id, body, "run-node")

    def run_force(self, workflow_id: str) -> Outcome:
        wf = self.http.get(f"{self.base}/workflows/{workflow_id}", headers=self.auth).json()
        body = {"nodes": wf.get("nodes", []), "edges": wf.get("edges", []), "force": True}
        return self._execute(workflow_id, body, "run-force")

    def _execute(self, workflow_id: str, body: dict[str, Any], verb: str) -> Outcome:
        response = self.http.post(f"{self.base}/workflows/{workflow_id}/execute", headers=self.json_headers,
                                  content=json.dumps(body))
        if not response.is_success:
            return Outcome(1, [response.text], [f"✗ {verb} FAILED (HTTP {response.status_code})"])
        d = response.json()
        if verb == "run-force":
            return Outcome(0, [response.text], body=d)
        runs = d.get("executionRuns") or []
        if not (runs and runs[0].get("id")) and not d.get("executionId"):
            return Outcome(1, [response.text], ["✗ run-node: no executionId in response"], d)
        stale = [f"STALE upstream: paid node {s.get('nodeId')!r} ({','.join(s.get('changedKeys', []))})"
                 for s in d.get("staleDependencies") or []]
        return Outcome(0, [response.text], stale, d)

    def poll(self, execution_id: str) -> Outcome:
        return self._get(f"/workflows/executions/{execution_id}/poll")

    def wait(self, execution_id: str, *, interval: float = 6.0, max_ticks: int = 200) -> Outcome:
        out: list[str] = []
        status = "UNKNOWN"
        for _ in range(max_ticks):
            response = self.http.get(f"{self.base}/workflows/executions/{execution_id}/poll", headers=self.auth)
            if response.status_code == 429:
                self.sleep(30)
                continue
            if response.status_code != 200:
                return Outcome(1, out, [f"✗ poll HTTP {response.status_code}: {response.text}"])
            body = response.json()
            status = body.get("status") or "UNKNOWN"  # jq '.status // "UNKNOWN"'
            states = body.get("nodeStates") or []
            out.append(f"[{status}] " + "  ".join(f"{s.get('label') or s.get('nodeId')}:{s.get('status')}"
                                                  for s in states))
            if status == "COMPLETED":
                out.append("✓ COMPLETED")
                for s in states:
                    urls = s.get("outputUrls") or ([s["outputUrl"]] if s.get("outputUrl") else [])
                    for url in urls:
                        out.append(f"  → {s.get('label') or s.get('nodeId')}: {url}")
                    if s.get("text"):
                        out.append(f"  ✎ {s.get('label') or s.get('nodeId')}: {s['text'][:140]}")
                return Outcome(0, out, body=body)
            if status == "FAILED":
                err = ["✗ FAILED", *(f"  ✗ {s.get('label') or s.get('nodeId')}: {s.get('error') or 'no error detail'}"
                                    for s in states if s.get("status") == "FAILED")]
                if body.get("error"):
                    err.append(str(body["error"]))
                return Outcome(1, out, err, body)
            self.sleep(interval)
        return Outcome(1, out, [f"✗ timed out — last status: {status}"])

    def list(self) -> Outcome:
        return self._get("/workflows")

    def get(self, workflow_id: str) -> Outcome:
        return self._get(f"/workflows/{workflow_id}")

    def duplicate(self, workflow_id: str, name: str | None = None) -> Outcome:
        body = json.dumps({"name": name}) if name else "{}"
        response = self.http.post(f"{self.base}/workflows/{workflow_id}/duplicate", headers=self.json_headers,
                                  content=body)
        payload = response.json()
        if not response.is_success:
            return Outcome(1, err=[f"✗ duplicate failed (HTTP {response.status_code})"], body=payload)
        new_id = (payload.get("data") or {}).get("id")
        if not new_id:
            return Outcome(1, err=["✗ duplicate returned no workflow id"], body=payload)
        out = [f"id:  {new_id}"]
        if url := payload["data"].get("url"):
            out.append(f"url: {url}")
        return Outcome(0, out, body=payload)

    def publish(self, workflow_id: str, *, public: bool = True) -> Outcome:
        response = self.http.post(f"{self.base}/workflows/{workflow_id}/visibility", headers=self.json_headers,
                                  content=json.dumps({"visibility": "view" if public else "private"}))
        payload = response.json()
        if response.status_code == 404:
            return Outcome(1, err=["✗ publish failed (HTTP 404)"], body=payload)
        if not response.is_success:
            return Outcome(1, err=[f"✗ publish failed (HTTP {response.status_code})"], body=payload)
        perm = payload.get("linkPermission") or (payload.get("data") or {}).get("linkPermission")
        if not perm:
            return Outcome(1, err=["✗ no linkPermission in the response"], body=payload)
        out = [f"linkPermission: {perm}"]
        if url := payload.get("url") or (payload.get("data") or {}).get("url"):
            out.append(f"url: {url}")
        return Outcome(0, out, body=payload)

    def unpublish(self, workflow_id: str) -> Outcome:
        return self.publish(workflow_id, public=False)

    def delete(self, workflow_id: str) -> Outcome:
        response = self.http.delete(f"{self.base}/workflows/{workflow_id}", headers=self.auth)
        return Outcome(0, [response.text], body=response.json())

    def inputs(self, workflow_id: str) -> Outcome:
        return self._get(f"/workflows/{workflow_id}/run")

    def upload(self, source: str | tuple[str, bytes, str]) -> Outcome:
        if isinstance(source, str):
            response = self.http.post(f"{self.base}/media/upload", headers=self.json_headers,
                                      content=json.dumps({"url": source}))
        else:
            response = self.http.post(f"{self.base}/media/upload", headers=self.auth, files={"file": source})
        try:
            url = response.json()["data"]["url"]  # jq -re '.data.url'
        except (ValueError, KeyError, TypeError):
            return Outcome(1, err=[response.text])
        return Outcome(0, [url], body=response.json())

    def media(self) -> Outcome:
        return self._get("/media")

    def preview(self, scene_graph: dict[str, Any]) -> Outcome:
        response = self.http.post(f"{self.base}/render/remotion/preview", headers=self.json_headers,
                                  content=json.dumps(scene_graph))
        return Outcome(0, [response.text], body=response.json())

    def download(self, src: str) -> Outcome:
        """``curl -fsSL``: through the site's proxy (no key) for the CDN hosts, else directly."""
        origin = self.base.removesuffix("/api/v1")
        if any(host in src for host in PROXIED):
            response = self.http.get(f"{origin}/api/download?url={urllib.parse.quote(src, safe='')}")
        else:
            response = self.http.get(src, headers={"User-Agent": "Mozilla/5.0"})
        if not response.is_success:  # -f
            return Outcome(22, err=[f"curl: (22) The requested URL returned error: {response.status_code}"])
        return Outcome(0, [f"saved → {urllib.parse.urlsplit(src).path.rsplit('/', 1)[-1]}"], body=response.content)

    def credits(self) -> Outcome:
        return self._get("/developer/usage")
