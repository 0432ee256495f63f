# Sourced by scripts/test and scripts/quickstart: make .venv with everything installed.
# Needs only Python 3.11+ (set PYTHON to choose the interpreter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11 or newer is needed (found: $("$PY" --version 2>&1)); set PYTHON" >&2
    exit 1
fi
# EXTRAS picks the optional extras (default: everything the tests need); EXTRAS= (empty)
# installs only what serving needs.  SHOW_INSTALL=1 shows progress the whole time: each of
# pip's steps, and a line every few seconds while a step (making .venv, unpacking the
# wheels) says nothing (TICK_SECONDS, default 5).
ticker=
tick_start() {
    [ "${SHOW_INSTALL:-0}" = 1 ] || return 0
    ( t=0; while sleep "${TICK_SECONDS:-5}"; do
        t=$((t + ${TICK_SECONDS:-5})); printf '   ... %s (%ss)\n' "$1" "$t" >&2
    done ) &
    ticker=$!
}
tick_stop() { [ -z "$ticker" ] || { kill "$ticker" 2>/dev/null || true; wait "$ticker" 2>/dev/null || true; ticker=; }; }
if [ ! -x .venv/bin/python ]; then
    [ "${SHOW_INSTALL:-0}" = 1 ] && echo "creating .venv ($PY -m venv, which installs pip into it)" >&2
    tick_start "creating .venv"
    "$PY" -m venv .venv || { tick_stop; exit 1; }
    tick_stop
fi
extras=${EXTRAS-dev,media,postgres,metrics,report,witness,pytx,stix,misp,fast}
spec=.
[ -n "$extras" ] && spec=".[$extras]"
stamp=.venv/.installed-$( { cat pyproject.toml; echo "$extras"; } | "$PY" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')
if [ ! -e "$stamp" ]; then
    echo "installing the project${extras:+ with extras $extras} into .venv (log: .venv/install.log;" \
        "about a minute on a fresh clone)" >&2
    install() {
        .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
            .venv/bin/python -m pip install --disable-pip-version-check -e "$spec"
    }
    if [ "${SHOW_INSTALL:-0}" = 1 ]; then
        tick_start "pip is working"
        install 2>&1 | tee .venv/install.log | grep --line-buffered -E \
            '^ *(Obtaining|Processing|Collecting|Installing|Checking|Getting|Preparing|Building|Successfully|ERROR)' >&2 || true
        ok=${PIPESTATUS[0]}
        tick_stop
    else
        install >.venv/install.log 2>&1 && ok=0 || ok=$?
    fi
    if [ "$ok" != 0 ]; then
        tail -n 30 .venv/install.log >&2
        echo "error: installing the project into .venv failed (see .venv/install.log)" >&2
        exit 1
    fi
    rm -f .venv/.installed-*
    touch "$stamp"
fi
