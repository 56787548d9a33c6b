#!/usr/bin/env python3
"""Update the console's message catalogues (gettext .po files, read with Babel).

The console's templates write ``{{ _("中文") }}``: the Simplified text is the message
id and the default language. This script collects every id (the templates' literals,
the code tables of ``i18n.py``, and the ids already in the catalogues), then writes

* ``newsletter/resources/locale/en/LC_MESSAGES/console.po``: English; an id without a
  translation gets an empty one (the catalogue test fails until someone writes it);
* ``newsletter/resources/locale/zh_Hant/LC_MESSAGES/console.po``: Traditional Chinese, made
  for new ids by the project's own conversion (character level plus the mainland
  override table, never the Taiwan phrase table), and kept as edited afterwards.

Ids are never dropped on their own (some reach ``_()`` from Python: flash messages,
errors); delete a stale one by hand. Run it after changing a template:

    .venv/bin/python scripts/console_catalog.py [--check]

``--check`` writes nothing and exits 1 if the catalogues are not up to date.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.pofile import read_po, write_po  # noqa: E402

from newsletter.content.variants import convert_text  # noqa: E402
from newsletter.web.console import i18n  # noqa: E402

TEMPLATES = ROOT / "templates" / "console"
_LITERAL = re.compile(r"""_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\)""")


def template_ids() -> set[str]:
    ids: set[str] = set()
    for path in sorted(TEMPLATES.glob("*.html")):
        for a, b in _LITERAL.findall(path.read_text(encoding="utf-8")):
            ids.add((a or b).replace('\\"', '"').replace("\\'", "'"))
    return ids


def table_ids() -> set[str]:
    out: set[str] = set()
    for table in i18n.CODE_TABLES:
        out.update(table.values())
    return out


def _existing(lang: str) -> dict[str, str]:
    path = i18n.catalogue_path(lang)
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        cat = read_po(f)
    return {m.id: m.string for m in cat if m.id and isinstance(m.id, str)}


def build(lang: str, ids: list[str]) -> bytes:
    old = _existing(lang)
    cat = Catalog(locale=lang, project="newsletter console", charset="utf-8", fuzzy=False)
    for mid in ids:
        text = old.get(mid, "")
        if not text and lang == "zh_Hant":
            text = convert_text(mid)
        cat.add(mid, text)
    buf = io.BytesIO()
    write_po(buf, cat, width=0, omit_header=False, sort_output=True)
    # Keep the file the same whatever the day and Babel's version: the header's creation
    # date, the copyright year Babel writes from today's date, and "Generated-By: Babel X".
    out = re.sub(rb'"POT-Creation-Date: [^"]*"\n', b"", buf.getvalue())
    out = re.sub(rb'"Generated-By: [^"]*"\n', b"", out)
    return re.sub(rb"(?m)^# (Copyright \(C\)|FIRST AUTHOR).*\n", b"", out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    ids = sorted(template_ids() | table_ids() | set(_existing("en")) | set(_existing("zh_Hant")))
    stale = False
    for lang in ("en", "zh_Hant"):
        data = build(lang, ids)
        path = i18n.catalogue_path(lang)
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                print(f"{path.relative_to(ROOT)} is not up to date", file=sys.stderr)
                stale = True
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path.relative_to(ROOT)}: {len(ids)} messages")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
