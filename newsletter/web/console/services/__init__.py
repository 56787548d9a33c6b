"""What the console and the JSON API do, as plain functions over the library, by domain.

Both the HTML pages (``routes.py``) and the JSON API (``api.py``) call these,
so the two can never disagree.  Every function that changes something takes
the acting :class:`~..auth.Principal` and writes the audit log.

One module a domain: :mod:`.issues`, :mod:`.sends`, :mod:`.audience` (lists,
subscribers, imports, segments, suppressions, bounces), :mod:`.reports`
(statistics), :mod:`.settings`, :mod:`.users` (users, tokens, audit) and
:mod:`.alerts` (the dashboard), :mod:`.jobs` (imports and bulk actions run
by a worker).  This package re-exports them all, so
``from newsletter.web.console import services as svc; svc.list_issues()`` works.
"""

from __future__ import annotations

from .alerts import (
    ALERT_EVENTS as ALERT_EVENTS,
)
from .alerts import (
    dashboard as dashboard,
)
from .alerts import (
    open_alerts as open_alerts,
)
from .audience import (
    BOUNCE_REASONS as BOUNCE_REASONS,
)
from .audience import (
    BULK_ACTIONS as BULK_ACTIONS,
)
from .audience import (
    BULK_LIMIT as BULK_LIMIT,
)
from .audience import (
    VARIANTS as VARIANTS,
)
from .audience import (
    add_suppression as add_suppression,
)
from .audience import (
    bounces as bounces,
)
from .audience import (
    bulk_subscribers as bulk_subscribers,
)
from .audience import (
    count_search as count_search,
)
from .audience import (
    count_segment as count_segment,
)
from .audience import (
    create_list as create_list,
)
from .audience import (
    delete_list as delete_list,
)
from .audience import (
    export_list as export_list,
)
from .audience import (
    get_subscriber as get_subscriber,
)
from .audience import (
    lists as lists,
)
from .audience import (
    remove_suppression as remove_suppression,
)
from .audience import (
    save_segment as save_segment,
)
from .audience import (
    search_subscribers as search_subscribers,
)
from .audience import (
    segments as segments,
)
from .audience import (
    suppressions as suppressions,
)
from .audience import (
    update_list as update_list,
)
from .audience import (
    update_subscriber as update_subscriber,
)
from .common import (
    ConsoleError as ConsoleError,
)
from .issues import (
    approve_issue as approve_issue,
)
from .issues import (
    frame_html as frame_html,
)
from .issues import (
    import_preview as import_preview,
)
from .issues import (
    issue_summary as issue_summary,
)
from .issues import (
    lint as lint,
)
from .issues import (
    list_issues as list_issues,
)
from .issues import (
    load_issue_row as load_issue_row,
)
from .issues import (
    preview_outputs as preview_outputs,
)
from .issues import (
    test_send as test_send,
)
from .issues import (
    upload_issue as upload_issue,
)
from .jobs import (
    get_job as get_job,
)
from .jobs import (
    import_report as import_report,
)
from .jobs import (
    list_jobs as list_jobs,
)
from .jobs import (
    resume_job as resume_job,
)
from .jobs import (
    start_bulk_job as start_bulk_job,
)
from .jobs import (
    start_import as start_import,
)
from .overview import (
    charts_data as charts_data,
)
from .reports import (
    MAX_COMPARE as MAX_COMPARE,
)
from .reports import (
    compare as compare,
)
from .reports import (
    parse_day as parse_day,
)
from .reports import (
    stats as stats,
)
from .reports import (
    stats_csv as stats_csv,
)
from .reports import (
    trends as trends,
)
from .reports import (
    trends_csv as trends_csv,
)
from .sends import (
    _runners as _runners,
)
from .sends import (
    control_send as control_send,
)
from .sends import (
    create_send as create_send,
)
from .sends import (
    list_sends as list_sends,
)
from .sends import (
    progress as progress,
)
from .sends import (
    search_sends as search_sends,
)
from .sends import (
    send_now_facts as send_now_facts,
)
from .sends import (
    send_row as send_row,
)
from .settings import (
    publication as publication,
)
from .settings import (
    sender_identity as sender_identity,
)
from .settings import (
    update_publication as update_publication,
)
from .settings import (
    update_schedule as update_schedule,
)
from .settings import (
    wechat_check as wechat_check,
)
from .users import (
    audit_entries as audit_entries,
)
from .users import (
    create_token as create_token,
)
from .users import (
    create_user as create_user,
)
from .users import (
    list_users as list_users,
)
from .users import (
    revoke_token as revoke_token,
)
from .users import (
    tokens as tokens,
)
from .users import (
    update_user as update_user,
)
from .users import (
    user_row as user_row,
)
