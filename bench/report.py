#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Turn bench/run.sh's measurements into bench/RESULTS.md: the machine, the
tool versions, median tables per case, and the goals of issue 8 checked
against the medians of this run (met or not, with the ratio)."""
import collections
import os
import platform
import statistics
import subprocess
import sys
import time

tsv, out, runs, scale = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
errors = sys.argv[5] if len(sys.argv) > 5 else ""
MIB = 1 << 20

rows = collections.defaultdict(list)
for line in open(tsv):
    case, tool, param, run, res = line.rstrip("\n").split("\t")
    secs, nbytes, cpu = res.split()
    rows[(case, tool, param)].append((float(secs), int(nbytes), float(cpu)))


def med(case, tool, param, i=0):
    v = rows.get((case, tool, str(param)))
    return statistics.median(x[i] for x in v) if v else None


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:
        return "?"


lines = []
w = lines.append
w("# ringcopy benchmark results")
w("")
w(f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
  f"`bench/run.sh` with {runs} runs per measurement (medians below), "
  f"sizes scaled by {scale:g}. Tools alternate inside every run; every "
  f"run's figures are in `{os.path.basename(out)[:-3]}.tsv` beside this file.")
w("")
w("## Machine")
w("")
cpu_model = sh("lscpu | sed -n 's/^Model name: *//p'")
mem_gib = sh("free -g | awk '/^Mem/ {print $2}'")
w(f"- CPU: {cpu_model}, {os.cpu_count()} cores")
w(f"- Memory: {mem_gib} GiB")
w(f"- Kernel: {platform.release()}")
pr = "/sys/module/page_reporting/parameters"
if os.path.isdir(pr):
    # A VM that hands freed pages back to its host (virtio free page
    # reporting) pays host faults when it allocates them again: the cost
    # of writing into tmpfs then varies from run to run.
    order = sh(f"cat {pr}/page_reporting_order")
    kib = sh(f"cat {pr}/reported_kib")
    w(f"- Free page reporting to the host: on (order {order}, "
      f"{int(kib) / 1e6 if kib.isdigit() else 0:.0f} GB reported since boot); "
      f"freed target pages come back through host faults, a source of "
      f"run-to-run variance in cases b and e")
w(f"- Targets and images: tmpfs (/dev/shm); the slow source is a loop device "
  f"over tmpfs throttled to 100 MB/s with cgroup v1 blkio")
w(f"- Read throughput columns are image bytes / wall time (MB = 10^6 bytes); "
  f"'read Nx' is what blkio counted from the source device / the image")
w("")
w("## Tool versions")
w("")
for name, cmd in [("ringcopy", "./ringcopy --version"),
                  ("dd", "dd --version | head -1"),
                  ("dcfldd", "dcfldd --version 2>&1 | head -1"),
                  ("dc3dd", "dc3dd --version 2>&1 | grep -m1 dc3dd"),
                  ("bmaptool", "bmaptool --version 2>&1"),
                  ("zstd", "zstd --version"),
                  ("tee", "tee --version | head -1")]:
    w(f"- {name}: {sh(cmd)}")
w("")

goals = []


def goal(text, ok, detail):
    goals.append((text, ok, detail))


def table(case, title, params, tools, size_mib, extra=None):
    if not any((case, t, str(p)) in rows for t in tools for p in params):
        return
    w(f"## {title}")
    w("")
    hdr = "| tool | " + " | ".join(str(p) for p in params) + " |"
    w(hdr)
    w("|" + "---|" * (len(params) + 1))
    for t in tools:
        cells = []
        for p in params:
            s = med(case, t, p)
            if s is None:
                cells.append("")
                continue
            b = med(case, t, p, 1)
            mbs = size_mib * MIB / 1e6 / s
            cell = f"{s:.2f} s ({mbs:.0f} MB/s)"
            if extra == "bytes" and b:
                cell += f", read {b / (size_mib * MIB):.2f}x"
            cpu = med(case, t, p, 2)
            if extra == "cpu" and cpu is not None:
                # param = targets: CPU of the measured tool per GiB written
                cell += f", {cpu / (size_mib / 1024 * p):.2f} CPU s/GiB"
            cells.append(cell)
        w(f"| {t} | " + " | ".join(cells) + " |")
    w("")


S512, S1G, S4G, S2G = 512 * scale, 1024 * scale, 4096 * scale, 2048 * scale
table("a", "a. Slow source (100 MB/s loop device), N tmpfs targets — wall time, "
      "and bytes read from the device (blkio) per image",
      [1, 2, 4, 8], ["ringcopy-noverify", "ringcopy", "dd-parallel", "dcfldd",
                     "dc3dd", "dd-single"], S512, "bytes")
table("b", "b. Page-cache source, 1 GiB to 4 tmpfs targets (param: targets)",
      [4, 1], ["ringcopy-noverify", "ringcopy", "dd-parallel", "dcfldd", "dc3dd",
               "tee", "dd-single", "floor-write", "floor-readback"], S1G, "cpu")
if any(k[0] == "c" for k in rows):
    w("## c. Late join (second copy started at 25/50/75% of the first)")
    w("")
    w("| join at | wall s | device bytes read / image | limit image x (1 + f) + one ring |")
    w("|---|---|---|---|")
    for f in (25, 50, 75):
        s, b = med("c", "ringcopy-late", f), med("c", "ringcopy-late", f, 1)
        if s is None:
            continue
        ratio = b / (S512 * MIB)
        limit = 1 + f / 100 + 64 / S512
        w(f"| {f}% | {s:.2f} | {ratio:.3f} | {limit:.3f} |")
        goal(f"(c) source bytes ≤ image × (1 + {f}%) + one ring", ratio <= limit,
             f"{ratio:.3f} ≤ {limit:.3f}")
    w("")
table("d", "d. Sparse 4 GiB image with 5% data, to a tmpfs file",
      [1], ["ringcopy", "ringcopy-noverify", "ringcopy-ring16M", "dd-sparse",
            "bmaptool"], S4G)
if any(k[0] == "e" for k in rows):
    w("## e. Scaling with null: targets (2 GiB page-cache image, no verification)")
    w("")
    w("| targets | wall s | GB/s per target | GB/s written in total | CPU s per GiB written |")
    w("|---|---|---|---|---|")
    tput = {}
    for n in (1, 2, 4, 16, 64):
        s, cpu = med("e", "ringcopy-null", n), med("e", "ringcopy-null", n, 2)
        if s is None:
            continue
        per = S2G * MIB / 1e9 / s
        tput[n] = per * n
        w(f"| {n} | {s:.2f} | {per:.2f} | {per * n:.2f} | {cpu / (S2G / 1024 * n):.3f} |")
    w("")
    if 64 in tput and 4 in tput:
        r = tput[64] / tput[4]
        goal("(e) throughput per byte written with 64 targets ≥ 80% of 4",
             r >= 0.8, f"{tput[64]:.1f} GB/s against {tput[4]:.1f} GB/s: {r * 100:.0f}%")
if any(k[0] == "f" for k in rows):
    w("## f. Geometry sweep (1 GiB page-cache image, 4 tmpfs targets, no verification)")
    w("")
    w("| block size | ring 16M | ring 32M | ring 64M | ring 256M |")
    w("|---|---|---|---|---|")
    for bs in ("64K", "256K", "1M", "4M"):
        cells = []
        for buf in ("16M", "32M", "64M", "256M"):
            s = med("f", "ringcopy", f"bs={bs},ring={buf}")
            cells.append(f"{s:.2f} s" if s else "")
        w(f"| {bs} | " + " | ".join(cells) + " |")
    w("")
table("z", "z. zstd (1 GiB image: half random, half compressible)",
      [1, 4], ["ringcopy-compress", "zstd-T0-3", "ringcopy-zst-to-4", "zstd-d-x4"], S1G)

table("n", "n. NBD targets (256 MiB image, no verification, fresh nbdkit memory "
      "servers for every run; param: targets; CPU is the client's, the servers "
      "share the same 2 cores)",
      [1, 4, 16], ["ringcopy-tmpfs", "ringcopy-nbd-unix", "ringcopy-nbd-tcp-1ms",
                   "nbdcopy-per-target"], 256 * scale, "cpu")
for n in (16,):
    loc, un, tcp = (med("n", t, n) for t in ("ringcopy-tmpfs", "ringcopy-nbd-unix",
                                               "ringcopy-nbd-tcp-1ms"))
    if loc and un:
        goal(f"(issue 9) {n} NBD targets: ≥ 90% of local tmpfs per-byte throughput",
             loc / un >= 0.9, f"{loc / un * 100:.0f}%")
    if loc and tcp:
        goal(f"(issue 9) {n} NBD targets with 1 ms delay: ≥ 70% of local",
             loc / tcp >= 0.7, f"{loc / tcp * 100:.0f}%")
    # What the throughput rows cannot show here: the servers run on the
    # client's two cores.  The client's own CPU per GiB is its share.
    cl, cu = med("n", "ringcopy-tmpfs", n, 2), med("n", "ringcopy-nbd-unix", n, 2)
    if cl and cu:
        goal(f"(issue 9, for reference) {n} NBD targets: client CPU per GiB "
             f"vs local tmpfs targets", None, f"{cu / cl * 100:.0f}%")

# Goals of issue 8 (and issue 5's zstd goal).
for n in (4, 8):
    rc, dd1 = med("a", "ringcopy-noverify", n), med("a", "dd-single", 1)
    if rc and dd1:
        goal(f"(a) {n} targets, --no-verify: ≤ 1.15 × one dd", rc <= 1.15 * dd1,
             f"{rc / dd1:.2f} ×")
        b = med("a", "ringcopy-noverify", n, 1) / (S512 * MIB)
        goal(f"(a) {n} targets: reads exactly 1.00 × the image", abs(b - 1) < 0.005,
             f"{b:.3f} ×")
    v = med("a", "ringcopy", n)
    if rc and v:
        goal(f"(a) {n} targets: verification adds ≤ 15%", v <= 1.15 * rc,
             f"{(v / rc - 1) * 100:+.0f}%")


def fastest_peer(case, n):
    """The faster median of dcfldd and dc3dd, or None."""
    return min((x for x in (med(case, "dcfldd", n), med(case, "dc3dd", n)) if x),
               default=None)


# The peers goals are case b's.  With the slow source every tool runs at
# the device's speed (the page cache lets the peers read it once too), so
# case a's ratios are shown for reference, not judged.
for case, n in (("a", 4), ("a", 8), ("b", 4)):
    rc = med(case, "ringcopy-noverify", n)
    best = fastest_peer(case, n)
    dd = med(case, "dd-parallel", n)
    ref = " (for reference)" if case == "a" else ""
    if rc and best:
        goal(f"({case}) {n} targets: ≥ 1.5 × faster than the faster of dcfldd/dc3dd{ref}",
             None if ref else best / rc >= 1.5, f"{best / rc:.2f} ×")
    if rc and dd:
        goal(f"({case}) {n} targets: faster than parallel dd{ref}",
             None if ref else rc < dd, f"{dd / rc:.2f} ×")
rcb, vb = med("b", "ringcopy-noverify", 4), med("b", "ringcopy", 4)
if rcb and vb:
    goal("(b) verification adds ≤ 15%", vb <= 1.15 * rcb, f"{(vb / rcb - 1) * 100:+.0f}%")
# What the machine allows in case b: no tool writes the 4 targets faster
# than 4 dd from /dev/zero, and no read-back verification costs less than
# reading the 4 targets back.
fw, fr = med("b", "floor-write", 4), med("b", "floor-readback", 4)
best = fastest_peer("b", 4)
if fw and rcb:
    goal("(b, for reference) ringcopy --no-verify / writing alone (4 dd from /dev/zero)",
         None, f"{rcb / fw:.2f} ×")
if fw and best:
    goal("(b, for reference) the faster of dcfldd/dc3dd / writing alone: "
         "the most any tool could be faster", None, f"{best / fw:.2f} ×")
if fr and rcb:
    goal("(b, for reference) reading the 4 targets back alone, "
         "against ringcopy --no-verify: the least verification can add", None,
         f"+{fr / rcb * 100:.0f}%")
rcd, bm = med("d", "ringcopy", 1), med("d", "bmaptool", 1)
if rcd and bm:
    goal("(d) sparse: faster than bmaptool", rcd < bm, f"{bm / rcd:.2f} ×")
rz, zz = med("z", "ringcopy-compress", 1), med("z", "zstd-T0-3", 1)
if rz and zz:
    goal("(issue 5) .zst compression ≥ 80% of zstd -T0 -3's speed", zz / rz >= 0.8,
         f"{zz / rz * 100:.0f}%")

w("## Goals, checked against this run")
w("")
w("| goal | met | measured |")
w("|---|---|---|")
for text, ok, detail in goals:
    met = "—" if ok is None else "yes" if ok else "**no**"
    w(f"| {text} | {met} | {detail} |")
w("")
if errors:
    w("## Errors during the run")
    w("")
    w("```")
    w(errors)
    w("```")
    w("")
# bench/fleet.sh keeps its table in this file between markers: a run of
# this report keeps it too.
try:
    old = open(out).read()
    b, e = old.find("<!-- fleet:begin -->"), old.find("<!-- fleet:end -->")
    if 0 <= b < e:
        lines.append(old[b:e + len("<!-- fleet:end -->")])
        lines.append("")
except OSError:
    pass
open(out, "w").write("\n".join(lines))
