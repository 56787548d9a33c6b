"""Build realistic Issue objects by hand (no parser needed) for render tests and B1.

``make_issue()`` gives a ~28,000-character weekly policy brief: 4 policy items
(each with a metadata block, body and a long 政策简析) and 15 news items in
two sections, with links, a list, a table, a quote and an image.
"""

from __future__ import annotations

import hashlib
import html
import random

from newsletter.content.model import Block, Image, Issue, Item, Link, MetaField, Section

POLICY_SENTENCES = [
    "《措施》明确提出，要进一步降低制度性交易成本，推动经营主体准入、退出等环节全流程便利化",
    "文件要求各地在二〇二七年底前全面推行“一件事一次办”，将企业开办时间压缩至一个工作日以内",
    "在融资支持方面，鼓励商业银行扩大首贷、信用贷和中长期贷款投放，单列小微企业信贷计划",
    "对于数据要素市场，文件提出建立公共数据授权运营机制，探索数据产权结构性分置制度",
    "在跨境贸易领域，将推广“提前申报”“两步申报”等通关模式，进一步压缩进出口整体通关时间",
    "文件强调要规范涉企行政检查，推行“综合查一次”，严禁以各种名义开展重复检查和多头执法",
    "同时要求建立健全政府守信践诺机制，依法依规处理拖欠企业账款问题，不得新增拖欠",
    "各地要结合实际制定配套实施细则，明确责任分工和时间表，确保各项措施在年内落地见效",
    "政策还提出完善企业信用修复制度，符合条件的失信信息可在公示期满后依申请移除",
    "在知识产权保护方面，将加快建设知识产权快速维权中心，缩短专利审查周期",
    "文件明确，对符合条件的中小微企业，延续实施阶段性降低失业保险、工伤保险费率政策",
    "此外，将探索建立经营主体歇业备案制度，降低企业维持成本，为市场主体纾困解难",
]
ANALYSIS_SENTENCES = [
    "从政策脉络看，本次文件是对近年来“放管服”改革成果的系统集成，延续了以企业感受为导向的改革思路",
    "与此前政策相比，最大的变化在于将分散在各部门的便利化措施统一纳入考核，形成闭环管理",
    "值得注意的是，文件首次将涉企行政检查频次纳入营商环境评价指标，对基层执法提出了更高要求",
    "对企业而言，短期内最直接的利好是开办、变更和注销环节的时间成本显著下降",
    "但也要看到，部分措施依赖跨部门数据共享，而地方数据平台建设水平参差不齐，落地效果可能存在差异",
    "从国际比较看，我国在开办企业、获得电力等指标上已处于较好水平，但在办理破产、执行合同方面仍有提升空间",
    "建议企业关注所在地配套细则的出台时间，及时梳理可享受的政策清单，并做好申报材料准备",
    "对于外向型企业，通关便利化措施有望降低物流成本，但仍需关注目的国贸易政策的变化",
    "从财政角度看，降费政策的延续将在一定程度上增加社保基金收支压力，后续可能出现结构性调整",
    "总体判断，本轮政策的力度与覆盖面均超出市场预期，预计将对稳定经营主体预期产生积极作用",
    "我们认为，政策效果的关键在于执行层面，尤其是考核机制能否真正约束基层行为",
    "后续可重点跟踪三个方面：一是配套细则的出台节奏，二是地方财政的承受能力，三是企业的实际获得感",
]
NEWS_SENTENCES = [
    "近日，该市出台支持民营经济高质量发展的若干措施，涉及融资、用地、人才等二十余条具体举措",
    "据统计，今年前十个月全市新设经营主体同比增长百分之十二点三，其中民营企业占比超过九成",
    "当地还将设立总规模五十亿元的产业引导基金，重点投向先进制造业和战略性新兴产业",
    "会议指出，要持续优化营商环境，切实解决企业反映强烈的堵点难点问题",
    "该省数据局表示，将在年底前上线公共数据开放平台二期，新增开放数据集三百余个",
    "海关总署数据显示，前三季度我国货物贸易进出口总值同比增长百分之五点二",
    "有关负责人表示，下一步将加强政策宣传解读，帮助企业用足用好各项惠企政策",
    "该区推出“企业服务专员”制度，为重点企业提供一对一跟踪服务",
    "专家认为，这一举措有助于稳定市场预期，增强经营主体发展信心",
    "根据安排，相关试点将率先在自由贸易试验区开展，成熟后向全省复制推广",
]
ORGS = ["国务院办公厅", "国家发展改革委", "财政部", "商务部", "国家数据局", "海关总署"]
PLACES = [
    "上海市",
    "广东省",
    "浙江省",
    "深圳市",
    "成都市",
    "江苏省",
    "北京市",
    "重庆市",
    "山东省",
    "福建省",
    "武汉市",
    "西安市",
    "天津市",
    "湖南省",
    "安徽省",
]
NUMERALS = "一二三四五六七八九十"


class _Doc:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.links: list[Link] = []
        self.images: list[Image] = []

    def link(self, url: str, text: str, data_link: bool = True) -> tuple[str, str]:
        """Register a link; like the parser, mark it ``data-link="n"`` (or not, to test
        the renderer's URL-based fallback)."""
        pos = len(self.links) + 1
        self.links.append(Link(position=pos, url=url, text=text))
        attr = f' data-link="{pos}"' if data_link else ""
        return f'<a href="{html.escape(url)}"{attr}>{html.escape(text)}</a>', text

    def sentences(self, pool: list[str], chars: int) -> str:
        out = ""
        while len(out) < chars:
            out += self.rng.choice(pool) + "。"
        return out

    def para(
        self,
        pool: list[str],
        chars: int,
        link: tuple[str, str] | None = None,
        data_link: bool = True,
    ) -> Block:
        text = self.sentences(pool, chars)
        h = html.escape(text)
        if link is not None:
            url, label = link
            a_html, a_text = self.link(url, label, data_link)
            cut = text.find("。", len(text) // 2) + 1
            h = html.escape(text[:cut]) + "详见" + a_html + "。" + html.escape(text[cut:])
            text = text[:cut] + "详见" + a_text + "。" + text[cut:]
        positions = [self.links[-1].position] if link is not None and data_link else []
        return Block(kind="paragraph", html=h, text=text, links=positions)


def _list_block(items: list[str]) -> Block:
    return Block(
        kind="list",
        html="".join(f"<li>{html.escape(x)}</li>" for x in items),
        text="\n".join(items),
        ordered=True,
        items=list(items),
        items_html=[html.escape(x) for x in items],
    )


def _table_block(rows: list[list[str]]) -> Block:
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    return Block(
        kind="table", html=head + body, text="\n".join(" | ".join(r) for r in rows), rows=rows
    )


def make_issue(
    *,
    policy_items: int = 4,
    news_items: int = 15,
    policy_body: int = 1_150,
    policy_analysis: int = 2_450,
    news_body: int = 760,
    seed: int = 47,
    variant: str = "zh-Hans",
) -> Issue:
    """A realistic weekly brief; the defaults give about 28,000 characters."""
    d = _Doc(seed)
    intro = [d.para(NEWS_SENTENCES, 160)]
    sections: list[Section] = []

    policy: list[Item] = []
    for n in range(1, policy_items + 1):
        url = f"https://www.gov.cn/zhengce/content/202611/content_70{n:05d}.htm"
        org = ORGS[(n - 1) % len(ORGS)]
        d.links.append(Link(position=len(d.links) + 1, url=url, text=url))
        meta = [
            MetaField("发布机构", org, "issuer"),
            MetaField("文号", f"国办发〔2026〕{30 + n}号", "doc_number"),
            MetaField("发布日期", f"2026年11月{16 + n}日", "date"),
            MetaField("原文链接", url, "url", link=d.links[-1].position),
        ]
        body = [
            d.para(
                POLICY_SENTENCES,
                policy_body // 2,
                link=(
                    f"https://www.ndrc.gov.cn/xxgk/jd/jd/202611/t2026111{n}_1390{n}.html",
                    "政策解读",
                ),
            ),
            _list_block([d.sentences(POLICY_SENTENCES, 40)[:-1] for _ in range(3)]),
            d.para(POLICY_SENTENCES, policy_body // 2),
        ]
        if n == 1:
            rows = [
                ["指标", "2025年", "2026年目标"],
                ["企业开办时间", "3个工作日", "1个工作日"],
                ["整体通关时间", "36小时", "30小时"],
                ["政务服务网办率", "85%", "95%"],
            ]
            body.insert(2, _table_block(rows))
        if n == 2:
            data = f"chart-{n}".encode()
            img = Image(
                src=f"chart-{n}.png",
                alt="图1 近五年新设经营主体数量",
                sha256=hashlib.sha256(data).hexdigest(),
            )
            d.images.append(img)
            body.append(Block(kind="image", html="", text=img.alt, image=img))
        analysis = [d.para(ANALYSIS_SENTENCES, policy_analysis // 4) for _ in range(4)]
        analysis.insert(
            1,
            Block(
                kind="quote",
                html=html.escape("政策的生命力在于执行。"),
                text="政策的生命力在于执行。",
            ),
        )
        policy.append(
            Item(
                number=n,
                title=f"{org}印发关于进一步优化营商环境的若干措施（第{n}号）",
                anchor=f"s1-i{n}",
                meta=meta,
                body=body,
                analysis_label="政策简析",
                analysis=analysis,
                summary=None if n % 2 else "一句话摘要：" + POLICY_SENTENCES[n],
            )
        )
    sections.append(
        Section(1, "一", "政策法规", "s1", intro=[d.para(NEWS_SENTENCES, 80)], items=policy)
    )

    split = (news_items + 1) // 2
    groups = [("地方动态", news_items - (news_items - split)), ("要闻速览", news_items - split)]
    k = 0
    for gi, (title, count) in enumerate(groups):
        if count <= 0:
            continue
        sn = len(sections) + 1
        items: list[Item] = []
        for n in range(1, count + 1):
            place = PLACES[k % len(PLACES)]
            k += 1
            link = (f"https://news.example.cn/{sn}/{n}.html", "原文") if n % 3 == 1 else None
            body = [
                d.para(NEWS_SENTENCES, news_body // 2, link=link, data_link=n % 2 == 0),
                d.para(NEWS_SENTENCES, news_body // 2),
            ]
            items.append(
                Item(
                    number=n,
                    title=f"{place}出台优化营商环境新举措（{gi + 1}-{n}）",
                    anchor=f"s{sn}-i{n}",
                    body=body,
                )
            )
        sections.append(Section(sn, NUMERALS[sn - 1], title, f"s{sn}", items=items))

    return Issue(
        title="营商环境政策周报",
        number=47,
        period="2026年11月16日—11月22日",
        source="示例研究院政策研究室",
        author="林晓",
        publication="营商环境政策周报",
        preheader="本期关注数据要素、中小企业融资与跨境贸易便利化。",
        date="2026-11-23",
        intro=intro,
        sections=sections,
        links=d.links,
        images=d.images,
        source_hash="0" * 64,
        variant=variant,
    )


def small_issue(variant: str = "zh-Hans") -> Issue:
    """An issue small enough for the full email (about 8,000 characters)."""
    return make_issue(
        policy_items=2, news_items=4, policy_analysis=1_600, news_body=500, variant=variant
    )
