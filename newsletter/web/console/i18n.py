"""Console texts: Simplified Chinese first, Traditional Chinese and English on request.

Templates write ``{{ _("中文") }}``: the Simplified text is the message id. The
translations live in gettext catalogues, ``newsletter/resources/locale/<lang>/LC_MESSAGES/
console.po`` (``en`` and ``zh_Hant``), read with Babel when this module is imported;
``scripts/console_catalog.py`` adds the ids of new template strings (Traditional made
by the project's own conversion, which keeps mainland vocabulary). Tests fail on an id
without a translation, and on a page that asks for one the catalogue lacks.

The language is the ``nl_lang`` cookie: ``zh`` (default), ``zh-Hant`` or ``en``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from babel.messages.pofile import read_po

from newsletter.core.catalogue import message
from newsletter.core.resources import resource_path
from newsletter.models.delivery import SEND_STATES as MODEL_SEND_STATES

__all__ = ["CODE_TABLES", "EN", "HANT", "LANGS", "catalogue_path", "translator"]

LANGS = ("zh", "zh-Hant", "en")
LOCALE_DIR = resource_path("locale")
_CATALOGUE_LANG = {"en": "en", "zh-Hant": "zh_Hant", "zh_Hant": "zh_Hant"}


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / _CATALOGUE_LANG[lang] / "LC_MESSAGES" / "console.po"


def _load(lang: str) -> dict[str, str]:
    path = catalogue_path(lang)
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        catalogue = read_po(f)
    return {
        m.id: m.string
        for m in catalogue
        if isinstance(m.id, str) and m.id and isinstance(m.string, str) and m.string
    }


EN: dict[str, str] = _load("en")
HANT: dict[str, str] = _load("zh_Hant")
#: Ids asked for but missing from a catalogue, per language (the crawl tests read it).
MISSES: dict[str, set[str]] = {"en": set(), "zh-Hant": set()}


def _hant_fallback(text: str) -> str:
    # Messages built at run time ("中文 / English" flashes, errors): converted the same
    # way the catalogue's Traditional was made.
    from newsletter.content.variants import convert_text

    return convert_text(text)


def translator(lang: str) -> Callable[[str], str]:
    if lang not in MISSES:
        return lambda s: s
    table = EN if lang == "en" else HANT
    fallback: Callable[[str], str] = (lambda s: s) if lang == "en" else _hant_fallback
    misses = MISSES[lang]

    def translate(s: str) -> str:
        out = table.get(s)
        if out is None:
            misses.add(s)
            return fallback(s)
        return out

    return translate


#: Codes the console shows as words (Chinese; English through :data:`EN`).
SEND_STATES = {state: message(f"send.state.{state}").zh for state in MODEL_SEND_STATES}
SUB_STATUS = {
    "active": "有效",
    "unsubscribed": "已退订",
    "pending": "待确认",
    "bounced": "退信",
    "complained": "投诉",
    "blocked": "已封禁",
    "unconfirmed": "待确认",
    "erased": "已删除",
}
ROLE_NAMES = {"admin": "管理员", "ops": "运营", "editor": "编辑", "marketing": "市场"}
DELIVERY_STATES = {
    "sent": "已发送",
    "queued": "排队",
    "sending": "发送中",
    "deferred": "延后",
    "bounced": "退信",
    "failed": "失败",
    "skipped": "跳过",
    "refused": "被拒",
}
#: Flash messages of the send controls.
SEND_ACTIONS = {
    "start": "已开始 / started",
    "pause": "已暂停 / paused",
    "resume": "已继续 / resumed",
    "cancel": "已取消 / cancelled",
}
AUDIT_ACTIONS = {
    "schedule.move": "随时段移动已排期的发送",
    "issue.request_changes": "退回修改",
    "console.review": "提交审核（控制台）",
    "import.learn": "记住导入规则",
    "console.approve": "审核通过（控制台）",
    "console.import": "导入纯文本",
    "issue.approve": "审核通过",
    "issue.review": "提交审核",
    "issue.upload": "上传期刊",
    "login": "登录",
    "login.failed": "登录失败",
    "login.throttled": "登录受限",
    "login.password": "密码正确，待两步验证",
    "login.2fa_failed": "两步验证失败",
    "token.2fa_failed": "创建令牌时两步验证失败",
    "user.2fa_enable": "开启两步验证",
    "user.2fa_reset": "重置两步验证",
    "settings.two_factor": "设置必须两步验证的角色",
    "webhook.create": "新建 Webhook",
    "webhook.update": "修改 Webhook",
    "webhook.delete": "删除 Webhook",
    "notify.webhook_disabled": "Webhook 已停用",
    "logout": "退出",
    "schedule.set": "设置发送时间",
    "segment.save": "保存分群",
    "send.create": "创建发送",
    "send.resend": "重新发送",
    "send.schedule": "排期发送",
    "send.start": "开始发送",
    "send.pause": "暂停发送",
    "send.resume": "继续发送",
    "send.cancel": "取消发送",
    "send.test": "测试发送",
    "settings.publication": "修改刊物设置",
    "settings.wechat_check": "检查公众号",
    "stats.export": "导出统计",
    "subscriber.erase": "删除订阅者数据",
    "subscriber.update": "修改订阅者",
    "subscriber.delete": "删除订阅者",
    "subscribers.bulk": "批量操作订阅者",
    "subscribers.add": "添加订阅者",
    "subscribers.export": "导出订阅者",
    "subscribers.import": "导入订阅者",
    "subscription.confirm": "确认订阅",
    "suppression.add": "添加屏蔽",
    "suppression.remove": "移除屏蔽",
    "suppressions.add": "添加屏蔽",
    "suppressions.remove": "移除屏蔽",
    "token.create": "创建令牌",
    "token.revoke": "吊销令牌",
    "user.create": "创建用户",
    "user.update": "修改用户",
    "user.profile": "修改个人资料",
    "user.2fa_recovery": "重新生成恢复码",
    "publication.create": "新建刊物",
    "issue.move": "期刊移到其他刊物",
    "list.create": "创建列表",
    "list.update": "修改列表",
    "list.delete": "删除列表",
    "notify.auto_paused": "自动暂停通知",
    "notify.auto_resume_gave_up": "自动恢复放弃通知",
    "notify.failed": "失败通知",
    "notify.empty": "无可发送对象通知",
    "login.sso": "单点登录",
    "login.sso_refused": "单点登录被拒",
    "logout.sso_backchannel": "身份提供方退出",
    "user.created_sso": "单点登录创建用户",
    "user.role_from_sso": "角色随身份提供方变更",
    "settings.local_login": "切换本地账号登录",
    "send.subjects": "设置主题测试",
    "send.decide": "判定主题测试",
    "subscribers.bulk_job": "批量操作（后台任务）",
    "job.resume": "继续后台任务",
    "job.failed": "后台任务失败",
}
#: Background jobs (imports, bulk actions) and what they do.
JOB_STATES = {
    "queued": "排队中",
    "running": "运行中",
    "done": "已完成",
    "failed": "失败",
    "interrupted": "已中断",
}
JOB_KINDS = {"import": "导入订阅者", "bulk": "批量操作"}
BULK_ACTION_NAMES = {"unsubscribe": "退订", "move": "移到列表", "block": "封禁", "delete": "删除"}
#: Mailbox-provider groups of the per-domain statistics.
DOMAIN_GROUPS = {
    "qq": "QQ 邮箱",
    "netease": "网易邮箱",
    "gmail": "Gmail 邮箱",
    "microsoft": "微软邮箱",
    "icloud": "iCloud 邮箱",
    "other": "其他邮箱",
}
#: What a lint code means, in Chinese (the message itself comes from the linter).
LINT_CODES = {
    "parse": "格式错误",
    "image": "图片",
    "image-alt": "图片缺少替代文字",
    "image-missing": "图片文件不存在",
    "image-path": "图片路径无效",
    "image-url": "图片地址无效",
    "item-empty": "条目为空",
    "item-number": "条目编号",
    "link-insecure": "链接不安全（http）",
    "link-malformed": "链接格式错误",
    "meta-missing": "缺少元数据",
    "meta-url": "元数据地址无效",
    "number-missing": "缺少期数",
    "section-empty": "栏目为空",
    "section-number": "栏目编号",
    "wechat-image": "公众号图片",
    "email-budget": "邮件超出容量",
    "email-size": "邮件接近容量上限",
    "email-digest": "改用摘要版",
    "email-text": "纯文本部分",
    "web-size": "网页大小",
    "wechat-limit": "公众号超出限制",
    "wechat-size": "公众号篇幅",
    "wechat-images": "公众号图片数",
    "css-support": "邮件客户端不支持的 CSS",
}
#: Column names of the CSV exports, for the Chinese headers.
CSV_ZH = {
    "archive_views": "网页存档浏览",
    "at_risk": "可能重复（已计入）",
    "excluded": "排除（退订、屏蔽等）",
    "deliveries_queued": "排队中",
    "deliveries_sending": "发送中",
    "deliveries_sent": "已发出",
    "deliveries_deferred": "延迟重试",
    "deliveries_failed": "失败",
    "deliveries_skipped": "跳过",
    "opens_total_human": "真人打开总次数",
    "opens_unique_machine": "机器打开（人）",
    "opens_total_machine": "机器打开总次数",
    "clicks_total": "点击总次数",
    "clicks_unique_machine": "机器点击（人）",
    "clicks_machine": "机器点击次数",
    "click_to_open_rate": "点击打开率",
    "unsubscribe_rate": "退订率",
    "complaint_rate": "投诉率",
    "subject_test": "主题测试",
    "metric": "指标",
    "value": "数值",
    "hour": "小时",
    "opens": "打开数",
    "link_position": "链接位置",
    "url": "链接",
    "clicks": "点击数",
    "unique": "独立点击",
    "send_id": "发送编号",
    "issue": "期数",
    "issue_id": "期刊编号",
    "title": "标题",
    "channels": "渠道",
    "started_at": "开始时间",
    "planned": "计划数",
    "opens_unique": "独立打开",
    "clicks_unique": "独立点击",
    "open_rate": "打开率",
    "click_rate": "点击率",
    "wechat_reads": "公众号阅读次数",
    "wechat_readers": "公众号阅读人数",
    "wechat_shares": "公众号分享次数",
    "unsubscribes": "退订",
    "bounces": "退信",
    "deliveries_bounced": "退信投递",
    "machine": "机器打开",
    "delivered": "送达",
    "sent": "已发送",
    "state": "状态",
    "list": "列表",
    "opens_machine": "机器打开",
    "opens_human": "真人打开",
    "opens_total": "打开总数",
    "complaints": "投诉",
}


CHANNEL_NAMES = {"email": "邮件", "wechat": "公众号", "both": "邮件和公众号"}

#: The subscriber export's columns, named for a Chinese reader (English keeps the field
#: names, which the import reads back).
EXPORT_COLUMNS_ZH = {
    "email": "邮箱",
    "name": "姓名",
    "variant": "版本",
    "status": "状态",
    "list_status": "列表状态",
    "created_at": "创建时间",
    "confirmed_at": "确认时间",
    "source": "来源",
    "attributes": "属性",
}

#: Time zones named as people say them (others keep their IANA name).
ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Hong_Kong": "香港时间", "Asia/Taipei": "台北时间"}

#: The import outline's line classes (the content package's own table).
from newsletter.content.textimport import CLASS_LABELS as IMPORT_CLASSES  # noqa: E402

#: Every table whose values are shown through ``_()``.
CODE_TABLES = (
    SEND_STATES,
    SUB_STATUS,
    ROLE_NAMES,
    DELIVERY_STATES,
    AUDIT_ACTIONS,
    LINT_CODES,
    JOB_STATES,
    JOB_KINDS,
    BULK_ACTION_NAMES,
    DOMAIN_GROUPS,
    IMPORT_CLASSES,
    CHANNEL_NAMES,
    ZONE_NAMES,
)


def lint_label(code: str) -> str:
    """The Chinese meaning of a lint code ("css-support:css-height" → its family's)."""
    return LINT_CODES.get(code) or LINT_CODES.get(code.split(":", 1)[0], "")
