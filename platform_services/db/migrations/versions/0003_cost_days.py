"""Each UTC day's cost, recorded by the platform as it happens.

The API computes the day's cost so far whenever it computes its cost report
(every ``/api/metrics/cost`` and, with monitoring, every Prometheus scrape of
``/metrics``) and writes it here; a day's last write is its cost. Days the
platform did not run have no row: the cost history is what was recorded,
never modelled (issue 16, "cost history invents days").

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS cost_days (
            day                date PRIMARY KEY,
            cost_usd           double precision NOT NULL,
            first_recorded_at  timestamptz NOT NULL DEFAULT now(),
            last_recorded_at   timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS cost_days")
