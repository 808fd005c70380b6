#!/usr/bin/env bash
# Two "machines" on this host: network namespaces adascale-h0 and adascale-h1, joined by a veth
# pair and nothing else (10.77.0.1 and 10.77.0.2), one rank in each, started as a cluster
# scheduler would (torchrun's variables), each with an output folder of its own. Then the same
# config in one process, and both test accuracies side by side. Needs root (ip netns).
#   scripts/two_host_demo.sh     CONFIG=configs/fmnist_quick.ini BUILD=build THREADS=1 SEEDS="1 2 3"
# OUT=DIR keeps the logs and checkpoints there (default: a temporary folder); EXTRA="--train.batchnorm
# synchronized" passes options to the two ranks only.
set -euo pipefail
build=${BUILD:-build}
config=${CONFIG:-configs/fmnist_quick.ini}
threads=${THREADS:-1}
adascale=$(realpath "$build/tools/adascale/adascale")
[ -x "$adascale" ] || { echo "two_host_demo: no $adascale (build it first)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "two_host_demo: needs root for ip netns" >&2; exit 1; }
work=${OUT:-$(mktemp -d)}
mkdir -p "$work"

cleanup() { ip netns del adascale-h0 2>/dev/null || true; ip netns del adascale-h1 2>/dev/null || true; }
cleanup
trap cleanup EXIT
ip netns add adascale-h0
ip netns add adascale-h1
ip link add adascale-v0 type veth peer name adascale-v1
ip link set adascale-v0 netns adascale-h0
ip link set adascale-v1 netns adascale-h1
ip -n adascale-h0 addr add 10.77.0.1/24 dev adascale-v0
ip -n adascale-h1 addr add 10.77.0.2/24 dev adascale-v1
for h in 0 1; do
  ip -n adascale-h$h link set lo up
  ip -n adascale-h$h link set adascale-v$h up
done
echo "host 0: 10.77.0.1 (rank 0, the rendezvous host), host 1: 10.77.0.2 (rank 1)"

export OMP_WAIT_POLICY=PASSIVE
# each seed: the two hosts, then one process; the accuracies side by side, then their mean gap
seeds=${SEEDS:-1}
summary=$work/summary.txt
: >"$summary"
for seed in $seeds; do
  for r in 0 1; do
    ip netns exec adascale-h$r env MASTER_ADDR=10.77.0.1 MASTER_PORT=29500 WORLD_SIZE=2 RANK=$r \
      LOCAL_RANK=0 "$adascale" train --config "$config" --threads "$threads" --seed "$seed" \
      --out "$work/seed$seed/host$r" ${EXTRA:-} >"$work/seed$seed-host$r.log" 2>&1 &
    pids[$r]=$!
  done
  status=0
  for r in 0 1; do wait "${pids[$r]}" || status=1; done
  [ $status -eq 0 ] || { echo "two_host_demo: a rank failed:" >&2; tail -3 "$work"/seed$seed-host*.log >&2; exit 1; }
  echo "seed $seed, two hosts:"
  grep -E "^(data-parallel|epoch +[0-9]+/[0-9]+ +lr|test)" "$work/seed$seed-host0.log"
  echo "seed $seed, one process, $((2 * threads)) threads:"
  "$adascale" train --config "$config" --threads $((2 * threads)) --seed "$seed" \
    --out "$work/seed$seed/one" >"$work/seed$seed-one.log" 2>&1
  grep -E "^(epoch +[0-9]+/[0-9]+ +lr|test)" "$work/seed$seed-one.log"
  two=$(grep -oE 'test: accuracy [0-9.]+' "$work/seed$seed-host0.log" | grep -oE '[0-9.]+$')
  one=$(grep -oE 'test: accuracy [0-9.]+' "$work/seed$seed-one.log" | grep -oE '[0-9.]+$')
  echo "$seed $two $one" >>"$summary"
  echo "rank 1 wrote no checkpoint: $(find "$work/seed$seed/host1" -name '*.h5' | wc -l) files"
done
python3 - "$summary" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for seed, two, one in rows:
    print(f"seed {seed}: two hosts {float(two):.2f}%, one process {float(one):.2f}%, "
          f"difference {float(two) - float(one):+.2f} pt")
gap = sum(float(t) - float(o) for _, t, o in rows) / len(rows)
print(f"mean over {len(rows)} seed(s): difference {gap:+.2f} pt")
PY
echo "logs and checkpoints: $work"
