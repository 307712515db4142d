#!/usr/bin/env bash
# deploy/prometheus: the scrape config and alert rules are valid (promtool check), and the rules
# fire, stay silent and record exactly as alerts_test.yml says (promtool test rules).
#   tests/prometheus_rules_test.sh [DIR]     DIR: deploy/prometheus (default: from this script)
set -euo pipefail
dir=${1:-$(dirname "$0")/../deploy/prometheus}
command -v promtool >/dev/null || { echo "promtool missing: scripts/bootstrap.sh installs prometheus"; exit 1; }
cd "$dir"
promtool check config prometheus.yml
promtool check rules alerts.yml
promtool test rules alerts_test.yml
