#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Differential fuzzing of ringcopy's five decoders against the formats'
own tools.

    decoders.py --ringcopy PATH --work DIR [--seconds S] [--rounds N]
                [--seed K] [-v]

Each round takes a valid compressed image (xz, gzip, bzip2, lz4, lz4
legacy, zstd, pzstd's skippable-framed zstd, multi-stream and multi-member
variants), damages it (bit flips, byte writes, truncation, garbage or zeros
appended, a chunk cut or repeated, another file spliced in), and copies it
with ringcopy, as a file and through a pipe.  The oracle: a file that
begins with a format's magic (looked up here, not in ringcopy) must decode
as the format's tool decodes it (`xz -dc', `gzip -dc', `bzip2 -dc',
`lz4 -dc', `zstd -dc'); any other file is copied as its bytes.  A failure
is an "ok" (exit 0) whose target differs from the oracle, or an "ok" where
the tool fails, or any exit status other than 0, 1 or 2, or a copy that
does not end.  Refusing or failing a damaged file is always allowed.

The seed is printed first; --seed replays it.  Exit 0 when every round
held, 1 otherwise (the failing inputs are kept in DIR/failures).
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import time

TOOLS = {
    "xz": ["xz", "-dc"],
    "gzip": ["gzip", "-dc"],
    "bzip2": ["bzip2", "-dc"],
    "lz4": ["lz4", "-dc"],
    "zstd": ["zstd", "-q", "-dc"],
}

MAGICS = [
    ("xz", b"\xfd7zXZ\x00"),
    ("gzip", b"\x1f\x8b\x08"),
    ("bzip2", b"BZh"),
    ("lz4", b"\x04\x22\x4d\x18"),
    ("lz4", b"\x02\x21\x4c\x18"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
]


def skippable(b):
    return len(b) >= 4 and b[0] & 0xF0 == 0x50 and b[1:4] == b"\x2a\x4d\x18"


def magic_of(data):
    """The format a file is, by its first bytes (the man page's rule), or
    None for plain bytes."""
    def at(m, whole):
        for fmt, magic in MAGICS:
            if fmt == "bzip2" and len(m) > 3 and not (0x31 <= m[3] <= 0x39):
                continue
            if m[:len(magic)] == magic:
                return fmt
            if whole and 3 <= len(m) < len(magic) and magic[:len(m)] == m:
                return fmt
        return None

    if len(data) < 3:
        return None
    p, skipped = 0, False
    while len(data) - p >= 8 and skippable(data[p:p + 4]):
        nxt = p + 8 + int.from_bytes(data[p + 4:p + 8], "little")
        skipped = True
        if nxt >= len(data):
            return "zstd"
        p = nxt
    if not skipped and skippable(data[:4]):
        return "zstd"
    f = at(data[p:p + 4096], True)
    if skipped:
        return "lz4" if f == "lz4" else "zstd"
    return f


def sh(cmd, data=None, timeout=30):
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def make_seeds(work, rnd):
    """Valid compressed images of a small image with random and zero
    runs: each format, and its framings."""
    img = bytearray()
    while len(img) < 300 * 1024:
        n = rnd.randrange(1, 40 * 1024)
        img += os.urandom(n) if rnd.random() < 0.5 else bytes(n)
    img = bytes(img)
    half = len(img) // 2
    seeds = {}

    def comp(cmd, data):
        return sh(cmd, data).stdout

    seeds["xz"] = comp(["xz", "-T1", "-1", "-c"], img)
    seeds["xz-multi"] = (comp(["xz", "-1", "-c"], img[:half]) + bytes(4) +
                         comp(["xz", "-1", "-c"], img[half:]))
    seeds["xz-blocks"] = comp(["xz", "-1", "--block-size=65536", "-c"], img)
    seeds["gzip"] = comp(["gzip", "-1", "-c"], img)
    seeds["gzip-members"] = (comp(["gzip", "-c"], img[:half]) +
                             comp(["gzip", "-c"], img[half:]))
    seeds["bzip2"] = comp(["bzip2", "-1", "-c"], img)
    seeds["lz4"] = comp(["lz4", "-q", "-c"], img)
    seeds["lz4-legacy"] = comp(["lz4", "-q", "-l", "-c"], img)
    seeds["lz4-mixed"] = (comp(["lz4", "-q", "-l", "-c"], img[:half]) +
                          comp(["lz4", "-q", "-c"], img[half:]))
    seeds["zstd"] = comp(["zstd", "-q", "-c"], img)
    seeds["zstd-nosize"] = comp(["zstd", "-q", "--no-content-size", "-c"],
                                img)
    # A window smaller than the content: a frame that is not single
    # segment, whose stated size zstd checks only at its end.
    seeds["zstd-window"] = comp(["zstd", "-q", "--zstd=wlog=17", "-c"], img)
    if shutil.which("pzstd"):
        seeds["pzstd"] = comp(["pzstd", "-q", "-p", "2", "-c"], img)
    seeds = {k: v for k, v in seeds.items() if v}
    return img, seeds


def mutate(data, rnd, others):
    data = bytearray(data)
    for _ in range(rnd.randrange(1, 4)):
        op = rnd.randrange(10)
        n = len(data)
        if op == 0 and n:  # flip a bit
            i = rnd.randrange(n)
            data[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and n:  # write a byte, often near either end
            i = rnd.choice([rnd.randrange(n), rnd.randrange(min(n, 32)),
                            n - 1 - rnd.randrange(min(n, 32))])
            data[i] = rnd.randrange(256)
        elif op == 2 and n:  # truncate (often inside a header)
            cut = rnd.choice([rnd.randrange(n), rnd.randrange(min(n, 16))])
            del data[cut:]
        elif op == 3:  # garbage after the end
            data += os.urandom(rnd.randrange(1, 64))
        elif op == 4:  # zeros after the end
            data += bytes(rnd.randrange(1, 64))
        elif op == 5 and n > 8:  # cut a chunk out
            i = rnd.randrange(n)
            del data[i:i + rnd.randrange(1, 512)]
        elif op == 6 and n > 8:  # repeat a chunk
            i = rnd.randrange(n)
            data[i:i] = data[i:i + rnd.randrange(1, 512)]
        elif op == 7:  # another valid file after this one
            data += rnd.choice(others)
        elif op == 8 and n > 8:  # the tail of another file spliced in
            o = rnd.choice(others)
            i = rnd.randrange(n)
            data[i:] = o[rnd.randrange(len(o)):]
        elif op == 9:  # zeros to a read buffer's edge, then another file
            edge = 262144 * (n // 262144 + 1)
            data += bytes(edge - n + rnd.choice([0, 0, -1, 1, 4]))
            data += rnd.choice(others)
    return bytes(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcopy", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4),
                                                            "little")
    print(f"decoders.py: seed {seed} (replay with --seed {seed})",
          flush=True)
    rnd = random.Random(seed)
    os.makedirs(a.work, exist_ok=True)
    fails = os.path.join(a.work, "failures")
    _, seeds = make_seeds(a.work, rnd)
    names = sorted(seeds)
    others = [seeds[k] for k in names]
    env = dict(os.environ)
    env.setdefault("RINGCOPY_RUNDIR", os.path.join(a.work, "run"))
    os.makedirs(env["RINGCOPY_RUNDIR"], mode=0o700, exist_ok=True)
    os.chmod(env["RINGCOPY_RUNDIR"], 0o700)
    src = os.path.join(a.work, "input")
    out = os.path.join(a.work, "out.img")
    start = time.monotonic()
    rounds = bad = oks = 0
    seen = {}
    while True:
        if a.rounds and rounds >= a.rounds:
            break
        if not a.rounds and time.monotonic() - start >= a.seconds:
            break
        rounds += 1
        kind = rnd.choice(names)
        data = mutate(seeds[kind], rnd, others)
        with open(src, "wb") as f:
            f.write(data)
        fmt = magic_of(data)
        if fmt:
            t = sh(TOOLS[fmt], data)
            want, tool_ok = t.stdout, t.returncode == 0
        else:
            want, tool_ok = data, True
        via = rnd.choice(["file", "pipe"])
        for p in (out,):
            if os.path.exists(p):
                os.unlink(p)
        cmd = [a.ringcopy, "-q", src if via == "file" else "-", out]
        why = None
        try:
            r = subprocess.run(cmd, input=data if via == "pipe" else None,
                               stdin=None if via == "pipe" else
                               subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            why = "ringcopy did not end in 60 s"
            r = None
        if r is not None:
            if r.returncode not in (0, 1, 2):
                why = f"ringcopy exited {r.returncode}"
            elif r.returncode == 0:
                oks += 1
                got = open(out, "rb").read() if os.path.exists(out) else b""
                if not tool_ok:
                    why = f"ok, but {TOOLS[fmt][0]} rejects it"
                elif got != want:
                    why = (f"ok, but the target ({len(got)} bytes) differs "
                           f"from {TOOLS[fmt][0] if fmt else 'the raw bytes'}"
                           f" ({len(want)} bytes)")
        seen[kind] = seen.get(kind, 0) + 1
        if a.v:
            rc = r.returncode if r is not None else "timeout"
            print(f"round {rounds}: {kind} via {via}, {len(data)} bytes, "
                  f"magic {fmt}, tool {'ok' if tool_ok else 'fails'}, "
                  f"ringcopy {rc}")
        if why:
            bad += 1
            os.makedirs(fails, exist_ok=True)
            keep = os.path.join(fails, f"round{rounds}-{kind}.bin")
            shutil.copyfile(src, keep)
            print(f"FAIL: round {rounds} ({kind} via {via}): {why}; "
                  f"input kept in {keep}")
            if r is not None:
                sys.stdout.write(r.stderr.decode(errors="replace")[-800:])
    print(f"decoders.py: {rounds} rounds in {time.monotonic() - start:.0f} s,"
          f" {oks} copies ok, {bad} failures; seed {seed}; per seed file: "
          + ", ".join(f"{k} {seen[k]}" for k in sorted(seen)))
    return 1 if bad else 0


sys.exit(main())
