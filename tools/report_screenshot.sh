#!/usr/bin/env bash
# Render a tuning's report.html in headless Chromium and save a screenshot of the whole page,
# to check by eye that the report reads well in a real browser.
#
#   tools/report_screenshot.sh [WORKSPACE] [OUT.png] [TUNE OPTIONS...]
#
# WORKSPACE: a tuning's folder (default: ./tunekit_workspace_report). When it holds no
#   report.html yet, the digits example (examples/digits_pytorch/fallback.yaml) is tuned into it
#   first, with a time budget so that the strategy goes on past the first passing model.
# OUT.png: where the screenshot goes (default: WORKSPACE/report.png).
# TUNE OPTIONS: passed on to that `tunekit tune`, e.g. --max-trials 7.
# Needs Chromium (Debian/Ubuntu: apt-get install chromium) and, to tune, tunekit with torch.
# Chromium runs with every host name unresolvable, so anything the page tried to fetch from
# the network would be missing from the screenshot: the report must carry all it shows.
# TUNEKIT_PYTHON picks the Python that runs tunekit (default: python3); REPORT_HEIGHT the
# browser window's height in pixels before the empty bottom is cut (default 6000).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
workspace="${1:-tunekit_workspace_report}"
shot="${2:-$workspace/report.png}"
shift $(( $# < 2 ? $# : 2 ))
python="${TUNEKIT_PYTHON:-python3}"
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    echo "report_screenshot: chromium not found; install it (apt-get install chromium)" >&2
    exit 2
fi
if [ ! -f "$workspace/report.html" ]; then
    status=0
    "$python" -m tunekit.cli tune "$root/examples/digits_pytorch/fallback.yaml" \
        --workspace "$workspace" --set tuning.exit_policy.timeout=300 -q "$@" || status=$?
    if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then  # 3: goal not met, report written
        exit "$status"
    fi
fi
page="$(cd "$workspace" && pwd)/report.html"
mkdir -p "$(dirname "$shot")"
# root in a container has no user namespace for Chromium's sandbox; the page is our own file
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --host-resolver-rules="MAP * ~NOTFOUND" --window-size="1200,${REPORT_HEIGHT:-6000}" \
    --screenshot="$shot" "file://$page" >/dev/null 2>&1
# cut the empty bottom of the window (the page is shorter than it)
"$python" - "$shot" <<'PY'
import sys
from PIL import Image, ImageChops

path = sys.argv[1]
with Image.open(path) as image:
    picture = image.convert("RGB")
blank = Image.new("RGB", picture.size, (255, 255, 255))
box = ImageChops.difference(picture, blank).getbbox()
if box is not None:
    picture.crop((0, 0, picture.width, min(picture.height, box[3] + 40))).save(path)
PY
echo "wrote $shot"
