#!/usr/bin/env bash
# Debian packages the tests and benchmarks need. Idempotent; run as root.
#   chromium + a CJK font: browser tests (no tofu in screenshots)
#   postfix: smtp-sink / smtp-source for the delivery benchmark (configured as "No configuration")
#   docker-compose: validates docker-compose.yml without an engine
#   spamassassin: scores a rendered message offline (no MPART_ALT_DIFF, score <= 0.5)
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
command -v smtp-sink >/dev/null || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v spamassassin >/dev/null || need+=(spamassassin)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
