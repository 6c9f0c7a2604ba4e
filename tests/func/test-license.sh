#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# ringcopy is GPL-2.0-or-later: COPYING holds the license, and every
# source, header and script says so in an SPDX line near its top.
source "$top_srcdir/tests/func/functions.sh"

tag="SPDX-License-Identifier: GPL-2.0-or-later"
grep -q "GNU GENERAL PUBLIC LICENSE" "$top_srcdir/COPYING" && grep -q "Version 2, June 1991" "$top_srcdir/COPYING" ||
	fail "COPYING is not the GPL version 2"
missing=()
checked=0
while IFS= read -r -d '' f; do
	checked=$((checked + 1))
	head -n 5 "$f" | grep -q "$tag" || missing+=("${f#"$top_srcdir"/}")
done < <(find "$top_srcdir" \
	\( -path "$top_srcdir/.git" -o -path '*/autom4te.cache' -o -path '*/build-aux' \
	   -o -path '*/rctest.*' -o -path '*/_build' -o -path '*/ringcopy-[0-9]*' \) -prune -o \
	-type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' -o -name '*.py' -o -name '*.pml' \
	   -o -name Makefile.am -o -name configure.ac -o -name '*.service.in' -o -name '*.1' \
	   -o -path '*/debian/rules' -o -path '*/doc/bash-completion/*' \) \
	! -name config.h ! -name 'config.h.in' -print0)
[ "$checked" -gt 50 ] || fail "only $checked files found under $top_srcdir"
[ "${#missing[@]}" -eq 0 ] || fail "no '$tag' line in: ${missing[*]}"
grep -q "^License: GPL-2.0-or-later" "$top_srcdir/debian/copyright" 2>/dev/null ||
	[ ! -d "$top_srcdir/debian" ] || fail "debian/copyright does not name GPL-2.0-or-later"
echo "$checked files carry the license line"
