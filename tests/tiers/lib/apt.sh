# shellcheck shell=bash
# Sourced by the tiers (and benches/report.sh) that install what they need: Debian packages, and
# Python tools from PyPI into a virtual environment (this directory is not a tier itself).
# Installs quietly, bounded in time, and never leaves a packaged daemon running.

export DEBIAN_FRONTEND=noninteractive
apt_updated=""

# apt_install [--with-recommends] PACKAGE...: installs the packages (an `apt-get update` first if
# apt does not know one of them), without the packages they only recommend unless asked; shows
# the end of apt's output when it fails.
apt_install() {
  local recommends=--no-install-recommends p
  if [ "${1:-}" = --with-recommends ]; then
    recommends=""
    shift
  fi
  if [ -z "$apt_updated" ]; then
    for p in "$@"; do
      if ! apt-cache show "$p" >/dev/null 2>&1; then
        timeout 120 apt-get -o DPkg::Lock::Timeout=60 update -qq
        apt_updated=1
        break
      fi
    done
  fi
  local log rc=0
  log="$(mktemp)"
  # shellcheck disable=SC2086 # $recommends is one option or none
  timeout 180 apt-get -o DPkg::Lock::Timeout=60 install -y -qq $recommends "$@" \
    >"$log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || tail -20 "$log"
  rm -f "$log"
  return "$rc"
}

# venv_install DIR PIP-ARGUMENT...: pip installs into the virtual environment at DIR, made first
# when missing (with Debian's python3-venv installed when python3 cannot make one).
venv_install() {
  local dir=$1
  shift
  if [ ! -x "$dir/bin/pip" ]; then
    if ! python3 -m venv "$dir" >/dev/null 2>&1; then
      apt_install python3-venv
      rm -rf "$dir"
      python3 -m venv "$dir"
    fi
  fi
  timeout 150 "$dir/bin/pip" install -q --disable-pip-version-check --no-input \
    --progress-bar off "$@"
}

# install_prometheus: Debian's prometheus package (the server and promtool), its service kept
# from starting. The package enables a service and asks invoke-rc.d to start it: a policy-rc.d
# that answers 101 ("not allowed") keeps it from starting (container images often ship one; it
# is added for the install if not). Whatever the install started anyway is stopped, by pid:
# only processes that were not running before it.
install_prometheus() {
  local started=$SECONDS policy=/usr/sbin/policy-rc.d added_policy="" before rc=0 pid
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added_policy=1
  fi
  before="$(pgrep -x prometheus || true)"
  apt_install prometheus || rc=$?
  [ -z "$added_policy" ] || rm -f "$policy"
  for pid in $(pgrep -x prometheus || true); do
    if ! grep -qx "$pid" <<<"$before"; then
      echo "stopping prometheus pid $pid started by the package"
      kill "$pid" 2>/dev/null || true
    fi
  done
  [ "$rc" -eq 0 ] || { echo "apt-get install prometheus failed ($rc)"; return 1; }
  echo "prometheus installed in $((SECONDS - started)) s"
}

# need_nginx: nginx (Debian's nginx-light), the load balancer stand-in of the rollout harness,
# when it is missing. The harness runs its own instance with its own config and prefix.
need_nginx() {
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx-light (the load balancer stand-in)"
    apt_install nginx-light
  fi
}
