#!/usr/bin/env bash
# AFEW root -> EmotiW submission zip, end to end:
#   preprocess (faces, landmarks, audio) -> train the four branches -> fuse on Val -> submit -> check.
#
# Usage:  challenge/run_afew.sh /data/AFEW [WORK_DIR] [TEAM_NAME]
#   AFEW root layout: Train/<Emotion>/<clip>.avi, Val/<Emotion>/<clip>.avi, Test/<clip>.avi
# Every step resumes: re-running skips clips already cached and keeps finished runs
# and continues an interrupted branch with --resume (delete a RUNS/<branch> folder to retrain it).
# Clips added or replaced since a finished run's scores were written are scored by its model on the re-run.
set -euo pipefail

AFEW_ROOT=${1:?usage: $0 AFEW_ROOT [WORK_DIR] [TEAM_NAME]}
WORK=${2:-work_afew}
TEAM=${3:-team}
CONFIGS=${CONFIGS:-configs}                 # where c3d.yaml, cnn_lstm.yaml, ... live
BRANCHES=${BRANCHES:-"c3d cnn_lstm landmark_brnn audio_cnn"}
WORKERS=${WORKERS:-0}                       # preprocessing workers, 0 = one per CPU core
FUSION=${FUSION:-weighted}                  # majority | mean | weighted | per_class | exp_weighted | stacker
FUSION_FOLDS=${FUSION_FOLDS:-${FOLDS:-5}}      # cross-validation folds of the fusion over Val (FOLDS, the old name, works too)
FUSION_SEED=${FUSION_SEED:-${SEED:-0}}      # seed of the fusion's cross-validation split (SEED, the old name, works
                                            # too); the branches train with their configs' seeds
EPOCHS=${EPOCHS:-}                          # override every config's epochs (e.g. 1 for a smoke run)

# Every setting is checked before the long steps: a misspelt branch or method found after hours of
# preprocessing and training costs those hours again on real AFEW.
command -v mmfer >/dev/null || { echo "$0: the mmfer command is not installed (pip install -e .)" >&2; exit 2; }
[[ -d "$AFEW_ROOT" ]] || { echo "$0: AFEW_ROOT $AFEW_ROOT: no such folder" >&2; exit 2; }
for b in $BRANCHES; do
    [[ -f "$CONFIGS/$b.yaml" ]] || { echo "$0: BRANCHES: no config $CONFIGS/$b.yaml for branch '$b'" \
        "(the configs there: $(cd "$CONFIGS" 2>/dev/null && ls *.yaml 2>/dev/null | sed 's/\.yaml$//' | tr '\n' ' '))" >&2; exit 2; }
done
# a branch that reads face images (face_frame: FER2013 or a crop tree), not the clips' cache, cannot train here
PHOTO=$(python3 - "$CONFIGS" $BRANCHES <<'PY'
import sys
from mmfer.data.kinds import KINDS
from mmfer.engine.config import load_train_config
from mmfer.engine.train import build_run_model
for b in sys.argv[2:]:
    if KINDS[build_run_model(load_train_config(f"{sys.argv[1]}/{b}.yaml"))[1]].files == "image":
        print(b)
PY
) || { echo "$0: BRANCHES: a config could not be read (said above)" >&2; exit 2; }
[[ -z "$PHOTO" ]] || { echo "$0: BRANCHES: $(echo $PHOTO) read(s) face images, not the clips' cache this script" \
    "trains on: train it on its images (mmfer train CONFIG --data IMAGES) and fuse its scores yourself (docs/fusion.md, \"A face-frame run in the fusion\")" >&2; exit 2; }
METHODS=$(python3 -c "from mmfer.fusion.methods import METHODS; print(' '.join(METHODS))")
[[ " $METHODS " == *" $FUSION "* ]] || { echo "$0: FUSION '$FUSION': expected one of: $METHODS" >&2; exit 2; }
for v in WORKERS FUSION_FOLDS FUSION_SEED ${EPOCHS:+EPOCHS}; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$0: $v '${!v}': expected a whole number" >&2; exit 2; }
done
(( 10#$FUSION_FOLDS >= 2 )) || { echo "$0: FUSION_FOLDS $FUSION_FOLDS: at least 2" >&2; exit 2; }
[[ -z "$EPOCHS" ]] || (( 10#$EPOCHS >= 1 )) || { echo "$0: EPOCHS $EPOCHS: at least 1" >&2; exit 2; }

CACHE="$WORK/cache"
RUNS="$WORK/runs"
FUSE="$WORK/fuse"
ZIP="$WORK/$TEAM.zip"
mkdir -p "$WORK" "$RUNS"

echo "== 1/5 preprocess $AFEW_ROOT -> $CACHE"
mmfer preprocess "$AFEW_ROOT" --out "$CACHE" --workers "$WORKERS"

echo "== 2/5 train branches: $BRANCHES"
# what RUN needs against the config asked for now (CONFIG, and EPOCHS if set): "finished", "resume N" (stopped
# before its epochs, or trained fewer than asked, e.g. by an earlier smoke run with EPOCHS=1), or "other: ..."
# (trained with another config: kept, and said, since --resume would refuse it)
run_state() {
    python3 - "$1" "$2" "${EPOCHS:-}" <<'PY'
import json, pathlib, sys
import yaml
from mmfer.engine.checks import config_differences
from mmfer.engine.config import config_from_dict, config_to_plain, load_train_config
run, config, epochs = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
now = config_to_plain(load_train_config(config))
target = int(epochs) if epochs else now["optim"]["epochs"]
try:
    saved = config_to_plain(config_from_dict(yaml.safe_load((run / "config.yaml").read_text()), where=str(run)))
    lines = [l for l in (run / "log.jsonl").read_text().splitlines() if l.strip()]
    done = json.loads(lines[-1])["epoch"] if lines else 0
except (OSError, KeyError, TypeError, ValueError):
    print(f"resume {target}")
    sys.exit(0)
diffs = [d for d in config_differences(saved, now) if not d.startswith("optim.epochs:")]
if diffs:
    print("other: " + "; ".join(diffs[:3]))
elif done < target:
    print(f"resume {target}")
else:
    print("finished" + (f" ({done} epochs, more than the {target} asked: kept)" if done > target else ""))
PY
}
VAL=()
TEST=()
for b in $BRANCHES; do
    run="$RUNS/$b"
    retrained=0
    if [[ ! -f "$run/last.pt" ]]; then
        mmfer train "$CONFIGS/$b.yaml" --data "$CACHE" --out "$run" ${EPOCHS:+--epochs "$EPOCHS"}
    else
        state=$(run_state "$run" "$CONFIGS/$b.yaml")
        case "$state" in
            resume*)
                echo "   $b: $run has trained fewer epochs than ${state#resume } (stopped, or a shorter earlier run): continuing it"
                mmfer train "$CONFIGS/$b.yaml" --data "$CACHE" --out "$run" --epochs "${state#resume }" --resume
                retrained=1 ;;
            other*)
                echo "   $b: WARNING: $run was trained with another config than $CONFIGS/$b.yaml (${state#other: });" \
                     "its scores are used as they are: delete $run to retrain with the current config" ;;
            *) [[ "$state" == finished ]] || echo "   $b: $state" ;;
        esac
    fi
    if [[ "$retrained" == 1 || ! -f "$run/scores_Val.csv" || ! -f "$run/scores_Test.csv" \
          || "$CACHE/manifest.jsonl" -nt "$run/scores_Val.csv" || "$CACHE/manifest.jsonl" -nt "$run/scores_Test.csv" \
          || "$run/best.pt" -nt "$run/scores_Val.csv" || "$run/best.pt" -nt "$run/scores_Test.csv" ]]; then
        # (best.pt newer than its scores: a run stopped while it wrote them, after training on)
        # clips were added, removed or re-decoded since the scores were written (or they are missing): stale
        # scores would fill new clips with the prior and submit removed ones
        echo "   $b: scoring Val and Test with the trained model (new Train clips are not learnt from: delete $run to retrain)"
        mmfer scores "$run" --data "$CACHE" --split Val --out "$run/scores_Val.csv"
        mmfer scores "$run" --data "$CACHE" --split Test --out "$run/scores_Test.csv"
    else
        echo "   $b: its scores in $run are current (delete the folder to retrain)"
    fi
    VAL+=("$run/scores_Val.csv")
    TEST+=("$run/scores_Test.csv")
done

echo "== 3/5 fuse ($FUSION, tuned on Val; cross-validated estimate over up to $FUSION_FOLDS folds)"
mmfer fuse --val "${VAL[@]}" --test "${TEST[@]}" --out "$FUSE" \
    --method "$FUSION" --cv-folds "$FUSION_FOLDS" --seed "$FUSION_SEED"
mmfer ablate --val "${VAL[@]}" --out "$WORK/ablation" --method "$FUSION" --cv-folds "$FUSION_FOLDS" --seed "$FUSION_SEED"
mmfer evaluate "$FUSE/fused_Val_cv.csv" --png "$FUSE/confusion_Val.png"   # cross-validated: matches the reported figure

echo "== 4/5 submit -> $ZIP"
# Every Test clip gets a prediction: branches score clips whose faces failed with the audio they
# have (or uniform scores), and --fill-missing prior covers anything still absent (each is reported).
mmfer submit "$FUSE/fused_Test.csv" --index "$CACHE" --out "$ZIP" --fill-missing prior

echo "== 5/5 check $ZIP against $AFEW_ROOT/Test"
mmfer submit --check "$ZIP" --index "$AFEW_ROOT"
echo "done: $ZIP (report the cross-validated Val figure from $FUSE/weights.json)"
