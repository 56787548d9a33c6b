"""What the benchmarks share: a scratch database, seed rows, inputs and timing.

* :func:`scratch_database` / :func:`drop_database`: a throwaway PostgreSQL
  database per run (B4 to B9), dropped afterwards even with sessions left open.
* :func:`sent_send_sql`: the rows a finished email send stands on (list,
  publication, issue, send), for benchmarks that seed with plain SQL (B6, B7).
* :func:`print_result`: the machine-readable ``RESULT {json}`` line each script prints
  last (one per key figure), which ``benchmarks/quick.py`` collects.
* For the message-assembly benchmarks (B2, B3): the real renderer's output for
  ``examples/issue-sample.md`` (~97 KB CJK HTML + ~75 KB text, with
  %%TOKEN%%/%%UNSUB%%/%%NAME%% slots); if the renderer cannot run, a
  synthesised ~100 KB CJK HTML of the same shape.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from newsletter.delivery.assemble import CompiledMessage, Recipient, compile_message  # noqa: E402
from newsletter.devtools.proctree import descendants, proc_stats, read_stats  # noqa: E402

SUBJECT = "《营商环境与数字经济政策周报》｜第47期"
FROM_NAME = "营商环境政策周报"
FROM_ADDR = "news@example.org"
LIST_ID = "weekly.example.org"
FEEDBACK_ID = "i47:weekly:newsletter:example.org"
UNSUB_BASE = "https://news.example.org/u/"
UNSUB_MAILTO = "unsubscribe@example.org"
SIGNED = [
    "From", "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID",
]  # fmt: skip


PG_ADMIN = os.environ.get("NEWSLETTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class ScratchDb:
    """A throwaway database: its name, its SQLAlchemy URL and its plain libpq URL."""

    name: str
    url: str
    dsn: str
    admin: str


def scratch_database(tag: str = "", admin: str = PG_ADMIN) -> ScratchDb:
    """Create an empty database ``nlbench_[tag_]<random>`` next to ``admin``'s."""
    import psycopg

    name = f"nlbench_{tag + '_' if tag else ''}{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{admin.rsplit('/', 1)[0]}/{name}"
    return ScratchDb(name, dsn.replace("postgresql://", "postgresql+psycopg://", 1), dsn, admin)


def drop_database(db: ScratchDb) -> None:
    """Drop the scratch database, closing whatever sessions are still on it."""
    import psycopg

    try:
        with psycopg.connect(db.admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    except psycopg.Error as exc:  # a failed benchmark must still print its own error
        sys.stderr.write(f"could not drop {db.name}: {exc}\n")


def sent_send_sql(tag: str, *, number: int, title: str, planned: int, days_ago: int = 0) -> str:
    """SQL for the rows under one finished email send, all with id 1: list, publication,
    issue (sent) and send (``planned`` deliveries; started and finished ``days_ago`` days
    ago when given)."""
    when = (
        f", now() - interval '{days_ago} days', now() - interval '{days_ago} days'"
        if days_ago
        else ""
    )
    return f"""
        INSERT INTO mailing_list (id, name, description, double_opt_in, created_at)
        VALUES (1, '{tag}', '', false, now());
        INSERT INTO publication (id, slug, name, from_name, from_address, list_id_domain,
            postal_address, timezone, track_opens, track_clicks, created_at)
        VALUES (1, '{tag}', '{tag.upper()}', '{tag.upper()}', '{tag}@example.org',
                '{tag}.example.org', '', 'Asia/Shanghai', true, true, now());
        INSERT INTO issue (id, publication_id, number, title, period, source_text, source_hash,
            status, created_at, updated_at)
        VALUES (1, 1, {number}, '{title}', '', '', repeat('0', 64), 'sent', now(), now());
        INSERT INTO send (id, publication_id, issue_id, channel, list_id, variant_rule, state,
            planned_count, excluded_count, created_at, updated_at
            {", started_at, finished_at" if days_ago else ""})
        VALUES (1, 1, 1, 'email', 1, 'preference', 'finished', {planned}, 0, now(), now(){when});
    """


def print_result(bench: str, metric: str, value: float, better: str, unit: str) -> None:
    """Print one key figure as ``RESULT {json}`` after the human table (read by quick.py).

    ``better`` is "higher" or "lower"; ``unit`` is what the value counts ("x", "%", "ms")."""
    assert better in ("higher", "lower"), better
    line = {"bench": bench, "metric": metric, "value": value, "better": better, "unit": unit}
    print("RESULT " + json.dumps(line, ensure_ascii=False), flush=True)


def one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def nproc() -> int:
    return os.cpu_count() or 1


def sample_email() -> tuple[str, str, str, str]:
    """(html, text, subject, source) of the ~100 KB issue."""
    try:
        from newsletter.content.parser import load_issue
        from newsletter.render import RenderContext, render_all

        issue = load_issue(ROOT / "examples" / "issue-sample.md")[0]
        ctx = RenderContext(
            base_url="https://news.example.org",
            publication_name=FROM_NAME,
            publication_slug="weekly",
            postal_address="上海市黄浦区示例路 1 号 200001",
            sender_name="示例研究院",
        )
        mail = render_all(issue, ctx).email
        return mail.html, mail.text, mail.subject or SUBJECT, "examples/issue-sample.md (rendered)"
    except Exception:  # pragma: no cover - fallback when the renderer is broken
        para = "国务院办公厅印发关于进一步优化营商环境降低市场主体制度性交易成本的意见，" * 12
        items = []
        for i in range(60):
            items.append(
                f'<tr><td style="padding:8px 0;font-family:PingFang SC,Microsoft YaHei,sans-serif;'
                f'line-height:1.7"><a href="https://news.example.org/c/%%TOKEN%%/{i}" '
                f'style="color:#1a56db">政策解读第{i}条</a>\n<p style="margin:0">{para}</p></td></tr>\n'
            )
        html = (
            '<!doctype html><html><body><img src="https://news.example.org/o/%%TOKEN%%.gif" '
            'width="1" height="1" alt="">\n<p>%%NAME%%，您好！</p>\n<table width="600">\n'
            + "".join(items)
            + '</table>\n<a href="https://news.example.org/u/%%UNSUB%%">退订</a>\n</body></html>\n'
        )
        text = (
            "%%NAME%%，您好！\n"
            + (para + "\n") * 60
            + "退订 https://news.example.org/u/%%UNSUB%%\n"
        )
        return html, text, SUBJECT, "synthesised CJK HTML"


def compile_sample(html: str, text: str, subject: str) -> CompiledMessage:
    return compile_message(
        html_body=html,
        text_body=text,
        subject=subject,
        from_name=FROM_NAME,
        from_address=FROM_ADDR,
        list_id=LIST_ID,
        list_name=FROM_NAME,
        feedback_id=FEEDBACK_ID,
        unsub_base=UNSUB_BASE,
        unsub_mailto=UNSUB_MAILTO,
    )


def recipient(i: int) -> Recipient:
    return Recipient(
        delivery_id=1000 + i,
        email=f"reader{i}@example.com",
        name=f"读者{i}",
        token=f"d{1000 + i:x}.AbCdEfGhIjKlMnOp",
        unsub=f"u{i:x}-1.QrStUvWxYz012345",
    )


def naive_build(html: str, text: str, subject: str, r: Recipient) -> bytes:
    """The naive per-recipient build: fill the template, EmailMessage, as_bytes().

    ``cte="8bit"`` so that it produces the same kind of message as ours (the
    stdlib default would pick base64 for CJK, a larger and different message).
    """
    h = html.replace("%%TOKEN%%", r.token).replace("%%UNSUB%%", r.unsub)
    h = h.replace("%%NAME%%", r.name)
    t = text.replace("%%TOKEN%%", r.token).replace("%%UNSUB%%", r.unsub)
    t = t.replace("%%NAME%%", r.name)
    msg = EmailMessage()
    msg["From"] = formataddr((FROM_NAME, FROM_ADDR))
    msg["To"] = formataddr((r.name, r.email))
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg["List-Id"] = f"{FROM_NAME} <{LIST_ID}>"
    msg["List-Unsubscribe"] = f"<{UNSUB_BASE}{r.unsub}>, <mailto:unsubscribe+{r.unsub}@example.org>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Feedback-ID"] = FEEDBACK_ID
    msg["Precedence"] = "bulk"
    msg.set_content(t, cte="8bit")
    msg.add_alternative(h, subtype="html", cte="8bit")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def rate(fn: Callable[[int], object], seconds: float, min_iter: int = 5) -> tuple[float, int]:
    """Messages per second of ``fn(i)`` over about ``seconds`` (after one warm-up call)."""
    fn(0)
    n = 0
    t0 = time.perf_counter()
    while True:
        fn(n)
        n += 1
        el = time.perf_counter() - t0
        if n >= min_iter and el >= seconds:
            return n / el, n


def table(rows: list[tuple[str, str]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(w)} | {v} |" for k, v in rows)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) spent so far by process ``pid`` and its descendants,
    counting the children they have already reaped (``cutime``/``cstime``). Read before
    and after a run: the difference is what the tree spent in between, including pool
    children that were replaced meanwhile. From ``/proc/*/stat``."""
    tck = os.sysconf("SC_CLK_TCK")
    stats = proc_stats()
    total = 0
    for p in descendants(pid, stats):
        fields = stats.get(p)
        if fields is not None:
            total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / tck


class TreeCpuMeter:
    """:func:`tree_cpu` of one process tree every 0.25 s in a thread, so that a benchmark
    can tell the CPU of a phase (from the first message to the last, say) from the
    whole run's."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.samples: list[tuple[float, float]] = []  # (time.time(), CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.samples.append((time.time(), tree_cpu(self.pid)))

    def __enter__(self) -> TreeCpuMeter:
        self.samples.append((time.time(), tree_cpu(self.pid)))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), tree_cpu(self.pid)))

    def total(self) -> float:
        return self.samples[-1][1] - self.samples[0][1]

    def inside(self, start: float, end: float) -> tuple[float, float, float] | None:
        """(first sample's time, last sample's time, CPU seconds between them) for the
        samples within [start, end] (time.time()); None with fewer than two."""
        within = [s for s in self.samples if start <= s[0] <= end]
        if len(within) < 2:
            return None
        return within[0][0], within[-1][0], within[-1][1] - within[0][1]


class CpuMeter:
    """CPU seconds used by each kind of process on the machine while it runs.

    A thread reads ``/proc/*/stat`` every second and keeps each process's last
    reading, so processes that start and end inside the window are counted too (up to
    their last sample). ``kinds`` maps a name to a test on (comm, cmdline)."""

    def __init__(self, kinds: dict[str, Callable[[str, str], bool]]) -> None:
        import threading

        self.kinds = kinds
        self._tck = os.sysconf("SC_CLK_TCK")
        self._first: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], tuple[str, float]] = {}
        self._kind: dict[tuple[str, str], str] = {}  # read each process's cmdline once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0
        self.wall = 0.0

    def _sample(self, first: bool) -> None:
        for number, comm, fields in read_stats():
            pid = str(number)
            cpu = (int(fields[11]) + int(fields[12])) / self._tck
            key = (pid, fields[19])  # pid + start time: a reused pid is another process
            kind = self._kind.get(key)
            if kind is None:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode("ascii", "replace")
                except OSError:
                    continue
                kind = next((k for k, test in self.kinds.items() if test(comm, cmd)), "other")
                self._kind[key] = kind
            if first:
                self._first[key] = cpu
            self._last[key] = (kind, cpu)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._sample(False)

    def __enter__(self) -> CpuMeter:
        self._sample(True)
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(False)
        self.wall = time.perf_counter() - self._t0

    def cores(self) -> dict[str, float]:
        """Average cores used by each kind over the window (CPU seconds ÷ wall seconds)."""
        used: dict[str, float] = {}
        for key, (kind, cpu) in self._last.items():
            used[kind] = used.get(kind, 0.0) + cpu - self._first.get(key, 0.0)
        return {k: v / self.wall for k, v in sorted(used.items(), key=lambda kv: -kv[1])}


class IdleMeter:
    """The machine's idle CPU over time, from ``/proc/stat`` every 0.1 s, so that a
    benchmark can say how much of the machine went unused in each phase."""

    def __init__(self) -> None:
        import threading

        self.samples: list[tuple[float, int, int]] = []  # (time.time(), idle, total) jiffies
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _read() -> tuple[int, int]:
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        return vals[3] + vals[4], sum(vals[:8])  # idle + iowait, all but guest time

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append((time.time(), *self._read()))

    def __enter__(self) -> IdleMeter:
        self.samples.append((time.time(), *self._read()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), *self._read()))

    def idle(self, start: float, end: float) -> float:
        """Fraction of the CPU time idle between two time.time() instants (to 0.1 s)."""
        inside = [s for s in self.samples if start - 0.05 <= s[0] <= end + 0.05]
        if len(inside) < 2:
            return float("nan")
        (_, i0, t0), (_, i1, t1) = inside[0], inside[-1]
        return (i1 - i0) / max(t1 - t0, 1)
