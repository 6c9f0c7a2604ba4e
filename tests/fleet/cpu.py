#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
# CPU seconds of a relay node's processes, by role (bench/relay-cpu.sh):
#   cpu.py OUT ROOTPID...
# follows every descendant of each ROOTPID (a `ringcopy relay') until all
# the roots are gone, sampling /proc every 5 ms, and writes to OUT one line
# per root: "node K role user sys" for the roles relay (the root itself:
# its forwarder), qsd (qemu-storage-daemon), img (qemu-img) and copy (the
# forked copy and its processes).  A process's last sample is kept: what
# it used in its last 5 ms before it exited is lost (a few ms per process).
import os
import sys
import time

tick = os.sysconf("SC_CLK_TCK")


def stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    return comm, int(f[11]), int(f[12])   # utime, stime (ticks)


def children(pid):
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def main():
    outf, roots = sys.argv[1], [int(x) for x in sys.argv[2:]]
    node = {r: i + 1 for i, r in enumerate(roots)}   # pid -> node
    role = {r: "relay" for r in roots}
    last = {}
    while True:
        alive = False
        for pid in list(node):
            st = stat(pid)
            if st is None:
                continue
            if pid in roots:
                alive = True
            comm, u, s = st
            if role[pid] in ("copy?", "qsd", "img"):
                # A child of the relay: what it became after its exec.
                role[pid] = ("qsd" if comm.startswith("qemu-storage") else
                             "img" if comm.startswith("qemu-img") else
                             "copy?")
            last[pid] = (u, s)
            for c in children(pid):
                if c not in node:
                    node[c] = node[pid]
                    role[c] = ("copy?" if role[pid] == "relay" else
                               role[pid].rstrip("?"))
        if not alive:
            break
        time.sleep(0.005)
    tot = {}
    for pid, (u, s) in last.items():
        k = (node[pid], role[pid].rstrip("?"))
        a = tot.setdefault(k, [0, 0])
        a[0] += u
        a[1] += s
    with open(outf, "w") as f:
        for (n, r), (u, s) in sorted(tot.items()):
            f.write("node %d %s %.2f %.2f\n" % (n, r, u / tick, s / tick))


main()
