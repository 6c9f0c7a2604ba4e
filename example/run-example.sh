#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The built-in example: set everything up, make a 256 MiB example image,
# copy it to three targets at once, start a fourth copy two seconds later
# that joins the running one, and show what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

work=example/work
rm -rf "$work"
mkdir -p "$work"
export RINGCOPY_RUNDIR="$PWD/$work/run"
echo "== making a 256 MiB example image"
bash fixtures/mkimage.sh "$work/golden.img" 256M 42

# --rate keeps the first copy going long enough for the late one to join,
# as a slow source disk would.
echo "== copying to three targets at 64 MB/s; a fourth joins 2 s later"
./ringcopy --rate 64M --json "$work/golden.img" \
	"$work/a.img" "$work/b.img" "$work/c.img" > "$work/first.json" &
first=$!
sleep 2
./ringcopy --json "$work/golden.img" "$work/late.img" > "$work/late.json"
wait "$first"

echo "== results"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
for name in ("first", "late"):
    j = json.load(open(f"{w}/{name}.json"))
    for t in j["targets"]:
        print(f'{t["target"]:<24} {t["status"]:<6} start block {t["start_block"]:>4}'
              f'  {t["bytes_written"]} bytes')
late = json.load(open(f"{w}/late.json"))
print(f'image {late["image_bytes"]} bytes; source bytes read by the shared '
      f'producer: {late["source_bytes_read"]} '
      f'({late["source_bytes_read"] / late["image_bytes"]:.2f} x the image, '
      f'for four copies)')
PY
for t in a b c late; do
	cmp "$work/golden.img" "$work/$t.img"
done
echo "== all four targets are identical to the source (cmp)"
