#!/usr/bin/env bash
# On-device calibration, shown on a bundle whose catalog latencies are deliberately wrong: each
# fixture copies the bundle, scales every branch's catalog latency (median and p90) by a factor
# (2: pessimistic, 0.5: optimistic) and re-seals the catalog checksum, then replays scenarios with
# the adaptive policy from a cold start (settle_s = 0, so the first seconds after the loop starts
# are on the record) twice: on the scaled catalog, and after `adascale-run --calibrate` wrote the
# bundle's device profile. The scenarios: "idle" (8 s, no load, requests of 256 images, 75 ms
# each), "startup" (6 s, no load, requests of 1024 images, 40 ms each: a budget that binds at
# idle, so a wrong latency picks a branch that misses it; large requests, so that a time slice
# lost to another process on a shared machine does not miss it alone) and the standard timeline
# (configs/scenarios/supernet.ini). For each
# run it prints the latency prediction error of the requests without load (no burner, no
# balloon; |predicted - observed| / observed) three ways: the idle prediction (the latency the
# loop starts from: the catalog's or the profile's median, what it predicts on an idle device),
# that times the contention the monitor senses (the loop's prediction without online correction;
# on a shared machine others' load enters here) and the loop's corrected prediction; then the
# violations, accuracy and branches of the first FIRST_S seconds and of the whole run, and the
# machine's load average before each replay.
#
# BUNDLE (default runs/demo/model.bundle), FACTORS (default "2 0.5"), FIRST_S (default 3),
# SCENARIOS (more scenario files, replayed from a cold start; default the standard one),
# BUILD_DIR (default build), OUT (default: a temporary folder, removed at the end unless KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${BUNDLE:-runs/demo/model.bundle}
factors=${FACTORS:-2 0.5}
first_s=${FIRST_S:-3}
extra=${SCENARIOS-configs/scenarios/supernet.ini}
run=${BUILD_DIR:-build}/tools/adascale-run/adascale-run
data=/usr/share/datasets/fashion-mnist
[ -x "$run" ] || { echo "build adascale-run first (scripts/build.sh adascale-run)" >&2; exit 1; }
[ -f "$bundle/catalog.json" ] || { echo "no bundle at $bundle (scripts/demo.sh makes one)" >&2; exit 1; }
out=${OUT:-$(mktemp -d /tmp/adascale-calibration.XXXXXX)}
if [ -z "${OUT:-}" ] && [ -z "${KEEP:-}" ]; then trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"

# scales the catalog latencies of a bundle copy and re-seals the checksum in weights.bin
scale_catalog() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, struct, sys, zlib
folder, factor = sys.argv[1], float(sys.argv[2])
with open(f"{folder}/catalog.json") as f:
    catalog = json.load(f)
for branch in catalog["branches"]:
    latency = branch.get("costs", {}).get("latency_ms")
    if isinstance(latency, dict):
        for key in ("median", "p90"):
            if key in latency:
                latency[key] *= factor
    elif isinstance(latency, (int, float)):
        branch["costs"]["latency_ms"] = latency * factor
text = json.dumps(catalog, indent=1).encode()
with open(f"{folder}/catalog.json", "wb") as f:
    f.write(text)
# header: magic[8], u32 version, u32 header bytes, u64 file size, u64 tensor count, u32 crc32
with open(f"{folder}/weights.bin", "r+b") as f:
    f.seek(32)
    f.write(struct.pack("<I", zlib.crc32(text) & 0xFFFFFFFF))
EOF
}

# the scenario with settle_s = 0: the timeline starts with the loop
cold_start() {
  sed -E 's/^settle_s *=.*/settle_s = 0/' "$1" > "$2"
}

# a cold start without load: name, seconds, images per request, latency budget per request (ms)
quiet_scenario() {
  cat <<EOF
[scenario]
name = $1
duration_s = $2
frame_images = $3
settle_s = 0
calibration_s = 0.6

[adaptation]
period_ms = 50
min_dwell_ms = 1000
tail_latency = true
tail_quantile = 0.9

[budgets]
latency_ms = $4
memory_mode = none
energy_mj = inf

[timeline]
EOF
}

# prediction errors and the first seconds of one adaptive trace: trace, bundle, phase
report() {
  /usr/bin/python3 - "$1" "$first_s" "$2" "$3" <<'EOF'
import csv, json, sys
path, first, bundle, phase = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open(path)))
# the latency per image the loop starts from: the profile's or the catalog's median
if phase == "calibrated":
    base = {b["name"]: b["median_ms"] for b in json.load(open(f"{bundle}/device-profile.json"))["branches"]}
else:
    base = {}
    for b in json.load(open(f"{bundle}/catalog.json"))["branches"]:
        latency = b["costs"]["latency_ms"]
        base[b["name"]] = latency["median"] if isinstance(latency, dict) else latency
for r in rows:
    r["predicted_idle_ms"] = str(base[r["branch"]] * int(r["images"]))
def quantiles(column, pick):
    errors = sorted(abs(float(r[column]) - float(r["observed_ms"])) / float(r["observed_ms"])
                    for r in rows if r[column] and pick(r))
    if not errors:
        return "-"
    return f"median {100 * errors[len(errors) // 2]:5.1f}%  p90 {100 * errors[int(0.9 * (len(errors) - 1))]:5.1f}%"
quiet = lambda r: int(r["burners"]) == 0 and float(r["balloon_mib"]) == 0
print(f"    prediction error without load: idle prediction {quantiles('predicted_idle_ms', quiet)}")
print(f"      x sensed contention (uncorrected) {quantiles('predicted_uncorrected_ms', quiet)}")
print(f"      with the online correction        {quantiles('predicted_ms', quiet)}")
early = [r for r in rows if float(r["time_s"]) < first]
violations = sum(int(r["violation"]) for r in early)
images = sum(int(r["images"]) for r in early)
correct = sum(int(r["correct"]) for r in early)
branches = []
for r in early:
    if not branches or branches[-1] != r["branch"]:
        branches.append(r["branch"])
accuracy = f"{100 * correct / images:.2f}%" if images else "-"
print(f"    first {first:g} s: {violations}/{len(early)} requests over the budget, accuracy {accuracy}, "
      f"branches {' -> '.join(branches)}")
total = sum(int(r["violation"]) for r in rows)
images = sum(int(r["images"]) for r in rows)
correct = sum(int(r["correct"]) for r in rows)
print(f"    whole run: {total}/{len(rows)} requests over the budget, accuracy {100 * correct / images:.2f}%")
EOF
}

replay() {  # bundle scenario trace-folder
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  "$run" --bundle "$1" --scenario "$2" --policy adaptive --trace-out "$3" \
    --idx "$data/t10k-images-idx3-ubyte.gz" --labels "$data/t10k-labels-idx1-ubyte.gz" \
    2>"$3.log" | grep -E '^(latencies|adaptive|load average) '
}

quiet_scenario idle 8 256 75 > "$out/idle.ini"
quiet_scenario startup 6 1024 40 > "$out/startup.ini"
scenarios="$out/idle.ini $out/startup.ini"
for scenario in $extra; do
  cold_start "$scenario" "$out/$(basename "$scenario" .ini)-cold.ini"
  scenarios="$scenarios $out/$(basename "$scenario" .ini)-cold.ini"
done
for factor in $factors; do
  copy="$out/x$factor/model.bundle"
  rm -rf "$out/x$factor"
  mkdir -p "$out/x$factor"
  cp -r "$bundle" "$copy"
  rm -f "$copy/device-profile.json"
  scale_catalog "$copy" "$factor"
  for phase in catalog calibrated; do
    if [ "$phase" = calibrated ]; then
      echo "== catalog latencies x$factor: adascale-run --calibrate =="
      "$run" --bundle "$copy" --calibrate | grep -E '^(device|wrote|latencies)'
    fi
    for scenario in $scenarios; do
      name=$(basename "$scenario" .ini)
      echo "== catalog latencies x$factor, $phase, $name =="
      replay "$copy" "$scenario" "$out/x$factor/$phase-$name"
      report "$(ls "$out/x$factor/$phase-$name"/*-adaptive.csv)" "$copy" "$phase"
    done
  done
done
echo "traces in $out"
