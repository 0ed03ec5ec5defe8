"""What Directus's realtime events carry, and what a batched read of versions costs.

    .venv/bin/python -m benchmarks.realtime_facts [--json facts.json]

Starts a local Directus with realtime on, seeds it as the scale benchmark does (50 versions of
9 prompts, 3 of them in a sequence every version shares, and the evaluation samples), opens a
WebSocket with the read-only token, subscribes to every collection the library reads with the
fields named below, and then makes changes through the admin REST API one at a time, printing
each change's HTTP answer and every event that follows it (with its delay from the request).
Last, it times ``GET /items/prompt_set_versions?filter[version_number][_in]=...`` with the
library's nested fields and deep for 1, 25 and 50 versions. Findings: DIRECTUS_REALTIME_FACTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from httpx_ws import WebSocketSession, connect_ws

from benchmarks.scale_seed import seed, version_payload
from devserver.directus import ADMIN_TOKEN, READONLY_TOKEN, DirectusServer, template_db
from devserver.sample_data import evaluation_payload
from storybench_prompts import PROMPT_SETS

SUBSCRIPTIONS: dict[str, list[str]] = {
    "prompt_set_versions": ["id", "version_number", "status"],
    "prompt_set_versions_prompt_sequences": ["id", "prompt_set_versions_id", "prompt_sequences_id"],
    "prompt_sequences": ["id"],
    "prompt_sequences_prompts": ["id", "prompt_sequences_id", "prompts_id"],
    "prompts": ["id"],
    "evaluation_versions": ["id", "version_number", "status"],
    "evaluation_versions_evaluation_criteria": [
        "id",
        "evaluation_versions_id",
        "evaluation_criteria_id",
    ],
    "evaluation_criteria": ["id"],
    "evaluation_versions_scoring": ["id", "evaluation_versions_id", "scoring_id"],
    "scoring": ["id"],
}
SETTLE = 1.0
"""Seconds to collect events after each change."""


class Listener:
    def __init__(self, ws: WebSocketSession) -> None:
        self.ws = ws
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                message = json.loads(self.ws.receive_text())
            except Exception:
                return
            if message.get("type") == "ping":
                self.ws.send_text('{"type":"pong"}')
                continue
            with self.lock:
                self.events.append((time.monotonic(), message))

    def take(self) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            out, self.events = self.events, []
        return out


class Facts:
    def __init__(self, admin: httpx.Client, listener: Listener) -> None:
        self.admin = admin
        self.listener = listener
        self.steps: list[dict[str, Any]] = []

    def step(self, name: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        self.listener.take()
        sent = time.monotonic()
        response = call()
        answered = time.monotonic()
        time.sleep(SETTLE)
        events = self.listener.take()
        body = response.text[:400] if response.content else ""
        record: dict[str, Any] = {
            "step": name,
            "request": f"{response.request.method} {response.request.url.path}",
            "status": response.status_code,
            "answer_ms": round((answered - sent) * 1000),
            "body": body,
            "events": [
                {"after_request_ms": round((t - sent) * 1000), **message} for t, message in events
            ],
        }
        self.steps.append(record)
        print(f"\n=== {name}: {record['request']} -> HTTP {response.status_code} "
              f"in {record['answer_ms']} ms {body[:200]}")  # fmt: skip
        for e in record["events"]:
            print("   ", json.dumps(e))
        return response

    def note(self, name: str, value: Any) -> None:
        self.steps.append({"step": name, "value": value})
        print(f"--- {name}: {json.dumps(value)}")

    def get(self, path: str, **params: Any) -> Any:
        r = self.admin.get(path, params=params)
        r.raise_for_status()
        return r.json()["data"]


def _subscribe(ws: WebSocketSession) -> dict[str, Any]:
    ws.send_text(json.dumps({"type": "auth", "access_token": READONLY_TOKEN}))
    auth = json.loads(ws.receive_text())
    assert auth.get("status") == "ok", auth
    inits: dict[str, Any] = {}
    for collection, fields in SUBSCRIPTIONS.items():
        ws.send_text(
            json.dumps(
                {
                    "type": "subscribe",
                    "collection": collection,
                    "uid": collection,
                    "query": {"fields": fields},
                }
            )
        )
        while True:
            message = json.loads(ws.receive_text())
            if message.get("uid") == collection:
                break
        data = message.get("data")
        inits[collection] = {
            "type": message.get("type"),
            "event": message.get("event"),
            "items": len(data) if isinstance(data, list) else None,
            "first": data[0] if isinstance(data, list) and data else data,
        }
    return inits


def _changes(f: Facts, shared_sequence_id: int) -> None:
    a = f.admin
    fid = {"fields": "id"}
    # -- prompts and their junction -------------------------------------------------------
    prompt = f.step(
        "create a prompt",
        lambda: a.post(
            "/items/prompts",
            params=fid,
            json={"name": "Probe", "text": "probe", "status": "published", "order_in_sequence": 9},
        ),
    ).json()["data"]["id"]
    link = f.step(
        "link it into the shared sequence (create prompt_sequences_prompts)",
        lambda: a.post(
            "/items/prompt_sequences_prompts",
            params=fid,
            json={"prompt_sequences_id": shared_sequence_id, "prompts_id": prompt},
        ),
    ).json()["data"]["id"]
    other_sequence = f.get(
        "/items/prompt_sequences", **{"filter[id][_neq]": shared_sequence_id, "limit": 1}
    )[0]["id"]
    f.step(
        "move the junction row to another sequence (update prompt_sequences_id)",
        lambda: a.patch(
            f"/items/prompt_sequences_prompts/{link}",
            params=fid,
            json={"prompt_sequences_id": other_sequence},
        ),
    )
    f.step(
        "update prompt: text only",
        lambda: a.patch(f"/items/prompts/{prompt}", params=fid, json={"text": "changed"}),
    )
    f.step(
        "update prompt: order_in_sequence only",
        lambda: a.patch(f"/items/prompts/{prompt}", params=fid, json={"order_in_sequence": 4}),
    )
    f.step(
        "update prompt: status only (published -> draft)",
        lambda: a.patch(f"/items/prompts/{prompt}", params=fid, json={"status": "draft"}),
    )
    f.step(
        "update prompt with the value it already has (order_in_sequence 4 again)",
        lambda: a.patch(f"/items/prompts/{prompt}", params=fid, json={"order_in_sequence": 4}),
    )
    many = [p["id"] for p in f.get("/items/prompts", fields="id", limit=3, sort="id")]
    f.step(
        "update 3 prompts in one request (PATCH /items/prompts with keys)",
        lambda: a.patch(
            "/items/prompts", params=fid, json={"keys": many, "data": {"guidance_notes": "n"}}
        ),
    )
    f.step("delete the linked prompt", lambda: a.delete(f"/items/prompts/{prompt}"))
    f.note(
        "its junction row after the delete",
        f.get(f"/items/prompt_sequences_prompts/{link}"),
    )
    f.step(
        "delete the junction row",
        lambda: a.delete(f"/items/prompt_sequences_prompts/{link}"),
    )
    # -- sequences in versions ----------------------------------------------------------------
    v1, v2 = (r["id"] for r in f.get("/items/prompt_set_versions", fields="id", sort="id", limit=2))
    vlink = f.step(
        "attach the shared sequence again to a version (create ..._prompt_sequences)",
        lambda: a.post(
            "/items/prompt_set_versions_prompt_sequences",
            params=fid,
            json={"prompt_set_versions_id": v1, "prompt_sequences_id": shared_sequence_id},
        ),
    ).json()["data"]["id"]
    f.step(
        "move that junction row to another version (update prompt_set_versions_id)",
        lambda: a.patch(
            f"/items/prompt_set_versions_prompt_sequences/{vlink}",
            params=fid,
            json={"prompt_set_versions_id": v2},
        ),
    )
    f.step(
        "delete that junction row",
        lambda: a.delete(f"/items/prompt_set_versions_prompt_sequences/{vlink}"),
    )
    f.step(
        "update a sequence (sequence_description)",
        lambda: a.patch(
            f"/items/prompt_sequences/{other_sequence}",
            params=fid,
            json={"sequence_description": "changed"},
        ),
    )
    # -- versions -----------------------------------------------------------------------------
    draft = f.step(
        "nested create of a draft version: 2 new sequences of 3 new prompts + the shared one",
        lambda: a.post(
            "/items/prompt_set_versions",
            params=fid,
            json=version_payload(9001, shared_sequence_id, status="draft"),
        ),
    ).json()["data"]["id"]
    f.step(
        "publish the draft (update status)",
        lambda: a.patch(
            f"/items/prompt_set_versions/{draft}", params=fid, json={"status": "published"}
        ),
    )
    f.step(
        "update a version's description only",
        lambda: a.patch(
            f"/items/prompt_set_versions/{draft}", params=fid, json={"description": "changed"}
        ),
    )
    links = f.get(
        "/items/prompt_set_versions_prompt_sequences",
        **{"filter[prompt_set_versions_id][_eq]": draft, "fields": "id"},
    )
    f.step("delete the version", lambda: a.delete(f"/items/prompt_set_versions/{draft}"))
    f.note(
        "its junction rows after the delete",
        [f.get(f"/items/prompt_set_versions_prompt_sequences/{r['id']}") for r in links],
    )
    # -- evaluations ----------------------------------------------------------------------------
    ev = f.get("/items/evaluation_versions", fields="id", sort="id", limit=2)
    e1, e3 = ev[0]["id"], ev[1]["id"]
    criterion = f.get("/items/evaluation_criteria", fields="id", sort="id", limit=1)[0]["id"]
    scoring = f.get("/items/scoring", fields="id", sort="id", limit=1)[0]["id"]
    ej = f.step(
        "create evaluation_versions_evaluation_criteria",
        lambda: a.post(
            "/items/evaluation_versions_evaluation_criteria",
            params=fid,
            json={"evaluation_versions_id": e1, "evaluation_criteria_id": criterion},
        ),
    ).json()["data"]["id"]
    f.step(
        "update it (evaluation_versions_id to another version)",
        lambda: a.patch(
            f"/items/evaluation_versions_evaluation_criteria/{ej}",
            params=fid,
            json={"evaluation_versions_id": e3},
        ),
    )
    f.step(
        "delete it",
        lambda: a.delete(f"/items/evaluation_versions_evaluation_criteria/{ej}"),
    )
    sj = f.step(
        "create evaluation_versions_scoring",
        lambda: a.post(
            "/items/evaluation_versions_scoring",
            params=fid,
            json={"evaluation_versions_id": e1, "scoring_id": scoring},
        ),
    ).json()["data"]["id"]
    f.step(
        "update it (evaluation_versions_id to another version)",
        lambda: a.patch(
            f"/items/evaluation_versions_scoring/{sj}",
            params=fid,
            json={"evaluation_versions_id": e3},
        ),
    )
    f.step("delete it", lambda: a.delete(f"/items/evaluation_versions_scoring/{sj}"))
    f.step(
        "nested create of a draft evaluation version: a new criterion, an existing one, "
        "a new scoring item",
        lambda: a.post(
            "/items/evaluation_versions",
            params=fid,
            json=evaluation_payload(
                9001,
                [{"name": "probe_new", "scale": 5, "criteria": "Probe."}, criterion],
                [{"guidelines": "Probe."}],
                status="draft",
            ),
        ),
    )
    f.step(
        "update evaluation_versions (description)",
        lambda: a.patch(
            f"/items/evaluation_versions/{e1}", params=fid, json={"description": "changed"}
        ),
    )
    f.step(
        "create a criterion and link it (nested create through the version's alias)",
        lambda: a.patch(
            f"/items/evaluation_versions/{e1}",
            params={"fields": "evaluation_criteria_in_version.evaluation_criteria_id"},
            json={
                "evaluation_criteria_in_version": {
                    "create": [
                        {
                            "evaluation_criteria_id": {
                                "name": "probe",
                                "scale": 5,
                                "criteria": "Probe.",
                            }
                        }
                    ],
                    "update": [],
                    "delete": [],
                }
            },
        ),
    )
    new_criterion = f.get(
        "/items/evaluation_criteria", **{"filter[name][_eq]": "probe", "fields": "id"}
    )[0]["id"]
    links = f.get(
        "/items/evaluation_versions_evaluation_criteria",
        **{"filter[evaluation_criteria_id][_eq]": new_criterion, "fields": "id"},
    )
    f.step(
        "delete the linked criterion",
        lambda: a.delete(f"/items/evaluation_criteria/{new_criterion}"),
    )
    f.note(
        "its junction rows after the delete",
        [f.get(f"/items/evaluation_versions_evaluation_criteria/{r['id']}") for r in links],
    )


def _batched(admin: httpx.Client, f: Facts, repeats: int = 7) -> None:
    def read(numbers: list[int]) -> tuple[float, list[dict[str, Any]]]:
        params = {
            "filter[version_number][_in]": ",".join(map(str, numbers)),
            "fields": PROMPT_SETS.nested_fields,
            "deep": PROMPT_SETS.nested_deep,
            "limit": "-1",
        }
        t0 = time.perf_counter()
        r = admin.get("/items/prompt_set_versions", params=params)
        elapsed = time.perf_counter() - t0
        r.raise_for_status()
        return elapsed, r.json()["data"]

    singles: dict[int, dict[str, Any]] = {}
    for n in range(1, 51):
        _, single = read([n])
        singles[n] = single[0]
    summary: dict[str, Any] = {"fields": PROMPT_SETS.nested_fields, "deep": PROMPT_SETS.nested_deep}
    for count in (1, 3, 25, 50):
        numbers = list(range(1, count + 1))
        times = []
        rows: list[dict[str, Any]] = []
        for _ in range(repeats):
            elapsed, rows = read(numbers)
            times.append(elapsed)
        whole = sorted(r["version_number"] for r in rows) == numbers and all(
            r == singles[r["version_number"]] for r in rows
        )
        prompts = [
            sum(len(s["prompt_sequences_id"]["prompts_in_sequence"]) for s in r["sequences_in_set"])
            for r in rows
        ]
        summary[f"{count} versions"] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "min_ms": round(min(times) * 1000, 1),
            "rows": len(rows),
            "prompts_per_version": sorted(set(prompts)),
            "each identical to its single read": whole,
            "bytes": len(json.dumps(rows)),
        }
    f.note("batched read", summary)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realtime_facts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    server = DirectusServer.start_from(template_db(), realtime=True)
    try:
        seeded = seed(server, 50)
        ws: WebSocketSession
        with (
            httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=60,
            ) as admin,
            connect_ws(f"{server.url}/websocket") as ws,
        ):
            inits = _subscribe(ws)
            print("subscription init messages (first item each):")
            for collection, init in inits.items():
                print(f"  {collection}: {json.dumps(init)}")
            facts = Facts(admin, Listener(ws))
            facts.note("init", inits)
            _changes(facts, seeded.shared_sequence_id)
            _batched(admin, facts)
        if args.json:
            args.json.write_text(json.dumps(facts.steps, indent=2))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
