#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Bash completion (doc/bash-completion/ringcopy), driven as bash drives
# it: COMP_WORDS/COMP_CWORD set, the function `complete -p' names called.
# Each subcommand offers its own options; verify never offers a target
# that cannot be read back (null:, -, fault:); NBD forms are offered.
source "$top_srcdir/tests/func/functions.sh"
bc=/usr/share/bash-completion/bash_completion
[ -r "$bc" ] || skip "no bash-completion (apt-get install bash-completion)"

cd "$tmp" || fail "cd"
touch golden.img golden.mf

# complete WORD...: the completions of the last word (may be empty).
complete_words() {
	bash --norc --noprofile -c '
		source "$1"; source "$2"; shift 2
		fn=$(complete -p ringcopy | sed -n "s/.*-F \([^ ]*\) ringcopy$/\1/p")
		[ -n "$fn" ] || { echo "no completion function" >&2; exit 1; }
		COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		"$fn" ringcopy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"
	' complete "$bc" "$top_srcdir/doc/bash-completion/ringcopy" "$@"
}
has() { grep -qxF -- "$2" <<< "$1" || fail "'$3' does not offer '$2': $(tr '\n' ' ' <<< "$1")"; }
hasnt() { ! grep -qxF -- "$2" <<< "$1" || fail "'$3' offers '$2': $(tr '\n' ' ' <<< "$1")"; }

out=$(complete_words ringcopy '') || fail "completion failed"
for w in serve station relay status verify golden.img - fault: nbd://; do has "$out" "$w" "ringcopy <TAB>"; done
hasnt "$out" null: "ringcopy <TAB> (a SOURCE)"
out=$(complete_words ringcopy status '')
has "$out" nbd:// "status <TAB>"
hasnt "$out" null: "status <TAB>"
out=$(complete_words ringcopy station --match sdb '')
has "$out" golden.img "station --match sdb <TAB>"
hasnt "$out" - "station --match sdb <TAB>"

out=$(complete_words ringcopy status --)
has "$out" --json "status --<TAB>"
hasnt "$out" --block-size "status --<TAB>"
hasnt "$out" --force "status --<TAB>"

out=$(complete_words ringcopy verify --)
has "$out" --quiet "verify --<TAB>"
hasnt "$out" --manifest "verify --<TAB>"
hasnt "$out" --block-size "verify --<TAB>"

out=$(complete_words ringcopy verify golden.mf '')
for w in null: - fault:; do hasnt "$out" "$w" "verify MANIFEST <TAB>"; done
for w in golden.img nbd:// dev:; do has "$out" "$w" "verify MANIFEST <TAB>"; done
out=$(complete_words ringcopy verify '')
has "$out" golden.mf "verify <TAB>"
hasnt "$out" null: "verify <TAB>"

out=$(complete_words ringcopy golden.img '')
for w in golden.mf null: - nbd:// nbds:// nbd+unix:///; do has "$out" "$w" "ringcopy SOURCE <TAB>"; done
out=$(complete_words ringcopy golden.img --)
has "$out" --manifest "ringcopy --<TAB>"
hasnt "$out" --match "ringcopy --<TAB>"

out=$(complete_words ringcopy station --)
for w in --match --force --json; do has "$out" "$w" "station --<TAB>"; done
hasnt "$out" --manifest "station --<TAB>"
out=$(complete_words ringcopy station --match '')
has "$out" removable=1 "station --match <TAB>"
has "$out" 'size>=' "station --match <TAB>"

out=$(complete_words ringcopy serve --)
has "$out" --foreground "serve --<TAB>"
hasnt "$out" --force "serve --<TAB>"

out=$(complete_words ringcopy relay --)
for w in --listen --upstream --expect --linger --json; do has "$out" "$w" "relay --<TAB>"; done
hasnt "$out" --dry-run "relay --<TAB>"
hasnt "$out" --match "relay --<TAB>"
out=$(complete_words ringcopy relay --start-at '')
hasnt "$out" random "relay --start-at <TAB>"
out=$(complete_words ringcopy relay --upstream '')
has "$out" nbd:// "relay --upstream <TAB>"
