#!/usr/bin/env bash
# The daily drift check as a plain cron job: yesterday's data against the training profile,
# an HTML report for people and a JSON report for tools, exit 1 when a status reaches
# DRIFT_FAIL_ON (cron mails the output of a failing job when MAILTO is set).
#
#   crontab:  MAILTO=ml-oncall@example.com
#             0 6 * * *  /opt/churn/daily_drift_check.sh >>/var/log/churn-drift.log 2>&1
#
# Usage: daily_drift_check.sh [DAY]   (DAY as YYYY-MM-DD; default: yesterday, UTC)
# Environment:
#   DRIFT_PROFILE     the reference profile (mlprobe profile ... -o PROFILE)        [required]
#   DRIFT_DATA_DIR    folder with one CSV (or .parquet) per day: DAY.csv             [required]
#   DRIFT_REPORT_DIR  where DAY.html and DAY.json go (default ./drift-reports)
#   DRIFT_FAIL_ON     warning or critical (default critical)
#   DRIFT_MLPROBE     the mlprobe command (default: mlprobe)
# Exit codes: those of `mlprobe drift` (0 fine, 1 over DRIFT_FAIL_ON, 2 unreadable input).
set -euo pipefail
day="${1:-$(date -u -d yesterday +%F)}"
profile="${DRIFT_PROFILE:?set DRIFT_PROFILE to the reference profile of the model}"
data_dir="${DRIFT_DATA_DIR:?set DRIFT_DATA_DIR to the folder of daily data files}"
out="${DRIFT_REPORT_DIR:-./drift-reports}"
fail_on="${DRIFT_FAIL_ON:-critical}"
read -r -a mlprobe <<<"${DRIFT_MLPROBE:-mlprobe}"
data="$data_dir/$day.csv"
[ -e "$data" ] || data="$data_dir/$day.parquet"
mkdir -p "$out"
trap 'rm -f "$out/.$day.html.tmp"' EXIT
# The HTML report is written next to its name and renamed, so a reader never sees half a page.
"${mlprobe[@]}" drift "$profile" "$data" --format html >"$out/.$day.html.tmp"
mv "$out/.$day.html.tmp" "$out/$day.html"
status=0
"${mlprobe[@]}" drift "$profile" "$data" --format json --fail-on "$fail_on" \
  >"$out/$day.json" || status=$?
echo "mlprobe drift $day: exit $status; report $out/$day.html"
exit "$status"
