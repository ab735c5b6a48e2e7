#!/usr/bin/env bash
# What a session lent a GPU runs, as one call of the device tool (docs/training.md, "On a lent GPU"). The GPU
# machine has PyTorch, OpenCV and NumPy but no PyAV, decord or dlib, and a call carries at most 64 MiB
# with the repository (30 MB), so it trains from a shrunk crop tree made here first (the same model inputs):
#
#   python tools/make_video_crops.py ../shared/data/fer2013 --out data/fer2013_video --workers 2    # ~15 min
#   python tools/shrink_face_tree.py data/fer2013_video --out data/fer2013_video44 --size 44 --grayscale  # 35 MB
#   device run: command "bash tools/gpu_session.sh", carry ["data/fer2013_video44"], timeout_s 560
#
# It writes to $OUT (the device tool's folder; runs/gpu_session elsewhere), at most 8 files:
#   machine.txt    the GPU, driver, torch
#   recipe.log     configs/face_frame_video_gpu.yaml trained from scratch, then its held-out crops scored
#                  (2,872 faces, mirror view, as video frames are scored): accuracy and mean class accuracy
#   recipe.pt      its best.pt, weights in fp16 (the CPU path loads it: `mmfer scores recipe.pt ...`)
#   recipe_log.csv its per-epoch log; recipe_scores.csv its held-out scores
#   wide.log, wide.pt  where time is left: the same recipe at width 64 (a capacity probe, 4x the FLOPs)
# A model trained here ships only by the face models' rule (docs/MODEL_CARD.md): it must add 0.3 points to both
# figures of the shipped pair on the held-out video crops, and predict must stay within 0.3 s per 3-s clip.
# Not here: `mmfer bench --device cuda` needs PyAV and dlib's 100-MB landmark model, which do not fit the call;
# a 2-process torchrun needs two GPUs (each process takes its own).
# Tested on the CPU at a tiny size: DEVICE=cpu EPOCHS=1 bash tools/gpu_session.sh (tests/test_gpu_session.py).
set -uo pipefail
OUT=${OUT:-runs/gpu_session}
DATA=${DATA:-data/fer2013_video44}
DEVICE=${DEVICE:-cuda}
BUDGET=${BUDGET:-500}          # seconds for everything; the device tool's limit is 600
EPOCHS=${EPOCHS:-}             # default: the config's
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if [ ! -d "$DATA" ]; then
    echo "error: $DATA: no such folder; make it with tools/shrink_face_tree.py and carry it" >&2
    exit 2
fi
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }
work=$(mktemp -d)
{ date -u; nvidia-smi 2>&1 | head -15; "$PY" -c 'import sys, torch, numpy, cv2
print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__, "opencv", cv2.__version__)
print("cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))'; } > "$OUT/machine.txt" 2>&1

# train NAME CONFIG [config overrides as yaml lines]: train, score the held-out crops, copy back what matters
train() {
    local name=$1 config=$2 extra=${3:-} t0
    t0=$(date +%s)
    if [ -n "$extra" ]; then
        "$PY" -c 'import sys, yaml
c = yaml.safe_load(open(sys.argv[1])); over = yaml.safe_load(sys.argv[2])
for k, v in over.items():
    node = c
    *path, leaf = k.split(".")
    for p in path:
        node = node[p]
    node[leaf] = v
c["name"] += "_probe"
yaml.safe_dump(c, open(sys.argv[3], "w"), sort_keys=False)' "$config" "$extra" "$work/$name.yaml" || return 1
        config=$work/$name.yaml
    fi
    if [ "$(left)" -le 10 ]; then echo "no time left for $name" >> "$OUT/$name.log"; return 1; fi
    timeout "$(left)" "$PY" -m mmfer train "$config" --data "$DATA" --out "$work/$name" --device "$DEVICE" \
        ${EPOCHS:+--epochs "$EPOCHS"} --no-progress > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "train exit $rc, $(( $(date +%s) - t0 )) s wall" >> "$OUT/$name.log"
    [ $rc -eq 0 ] || return $rc
    "$PY" -m mmfer scores "$work/$name" --data "$DATA" --split Val --views 2 --device "$DEVICE" --no-progress \
        --out "$work/$name/heldout_mirror.csv" >> "$OUT/$name.log" 2>&1 &&
    "$PY" -m mmfer evaluate "$work/$name/heldout_mirror.csv" >> "$OUT/$name.log" 2>&1
    # weights in fp16 (as the bundle keeps them): a file the device tool brings back is at most 16 MiB
    "$PY" -c 'import sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
c["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in c["state_dict"].items()}
torch.save(c, sys.argv[2])' "$work/$name/best.pt" "$OUT/$name.pt"
    [ "$name" = recipe ] && cp "$work/$name/log.csv" "$OUT/recipe_log.csv" && cp "$work/$name/heldout_mirror.csv" "$OUT/recipe_scores.csv"
    return 0
}

t0=$(date +%s)
train recipe configs/face_frame_video_gpu.yaml || echo "recipe failed: see recipe.log" >&2
took=$(( $(date +%s) - t0 ))
# the probe only where it can finish: it costs up to 4x the recipe's time (a run cut short is worth nothing)
if [ "$(left)" -gt $(( 5 * took )) ]; then
    train wide configs/face_frame_video_gpu.yaml 'model.kwargs.width: 64' || echo "wide stopped: see wide.log" >&2
else
    echo "no time for the width-64 probe: $(left) s left, the recipe took $took s" >> "$OUT/recipe.log"
fi
echo "all done in $(( $(date +%s) - start )) s" >> "$OUT/machine.txt"
ls -l "$OUT"
