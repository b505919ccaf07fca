#!/usr/bin/env bash
# Renders a run's folder from its CSVs: summary.md (the tables: benches/report/summary.py,
# python3's standard library) and the pictures (benches/report/pictures.py: memory.svg,
# echo-cdf.svg, echo-paced-cdf.svg) with the matplotlib pinned in benches/report/requirements.txt,
# installed from PyPI into target/bench-venv when it is missing or the pins changed (about 15 s).
#
#   bash benches/report.sh FOLDER          e.g. a run of benches/run.sh, or benches/results
#   bash benches/report.sh FOLDER --png    also a PNG beside each SVG, to look at
#
# run.sh and record.sh run it; by hand it redraws a folder after a change to the report.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -d "$1" ]; then sed -n '2,10p' "$0" >&2; exit 2; fi
folder=$1
shift

# No __pycache__ in benches/report/: a run writes nothing in the tree.
export PYTHONDONTWRITEBYTECODE=1
python3 benches/report/summary.py "$folder" >/dev/null
echo "wrote $folder/summary.md"

venv=target/bench-venv
req=benches/report/requirements.txt
stamp="$(sha256sum "$req" | cut -c1-16) $(python3 --version)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "installing matplotlib ($req) into $venv" >&2
  rm -rf "$venv"
  # shellcheck source=tests/tiers/lib/apt.sh
  . tests/tiers/lib/apt.sh
  venv_install "$venv" -r "$req" >&2
  echo "$stamp" >"$venv/stamp"
fi
# matplotlib's font cache and settings stay in the venv, not in $HOME.
MPLCONFIGDIR="$PWD/$venv/mplconfig" "$venv/bin/python" benches/report/pictures.py "$folder" "$@"
