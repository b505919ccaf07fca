#!/usr/bin/env python3
"""Checks the Containerfile and replays it without a container engine (tests/tiers/container.sh).

  containerfile.py check   --repo . --help-text FILE
      static checks: every FROM pinned by digest; the final stage is distroless
      static-debian12:nonroot, runs as 65532:65532, exposes the server's default ports (parsed
      from `wsdrain --help`), has an exec-form ENTRYPOINT and copies only the binary and
      static/; the builder copies the manifest of every workspace member.
  containerfile.py replay  --repo . --work DIR
      the builder stage's COPY and RUN steps in DIR/builder (absolute paths in RUN lines are
      mapped under it), with the build context filtered by Containerfile.dockerignore, then
      the final stage's COPY steps into the empty root DIR/root. Prints JSON: root, env,
      workdir, user, entrypoint, expose: what container.sh needs to run the root like the
      image.
"""

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

DISTROLESS = "gcr.io/distroless/static-debian12:nonroot@sha256:"


def parse(path):
    """Stages: [{'from': str, 'name': str|None, 'steps': [(INSTR, args)]}]."""
    lines, cur = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    stages = []
    for line in lines:
        instr, _, args = line.strip().partition(" ")
        instr, args = instr.upper(), args.strip()
        if instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            stages.append({"from": m.group(1), "name": m.group(2), "steps": []})
        else:
            stages[-1]["steps"].append((instr, args))
    return stages


def copy_args(args):
    """(from_stage, [sources], dest) of a COPY instruction (shell form)."""
    words = shlex.split(args)
    opts = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    src_stage = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
    return src_stage, paths[:-1], paths[-1]


def fail(msg):
    print(f"containerfile: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(args):
    stages = parse(os.path.join(args.repo, "Containerfile"))
    for s in stages:
        if not re.search(r":[^/@]+@sha256:[0-9a-f]{64}$", s["from"]):
            fail(f"FROM {s['from']} is not pinned by tag and digest")
    final = stages[-1]
    if not final["from"].startswith(DISTROLESS):
        fail(f"final stage is {final['from']}, not {DISTROLESS}…")
    steps = final["steps"]
    users = [a for i, a in steps if i == "USER"]
    if users != ["65532:65532"]:
        fail(f"final stage USER is {users}, want ['65532:65532']")
    with open(args.help_text) as f:
        help_text = f.read()
    defaults = dict(re.findall(r"^\s+--\S+\s+([A-Z_]+)\s+\[default: ([^\]]*)\]", help_text, re.M))
    want_ports = sorted([defaults["PORT"], defaults["ADMIN_PORT"]])
    exposed = sorted(p for i, a in steps if i == "EXPOSE" for p in a.split())
    if exposed != want_ports:
        fail(f"EXPOSE {exposed}, but the server's default ports are {want_ports}")
    entry = [a for i, a in steps if i == "ENTRYPOINT"]
    if len(entry) != 1 or not entry[0].startswith("["):
        fail(f"ENTRYPOINT must be one exec-form (JSON) instruction, got {entry}")
    if any(i in ("RUN", "ADD", "CMD") for i, _ in steps):
        fail("the final stage must only COPY (distroless has no shell)")
    copies = [copy_args(a) for i, a in steps if i == "COPY"]
    shipped = sorted(dst for _, _, dst in copies)
    if shipped != ["/static", "/wsdrain"]:
        fail(f"the final stage copies {shipped}; only /wsdrain and /static belong in the image")
    # Every workspace member's manifest must be in the builder's dependency layer.
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
            cwd=args.repo, check=True, capture_output=True, text=True,
        ).stdout
    )
    root = os.path.realpath(meta["workspace_root"])
    manifests = sorted(
        os.path.relpath(os.path.realpath(p["manifest_path"]), root) for p in meta["packages"]
    )
    copied = set()
    for s in stages[:-1]:
        for i, a in s["steps"]:
            if i == "COPY":
                _, srcs, dst = copy_args(a)
                for src in srcs:
                    copied.add(os.path.normpath(src))
                    if src in ("Cargo.toml", "./") or dst in ("./", "."):
                        copied.add("Cargo.toml")
    missing = [m for m in manifests if m not in copied]
    if missing:
        fail(f"the builder stage does not COPY these workspace manifests: {missing}")
    print(
        f"containerfile ok: {len(stages)} stages pinned by digest, final = distroless nonroot, "
        f"USER 65532:65532, EXPOSE {' '.join(exposed)}, exec ENTRYPOINT {entry[0]}, "
        f"workspace manifests copied: {', '.join(manifests)}"
    )


class Ignore:
    """Containerfile.dockerignore rules: later rules win, `!` re-includes, a rule that matches
    a directory matches everything under it, `*` does not cross `/`."""

    def __init__(self, path):
        self.rules = []
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        neg = line.startswith("!")
                        pat = line.lstrip("!").strip("/")
                        self.rules.append((neg, pat.split("/")))

    def excluded(self, rel):
        parts = rel.split("/")
        out = False
        for neg, pat in self.rules:
            if len(pat) <= len(parts) and all(
                fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pat)
            ):
                out = not neg
        return out


def context_files(repo):
    """What a clean clone holds (tracked plus untracked, not ignored), less .dockerignore."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=repo, check=True, capture_output=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        listed = []
        for top, dirs, names in os.walk(repo):
            dirs[:] = [d for d in dirs if d not in (".git", "target", "node_modules")]
            listed += [os.path.relpath(os.path.join(top, n), repo) for n in names]
    ignore = Ignore(os.path.join(repo, "Containerfile.dockerignore"))
    return {
        f for f in listed
        if f and os.path.isfile(os.path.join(repo, f)) and not ignore.excluded(f)
    }


def copy_from_context(repo, files, src, dst):
    src = os.path.normpath(src)
    picked = [f for f in files if src == "." or f == src or f.startswith(src + "/")]
    if not picked:
        fail(f"COPY {src}: nothing in the build context (is it in Containerfile.dockerignore?)")
    is_dir = dst.endswith("/") or len(picked) > 1 or picked[0] != src
    for f in picked:
        if is_dir:
            rel = f if src == "." else (os.path.relpath(f, src) if f != src else os.path.basename(f))
            target = os.path.join(dst, rel)
        else:
            target = dst
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(repo, f), target)


def replay(args):
    repo = os.path.realpath(args.repo)
    work = os.path.realpath(args.work)
    stages = parse(os.path.join(repo, "Containerfile"))
    files = context_files(repo)
    roots = {}
    for n, stage in enumerate(stages):
        final = n == len(stages) - 1
        fs = os.path.join(work, "root" if final else (stage["name"] or f"stage{n}"))
        shutil.rmtree(fs, ignore_errors=True)
        os.makedirs(fs)
        under = lambda p, fs=fs: os.path.join(fs, p.lstrip("/"))  # noqa: E731
        cwd, env, user, entry, expose = "/", {}, None, None, []
        for instr, a in stage["steps"]:
            if instr == "WORKDIR":
                cwd = os.path.join(cwd, a)
                os.makedirs(under(cwd), exist_ok=True)
            elif instr == "COPY":
                src_stage, srcs, dst = copy_args(a)
                dst_abs = dst if dst.startswith("/") else os.path.join(cwd, dst) + (
                    "/" if dst.endswith("/") or dst in (".", "./") else ""
                )
                for src in srcs:
                    if src_stage:
                        s = os.path.join(roots[src_stage], src.lstrip("/"))
                        t = under(dst_abs)
                        os.makedirs(os.path.dirname(t), exist_ok=True)
                        if os.path.isdir(s):
                            shutil.copytree(s, t, dirs_exist_ok=True)
                        else:
                            shutil.copy2(s, t)
                    else:
                        copy_from_context(repo, files, src, under(dst_abs))
            elif instr == "RUN":
                if final:
                    fail("RUN in the final stage")
                # Absolute paths in the command are mapped under this stage's directory.
                cmd = re.sub(r"(?<![\w./-])/(?=[A-Za-z])", fs + "/", a)
                print(f"replay [{stage['name']}] RUN {a}", file=sys.stderr)
                subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=under(cwd),
                               check=True, env={**os.environ, **env}, stdout=sys.stderr)
            elif instr == "ENV":
                k, _, v = a.partition("=")
                env[k.strip()] = v.strip().strip('"')
            elif instr == "USER":
                user = a
            elif instr == "ENTRYPOINT":
                entry = json.loads(a)
            elif instr == "EXPOSE":
                expose += a.split()
        if stage["name"]:
            roots[stage["name"]] = fs
        if final:
            print(json.dumps({"root": fs, "env": env, "workdir": cwd, "user": user,
                              "entrypoint": entry, "expose": expose}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--repo", default=".")
    c.add_argument("--help-text", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--repo", default=".")
    r.add_argument("--work", required=True)
    args = p.parse_args()
    check(args) if args.cmd == "check" else replay(args)


if __name__ == "__main__":
    main()
