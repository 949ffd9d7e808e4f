#!/usr/bin/env bash
# Whole-process timing of `llorch plan`, as an operator runs it: for each
# pool count (arguments; default 1000) it writes that many pools (one replica
# each, fixed ports from 20000, CPU only, the demo model, the fake engine),
# times `llorch plan` against the empty state, applies, times the no-change
# plan (refresh included), destroys, and prints a table of medians: wall
# time, and peak RSS from /usr/bin/time.
#
#   .ci/bench-process.sh            # 1000 pools
#   .ci/bench-process.sh 10 100 1000
#   RUNS=9 PARALLELISM=50 SETTLE=10 .ci/bench-process.sh 1000
#
# 1000 fake engines and their supervisors need about 6 GB of RAM, and the
# apply takes about half a minute. Everything started is stopped on exit,
# failure and Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

runs="${RUNS:-5}"
parallelism="${PARALLELISM:-20}"
settle="${SETTLE:-10}"
base_port="${BASE_PORT:-20000}"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1000)

for tool in /usr/bin/time jq bc; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-process: $tool is needed: apt-get install ${tool##*/}" >&2
    exit 1
  fi
done

CGO_ENABLED=0 "${GO:-go}" build -o bin/llorch ./cmd/llorch # as make build
"${GO:-go}" build -o bin/fake-llama-server ./internal/fakeengine/cmd/fake-llama-server
export PATH="$repo/bin:$PATH"

tmp="$(mktemp -d)"
work=""

# stop_leftovers kills, by pid, the supervisors and engines a failed run
# left behind in work dir $1: those named in the run directories'
# status.json files whose command line still mentions that directory (the
# supervisor's run dir, the engine's model path), so that a reused pid is
# never touched.
stop_leftovers() {
  local dir="$1" f spid epid
  [ -d "$dir/.llorch/run" ] || return 0
  while IFS= read -r f; do
    spid="$(jq -r '.supervisor_pid // 0' "$f" 2>/dev/null || echo 0)"
    epid="$(jq -r '.pid // 0' "$f" 2>/dev/null || echo 0)"
    if [ "$spid" -gt 0 ] && grep -qF "$dir" "/proc/$spid/cmdline" 2>/dev/null; then
      kill -KILL "$spid" 2>/dev/null || true
    fi
    if [ "$epid" -gt 0 ] && grep -qF "$dir" "/proc/$epid/cmdline" 2>/dev/null; then
      kill -KILL -- "-$epid" 2>/dev/null || kill -KILL "$epid" 2>/dev/null || true
    fi
  done < <(find "$dir/.llorch/run" -name status.json 2>/dev/null)
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$work" ]; then
    if [ -f "$work/.llorch/state.json" ]; then
      echo "bench-process: destroying what is left in $work" >&2
      timeout 300 llorch -chdir="$work" destroy -auto-approve -no-color -parallelism=50 >/dev/null 2>&1 || true
    fi
    stop_leftovers "$work"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# write_pools N DIR writes N pools into DIR/main.llorch.hcl.
write_pools() {
  local n="$1" dir="$2" i
  mkdir -p "$dir/models"
  cp examples/demo/models/demo.gguf "$dir/models/demo.gguf"
  {
    printf 'provider "llamacpp" {\n  binary = "fake-llama-server"\n}\n'
    for ((i = 0; i < n; i++)); do
      printf '\npool "p%04d" {\n  engine  = "llamacpp"\n  port    = %d\n  devices = []\n\n  model {\n    ref = "file:models/demo.gguf"\n  }\n}\n' \
        "$i" "$((base_port + i))"
    done
  } >"$dir/main.llorch.hcl"
}

# time_plan DIR WANT runs `llorch plan` RUNS times and prints the median
# wall time (s) and the median peak RSS (KB). WANT is the exit code
# -detailed-exitcode must give: 2 (changes) against the empty state, 0 (no
# changes) once applied.
time_plan() {
  local dir="$1" want="$2" i rc start end walls=() rsss=() out="$tmp/time.out"
  for ((i = 0; i < runs; i++)); do
    rc=0
    start=$EPOCHREALTIME # /usr/bin/time's %e has only 10 ms resolution
    /usr/bin/time -o "$out" -f '%M' llorch -chdir="$dir" plan -no-color -detailed-exitcode >"$tmp/plan.out" 2>"$tmp/plan.err" || rc=$?
    end=$EPOCHREALTIME
    if [ "$rc" -ne "$want" ]; then
      echo "bench-process: llorch plan in $dir exited $rc, want $want" >&2
      tail -n 20 "$tmp/plan.out" "$tmp/plan.err" >&2
      return 1
    fi
    walls+=("$(echo "$end - $start" | bc)")
    rsss+=("$(tail -n 1 "$out")")
  done
  printf '%s %s\n' "$(printf '%s\n' "${walls[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")" \
    "$(printf '%s\n' "${rsss[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")"
}

rows=()
for n in "${counts[@]}"; do
  work="$tmp/pools-$n"
  mkdir -p "$work"
  write_pools "$n" "$work"

  res="$(time_plan "$work" 2)"
  read -r ew er <<<"$res"

  start=$(date +%s.%N)
  llorch -chdir="$work" apply -auto-approve -no-color -parallelism="$parallelism" >"$tmp/apply.out" 2>&1 || {
    echo "bench-process: apply of $n pools failed" >&2
    tail -n 30 "$tmp/apply.out" >&2
    exit 1
  }
  apply_s=$(echo "$(date +%s.%N) - $start" | bc)

  # Measure the steady state, not the seconds right after a thousand
  # engines started (their first probes and page faults).
  sleep "$settle"
  res="$(time_plan "$work" 0)"
  read -r aw ar <<<"$res"

  llorch -chdir="$work" destroy -auto-approve -no-color -parallelism=50 >"$tmp/destroy.out" 2>&1 || {
    echo "bench-process: destroy of $n pools failed" >&2
    tail -n 30 "$tmp/destroy.out" >&2
    exit 1
  }
  stop_leftovers "$work"
  rm -rf "$work"
  work=""

  rows+=("$(printf '| %5d | %7.3f s | %6.1f MiB | %7.3f s | %6.1f MiB | %7.1f s |' \
    "$n" "$ew" "$(echo "$er / 1024" | bc -l)" "$aw" "$(echo "$ar / 1024" | bc -l)" "$apply_s")")
done

echo
echo "llorch plan, median of $runs runs (wall, peak RSS); apply -parallelism=$parallelism once"
echo
echo "| pools | plan, empty state    | no-change plan       | apply     |"
echo "|       |      wall |   peak RSS |      wall |   peak RSS |      wall |"
echo "|------:|----------:|-----------:|----------:|-----------:|----------:|"
printf '%s\n' "${rows[@]}"
