"""Console services for relays and warm-up: what the warm-up page and a send's page show.

Read-only; relay passwords are never part of what is returned.
"""

from __future__ import annotations

from typing import Any

from newsletter.core.db import session_scope

__all__ = ["overview", "send_relay_facts"]


def send_relay_facts(send_id: int) -> dict[str, Any]:
    """{"relays": {name: sent}, "warmup_days": {day: due}} of a send (for its page)."""
    from newsletter.delivery.relays import relay_counts
    from newsletter.delivery.warmup import send_plan

    with session_scope() as s:
        plan = send_plan(s, send_id)
        return {
            "relays": relay_counts(s, send_id),
            "warmup_days": plan if len(plan) > 1 else {},
        }


def overview() -> dict[str, Any]:
    from newsletter.delivery.relay_config import RelayConfigError
    from newsletter.delivery.relays import status
    from newsletter.delivery.warmup import allowance, plans

    try:
        relays: list[dict[str, Any]] = status()
        relay_error = None
    except RelayConfigError as exc:
        relays, relay_error = [], str(exc)
    with session_scope() as s:
        domains = sorted(plans(s))
        warm = [a for a in (allowance(s, d) for d in domains) if a is not None]
    return {"relays": relays, "relay_error": relay_error, "plans": warm}
