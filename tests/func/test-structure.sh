#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The shape the design promises (issues 24 and 26), checked on the tree
# and the objects just built: no function over 100 lines, invocation.c
# at most 800, the copy's options named only in the option table, no
# backend called by name from src/, the ring's state named only in the
# protocol module, no cycle in the object call graph.
source "$top_srcdir/tests/func/functions.sh"
requires ctags --version
ctags --version | grep -q "Universal Ctags" || skip "ctags is not universal-ctags"
requires nm --version
python3 "$top_srcdir/tests/tools/check-structure.py" "$top_srcdir" "$top_builddir" ||
	fail "the tree is not the shape doc/design.md describes"
python3 "$top_srcdir/tests/tools/check-structure.py" --report "$top_srcdir" "$top_builddir" | head -n 2
