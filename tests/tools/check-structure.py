#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The shape of the house, checked (issues 24 and 26).

    check-structure.py SRCDIR BUILDDIR [--report]

Fails (exit 1, one line per finding) when:
  - a function in src/ or backends/ is over 100 lines (universal-ctags'
    start and end lines);
  - src/invocation.c is over 800 lines;
  - src/station.c or src/relay.c spells one of the copy's long options as
    a string of its own ("block-size" or "--block-size"): the option table
    is the one place that names them;
  - a file in src/ calls a backend by name (rc_zstd_*, rc_nbd_*, ...);
  - a file other than src/ringproto.c and src/ring.c names RC_SEM_* or
    RC_CONS_* (the protocol module owns the ring's shared state);
  - the object call graph (nm on BUILDDIR's objects) has a cycle.
With --report, prints what it measured and exits 0 whatever it found."""
import glob
import os
import re
import subprocess
import sys

MAX_FUNC = 100
MAX_INVOCATION = 800
BACKENDS = ("blockdev", "decode", "fault", "file", "nbd", "null", "stdio", "zstd")


def functions(srcdir):
    files = sorted(glob.glob(os.path.join(srcdir, "src", "*.c")) +
                   glob.glob(os.path.join(srcdir, "backends", "*.c")))
    out = subprocess.run(["ctags", "--c-kinds=f", "--fields=+ne", "-o", "-"] + files,
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cols = line.split("\t")
        start = end = None
        for c in cols[3:]:
            if c.startswith("line:"):
                start = int(c[5:])
            elif c.startswith("end:"):
                end = int(c[4:])
        if start and end:
            yield os.path.relpath(cols[1], srcdir), cols[0], end - start + 1


def copy_long_options(srcdir):
    """The copy's long options, as its usage text lists them."""
    text = open(os.path.join(srcdir, "src", "cli.c")).read()
    names = set()
    for m in re.finditer(r'"\s*(?:-\w, )?\s*--([a-z][a-z-]+)([^"]*)"', text):
        rest = m.group(2)
        if "station:" in rest or "serve:" in rest:
            continue
        names.add(m.group(1))
    return names - {"help", "version"}


def option_names_in(path):
    """Whole string literals "--NAME", and "NAME" opening a getopt entry."""
    code = open(path).read()
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    for s in re.findall(r'"(--[a-z][a-z-]*)"', code):
        yield s, s[2:]
    for s in re.findall(r'\{\s*"([a-z][a-z-]*)"\s*,\s*(?:no|required|optional)_argument', code):
        yield s, s


def call_graph_cycles(srcdir, builddir):
    objs = sorted(glob.glob(os.path.join(builddir, "src", "*.o")) +
                  glob.glob(os.path.join(builddir, "backends", "*.o")))
    # An object left from a source since renamed is not the program.
    objs = [o for o in objs if os.path.exists(os.path.join(
        srcdir, os.path.relpath(o, builddir)[:-2] + ".c"))]
    defs, uses = {}, {}
    for o in objs:
        for line in subprocess.run(["nm", o], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBR":
                defs[p[2]] = o
            elif len(p) == 2 and p[0] == "U":
                uses.setdefault(o, set()).add(p[1])
    graph = {o: {defs[s] for s in uses.get(o, ()) if s in defs and defs[s] != o}
             for o in objs}
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(os.path.relpath(c, builddir) for c in comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return len(objs), found


def main():
    args = [a for a in sys.argv[1:] if a != "--report"]
    report = "--report" in sys.argv[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    srcdir, builddir = args
    bad = []

    funcs = list(functions(srcdir))
    if len(funcs) < 100:
        bad.append(f"ctags found only {len(funcs)} functions: is it universal-ctags?")
    for path, name, n in sorted(funcs, key=lambda f: -f[2]):
        if n > MAX_FUNC:
            bad.append(f"{path}: {name} is {n} lines (at most {MAX_FUNC})")

    inv = os.path.join(srcdir, "src", "invocation.c")
    n = sum(1 for _ in open(inv))
    if n > MAX_INVOCATION:
        bad.append(f"src/invocation.c is {n} lines (at most {MAX_INVOCATION})")

    opts = copy_long_options(srcdir)
    if len(opts) < 15:
        bad.append(f"found only {len(opts)} of the copy's long options in src/cli.c")
    for f in ("station.c", "relay.c"):
        for s, name in option_names_in(os.path.join(srcdir, "src", f)):
            if name in opts:
                bad.append(f"src/{f} spells the copy's option \"{s}\"")

    setter = re.compile(r"\brc_(%s)_\w+\s*\(" % "|".join(BACKENDS))
    proto = re.compile(r"\bRC_(SEM|CONS)_\w+")
    for path in sorted(glob.glob(os.path.join(srcdir, "src", "*.c"))):
        name = os.path.basename(path)
        for i, line in enumerate(open(path), 1):
            m = setter.search(line)
            if m:
                bad.append(f"src/{name}:{i}: calls a backend by name: {m.group(0).strip()}")
            if name not in ("ringproto.c", "ring.c") and proto.search(line):
                bad.append(f"src/{name}:{i}: names the ring's state: {proto.search(line).group(0)}")

    nobj, cycles = call_graph_cycles(srcdir, builddir)
    if nobj < 10:
        bad.append(f"found only {nobj} objects under {builddir}: build first")
    for comp in cycles:
        bad.append("call graph cycle among: " + " ".join(comp))

    if report:
        longest = sorted(funcs, key=lambda f: -f[2])[:5]
        print(f"{len(funcs)} functions, longest: " +
              ", ".join(f"{p}:{f} {n}" for p, f, n in longest))
        print(f"invocation.c {n} lines; {nobj} objects; {len(opts)} copy options")
    for b in bad:
        print(b)
    sys.exit(0 if report or not bad else 1)


main()
