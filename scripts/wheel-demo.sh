#!/usr/bin/env bash
# The product as a user installs it: build the wheel, install it with the locked
# dependencies into a fresh venv outside the checkout, and run the demo and a migration
# from an empty folder. CI runs this; so can anyone (`make wheel-demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/bin/uv
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rm -rf dist
$UV build --wheel -q -o "$out/dist"
$UV export -q --frozen --no-dev --no-emit-project --format requirements-txt -o "$out/requirements.txt"
python3 -m venv "$out/venv"
"$out/venv/bin/pip" install -q --require-hashes -r "$out/requirements.txt"
"$out/venv/bin/pip" install -q --no-deps "$out"/dist/*.whl
mkdir "$out/empty"
cd "$out/empty"
env -u PYTHONPATH -u VIRTUAL_ENV "$out/venv/bin/newsletter" --help >/dev/null 2>"$out/help.err"
if [ -s "$out/help.err" ]; then
  echo "newsletter --help printed to stderr:" >&2; cat "$out/help.err" >&2; exit 1
fi
env -u PYTHONPATH NEWSLETTER_DATABASE_URL="sqlite:///$out/empty/db.sqlite" \
  "$out/venv/bin/newsletter" db upgrade
env -u PYTHONPATH "$out/venv/bin/newsletter" demo
test -z "$(ls -A "$out/empty" | grep -v -e '^var$' -e '^db.sqlite$')" || {
  echo "the demo wrote outside its work folder:" >&2; ls -A "$out/empty" >&2; exit 1; }
echo "wheel demo: ok (installed outside the checkout, run from an empty folder)"
