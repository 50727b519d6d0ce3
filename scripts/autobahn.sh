#!/usr/bin/env bash
# Run the Autobahn|Testsuite fuzzingclient against pumphub's echo server
# (examples/echo.rs: the hub's own read and write pumps, echoing every
# message) and print a summary. See docs/conformance.md.
#
# Usage (from anywhere in the repository):
#     scripts/autobahn.sh
#     AB_CASES="5 7" scripts/autobahn.sh      # only some case groups
#
# What it does:
#   1. installs wstest, the suite's client, into a Python 2.7 virtualenv
#      under $AUTOBAHN_HOME (once; about half a minute, from PyPI);
#   2. builds the echo example in release (`cargo build --release
#      --example echo`, the binary `cargo run --release --example echo`
#      runs) and starts it on 127.0.0.1 on a free port;
#   3. runs each case group in its own wstest process under a timeout, so
#      a server that hangs loses that group, not the whole report;
#   4. prints the summary (scripts/autobahn_summary.py) and stops the server.
#
# Cases 12.* and 13.* test permessage-deflate, which tungstenite does not
# implement; they are left out. A correct server takes about 30 s.
#
# Environment:
#   AUTOBAHN_HOME     the virtualenv's home (default ~/.cache/pumphub-autobahn)
#   PY27              a python2.7 to build it with (default: pyenv's 2.7.18,
#                     else python2.7 on PATH)
#   AB_CASES          case groups, one wstest run each (default: 1 2 3 4 5 6 7 9 10)
#   AB_GROUP_TIMEOUT  seconds one group may take (default 300)
#   AB_OUT            report directory (default target/autobahn, under
#                     $CARGO_TARGET_DIR if that is set)
#
# Output: the summary on stdout and in $AB_OUT/summary.md; wstest's own
# reports (JSON and HTML per case) in $AB_OUT/<group>/; the echo server's
# log in $AB_OUT/echo.log.
# Exit status: 0 if no case FAILED or went missing, 1 if one did, 2 if the
# run could not be set up.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
HOME_DIR=${AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pumphub-autobahn}
VENV=$HOME_DIR/py27
CASES=${AB_CASES:-1 2 3 4 5 6 7 9 10}
GROUP_TIMEOUT=${AB_GROUP_TIMEOUT:-300}
OUT=${AB_OUT:-${CARGO_TARGET_DIR:-target}/autobahn}
AGENT=pumphub-echo

fail() {
    echo "autobahn.sh: $*" >&2
    exit 2
}

# --- 1. wstest ---------------------------------------------------------------
# autobahntestsuite is Python 2.7 code. A py2.7 virtualenv can only be made
# by virtualenv older than 20.22, which itself runs on Python 3.
install_wstest() {
    if [[ -x $VENV/bin/wstest ]] && "$VENV/bin/wstest" -a >/dev/null 2>&1; then
        return 0
    fi
    local py27=${PY27:-}
    if [[ -z $py27 ]]; then
        for candidate in "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python2.7" \
            "$(command -v python2.7 || true)"; do
            if [[ -n $candidate && -x $candidate ]]; then
                py27=$candidate
                break
            fi
        done
    fi
    [[ -n $py27 ]] || fail "no Python 2.7 found; set PY27=/path/to/python2.7 (e.g. after 'pyenv install 2.7.18')"
    echo "--- installing wstest into $VENV (once)" >&2
    mkdir -p "$HOME_DIR"
    if [[ ! -x $HOME_DIR/tools/bin/virtualenv ]]; then
        python3 -m venv "$HOME_DIR/tools" &&
            "$HOME_DIR/tools/bin/pip" install -q 'virtualenv<20.22' ||
            fail "cannot install virtualenv"
    fi
    rm -rf "$VENV"
    "$HOME_DIR/tools/bin/virtualenv" -q -p "$py27" "$VENV" ||
        fail "cannot create a Python 2.7 virtualenv with $py27"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$ROOT/scripts/autobahn-requirements.txt" 2>&1 |
        grep -v "DEPRECATION\|legacy dependency resolver\|requires setuptools" >&2
    "$VENV/bin/wstest" -a >/dev/null 2>&1 || fail "wstest does not start after installing it"
}

install_wstest

# --- 2. the echo server --------------------------------------------------------
echo "--- cargo build --release --example echo" >&2
ECHO_BIN=$(cargo build --release --example echo --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if (message.get("reason") == "compiler-artifact"
            and message["target"]["name"] == "echo" and message.get("executable")):
        print(message["executable"])
') || fail "cannot build the echo example"
[[ -x $ECHO_BIN ]] || fail "the build did not say where the echo example is"

rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
"$ECHO_BIN" 127.0.0.1:0 >"$OUT/echo.log" 2>&1 &
ECHO_PID=$!
trap 'kill "$ECHO_PID" 2>/dev/null; wait "$ECHO_PID" 2>/dev/null' EXIT

# The server prints `echo server listening on ws://ADDR` once it is bound.
URL=
for _ in $(seq 100); do
    URL=$(sed -n 's/^echo server listening on \(ws:\/\/[^ ]*\)$/\1/p' "$OUT/echo.log")
    [[ -n $URL ]] && break
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n $URL ]] || fail "the echo server did not start; its log: $(cat "$OUT/echo.log")"
echo "--- echo server on $URL (pid $ECHO_PID)" >&2

# --- 3. the cases ----------------------------------------------------------------
printf 'group\tseconds\toutcome\n' >"$OUT/groups.tsv"
for group in $CASES; do
    dir=$OUT/$group
    mkdir -p "$dir"
    cat >"$dir/spec.json" <<JSON
{
  "outdir": "$dir",
  "servers": [{"agent": "$AGENT", "url": "$URL"}],
  "cases": ["$group.*"],
  "exclude-cases": ["12.*", "13.*"],
  "exclude-agent-cases": {}
}
JSON
    started=$(date +%s)
    (cd "$dir" && timeout -k 5 "$GROUP_TIMEOUT" "$VENV/bin/wstest" -m fuzzingclient -s spec.json >wstest.log 2>&1)
    status=$?
    seconds=$(($(date +%s) - started))
    case $status in
    0) outcome=ran ;;
    124 | 137) outcome="timed out after ${GROUP_TIMEOUT}s" ;;
    *) outcome="wstest exited $status" ;;
    esac
    [[ -f $dir/index.json ]] || outcome="$outcome, no report"
    printf '%s\t%s\t%s\n' "$group" "$seconds" "$outcome" >>"$OUT/groups.tsv"
    printf -- '--- cases %-3s %4ss  %s\n' "$group.*" "$seconds" "$outcome" >&2
done

# Every case id the groups should have produced, with its description, so
# the summary can tell a missing case from a passing one.
# shellcheck disable=SC2046
"$VENV/bin/python" - $(for group in $CASES; do printf '%s.* ' "$group"; done) >"$OUT/cases.json" <<'PY' ||
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories, CaseSetname, CaseBasename
from autobahntestsuite.caseset import CaseSet
cases = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
ids = cases.parseSpecCases({"cases": sys.argv[1:], "exclude-cases": ["12.*", "13.*"]})
json.dump([[i, cases.caseClassToPrettyDescription(cases.CasesById[i])] for i in ids], sys.stdout)
PY
    fail "cannot list the selected cases"

# --- 4. summary -------------------------------------------------------------------
python3 "$ROOT/scripts/autobahn_summary.py" "$OUT" "$AGENT" | tee "$OUT/summary.md"
exit "${PIPESTATUS[0]}"
