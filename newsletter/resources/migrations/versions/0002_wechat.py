"""WeChat channel: assets, publications, article statistics

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSONT = sa.JSON()
JSONB = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "wechat_asset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("media_id", sa.String(length=128), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("appid", "sha256", "kind", name="uq_wechat_asset"),
    )
    op.create_table(
        "wechat_publication",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("send_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("appid", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("variant", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("failed_step", sa.String(length=16), nullable=True),
        sa.Column("clientmsgid", sa.String(length=64), nullable=False),
        sa.Column("article_count", sa.Integer(), nullable=False),
        sa.Column("article_titles", JSONT, nullable=False),
        sa.Column("draft_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("draft_media_id", sa.String(length=128), nullable=True),
        sa.Column("publish_id", sa.String(length=64), nullable=True),
        sa.Column("publish_status", sa.Integer(), nullable=True),
        sa.Column("publish_msg_data_id", sa.String(length=64), nullable=True),
        sa.Column("article_id", sa.String(length=128), nullable=True),
        sa.Column("article_urls", JSONT, nullable=False),
        sa.Column("fail_idx", JSONT, nullable=False),
        sa.Column("msg_id", sa.String(length=64), nullable=True),
        sa.Column("msg_data_id", sa.String(length=64), nullable=True),
        sa.Column("mass_status", sa.String(length=32), nullable=True),
        sa.Column("sent_date", sa.String(length=10), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["send_id"], ["send.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("send_id"),
    )
    op.create_index("ix_wechat_publication_publish_id", "wechat_publication", ["publish_id"])
    op.create_table(
        "wechat_article_stat",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("msg_data_id", sa.String(length=64), nullable=False),
        sa.Column("article_index", sa.Integer(), nullable=False),
        sa.Column("ref_date", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("read_user", sa.Integer(), nullable=False),
        sa.Column("read_count", sa.Integer(), nullable=False),
        sa.Column("share_user", sa.Integer(), nullable=False),
        sa.Column("share_count", sa.Integer(), nullable=False),
        sa.Column("fav_user", sa.Integer(), nullable=False),
        sa.Column("fav_count", sa.Integer(), nullable=False),
        sa.Column("raw", JSONB, nullable=False),
        sa.Column("synced_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["publication_id"], ["wechat_publication.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "msg_data_id", "article_index", "ref_date", name="uq_wechat_article_stat"
        ),
    )


def downgrade() -> None:
    op.drop_table("wechat_article_stat")
    op.drop_index("ix_wechat_publication_publish_id", table_name="wechat_publication")
    op.drop_table("wechat_publication")
    op.drop_table("wechat_asset")
