#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The man page renders without warnings, and documents every option of
# --help.
source "$top_srcdir/tests/func/functions.sh"
requires groff --version

page="$top_srcdir/doc/ringcopy.1"
groff -ww -man -z "$page" 2> "$tmp/warn" || fail "groff failed"
[ ! -s "$tmp/warn" ] || fail "groff warnings: $(cat "$tmp/warn")"
if command -v man >/dev/null; then
	MANWIDTH=80 man -l "$page" > "$tmp/man.txt" 2> "$tmp/warn" || fail "man -l"
	[ ! -s "$tmp/warn" ] || fail "man warnings: $(cat "$tmp/warn")"
fi
"$RINGCOPY" --help > "$tmp/help"
for opt in $(grep -o -- '--[a-z-]*' "$tmp/help" | sort -u); do
	grep -q -- "$(sed 's/-/\\\\-/g' <<< "$opt")" "$page" || fail "$opt is not in the man page"
done
for word in serve status verify "EXIT STATUS" EXAMPLES RINGCOPY_RUNDIR; do
	grep -q "$word" "$page" || fail "'$word' is not in the man page"
done
