"""The command line speaks the reader's language: ``--lang``, else the locale, else both
languages with Chinese first; one line either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.core.catalogue import for_reader, language_from, reader_language
from tests.conftest import clean_env


@pytest.mark.parametrize(
    ("value", "lang"),
    [
        ("zh_CN.UTF-8", "zh-Hans"),
        ("zh_SG", "zh-Hans"),
        ("zh_TW.UTF-8", "zh-Hant"),
        ("zh_HK.Big5", "zh-Hant"),
        ("zh-Hant", "zh-Hant"),
        ("zh", "zh-Hans"),
        ("en_US.UTF-8", "en"),
        ("en", "en"),
        ("C.UTF-8", "both"),
        ("POSIX", "both"),
        ("fr_FR.UTF-8", "both"),
        ("both", "both"),
    ],
)
def test_locale_names(value: str, lang: str) -> None:
    assert language_from(value) == lang


def test_first_variable_that_is_set_wins() -> None:
    env = {"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}
    assert reader_language(env) == "zh-Hans"
    assert reader_language({"NEWSLETTER_LANG": "en", **env}) == "en"
    assert reader_language({}) == "both"


def test_legacy_bilingual_text_is_split_and_put_chinese_first() -> None:
    text = "cannot reach the database / 无法连接数据库"
    assert for_reader(text, "both") == "无法连接数据库 / cannot reach the database"
    assert for_reader(text, "en") == "cannot reach the database"
    assert for_reader(text, "zh-Hans") == "无法连接数据库"
    # not one Chinese and one English half: shown whole
    odd = "a/b / c / 中文"
    assert for_reader(odd, "en") == odd


@given(st.text(max_size=60))
def test_any_text_gives_one_line_and_never_loses_both_halves(text: str) -> None:
    for lang in ("both", "zh-Hans", "en"):
        out = for_reader(text, lang)
        assert out in text or out == " / ".join(reversed(text.split(" / ")))


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in clean_env().items()
            if k not in ("NEWSLETTER_LANG", "LANG", "LC_ALL", "LC_MESSAGES")}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "newsletter.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_error_in_each_language(tmp_path: Path) -> None:
    missing = str(tmp_path / "不存在.md")
    # a file that is not there: one line, exit 4, in the locale's language
    zh = _cli("issue", "lint", missing, LANG="zh_CN.UTF-8")
    assert zh.returncode == 4, zh.stderr
    line = zh.stderr.strip()
    assert "\n" not in line and line.startswith("错误：") and "文件或目录不存在" in line
    assert "no such file" not in line
    tw = _cli("issue", "lint", missing, LANG="zh_TW.UTF-8")
    # Traditional characters, mainland vocabulary (文件, not 檔案)
    assert tw.stderr.startswith("錯誤：") and "文件或目錄不存在" in tw.stderr
    en = _cli("issue", "lint", missing, LANG="en_US.UTF-8")
    assert en.stderr.startswith("error: ") and "no such file" in en.stderr
    assert not any("\u4e00" <= c <= "\u9fff" for c in en.stderr.replace("不存在", ""))
    both = _cli("issue", "lint", missing, "--lang", "both", LANG="en_US.UTF-8")
    assert both.stderr.index("文件或目录不存在") < both.stderr.index("no such file")
    flag = _cli("--lang=en", "issue", "lint", missing, LANG="zh_CN.UTF-8")
    assert "no such file" in flag.stderr and "文件或目录" not in flag.stderr
