"""A pinned run against a real Directus with realtime on: an editor publishes a new latest and
edits a version the run read; the run serves its first content throughout and reports the
drift, while an unpinned repository in the same process sees the new content."""

from __future__ import annotations

import anyio
import pytest

from storybench_prompts import build_repository
from storybench_prompts._compose import build_stack
from tests.test_realtime_cache import (
    prompt_id_of,
    realtime_directus,  # noqa: F401  (the fixture)
    settings_for,
    version_id_of,
    wait_open,
)

pytestmark = [pytest.mark.directus, pytest.mark.timeout(180), pytest.mark.anyio]


async def eventually(check, seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not await check():
            await anyio.sleep(0.01)


async def test_a_pinned_run_keeps_its_content_and_reports_what_changed(
    realtime_directus,  # noqa: F811
    tmp_path,
):
    server = realtime_directus
    # TTLs far longer than the test: only the realtime channel brings the changes.
    settings = settings_for(server, tmp_path, latest_ttl=3600, pinned_ttl=3600)
    async with build_stack(settings) as stack, build_repository(settings) as elsewhere:
        repo = stack.prompts
        await wait_open(repo)
        await wait_open(elsewhere)
        async with repo.pinned() as run:
            latest = await run.latest()
            two = await run.get(2)
            criteria = await run.evaluations.latest()
            assert (latest.version, two.version, criteria.version) == (3, 2, 3)
            assert (await elsewhere.get(2)).config_hash == two.config_hash

            # The editor: v4 published (a new latest), a prompt of v2 edited in place.
            server.update_item(
                "prompt_set_versions", version_id_of(server, 4), {"status": "published"}
            )
            server.update_item("prompts", prompt_id_of(server, 2), {"text": "Rewritten mid-run."})

            async def outside_sees_it() -> bool:
                for where in (repo, elsewhere):  # the same stack outside the run, and another
                    if (await where.latest()).version != 4:
                        return False
                    if (await where.get(2)).config_hash == two.config_hash:
                        return False
                return True

            await eventually(outside_sees_it)
            edited_two = await repo.get(2)
            new_latest = await repo.latest()
            assert "Rewritten mid-run." in {
                p.text for ps in edited_two.sequences.values() for p in ps
            }

            # Inside the run: the first content, throughout.
            for _ in range(3):
                assert (await run.latest()).config_hash == latest.config_hash
                assert (await run.get(2)).config_hash == two.config_hash
                assert (await run.get(3)).config_hash == latest.config_hash
                assert (await run.evaluations.latest()).config_hash == criteria.config_hash

            async def drifts_recorded() -> bool:
                return len(run.drifts) >= 2

            await eventually(drifts_recorded)
            drifts = {(d.kind, d.version, d.change): d for d in run.drifts}
            edit = drifts[("prompts", 2, "edited")]
            assert (edit.old_hash, edit.new_hash) == (two.config_hash, edited_two.config_hash)
            published = drifts[("prompts", 4, "latest")]
            assert (published.old_hash, published.new_hash) == (
                latest.config_hash,
                new_latest.config_hash,
            )
            assert published.pinned_version == 3
            assert len(run.drifts) == 2  # each once; nothing about evaluations

            lock = run.lock()
            assert (lock.prompt_set.version, lock.prompt_set.config_hash) == (
                3,
                latest.config_hash,
            )
            assert lock.evaluation_set.config_hash == criteria.config_hash
            assert lock.directus_url == server.url

        # The next run sees the content as it is now.
        async with repo.pinned() as later:
            assert (await later.latest()).config_hash == new_latest.config_hash
            assert (await later.get(2)).config_hash == edited_two.config_hash
            assert later.drifts == []
