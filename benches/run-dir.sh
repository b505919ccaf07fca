# shellcheck shell=bash
# Sourced by run.sh and profile.sh (from the repository root): where a run writes. A run never
# writes the tree's tracked files: its folder is $RUN_DIR when set, else a new gitignored
# benches/runs/DATE-TIME/ (UTC). benches/results/ holds the recorded reference run, and only
# benches/record.sh writes it.

# run_dir DEFAULT: sets $out to $RUN_DIR, or else DEFAULT, and creates the folder; refuses a
# folder in benches/results/.
run_dir() {
  out=${RUN_DIR:-$1}
  case "$(realpath -m "$out")/" in
    "$(realpath -m benches/results)"/*)
      echo "$out is in benches/results/, the recorded reference run: a run writes to its own" \
        "folder, and benches/record.sh records one as the reference" >&2
      exit 2 ;;
  esac
  mkdir -p "$out"
}

# now_stamp: the date and time as a folder name, UTC, e.g. 2026-12-06-101500.
now_stamp() { date -u +%Y-%m-%d-%H%M%S; }
