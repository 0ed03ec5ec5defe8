"""storybench's own code paths around its Directus client, rewritten from their documented
behaviour so the tests can drive them with our ``DirectusClient``.

- :class:`IntegrationService` does what storybench's ``DirectusIntegrationService`` does:
  fetch a version, convert it to its MongoDB ``prompts`` document with its ``config_hash``,
  save it content-addressed (look the hash up; deactivate all, then insert or reactivate), list
  versions as dicts, test the connection. Every ``DirectusClientError`` becomes a plain
  ``Exception`` with the same message prefix storybench uses.
- :func:`sync_prompts` is its ``sync-prompts`` command (``--version``, ``--list-versions``,
  ``--test-connection``, or none), returning the lines it would print.
- :func:`evaluation_criteria` is its evaluator's ``get_evaluation_criteria``.

Nothing here is storybench's code; the collection layout and the hash are storybench's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storybench_prompts import DirectusClientError
from storybench_prompts.compat.storybench.client import DirectusClient
from storybench_prompts.compat.storybench.models import (
    StorybenchEvaluationStructure,
    StorybenchPromptsStructure,
)


def storybench_config_hash(data: dict[str, Any]) -> str:
    """storybench's ``ConfigService.generate_config_hash``: 16 hex of SHA-256 of sorted JSON."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class PromptsDocument:
    """storybench's ``Prompts`` model: one document of its ``prompts`` collection."""

    config_hash: str
    version: int
    sequences: dict[str, list[dict[str, str]]]
    created_at: datetime
    is_active: bool = True


class ConfigService:
    def generate_config_hash(self, data: dict[str, Any]) -> str:
        return storybench_config_hash(data)


class MongoPromptRepository:
    """storybench's ``PromptRepository`` over a PyMongo async database."""

    def __init__(self, database: Any) -> None:
        self.collection = database["prompts"]

    async def find_by_config_hash(self, config_hash: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.collection.find_one({"config_hash": config_hash})
        return found

    async def deactivate_all(self) -> None:
        await self.collection.update_many({"is_active": True}, {"$set": {"is_active": False}})

    async def update_by_id(self, document_id: Any, changes: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": document_id}, {"$set": changes})

    async def create(self, prompts: PromptsDocument) -> None:
        await self.collection.insert_one(
            {
                "config_hash": prompts.config_hash,
                "version": prompts.version,
                "sequences": prompts.sequences,
                "created_at": prompts.created_at,
                "is_active": prompts.is_active,
            }
        )

    async def find_active(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.collection.find_one({"is_active": True})
        return found


class IntegrationService:
    def __init__(self, database: Any, directus_client: Any = None) -> None:
        self.database = database
        self.directus_client = directus_client or DirectusClient()
        self.prompt_repo: Any = MongoPromptRepository(database) if database is not None else None
        self.config_service: Any = ConfigService()

    async def sync_prompts_from_directus(
        self, version_number: int | None = None
    ) -> PromptsDocument | None:
        try:
            directus_data = await self.directus_client.fetch_prompts(version_number)
            if not directus_data:
                return None
            prompts = self._convert_to_mongodb_format(directus_data)
            await self._save_prompts_to_mongodb(prompts)
            return prompts
        except DirectusClientError as e:
            raise Exception(f"Failed to sync prompts from Directus: {e}") from e

    def _convert_to_mongodb_format(self, data: StorybenchPromptsStructure) -> PromptsDocument:
        sequences = {
            name: [{"name": p.name, "text": p.text} for p in prompts]
            for name, prompts in data.sequences.items()
        }
        config_hash = self.config_service.generate_config_hash(
            {"sequences": sequences, "version": data.version, "directus_id": data.directus_id}
        )
        return PromptsDocument(
            config_hash=config_hash,
            version=data.version,
            sequences=sequences,
            created_at=data.created_at,
            is_active=True,
        )

    async def _save_prompts_to_mongodb(self, prompts: PromptsDocument) -> None:
        existing = await self.prompt_repo.find_by_config_hash(prompts.config_hash)
        if existing:
            if not existing["is_active"]:
                await self.prompt_repo.deactivate_all()
                await self.prompt_repo.update_by_id(existing["_id"], {"is_active": True})
        else:
            await self.prompt_repo.deactivate_all()
            await self.prompt_repo.create(prompts)

    async def get_active_prompts(self) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.prompt_repo.find_active()
        return found

    async def test_directus_connection(self) -> bool:
        connected: bool = await self.directus_client.test_connection()
        return connected

    async def list_available_versions(self) -> list[dict[str, Any]]:
        try:
            versions = await self.directus_client.list_published_versions()
            return [
                {
                    "version_number": v.version_number,
                    "name": v.version_name,
                    "description": v.description,
                    "date_created": v.date_created,
                    "date_updated": v.date_updated,
                }
                for v in versions
            ]
        except DirectusClientError as e:
            raise Exception(f"Failed to list versions: {e}") from e


async def sync_prompts(
    database: Any,
    *,
    version: int | None = None,
    list_versions: bool = False,
    test_connection: bool = False,
) -> list[str]:
    """storybench's ``sync-prompts``: what it prints, line by line."""
    out: list[str] = []
    try:
        service = IntegrationService(database, DirectusClient())
        if test_connection:
            out.append("Testing connection to Directus CMS...")
            if await service.test_directus_connection():
                out.append("✅ Connection successful!")
            else:
                out.append("❌ Connection failed!")
                return out
        if list_versions:
            out.append("Fetching available versions from Directus...")
            versions = await service.list_available_versions()
            if not versions:
                out.append("No published versions found.")
                return out
            out.append(f"Found {len(versions)} published versions:")
            for v in versions:
                out.append(f"  Version {v['version_number']}: {v['name']}")
                if v["description"]:
                    out.append(f"    Description: {v['description']}")
                out.append(f"    Created: {v['date_created']}")
            return out
        out.append("Syncing prompts from Directus CMS...")
        prompts = await service.sync_prompts_from_directus(version)
        if prompts:
            out.append("✅ Prompts synced successfully!")
            out.append(f"Version: {prompts.version}")
            out.append(f"Sequences: {len(prompts.sequences)}")
            for name, seq_prompts in prompts.sequences.items():
                out.append(f"  - {name}: {len(seq_prompts)} prompts")
            active = await service.get_active_prompts()
            if active:
                out.append(f"Active prompts version: {active['version']}")
        else:
            out.append("❌ No prompts found to sync")
    except DirectusClientError as e:
        out.append(f"❌ Directus error: {e}")
    except Exception as e:
        out.append(f"❌ Error: {e}")
    return out


async def evaluation_criteria(
    client: DirectusClient, version_number: int | None = None
) -> StorybenchEvaluationStructure:
    """storybench's evaluator: the criteria of a version (default: the latest published)."""
    if version_number:
        version = await client.get_evaluation_version_by_number(version_number)
    else:
        version = await client.get_latest_published_evaluation_version()
    if not version:
        raise ValueError(
            "No evaluation version found"
            + (f" for version {version_number}" if version_number else " (latest published)")
        )
    return await client.convert_to_storybench_evaluation_format(version)
