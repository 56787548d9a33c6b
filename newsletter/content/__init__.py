"""Issue source → document model, and the tools around it.

* :mod:`.model` — the typed document every renderer consumes.
* :mod:`.parser` — :func:`parse_issue` / :func:`load_issue` (Markdown + YAML
  front matter → :class:`~.model.Issue`), with encoding fallback.
* :mod:`.variants` — :func:`to_variant` (zh-Hans / zh-Hant via OpenCC).
* :mod:`.lint` — :func:`lint_source`, editorial checks with line numbers.
* :mod:`.textimport` — :func:`import_text`, plain text → the source dialect.

The dialect itself is documented in ``docs/authoring.md``.
"""
