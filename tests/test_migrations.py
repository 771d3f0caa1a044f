"""The migrations build exactly the schema the models describe, on the database under test."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import swarmdesk.main  # noqa: F401  (imports every domain's models)
from swarmdesk.core.models import Base
from swarmdesk.runtime import Runtime


async def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    def diff(sync_conn):  # noqa: ANN001, ANN202
        context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(context, Base.metadata)

    async with runtime.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    # Tables the test harness adds for itself are not the product's.
    assert [d for d in differences if not (d[0] == "remove_table" and d[1].name.startswith("pytest"))] == []
