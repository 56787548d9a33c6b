"""Console services for a list's welcome series (editor and above change it; every role
reads it): the steps with their figures, add, edit, reorder, delete, lint and preview.
Each change is audited by :mod:`newsletter.delivery.welcome` under the acting user.

The lint is the issues' own (:func:`newsletter.reports.lint.full_lint`: structure,
links, images, size budgets, e-mail CSS), so a step is refused for what an issue is."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from newsletter.content.lint import LintMessage
from newsletter.core.db import session_scope
from newsletter.delivery import welcome
from newsletter.models import MailingList
from newsletter.web.console.auth import Principal

__all__ = [
    "add_welcome_step",
    "delete_welcome_step",
    "lint_welcome_step",
    "move_welcome_step",
    "update_welcome_step",
    "welcome_frame",
    "welcome_series",
    "welcome_step",
]


def _full_lint(source: str, ctx: Any) -> list[LintMessage]:
    from newsletter.reports.lint import full_lint

    messages, _budgets = full_lint(source, None, lambda _doc: ctx)
    return messages


def _messages(messages: list[LintMessage]) -> list[dict[str, Any]]:
    return [
        {"level": m.level, "line": m.line, "code": m.code, "message": m.message} for m in messages
    ]


def welcome_series(list_id: int) -> dict[str, Any]:
    """The list (id, name) and its steps in order, each with its figures."""
    with session_scope() as s:
        steps = welcome.steps(s, list_id)
        ml = s.get(MailingList, list_id)
        assert ml is not None
        return {
            "list": {"id": ml.id, "name": ml.name},
            "steps": [welcome.step_row(s, st) for st in steps],
            "max_steps": welcome.MAX_STEPS,
            "template": welcome.TEMPLATE,
        }


def welcome_step(list_id: int, step_id: int) -> dict[str, Any]:
    with session_scope() as s:
        return welcome.step_row(s, welcome.get_step(s, list_id, step_id), source=True)


def lint_welcome_step(list_id: int, source: str) -> list[dict[str, Any]]:
    with session_scope() as s:
        return _messages(welcome.lint_step(s, list_id, source, _full_lint))


def add_welcome_step(
    actor: Principal, list_id: int, source: str, delay: str, request: Request | None = None
) -> dict[str, Any]:
    with session_scope() as s:
        step, messages = welcome.add_step(s, list_id, source, delay, actor.username, _full_lint)
        return {**welcome.step_row(s, step), "lint": _messages(messages)}


def update_welcome_step(
    actor: Principal,
    list_id: int,
    step_id: int,
    *,
    source: str | None = None,
    delay: str | None = None,
    request: Request | None = None,
) -> dict[str, Any]:
    with session_scope() as s:
        step, messages = welcome.update_step(
            s, list_id, step_id, source=source, delay=delay, actor=actor.username,
            linter=_full_lint,
        )  # fmt: skip
        return {**welcome.step_row(s, step), "lint": _messages(messages)}


def move_welcome_step(
    actor: Principal, list_id: int, step_id: int, direction: str, request: Request | None = None
) -> dict[str, Any]:
    with session_scope() as s:
        welcome.move_step(s, list_id, step_id, direction, actor.username)
    return welcome_series(list_id)


def delete_welcome_step(
    actor: Principal, list_id: int, step_id: int, request: Request | None = None
) -> None:
    with session_scope() as s:
        welcome.delete_step(s, list_id, step_id, actor.username)


def welcome_frame(list_id: int, step_id: int, variant: str) -> str:
    """The step's e-mail as a reader gets it, in ``variant`` (the issues' preview)."""
    from newsletter.web.console.services.issues import frame_html

    with session_scope() as s:
        issue_id = welcome.get_step(s, list_id, step_id).issue_id
    return frame_html(issue_id, "email_html", variant)
