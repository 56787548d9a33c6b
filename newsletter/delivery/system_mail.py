"""Mail the product sends on its own behalf, one message at a time: opt-in confirmations
and review notices.

Signed with the system DKIM key and sent through the relays, with a bounce address that
names the subscriber, so a confirmation that bounces is handled like any other bounce.
"""

from __future__ import annotations

from email.message import EmailMessage

from newsletter.audience.optin import OptinResult, confirmation_message, request_subscription
from newsletter.core.safety.signing import bounce_address, system_bounce_token, verify_confirm
from newsletter.delivery.dkim import sign_system_mail
from newsletter.delivery.relays import connect
from newsletter.delivery.smtp import Outcome

__all__ = ["send_confirmation", "send_message", "subscribe"]


def send_confirmation(addr: str, list_name: str, token: str, variant: str) -> None:
    """Mail the confirmation that a request returned (``OptinResult.mail``)."""
    msg = confirmation_message(addr, list_name, token, variant)
    bounce = system_bounce_token(verify_confirm(token)[0])
    send_message(bounce_address(bounce), addr, msg)


def subscribe(email: str, list_id: int, **request: object) -> OptinResult:
    """Request a subscription and mail its confirmation now (the command line, tests);
    the web form answers first and mails afterwards."""
    result = request_subscription(email, list_id, **request)  # type: ignore[arg-type]
    if result.mail is not None:
        send_confirmation(*result.mail)
    return result


def send_message(envelope: str, rcpt: str, msg: EmailMessage) -> Outcome:
    """Sign and send one message; the relay's answer (a refusal does not raise)."""
    data = sign_system_mail(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    conn = connect()
    try:
        return conn.send(envelope, rcpt, data)
    finally:
        conn.close()
