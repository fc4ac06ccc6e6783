"""News articles ingested by the worker from NewsAPI.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS news_articles (
            id            bigserial PRIMARY KEY,
            symbol        text NOT NULL,
            title         text NOT NULL,
            url           text NOT NULL,
            source        text,
            description   text,
            published_at  timestamptz NOT NULL,
            fetched_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (symbol, url)
        )
        """
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS news_articles_symbol_published_idx "
        "ON news_articles (symbol, published_at DESC)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS news_articles")
