"""The SMTP sink of a relay host in the partition harness (run as a script).

    python tests/fleet/relay_sink.py HOST PORT OUT

Accepts every message and appends one line per accepted message to OUT (flushed
at once, so the harness reads it while the send runs and nothing is lost when
the process is stopped):

    <time of MAIL FROM> <time the DATA ended> <client address> <recipient> <delivery id>

The times are ``time.time()`` (one clock: all namespaces share the kernel's), the
client address says which worker host sent it, and the delivery id comes from the
Message-ID (``<delivery id>.<salt>@domain``, docs/delivery.md).
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

_MSGID = re.compile(rb"^Message-ID:\s*<(\d+)\.", re.IGNORECASE | re.MULTILINE)


class Recorder:
    def __init__(self, out: str) -> None:
        self.out = open(out, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives as long as the process)
        self.lock = threading.Lock()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-PIPELINING")  # like Postfix
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        envelope.t_mail = time.time()
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or envelope.content
        head = data.split(b"\r\n\r\n", 1)[0]
        m = _MSGID.search(head)
        delivery = m.group(1).decode() if m else "-"
        t_mail = getattr(envelope, "t_mail", time.time())
        line = "".join(
            f"{t_mail:.6f} {time.time():.6f} {session.peer[0]} {rcpt} {delivery}\n"
            for rcpt in envelope.rcpt_tos
        )
        with self.lock:
            self.out.write(line)
        return "250 OK"


def main() -> None:
    host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ctrl = Controller(Recorder(out), hostname=host, port=port, decode_data=False,
                      data_size_limit=10 * 1024 * 1024)  # fmt: skip
    ctrl.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"sink listening on {host}:{port}", flush=True)
    stop.wait()
    ctrl.stop()


if __name__ == "__main__":
    main()
