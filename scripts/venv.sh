#!/usr/bin/env bash
# The console's virtualenv (.venv) with stackdeck installed in editable mode.
# Reinstalls only when pyproject.toml changed, so a second run is instant.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
extras="${1:-}"
py="${PYTHON:-python3}"
[ -n "${PYTHON:-}" ] || need_cmd python3 python3
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "stackdeck needs Python >= 3.11 ($py is $("$py" -V 2>&1))"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  # Debian's python3 has no venv/ensurepip without python3-venv.
  "$py" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  log "creating .venv"
  "$py" -m venv "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.stackdeck-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)-$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing stackdeck${extras:+[$extras]} into .venv"
  # pip's chatter goes to a log, shown only when the install fails.
  pip_log=$(mktemp)
  if ! { "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
         && "$ROOT/.venv/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT${extras:+[$extras]}"; } \
       >"$pip_log" 2>&1; then
    tail -n 30 "$pip_log" >&2; rm -f "$pip_log"
    die "pip could not install stackdeck into $ROOT/.venv (output above); PyPI must be reachable"
  fi
  rm -f "$pip_log"
  echo "$want" > "$stamp"
fi
# the man page (an editable install skips data files): man .venv/share/man/man1/stackdeck.1
install -D -m 0644 "$ROOT/docs/stackdeck.1" "$ROOT/.venv/share/man/man1/stackdeck.1"
