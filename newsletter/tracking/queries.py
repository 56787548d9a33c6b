"""The rollup rebuild's hand-written SQL, named and documented in one place.

The rebuild recomputes one send's rollups from its raw events with one GROUP BY per
rollup table; it is written out because it runs window functions over a join that the
ORM would only obscure. The statements differ between PostgreSQL and SQLite only in two
fragments (the hour an event falls in, the domain group of an address).
``tests/tracking/test_queries.py`` EXPLAINs every statement on PostgreSQL.
"""

from __future__ import annotations

from newsletter.tracking import data

__all__ = ["rebuild_statements"]


def _sql_fragments(dialect: str) -> tuple[str, str]:
    if dialect == "postgresql":
        hour = "date_trunc('hour', ev.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        dom = "lower(split_part(sub.email, '@', 2))"
    else:
        hour = "strftime('%Y-%m-%d %H:00:00.000000', ev.occurred_at)"
        dom = "lower(substr(sub.email, instr(sub.email, '@') + 1))"
    whens = []
    for g, doms in data.DOMAIN_GROUPS.items():
        safe = [x for x in doms if all(c.isalnum() or c in ".-" for c in x)]
        whens.append(f"WHEN {dom} IN ({', '.join(repr(x) for x in safe)}) THEN '{g}'")
    group = f"CASE {' '.join(whens)} ELSE '{data.OTHER_GROUP}' END"
    return hour, group


def rebuild_statements(dialect: str) -> list[tuple[str, str]]:
    """(name, SQL with ``:s`` = the send id) in the order the rebuild runs them:
    clear the send's rollups and first-seen markers, then fill each rollup table, the
    markers, and the deliveries' first human open and click from the raw events."""
    hour, group = _sql_fragments(dialect)
    # every event of the send with its hour, variant, domain group and class bucket
    base = f"""
        SELECT ev.id, ev.delivery_id, ev.kind, ev.cls, ev.link_position, ev.occurred_at,
               {hour} AS h, d.variant AS variant, {group} AS g,
               CASE WHEN ev.cls = 'machine' THEN 'm' ELSE 'h' END AS b
        FROM event ev
        JOIN delivery d ON d.id = ev.delivery_id
        JOIN subscriber sub ON sub.id = d.subscriber_id
        WHERE ev.send_id = :s"""
    # rn = 1 on the first event of each (delivery, kind, bucket): what a unique counts
    ranked = f"""(SELECT e.*, row_number() OVER (PARTITION BY delivery_id, kind, b ORDER BY id) AS rn
                  FROM ({base}) e) r"""
    out = [(f"clear {tbl}", f"DELETE FROM {tbl} WHERE send_id = :s")
           for tbl in ("rollup_segment", "rollup_hourly", "rollup_link_cls")]  # fmt: skip
    out.append(
        (
            "clear first-seen markers",
            "DELETE FROM tracking_first WHERE delivery_id IN (SELECT id FROM delivery WHERE send_id = :s)",
        )
    )
    out.append(
        (
            "segment rollups",
            f"""
        INSERT INTO rollup_segment (send_id, variant, domain_group, kind, cls, total, uniq)
        SELECT :s, variant, g, kind, cls, count(*), sum(CASE WHEN rn = 1 THEN 1 ELSE 0 END)
        FROM {ranked} GROUP BY variant, g, kind, cls""",
        )
    )
    out.append(
        (
            "hourly rollups",
            f"""
        INSERT INTO rollup_hourly (send_id, hour, kind, cls, total, uniq)
        SELECT :s, h, kind, cls, count(*), sum(CASE WHEN rn = 1 THEN 1 ELSE 0 END)
        FROM {ranked} GROUP BY h, kind, cls""",
        )
    )
    out.append(
        (
            "link rollups",
            f"""
        INSERT INTO rollup_link_cls (send_id, link_position, cls, total, uniq)
        SELECT :s, link_position, cls, count(*), sum(CASE WHEN rn = 1 THEN 1 ELSE 0 END)
        FROM (SELECT e.*, row_number() OVER (PARTITION BY delivery_id, link_position, b
                                             ORDER BY id) AS rn
              FROM ({base}) e WHERE kind = 'click' AND link_position IS NOT NULL) r
        GROUP BY link_position, cls""",
        )
    )
    out.append(
        (
            "first-seen markers",
            f"""
        INSERT INTO tracking_first (delivery_id, key)
        SELECT DISTINCT delivery_id, substr(kind, 1, 12) || ':' || b FROM ({base}) e
        WHERE NOT (kind IN ('open', 'click') AND b = 'h')
        UNION
        SELECT DISTINCT delivery_id, 'l' || CAST(link_position AS VARCHAR(8)) || ':' || b
        FROM ({base}) e WHERE kind = 'click' AND link_position IS NOT NULL""",
        )
    )
    for col, kind in (("first_open_at", "open"), ("first_click_at", "click")):
        out.append(
            (
                f"deliveries' {col}",
                f"""
            UPDATE delivery SET {col} = (
                SELECT ev.occurred_at FROM event ev
                WHERE ev.delivery_id = delivery.id AND ev.kind = '{kind}' AND ev.cls <> 'machine'
                ORDER BY ev.id LIMIT 1)
            WHERE send_id = :s""",
            )
        )
    return out
