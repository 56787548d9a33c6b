"""What the console and the JSON API do, as plain functions over the library, by domain.

Both the HTML pages (``pages/``) and the JSON API (``api.py``, ``api_*.py``) call these,
so the two can never disagree.  Every function that changes something takes
the acting :class:`~..auth.Principal` and writes the audit log.

One module a domain: :mod:`.issues`, :mod:`.sends`, :mod:`.audience` (lists,
segments, exports), :mod:`.subscribers` (search, one subscriber, bulk actions),
:mod:`.suppressions` (suppressions, bounces), :mod:`.reports`
(statistics), :mod:`.settings`, :mod:`.users` (users, tokens, audit) and
:mod:`.alerts` (the dashboard), :mod:`.jobs` (imports and bulk actions run
by a worker).  This package re-exports them all, so
``from newsletter.web.console import services as svc; svc.list_issues()`` works.
"""

from __future__ import annotations

from newsletter.web.console.services.alerts import ALERT_EVENTS as ALERT_EVENTS
from newsletter.web.console.services.alerts import dashboard as dashboard
from newsletter.web.console.services.alerts import open_alerts as open_alerts
from newsletter.web.console.services.audience import count_segment as count_segment
from newsletter.web.console.services.audience import create_list as create_list
from newsletter.web.console.services.audience import delete_list as delete_list
from newsletter.web.console.services.audience import export_list as export_list
from newsletter.web.console.services.audience import export_list_xlsx as export_list_xlsx
from newsletter.web.console.services.audience import lists as lists
from newsletter.web.console.services.audience import save_segment as save_segment
from newsletter.web.console.services.audience import segments as segments
from newsletter.web.console.services.audience import update_list as update_list
from newsletter.web.console.services.common import ConsoleError as ConsoleError
from newsletter.web.console.services.imports import import_images as import_images
from newsletter.web.console.services.imports import import_preview as import_preview
from newsletter.web.console.services.imports import learn_import_rules as learn_import_rules
from newsletter.web.console.services.imports import publication_choices as publication_choices
from newsletter.web.console.services.issues import approve_issue as approve_issue
from newsletter.web.console.services.issues import frame_html as frame_html
from newsletter.web.console.services.issues import issue_summary as issue_summary
from newsletter.web.console.services.issues import lint as lint
from newsletter.web.console.services.issues import list_issues as list_issues
from newsletter.web.console.services.issues import load_issue_row as load_issue_row
from newsletter.web.console.services.issues import preview_outputs as preview_outputs
from newsletter.web.console.services.issues import test_send as test_send
from newsletter.web.console.services.issues import upload_issue as upload_issue
from newsletter.web.console.services.jobs import get_job as get_job
from newsletter.web.console.services.jobs import import_report as import_report
from newsletter.web.console.services.jobs import list_jobs as list_jobs
from newsletter.web.console.services.jobs import resume_job as resume_job
from newsletter.web.console.services.jobs import start_bulk_job as start_bulk_job
from newsletter.web.console.services.jobs import start_import as start_import
from newsletter.web.console.services.notices import mark_notices_read as mark_notices_read
from newsletter.web.console.services.notices import my_notices as my_notices
from newsletter.web.console.services.notices import update_profile as update_profile
from newsletter.web.console.services.overview import charts_data as charts_data
from newsletter.web.console.services.reports import MAX_COMPARE as MAX_COMPARE
from newsletter.web.console.services.reports import compare as compare
from newsletter.web.console.services.reports import parse_day as parse_day
from newsletter.web.console.services.reports import stats as stats
from newsletter.web.console.services.reports import stats_csv as stats_csv
from newsletter.web.console.services.reports import stats_xlsx as stats_xlsx
from newsletter.web.console.services.reports import trends as trends
from newsletter.web.console.services.reports import trends_csv as trends_csv
from newsletter.web.console.services.review import issue_history as issue_history
from newsletter.web.console.services.review import request_changes as request_changes
from newsletter.web.console.services.review import review_queue as review_queue
from newsletter.web.console.services.review import submit_review as submit_review
from newsletter.web.console.services.review import version_diff as version_diff
from newsletter.web.console.services.sends import _runners as _runners
from newsletter.web.console.services.sends import control_send as control_send
from newsletter.web.console.services.sends import create_send as create_send
from newsletter.web.console.services.sends import list_sends as list_sends
from newsletter.web.console.services.sends import progress as progress
from newsletter.web.console.services.sends import scheduled_time as scheduled_time
from newsletter.web.console.services.sends import search_sends as search_sends
from newsletter.web.console.services.sends import send_now_facts as send_now_facts
from newsletter.web.console.services.sends import send_row as send_row
from newsletter.web.console.services.settings import WEEKDAYS as WEEKDAYS
from newsletter.web.console.services.settings import ZONES as ZONES
from newsletter.web.console.services.settings import create_publication as create_publication
from newsletter.web.console.services.settings import move_issue as move_issue
from newsletter.web.console.services.settings import publication as publication
from newsletter.web.console.services.settings import publications as publications
from newsletter.web.console.services.settings import schedule_overview as schedule_overview
from newsletter.web.console.services.settings import sender_identity as sender_identity
from newsletter.web.console.services.settings import update_publication as update_publication
from newsletter.web.console.services.settings import update_schedule as update_schedule
from newsletter.web.console.services.settings import wechat_check as wechat_check
from newsletter.web.console.services.subscribers import BULK_ACTIONS as BULK_ACTIONS
from newsletter.web.console.services.subscribers import BULK_LIMIT as BULK_LIMIT
from newsletter.web.console.services.subscribers import SEARCH_STATUSES as SEARCH_STATUSES
from newsletter.web.console.services.subscribers import VARIANTS as VARIANTS
from newsletter.web.console.services.subscribers import bulk_subscribers as bulk_subscribers
from newsletter.web.console.services.subscribers import count_search as count_search
from newsletter.web.console.services.subscribers import get_subscriber as get_subscriber
from newsletter.web.console.services.subscribers import search_subscribers as search_subscribers
from newsletter.web.console.services.subscribers import update_subscriber as update_subscriber
from newsletter.web.console.services.suppressions import BOUNCE_REASONS as BOUNCE_REASONS
from newsletter.web.console.services.suppressions import add_suppression as add_suppression
from newsletter.web.console.services.suppressions import bounces as bounces
from newsletter.web.console.services.suppressions import remove_suppression as remove_suppression
from newsletter.web.console.services.suppressions import suppressions as suppressions
from newsletter.web.console.services.users import FreshCodeNeeded as FreshCodeNeeded
from newsletter.web.console.services.users import audit_entries as audit_entries
from newsletter.web.console.services.users import create_token as create_token
from newsletter.web.console.services.users import create_user as create_user
from newsletter.web.console.services.users import list_users as list_users
from newsletter.web.console.services.users import revoke_token as revoke_token
from newsletter.web.console.services.users import tokens as tokens
from newsletter.web.console.services.users import update_user as update_user
from newsletter.web.console.services.users import user_row as user_row
from newsletter.web.console.services.webhooks import create_webhook as create_webhook
from newsletter.web.console.services.webhooks import delete_webhook as delete_webhook
from newsletter.web.console.services.webhooks import update_webhook as update_webhook
from newsletter.web.console.services.webhooks import webhook as webhook
from newsletter.web.console.services.webhooks import webhook_attempts as webhook_attempts
from newsletter.web.console.services.webhooks import webhooks as webhooks
from newsletter.web.console.services.welcome import add_welcome_step as add_welcome_step
from newsletter.web.console.services.welcome import delete_welcome_step as delete_welcome_step
from newsletter.web.console.services.welcome import lint_welcome_step as lint_welcome_step
from newsletter.web.console.services.welcome import move_welcome_step as move_welcome_step
from newsletter.web.console.services.welcome import update_welcome_step as update_welcome_step
from newsletter.web.console.services.welcome import welcome_frame as welcome_frame
from newsletter.web.console.services.welcome import welcome_series as welcome_series
from newsletter.web.console.services.welcome import welcome_step as welcome_step
