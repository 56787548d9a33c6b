"""Word briefs built the way analysts write them, for the import tests and the accuracy corpus.

python-docx writes the files; what it has no API for (automatic numbering
definitions, tracked changes, comments' anchors, hyperlinks) is added as the
OOXML Word itself writes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt


def png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small valid PNG."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Brief:
    """A document being written: paragraphs, numbered paragraphs, tables, links, images."""

    def __init__(self) -> None:
        self.doc = docx.Document()
        self._num_ids: dict[str, int] = {}

    # -- numbering -------------------------------------------------------------
    def numbering(self, name: str, fmt: str, text: str, *, start: int = 1) -> None:
        """Define a one-level automatic numbering (e.g. chineseCounting, "%1、")."""
        root = self.doc.part.numbering_part.element
        abstract_id = 100 + len(self._num_ids)
        num_id = 200 + len(self._num_ids)
        an = OxmlElement("w:abstractNum")
        an.set(qn("w:abstractNumId"), str(abstract_id))
        lvl = OxmlElement("w:lvl")
        lvl.set(qn("w:ilvl"), "0")
        for tag, val in (("w:start", str(start)), ("w:numFmt", fmt), ("w:lvlText", text)):
            el = OxmlElement(tag)
            el.set(qn("w:val"), val)
            lvl.append(el)
        an.append(lvl)
        first_num = root.find(qn("w:num"))
        if first_num is not None:
            first_num.addprevious(an)
        else:
            root.append(an)
        num = OxmlElement("w:num")
        num.set(qn("w:numId"), str(num_id))
        ref = OxmlElement("w:abstractNumId")
        ref.set(qn("w:val"), str(abstract_id))
        num.append(ref)
        root.append(num)
        self._num_ids[name] = num_id

    def numbered(
        self, name: str, text: str, *, bold: bool = False, size: float | None = None
    ) -> None:
        p = self.para(text, bold=bold, size=size)
        ppr = p._p.get_or_add_pPr()
        num_pr = OxmlElement("w:numPr")
        ilvl = OxmlElement("w:ilvl")
        ilvl.set(qn("w:val"), "0")
        num_id = OxmlElement("w:numId")
        num_id.set(qn("w:val"), str(self._num_ids[name]))
        num_pr.append(ilvl)
        num_pr.append(num_id)
        ppr.append(num_pr)

    # -- text --------------------------------------------------------------------
    def para(
        self,
        text: str = "",
        *,
        style: str | None = None,
        bold: bool = False,
        size: float | None = None,
    ) -> docx.text.paragraph.Paragraph:
        p = self.doc.add_paragraph(style=style)
        if text:
            run = p.add_run(text)
            run.bold = bold or None
            if size:
                run.font.size = Pt(size)
        return p

    def heading(self, text: str, level: int) -> None:
        self.doc.add_heading(text, level=level)

    def link(self, before: str, label: str, url: str, after: str = "") -> None:
        """A paragraph with a hyperlink whose text is not the address."""
        p = self.para(before)
        rid = self.doc.part.relate_to(url, RT.HYPERLINK, is_external=True)
        h = OxmlElement("w:hyperlink")
        h.set(qn("r:id"), rid)
        r = OxmlElement("w:r")
        t = OxmlElement("w:t")
        t.text = label
        r.append(t)
        h.append(r)
        p._p.append(h)
        if after:
            p.add_run(after)

    def tracked(self, kept: str, inserted: str, deleted: str) -> None:
        """A paragraph with a tracked insertion and a tracked deletion."""
        p = self.para(kept)
        ins = OxmlElement("w:ins")
        ins.set(qn("w:id"), "1")
        ins.set(qn("w:author"), "审校")
        r = OxmlElement("w:r")
        t = OxmlElement("w:t")
        t.text = inserted
        r.append(t)
        ins.append(r)
        p._p.append(ins)
        dele = OxmlElement("w:del")
        dele.set(qn("w:id"), "2")
        dele.set(qn("w:author"), "审校")
        r2 = OxmlElement("w:r")
        dt = OxmlElement("w:delText")
        dt.text = deleted
        r2.append(dt)
        dele.append(r2)
        p._p.append(dele)

    def table(self, rows: Sequence[Sequence[str]]) -> None:
        t = self.doc.add_table(rows=len(rows), cols=len(rows[0]))
        for i, row in enumerate(rows):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell

    def image(self, data: bytes) -> None:
        self.doc.add_picture(io.BytesIO(data))

    def footer(self, text: str) -> None:
        self.doc.sections[0].footer.paragraphs[0].text = text

    def header(self, text: str) -> None:
        self.doc.sections[0].header.paragraphs[0].text = text

    def bytes(self) -> bytes:
        out = io.BytesIO()
        self.doc.save(out)
        return out.getvalue()


def analyst_brief() -> bytes:
    """No heading styles: automatic numbering, metadata tables, a link, an image, a footer."""
    b = Brief()
    b.numbering("section", "chineseCounting", "%1、")
    b.numbering("item", "decimal", "%1.")
    b.header("内部资料 注意保密")
    b.footer("第 1 页 共 3 页 · 示例研究院")
    b.para("产业政策双周报", bold=True, size=18)
    b.para("第23期")
    b.para("编制：示例研究院产业研究部")
    b.para("本期聚焦制造业数字化转型与绿色低碳两条主线。")
    b.numbered("section", "制造业数字化", bold=True, size=14)
    b.numbered("item", "工业和信息化部印发《制造业数字化转型行动方案》", bold=True)
    b.table(
        [
            ["发文机关", "工业和信息化部"],
            ["文号", "工信部规〔2026〕8号"],
            ["发布日期", "2026-11-20"],
        ]
    )
    b.link("原文：", "点击查看原文", "https://www.miit.gov.cn/zwgk/zcwj/art/2026/art_0001.html")
    b.tracked("方案提出到2028年", "规模以上制造业企业数字化改造全覆盖。", "基本实现。")
    b.para("点评")
    b.para("方案首次把中小企业“上云用数”纳入考核，地方配套值得关注。")
    b.numbered("item", "某省出台智能工厂梯度培育办法", bold=True)
    b.table([["发文机关", "某省工业和信息化厅"], ["发布日期", "2026-11-22"]])
    b.para("办法将智能工厂分为基础级、先进级、卓越级三档。")
    b.image(png())
    b.para("点评")
    b.para("分档培育有助于避免“一刀切”。")
    b.numbered("section", "绿色低碳", bold=True, size=14)
    b.numbered("item", "生态环境部发布碳排放权交易扩围通知", bold=True)
    b.table([["发文机关", "生态环境部"], ["文号", "环气候〔2026〕30号"]])
    b.para("水泥、电解铝行业纳入全国碳市场。")
    b.table(
        [["行业", "覆盖企业数", "年排放量（亿吨）"], ["水泥", "1500", "12"], ["电解铝", "90", "4"]]
    )
    return b.bytes()


def styled_brief() -> bytes:
    """Heading styles: Title, Heading 1 sections and Heading 2 items."""
    b = Brief()
    b.heading("金融监管动态", 0)
    b.para("2026年第11期")
    b.para("来源：示例律师事务所金融合规组")
    b.heading("监管规则", 1)
    b.heading("国家金融监督管理总局发布银行保险机构数据安全管理办法", 2)
    b.para("发布机构：国家金融监督管理总局")
    b.para("发布日期：2026-11-18")
    b.link("", "查看全文", "https://www.nfra.gov.cn/cn/view/pages/ItemDetail.html?docId=1")
    b.para("办法要求机构建立数据分类分级制度。")
    b.heading("中国人民银行就跨境支付服务规定征求意见", 2)
    b.para("发布机构：中国人民银行")
    b.para("征求意见截至2026年12月20日。")
    b.heading("执法动态", 1)
    b.heading("两家支付机构因违反反洗钱规定被罚", 2)
    b.para("罚款合计人民币1,230万元。")
    return b.bytes()


def table_brief() -> bytes:
    """Sections by bold size alone, items numbered 1. by hand, metadata and data in tables."""
    b = Brief()
    b.para("券商晨会纪要", bold=True, size=20)
    b.para("No. 312")
    b.para("宏观与市场", bold=True, size=15)
    b.para("1. 11月PMI回升至50.6", bold=True)
    b.table([["来源", "国家统计局"], ["日期", "2026-11-30"]])
    b.para("制造业景气度连续两个月位于扩张区间。")
    b.para("2. 央行开展1万亿元买断式逆回购", bold=True)
    b.table([["来源", "中国人民银行"]])
    b.para("流动性保持合理充裕。")
    b.para("行业与公司", bold=True, size=15)
    b.para("1. 新能源车11月销量同比增长28%", bold=True)
    b.table([["品牌", "销量（万辆）", "同比"], ["甲", "30.1", "+35%"], ["乙", "12.4", "+12%"]])
    b.para("渗透率突破55%。")
    return b.bytes()
