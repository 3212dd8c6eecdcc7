#!/usr/bin/env bash
# The two-minute demo: against a running TestArena server, creates the demo firmware repository
# (fixtures/demo-repo.sh) at /tmp/demo-repo (or reuses the one there), enqueues it with four
# scenarios (one passes, one fails, one times out, one crashes the board), follows the live log
# until the queue ends and prints the outcome.
#
# Usage: scripts/demo.sh [SERVER_URL]      (default http://127.0.0.1:8080, or $TESTARENA_URL)
#
# Start the server first, on the same machine (it reads the repository by its path, which its
# [worker] allowed_repos must allow):
#   TESTARENA_WORKER_ALLOWED_REPOS=/tmp/demo-repo cargo run --release -- serve --root /tmp/testarena
# The server needs git, make, Debian's xtensa-lx106 cross compiler and qemu-system-xtensa.
# This script needs bash and curl; jq (or python3) makes the final JSON easier to read.
set -euo pipefail

usage() {
    sed -n '2,/^$/p' "$0" | sed -n 's/^# \{0,1\}//p'
    exit "${1:-0}"
}

case "${1:-}" in
-h | --help) usage 0 ;;
esac
[ $# -le 1 ] || usage 2
url=${1:-${TESTARENA_URL:-http://127.0.0.1:8080}}
url=${url%/}
here=$(cd "$(dirname "$0")/.." && pwd)
repo=/tmp/demo-repo
serve="TESTARENA_WORKER_ALLOWED_REPOS=$repo cargo run --release -- serve --root /tmp/testarena"

if [ -t 1 ]; then
    bold=$'\e[1m' dim=$'\e[2m' red=$'\e[31m' green=$'\e[32m' reset=$'\e[0m'
else
    bold='' dim='' red='' green='' reset=''
fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$reset"; }
die() {
    printf '%serror:%s %s\n' "$red" "$reset" "$*" >&2
    exit 1
}

command -v curl >/dev/null || die "curl is needed: apt-get install curl"
command -v git >/dev/null || die "git is needed: apt-get install git"

# 1. The server is up.
if ! curl -fsS --max-time 5 "$url/healthz" >/dev/null 2>&1; then
    die "no TestArena server answers at $url. Start one in another terminal:
    $serve
then run this script again (or pass the server's URL: scripts/demo.sh http://HOST:PORT)."
fi
say "server at $url is up"

# 2. The repository: firmware sources, a Makefile and scenarios/*.xml, on two branches. At a
#    fixed path, which the server must allow; one from an earlier run is used again.
if git -C "$repo" rev-parse -q --verify refs/heads/feature/extra >/dev/null 2>&1 &&
    [ -f "$repo/scenarios/crash.xml" ]; then
    say "using the demo firmware repository of an earlier run: $repo (remove it to make it anew)"
else
    "$here/fixtures/demo-repo.sh" "$repo" >/dev/null
    chmod 0755 "$repo" # the server may run as another user
    say "created the demo firmware repository: $repo"
fi
git -C "$repo" log --oneline --all --graph | sed "s/^/    /"

# 3. Enqueue it.
id="demo-$(date +%Y%m%d-%H%M%S)"
body=$(
    cat <<EOF
{
  "id": "$id",
  "repo": "$repo",
  "branch": "main",
  "environment": "xtensa-sim",
  "scenarios": ["scenarios/pass.xml", "scenarios/fail.xml", "scenarios/timeout.xml", "scenarios/crash.xml"]
}
EOF
)
say "enqueueing queue $id:"
printf '%s\n' "$body" | sed "s/^/    /"
response=$(curl -sS -X POST "$url/api/queues" -H 'content-type: application/json' \
    -d "$body" -w '\n%{http_code}')
code=${response##*$'\n'}
case "$code" in
200 | 201) ;;
*)
    case "$response" in
    *allowed_repos*) die "the server does not allow $repo ([worker] allowed_repos). Start it with:
    $serve
(HTTP $code: ${response%$'\n'*})" ;;
    esac
    die "the server refused the queue (HTTP $code): ${response%$'\n'*}"
    ;;
esac
say "queued; dashboard: $url/queues/$id"

# 4. Follow the live log (server-sent events): `log` events carry lines, `end` the outcome.
say "following the live log: curl -N $url/api/queues/$id/log/stream?from=0"
event='' status=''
while IFS= read -r line; do
    case "$line" in
    event:*)
        event=${line#event:}
        event=${event# }
        ;;
    data:*)
        data=${line#data:}
        data=${data# }
        if [ "$event" = end ]; then
            status=$(printf '%s' "$data" | sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p')
        else
            case "$data" in
            "=== "*) printf '%s%s%s\n' "$bold" "$data" "$reset" ;;
            "> "* | "$ "*) printf '%s%s%s\n' "$dim" "$data" "$reset" ;;
            *) printf '    %s\n' "$data" ;;
            esac
        fi
        ;;
    '')
        [ -z "$status" ] || break
        event=''
        ;;
    esac
done < <(curl -sSN "$url/api/queues/$id/log/stream?from=0")
[ -n "$status" ] || die "the log stream closed before the queue ended (did the server stop?)"

# 5. The outcome.
queue=$(curl -fsS "$url/api/queues/$id")
say "the queue as JSON (GET $url/api/queues/$id):"
if command -v jq >/dev/null; then
    printf '%s\n' "$queue" | jq .
elif command -v python3 >/dev/null; then
    printf '%s\n' "$queue" | python3 -m json.tool
else
    printf '%s\n' "$queue"
fi
case "$status" in
passed) colour=$green ;;
*) colour=$red ;;
esac
say "queue $id ended ${colour}${status}${reset}${bold}; its tasks and tests:"
if command -v jq >/dev/null; then
    printf '%s\n' "$queue" | jq -r '.tasks[] |
        "    \(.id) (\(.scenario)): \(.status)",
        (.tests[] | "        \(.suite)/\(.name): \(.status)" +
            (if .message then "  -- \(.message | split("\n")[0])" else "" end))'
else
    printf '%s\n' "$queue" | grep -o '"id":"[^"]*","scenario":"[^"]*","started_at":[^,]*,"status":"[^"]*"' |
        sed 's/"id":"\([^"]*\)".*"status":"\([^"]*\)"/    \1: \2/' || true
fi

if [ "$status" != failed ]; then
    reason=''
    if command -v jq >/dev/null; then
        reason=$(printf '%s' "$queue" | jq -r '.error // empty')
    elif command -v python3 >/dev/null; then
        reason=$(printf '%s' "$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["error"] or "")')
    fi
    die "the demo queue should end failed (three of its four scenarios fail on purpose), but it \
ended $status${reason:+: $reason}. See the log above; the server needs git, make, the \
xtensa-lx106 cross compiler (gcc-xtensa-lx106) and qemu-system-xtensa (qemu-system-misc)."
fi

cat <<EOF

${bold}What happened${reset}
  pass     every test passed: shell commands on the console and a host-side check of the image
  fail     the firmware's self-test reports a failing sensor check: that test failed
  timeout  after \`hang\` the firmware never answers: the test ran out of its 3 s
  crash    the board executed an illegal instruction and QEMU exited with status 99: that test
           failed, the test after it was skipped
  So the queue ended \`failed\`, as it should: the demo's scenarios fail on purpose.

${bold}Next${reset}
  dashboard         $url/queues/$id
  queue report      $url/queues/$id/files/report.html
  JUnit of a task   $url/queues/$id/files/tasks/crash/junit.xml
  the other branch  curl -sS -X POST $url/api/queues -H 'content-type: application/json' \\
                      -d '{"repo": "$repo", "branch": "feature/extra", "environment": "xtensa-sim", "scenarios": ["scenarios/extra.xml"]}'
  try abort         the same with "branch": "main", "scenarios": ["scenarios/manual/slow.xml"]
                    (a 60 s host command), then: curl -sS -X POST $url/api/queues/ID/abort
  The repository stays in $repo: remove it when you are done.
EOF
