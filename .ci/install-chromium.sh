#!/usr/bin/env bash
# Install Debian's Chromium (for the headless-browser tests of the status page, the HTML report
# and the dashboard pictures) and Playwright, pinned, to drive it. Idempotent; about 15-30 s on
# a fresh machine, under a second when both are present. Never runs `playwright install`: that
# downloads a browser build from a CDN this CI cannot reach; the tests pass the system browser
# as executable_path. Modelled on shared/recipes/install-chromium.sh.
# Usage: .ci/install-chromium.sh [PYTHON]   (default: python)
set -euo pipefail
py="${1:-python}"
PLAYWRIGHT_VERSION="1.65.2"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log="$(mktemp)"
profile=""
cleanup() { rm -f "$log"; if [ -n "$profile" ]; then rm -rf "$profile"; fi; }
trap cleanup EXIT
quietly() {  # run a command, show its output only if it fails
  if ! "$@" >"$log" 2>&1; then
    echo "install-chromium.sh: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}
pkgs=()
command -v chromium >/dev/null || pkgs+=(chromium)
if ! find /usr/share/fonts /usr/local/share/fonts -type f \
       \( -name '*.ttf' -o -name '*.otf' -o -name '*.ttc' \) 2>/dev/null | grep -q .; then
  pkgs+=(fonts-dejavu-core)  # without any font, text renders as empty boxes
fi
if [ ${#pkgs[@]} -gt 0 ]; then
  quietly $SUDO apt-get update -qq
  quietly $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi
if ! "$py" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
  quietly "$py" -m pip install --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
fi
# Smoke run: JS executes in the headless browser (flags keep it off the network; --no-sandbox
# is required as root).
profile="$(mktemp -d)"
dom="$(timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run \
         --disable-background-networking --disable-component-update --disable-sync \
         --user-data-dir="$profile" --dump-dom \
         'data:text/html,<p id=x>no-js</p><script>document.getElementById("x").textContent="js-ran"</script>' \
         2>"$log" || true)"
if ! grep -q 'js-ran' <<<"$dom"; then
  echo "install-chromium.sh: headless smoke run of chromium failed:" >&2
  cat "$log" >&2
  exit 1
fi
chromium --version 2>/dev/null | head -n1
