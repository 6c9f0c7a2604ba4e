#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every verb of include/ringcopy/ringproto.h is in the model
# (src/ringproto.pml has an inline of its name: rc_proto_claim is
# `inline claim', rc_proto_select `inline proto_select'), or
# doc/design.md says why not: a line "* `rc_proto_NAME`: ..." in its
# section "### Verbs the model leaves out".  Lists every verb and where it
# stands; exit 1 if one is in neither.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=${top_srcdir:-$here/../..}
hdr=$top/include/ringcopy/ringproto.h
pml=$top/src/ringproto.pml
doc=$top/doc/design.md
for f in "$hdr" "$pml" "$doc"; do
	[ -f "$f" ] || { echo "FAIL: $f is missing"; exit 1; }
done
# The declarations: a name followed by "(" at the start of a
# declaration's line or after its return type.
verbs=$(sed -n 's/^[a-z].*[ *]\(rc_proto_[a-z_]*\)(.*/\1/p' "$hdr" | sort -u)
[ -n "$verbs" ] || { echo "FAIL: no verbs found in $hdr"; exit 1; }
left_out=$(sed -n '/^### Verbs the model leaves out/,/^##/p' "$doc")
status=0
n=0
for v in $verbs; do
	name=${v#rc_proto_}
	[ "$name" = select ] && name=proto_select
	n=$((n + 1))
	if grep -q "^inline $name(" "$pml"; then
		echo "model:     $v (inline $name)"
	elif grep -q "^\* \`$v\`" <<< "$left_out"; then
		echo "left out:  $v ($(grep "^\* \`$v\`" <<< "$left_out" | sed 's/^[^:]*: *//' | cut -c1-60)...)"
	else
		echo "FAIL: $v is neither in the model nor said left out in doc/design.md"
		status=1
	fi
done
[ $status = 0 ] && echo "PASS: $n verbs, each modelled or said why not" ||
	echo "FAIL: verbs unaccounted for"
exit $status
