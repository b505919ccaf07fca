#!/usr/bin/env bash
# Records a run of benches/run.sh as the reference: replaces what benches/results/ holds with the
# run's CSVs and text files (strace counts, startup.txt, run.txt, and the per-op-* files of
# benches/profile.sh when they were written into the run's folder), then renders summary.md and
# the pictures there from them (benches/report.sh). The only script that writes benches/results/;
# a run never does.
#
#   bash benches/record.sh RUN_DIR          e.g. benches/runs/2026-12-06-101500
#   bash benches/record.sh RUN_DIR DEST     into DEST instead (a check of this script: the smoke
#                                           tier records its quick run into target/)
#
# RUN_DIR must be a full run (run.txt says "mode: full"): a --quick run is a smoke test, never
# the reference. benches/results/ must have no uncommitted changes. Afterwards: a section in
# benches/RESULTS.md (date, machine, commit, command, figures), the README's table, and one
# commit of all three.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,15p' "$0" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -d "$1" ]; then usage; fi
run=$1
dest=${2:-benches/results}
reference=0
[ "$(realpath -m "$dest")" = "$(realpath -m benches/results)" ] && reference=1

if [ ! -f "$run/run.txt" ] || [ ! -f "$run/summary.md" ]; then
  echo "$run: no run.txt or summary.md, so not a finished run of benches/run.sh" >&2; exit 2
fi
if [ "$reference" = 1 ] && ! grep -q '^mode: full' "$run/run.txt"; then
  echo "$run is a --quick run (a smoke test): not a reference" >&2; exit 2
fi
# DEST is replaced whole: only the reference, a new folder, or an earlier record.
if [ "$reference" = 0 ] && [ -e "$dest" ] && [ ! -f "$dest/run.txt" ]; then
  echo "$dest exists and holds no record: give a new folder" >&2; exit 2
fi
case "$(realpath -m "$run")/" in
  "$(realpath -m "$dest")"/*) echo "$run is in $dest itself" >&2; exit 2 ;;
esac
if [ "$reference" = 1 ] && [ -n "$(git status --porcelain -- "$dest")" ]; then
  echo "$dest has uncommitted changes: commit or restore them first" >&2; exit 2
fi

# What the reference needs: the run's top-level CSVs and text files. Not its logs/, nor what the
# report renders from them (summary.md, the pictures).
mapfile -t wanted < <(find "$run" -maxdepth 1 -type f \( -name '*.csv' -o -name '*.txt' \) -printf '%f\n' | sort)
[ "${#wanted[@]}" -gt 0 ] || { echo "$run has no CSVs" >&2; exit 2; }
# list_files FOLDER: the names of the files in FOLDER, sorted, one a line.
list_files() { [ ! -d "$1" ] || find "$1" -maxdepth 1 -type f -printf '%f\n' | sort; }
before=$(list_files "$dest")
rm -rf "$dest"
mkdir -p "$dest"
for f in "${wanted[@]}"; do cp "$run/$f" "$dest/$f"; done
bash benches/report.sh "$dest" >&2

# The former reference's files that the new one has not replaced (per-op-* when the run had no
# profiles, say): gone from the folder, still in git history.
gone=$(comm -23 <(echo "$before") <(list_files "$dest") | grep . | tr '\n' ' ' || true)
[ -z "$gone" ] || echo "no longer in $dest (not in this run): $gone" >&2
echo "recorded $run in $dest: $(list_files "$dest" | wc -l) files" >&2
if [ "$reference" = 1 ]; then
  git status --short -- "$dest" >&2
  echo "next: a section in benches/RESULTS.md and the README's table, then one commit" >&2
fi
