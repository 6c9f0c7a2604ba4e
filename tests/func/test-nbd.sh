#!/bin/bash
# NBD sources and targets through libnbd, against nbdkit on Unix sockets:
# a file to four memory exports (read back with nbdcopy), an NBD source to
# files, a late joiner writing to an export, a failing write at an offset,
# latency, a read-only export, and a server killed mid-copy.
source "$top_srcdir/tests/func/functions.sh"
requires nbdkit --version
requires nbdcopy --version
"$RINGCOPY" nbd+unix:///?socket=/nonexistent "$tmp/x" 2>&1 | grep -q "built without libnbd" &&
	skip "ringcopy was built without libnbd"

mb=1048576
mkimage "$tmp/src.img" 8M
serve() {
	# serve NAME nbdkit-args...: a server on $tmp/NAME.sock, stopped at exit.
	local name=$1
	shift
	nbdkit -U "$tmp/$name.sock" -P "$tmp/$name.pid" "$@" || fail "nbdkit $*"
	on_exit "kill \$(cat '$tmp/$name.pid') 2>/dev/null"
	for (( i = 0; i < 100; i++ )); do [ -S "$tmp/$name.sock" ] && break; sleep 0.05; done
}
uri() { echo "nbd+unix:///?socket=$tmp/$1.sock"; }
readback() { nbdcopy "$(uri "$1")" - | head -c "$2"; }

for i in 1 2 3 4; do serve m$i memory 16M; done
expect_status 0 ringcopy --json "$tmp/src.img" "$(uri m1)" "$(uri m2)" "$(uri m3)" "$(uri m4)" \
	> "$tmp/a.json" 2> "$tmp/a.err"
for i in 1 2 3 4; do
	readback m$i $((8 * mb)) | cmp - "$tmp/src.img" || fail "export m$i differs"
done
json_get "$tmp/a.json" '[t["verify_method"] for t in j["targets"]]' | grep -qx "\['nbd', 'nbd', 'nbd', 'nbd'\]" ||
	fail "not verified through the server: $(cat "$tmp/a.json")"

# An NBD source (a read-only file export) to local files.
serve src -r file "$tmp/src.img"
expect_status 0 ringcopy "$(uri src)" "$tmp/f1.img" "$tmp/f2.img" 2> "$tmp/b.err"
same "$tmp/src.img" "$tmp/f1.img"
same "$tmp/src.img" "$tmp/f2.img"

# A late joiner writing to an export.
serve late memory 16M
ringcopy --rate 2M "$tmp/src.img" "$tmp/first.img" 2>/dev/null &
bg_pids+=($!)
wait_consumers "${bg_pids[0]}" 1 > /dev/null || fail "no consumer"
sleep 1
expect_status 0 ringcopy --json "$tmp/src.img" "$(uri late)" > "$tmp/late.json" 2>/dev/null
wait "${bg_pids[0]}" || fail "the first copy"
[ "$(json_get "$tmp/late.json" 'j["targets"][0]["start_block"]')" -gt 0 ] || fail "no join"
readback late $((8 * mb)) | cmp - "$tmp/src.img" || fail "late export differs"

# Writes failing from an offset on: that target fails with the URI, the
# offset and the server's answer; the other finishes.
serve bad eval get_size='echo 16M' \
	pwrite='if [ $4 -ge 4194304 ]; then echo "EIO disk on fire" >&2; exit 1; fi; cat > /dev/null' \
	pread='dd if=/dev/zero bs=$3 count=1 status=none'
expect_status 1 ringcopy "$tmp/src.img" "$(uri bad)" "$tmp/ok.img" 2> "$tmp/err"
grep -q "^FAILED .*bad.sock: write of 1048576 bytes at offset 4194304: the server said: Input/output error" "$tmp/err" ||
	fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/ok.img"

# 1 ms of latency on every request: still complete and verified.
serve slow --filter=delay memory 16M delay-write=1ms delay-read=1ms
expect_status 0 ringcopy -q "$tmp/src.img" "$(uri slow)"

# A read-only export is refused before anything is written.
serve ro -r memory 16M
expect_status 2 ringcopy "$tmp/src.img" "$(uri ro)" "$tmp/never.img" 2> "$tmp/err"
grep -q "target $(uri ro) refused: .*read-only" "$tmp/err" || fail "$(cat "$tmp/err")"
[ ! -e "$tmp/never.img" ] || fail "wrote a target"

# A server that is not there: refused with libnbd's reason.
expect_status 2 ringcopy "$tmp/src.img" "nbd+unix:///?socket=$tmp/none.sock" 2> "$tmp/err"
grep -q "refused: .*connect" "$tmp/err" || fail "$(cat "$tmp/err")"

# The server killed mid-copy: that target fails, the other finishes.
serve kill memory 16M
ringcopy --rate 2M "$tmp/src.img" "$(uri kill)" "$tmp/k.img" 2> "$tmp/err" &
inv=$!
bg_pids+=("$inv")
wait_consumers "$inv" 2 > /dev/null || fail "no consumers"
sleep 1
kill -KILL "$(cat "$tmp/kill.pid")"
wait "$inv"
[ $? -eq 1 ] || fail "server killed: exit status"
grep -q "^FAILED .*kill.sock: write" "$tmp/err" || fail "$(cat "$tmp/err")"
same "$tmp/src.img" "$tmp/k.img"
