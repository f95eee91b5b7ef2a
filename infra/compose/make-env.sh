#!/bin/sh
# Writes .env (mode 600) from .env.example, filling every empty secret with a
# fresh random value (48 hex characters). Refuses to overwrite an existing .env.
#   ./make-env.sh [TARGET]        default TARGET: .env next to this script
set -eu

here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/.env}
if [ -e "$target" ]; then
  echo "$target exists; delete it first if you really want new secrets" >&2
  exit 1
fi

secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

umask 077
tmp="$target.tmp.$$"
: >"$tmp"
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    *_PASSWORD= | *_SECRET_KEY=) printf '%s%s\n' "$line" "$(secret)" >>"$tmp" ;;
    *) printf '%s\n' "$line" >>"$tmp" ;;
  esac
done <"$here/.env.example"
mv "$tmp" "$target"
echo "wrote $target with generated secrets (keep it out of git; it is git-ignored)"
