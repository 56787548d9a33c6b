"""Reading an import file into checked rows: each row's address normalised and validated,
its name cleaned, its variant read, its attributes kept; what cannot be used becomes a
RowError with its row number and reason, and rows are grouped into chunks for writing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring as _json_str  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy import text

from newsletter.audience import queries
from newsletter.audience.addresses import AddressError, address_hash, normalise
from newsletter.audience.files import SourceFile
from newsletter.core.db import session_scope
from newsletter.core.safety.csvsafe import keep_neutralised
from newsletter.core.safety.headers import clean_text

_VARIANTS = {
    "": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "hans": "zh-Hans",
    "简体": "zh-Hans",
    "简": "zh-Hans",
    "简体中文": "zh-Hans",
    "簡體": "zh-Hans",
    "zh-hant": "zh-Hant",
    "zh-tw": "zh-Hant",
    "zh-hk": "zh-Hant",
    "hant": "zh-Hant",
    "繁体": "zh-Hant",
    "繁體": "zh-Hant",
    "繁": "zh-Hant",
    "繁體中文": "zh-Hant",
    "繁体中文": "zh-Hant",
    "繁体字": "zh-Hant",
    "繁體字": "zh-Hant",
    "正體": "zh-Hant",
    "traditional": "zh-Hant",
    "tc": "zh-Hant",
    "简体字": "zh-Hans",
    "簡體字": "zh-Hans",
    "簡体": "zh-Hans",
    "simplified": "zh-Hans",
    "sc": "zh-Hans",
}


def normalise_variant(value: str) -> str | None:
    return _VARIANTS.get(value.strip().lower())


@dataclass(slots=True)
class RowError:
    row: int
    value: str
    reason: str


@dataclass(slots=True)
class ImportSummary:
    file: str
    encoding: str | None
    list_name: str
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: int = 0
    duplicate: int = 0
    suppressed: int = 0
    resubscribed: int = 0
    report_path: str | None = None
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["errors"] = len(self.errors)
        return d


@dataclass(slots=True)
class Chunk:
    """Rows ready for the database.  On SQLite ``items`` are tuples (file row, email,
    name, variant, attributes as JSON text); on PostgreSQL they are the last four as
    COPY text, with the file rows in ``rows``.  ``lookup``: may the database already
    know one of these addresses?"""

    items: list[Any]
    rows: list[int]
    lookup: bool
    #: File rows read up to the end of this chunk (valid or not), for progress reports.
    read: int = 0


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_field(value: str) -> str:
    """Escape a value for PostgreSQL's COPY text format (rarely needed: checked first)."""
    return value.translate(_COPY_ESCAPES)


class Known:
    """The addresses the database already holds (subscribers and suppressions), as of
    the start of the import, kept as 64-bit hashes (~60 MB per million).

    A chunk made only of addresses unknown here needs no per-row look-up at all: it
    is inserted directly, and the unique index on ``subscriber.email`` still catches
    anything a concurrent writer added meanwhile (the chunk is then re-applied with
    full conflict handling).  Above ``limit`` known addresses every chunk is looked up.
    """

    def __init__(self, db_url: str | None, limit: int = 2_000_000) -> None:
        self.hashes: set[int] | None = None
        self.erased: set[str] = set()
        with session_scope(db_url) as s:
            n = (s.scalar(text(queries.COUNT_SUBSCRIBERS)) or 0) + (
                s.scalar(text(queries.COUNT_SUPPRESSIONS)) or 0
            )
            if n > limit:
                return
            hashes: set[int] = set()
            for (email,) in s.execute(text(queries.ALL_SUBSCRIBER_EMAILS)).yield_per(20000):
                hashes.add(hash(email))
            for (email,) in s.execute(text(queries.ALL_SUPPRESSION_EMAILS)):
                if email.startswith("sha256:"):
                    self.erased.add(email)
                else:
                    hashes.add(hash(email))
            self.hashes = hashes

    @property
    def nothing(self) -> bool:
        """The database held no address at all (a first import)."""
        return self.hashes is not None and not self.hashes and not self.erased

    def knows(self, email: str) -> bool:
        if self.hashes is None or hash(email) in self.hashes:
            return True
        return bool(self.erased) and address_hash(email) in self.erased


def parse_rows(
    src: SourceFile,
    rows: Iterator[tuple[int, list[str]]],
    summary: ImportSummary,
    seen: dict[int, int],
    size: int,
    *,
    copy_text: bool,
    known: Known | None,
) -> Iterator[Chunk]:
    """Validate, normalise and de-duplicate rows; record rejects in ``summary``.

    Yields chunks of at most ``size`` staged rows, each with a flag: does it hold an
    address the database may already know (so that it needs look-ups)?  This loop
    runs once per row of files with millions of rows, so it stays lean: attributes'
    JSON is assembled from pre-encoded keys, counters are local, and on PostgreSQL
    each row is formatted straight into COPY text.
    """
    header_len = len(src.header)
    ei = src.columns["email"]
    ni = src.columns.get("name")
    vi = src.columns.get("variant")
    extras = [(_json_str(h.strip()) + ": ", i) for h, i in src.extras]
    one_extra = ("{" + extras[0][0], extras[0][1]) if len(extras) == 1 else None
    enc = _json_str
    variants = _VARIANTS
    errors = summary.errors
    # Every chunk is looked up on SQLite, or when too many addresses are known to hold
    # here; otherwise only chunks holding an address ``knows`` recognises (none at all
    # when the database held nobody).
    always = known is None or known.hashes is None
    knows = None if known is None or always or known.nothing else known.knows
    count = invalid = duplicate = 0
    chunk: list[Any] = []
    nums: list[int] = []
    lookup = always
    try:
        for n, cells in rows:
            if len(cells) != header_len or not cells[ei].strip():
                if not cells or all(not c.strip() for c in cells):
                    continue  # blank lines are not rows
                if len(cells) != header_len:
                    count += 1
                    invalid += 1
                    errors.append(
                        RowError(
                            n,
                            ",".join(cells)[:200],
                            f"expected {header_len} columns, found {len(cells)} / 列数不符",
                        )
                    )
                    continue
            count += 1
            raw = cells[ei]
            try:
                email = normalise(raw)
            except AddressError as exc:
                invalid += 1
                errors.append(RowError(n, raw, str(exc)))
                continue
            # 64-bit key: a collision among a million addresses is ~1e-8 likely.
            first = seen.setdefault(hash(email), n)
            if first != n:
                duplicate += 1
                errors.append(RowError(n, raw, f"duplicate of row {first} / 重复行"))
                continue
            variant = (
                variants.get(cells[vi].strip().lower(), "zh-Hans") if vi is not None else "zh-Hans"
            )
            # Header-bound: one line, no controls (F3); a cell protected against formulas
            # ('=…, or a tab before =) stays protected after stripping.
            name = keep_neutralised(cells[ni], clean_text(cells[ni], 200)) if ni is not None else ""
            attrs = "{}"
            if one_extra is not None:
                v = cells[one_extra[1]].strip()
                if v:
                    attrs = one_extra[0] + enc(v) + "}"
            elif extras:
                parts = [k + enc(v) for k, i in extras if (v := cells[i].strip())]
                if parts:
                    attrs = "{" + ", ".join(parts) + "}"
            if not lookup and knows is not None and knows(email):
                lookup = True
            if copy_text:
                if "\\" in name or not name.isprintable():
                    name = copy_field(name)
                if "\\" in attrs:
                    attrs = copy_field(attrs)
                nums.append(n)
                chunk.append(f"{email}\t{name}\t{variant}\t{attrs}")
            else:
                chunk.append((n, email, name, variant, attrs))
            if len(chunk) >= size:
                yield Chunk(chunk, nums, lookup, count)
                chunk = []
                nums = []
                lookup = always
        if chunk:
            yield Chunk(chunk, nums, lookup, count)
    finally:
        summary.rows += count
        summary.invalid += invalid
        summary.duplicate += duplicate
