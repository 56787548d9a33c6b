"""Chinese everywhere (issue 18): states, flashes, roles, audit actions, lint codes,
CSV headers and chart labels; English through the switch."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from fastapi.testclient import TestClient

from newsletter.core.config import Settings
from newsletter.web.console.i18n import AUDIT_ACTIONS, EN, SEND_STATES
from tests.console.helpers import csrf_of, login
from tests.console.seed import seed


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def test_states_roles_and_audit_are_chinese_and_english_on_request(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = seed(tmp_path)
    send_id = data["send"]["id"]
    login(client, "admin")
    sends = _text(client.get("/console/sends").text)
    assert "已排期" in sends and "scheduled" not in sends
    page = client.get(f"/console/sends/{send_id}").text
    assert re.search(r'id="p-state">已排期<', page)
    assert '"scheduled": "已排期"' in page.replace("&#34;", '"')  # labels for the live updates
    settings = client.get("/console/settings").text
    assert "<td>运营小王</td><td>运营</td>" in settings
    assert '<option value="editor">编辑</option>' in settings
    audit = client.get("/console/audit").text
    assert "上传期刊" in audit and "审核通过" in audit
    subs = _text(client.get("/console/subscribers", params={"q": "a"}).text)
    assert "有效" in subs and " active " not in subs
    client.get("/console/lang", params={"to": "en"})
    assert "scheduled" in _text(client.get("/console/sends").text)
    assert "<td>运营小王</td><td>ops</td>" in client.get("/console/settings").text
    # The send controls' flashes are words in the reader's language, not "cancel: ok".
    csrf = csrf_of(client, "/console/")
    r = client.post(f"/console/sends/{send_id}/cancel", data={"csrf": csrf})
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert 'role="status">cancelled<' in page and ": ok" not in page and "已取消" not in page


def test_lint_csv_and_charts_in_the_users_language(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    data = seed(tmp_path)
    send_id = data["send"]["id"]
    login(client, "marketing")
    page = client.get(f"/console/issues/{data['issue']['id']}").text
    assert "邮件客户端不支持的 CSS" in page and "邮件接近容量上限" in page
    zh = client.get("/console/stats/trends.csv", params={"headers": "zh"}).content.decode(
        "utf-8-sig"
    )
    assert next(csv.reader(io.StringIO(zh)))[:3] == ["发送编号", "期数", "标题"]
    en = client.get("/console/stats/trends.csv", params={"headers": "en"}).content.decode(
        "utf-8-sig"
    )
    assert next(csv.reader(io.StringIO(en)))[:3] == ["send_id", "issue", "title"]
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(f"/console/stats/{send_id}/export.csv").content.decode("utf-8-sig")
            )
        )
    )
    assert rows[0] == ["指标", "数值"]  # the console's language by default
    assert ["小时", "打开数"] in rows and ["链接位置", "链接", "点击数", "独立点击"] in rows
    api = client.get(f"/api/stats/sends/{send_id}.csv").content.decode("utf-8-sig")
    assert api.startswith("metric,value")  # the API keeps its English keys
    # No send has started: the chart's place says so; once one has, the chart is drawn.
    assert "这段时间没有邮件发送" in client.get("/console/stats").text
    from newsletter.delivery.run import drive_inline

    drive_inline(send_id)
    assert 'aria-label="独立打开率与独立点击率"' in client.get("/console/stats").text
    client.get("/console/lang", params={"to": "en"})
    page = client.get("/console/stats").text
    chart = page[page.index("<svg") : page.index("</svg>")]
    assert 'aria-label="Unique open and click rates"' in chart
    assert not re.search(r"[\u4e00-\u9fff]", chart), chart[:300]


def test_every_code_label_has_an_english_translation() -> None:
    for zh in [*SEND_STATES.values(), *AUDIT_ACTIONS.values()]:
        assert zh in EN, zh


def test_send_stats_export_names_every_row_in_chinese_as_csv_and_xlsx(
    client: TestClient, console_settings: Settings, tmp_path: Path
) -> None:
    from openpyxl import load_workbook

    from newsletter.delivery.run import drive_inline

    data = seed(tmp_path)
    send_id = data["send"]["id"]
    drive_inline(send_id)
    login(client, "marketing")
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(
                    f"/console/stats/{send_id}/export.csv", params={"headers": "zh"}
                ).content.decode("utf-8-sig")
            )
        )
    )
    metrics = rows[1 : rows.index([])]
    english = [r[0] for r in metrics if not re.search(r"[\u4e00-\u9fff]", r[0])]
    assert not english, " ".join(english)
    r = client.get(f"/console/stats/{send_id}/export.xlsx", params={"headers": "zh"})
    assert r.status_code == 200 and r.content[:2] == b"PK"
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sheet is not None
    values = [[c for c in row] for row in sheet.iter_rows(values_only=True)]
    assert values[0][:2] == ("指标", "数值") or list(values[0][:2]) == ["指标", "数值"]
    assert [list(v[:2]) for v in values[1 : len(metrics) + 1]] == [
        [m[0], m[1] if not m[1].lstrip("-").replace(".", "", 1).isdigit() else float(m[1])]
        for m in metrics
    ] or len(values) > len(metrics)
    # no cell is ever a formula
    assert not any(isinstance(c, str) and c.startswith("=") for row in values for c in row)
