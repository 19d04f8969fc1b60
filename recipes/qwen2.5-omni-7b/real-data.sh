#!/usr/bin/env bash
# The paper's pipeline on real data for qwen2.5-omni-7b, end to end (docs/data-preparation.md):
#   data import -> data align -> data sta -> train sta -> data qa -> train grpo
# Point the variables at the corpora on disk; a source left unset is skipped. LIBRISPEECH and
# MELD are needed; the paper also used CoVoST 2, CoTA's multi-speaker subset and YouTube-8M
# speech QA (no published question set: give your own as a manifest, YT8M_QA).
#
#   LIBRISPEECH=/data/LibriSpeech/train-clean-100 LIBRISPEECH_DEV=/data/LibriSpeech/dev-clean \
#   MELD=/data/MELD.Raw COVOST=/data/covost_en COTA=/data/Audio-Reasoner-CoTA/multi_speaker \
#   YT8M_QA=/data/yt8m_speech_qa.jsonl bash recipes/qwen2.5-omni-7b/real-data.sh
#
# Every step can be rerun: alignment and MELD's dialogue audio resume where they stopped, the
# other steps rewrite their (small) outputs, and training resumes with RESUME=--resume.
set -euo pipefail

RECIPES=$(cd "$(dirname "$0")" && pwd)
D=${DATA:-data}                                   # all data under here
RUNS=${RUNS:-runs/qwen2.5-omni-7b}
TGSR=${TGSR:-tgsr}                                # the data commands
TRAIN=${TRAIN:-accelerate launch --config_file $RECIPES/../accelerate/deepspeed_zero3.yaml -m tgsr}
ALIGN_BACKEND=${ALIGN_BACKEND:-whisper-timestamped}   # the paper's aligner
ALIGN_MODEL=${ALIGN_MODEL:-base}
WORKERS=${WORKERS:-4}
RESUME=${RESUME:-}

: "${LIBRISPEECH:?set LIBRISPEECH to a LibriSpeech training folder}"
: "${MELD:?set MELD to the MELD folder (CSVs and MELD.Raw clips)}"

# Stage-1 phrases of one corpus: import, align, sample phrases (4 per clip, 3-12 words).
stage1() {  # name corpus root [import options...]
    local name=$1 corpus=$2 root=$3
    shift 3
    $TGSR data import "$corpus" --root "$root" --out "$D/$name/manifest.jsonl" "$@"
    $TGSR data align --manifest "$D/$name/manifest.jsonl" --backend "$ALIGN_BACKEND" --model "$ALIGN_MODEL" \
        --workers "$WORKERS" --out "$D/$name/words.jsonl"
    $TGSR data sta --words "$D/$name/words.jsonl" --out "$D/$name/sta.jsonl"
}

# ---- Stage-2 questions (before Stage 1: CoTA's clips are also Stage-1 speech)
qa_files=()
$TGSR data qa meld --root "$MELD" --split train --out "$D/qa/meld/qa.jsonl"
qa_files+=("$D/qa/meld/qa.jsonl")
if [ -n "${COTA:-}" ]; then
    $TGSR data qa cota --root "$COTA" --out "$D/qa/cota/qa.jsonl"
    qa_files+=("$D/qa/cota/qa.jsonl")
fi
if [ -n "${YT8M_QA:-}" ]; then
    $TGSR data qa manifest --root "$YT8M_QA" --out "$D/qa/yt8m/qa.jsonl"
    qa_files+=("$D/qa/yt8m/qa.jsonl")
fi

# ---- Stage 1: STA data from every source (MELD: train and dev only, the test split is the benchmark)
sta_files=()
stage1 librispeech librispeech "$LIBRISPEECH"
sta_files+=("$D/librispeech/sta.jsonl")
stage1 meld meld "$MELD" --splits train,dev
sta_files+=("$D/meld/sta.jsonl")
if [ -n "${COVOST:-}" ]; then
    stage1 covost covost2 "$COVOST"
    sta_files+=("$D/covost/sta.jsonl")
fi
if [ -n "${COTA:-}" ]; then
    stage1 cota manifest "$D/qa/cota/qa.jsonl"       # the multi-speaker clips, transcribed by the aligner
    sta_files+=("$D/cota/sta.jsonl")
fi
if [ -n "${YT8M_QA:-}" ]; then
    stage1 yt8m manifest "$D/qa/yt8m/qa.jsonl"
    sta_files+=("$D/yt8m/sta.jsonl")
fi
$TGSR data merge --kind sta --out "$D/sta/train/sta.jsonl" "${sta_files[@]}"
sta_eval=()
if [ -n "${LIBRISPEECH_DEV:-}" ]; then                # held-out STA, scored during training
    stage1 librispeech-dev librispeech "$LIBRISPEECH_DEV"
    sta_eval=("tgsr.eval_file=$D/librispeech-dev/sta.jsonl")
else
    sta_eval=("tgsr.eval_file=null")
fi

$TRAIN train sta --config "$RECIPES/sta.yaml" $RESUME "tgsr.train_file=$D/sta/train/sta.jsonl" \
    "${sta_eval[@]}" "output_dir=$RUNS/sta"

# ---- Stage 2: grounded rationales for MELD from its word timings, then GRPO from the STA model
$TGSR data qa meld --root "$MELD" --split train --words "$D/meld/words.jsonl" --out "$D/qa/meld/qa.jsonl"
$TGSR data merge --kind qa --out "$D/qa/train/qa.jsonl" "${qa_files[@]}"
$TRAIN train grpo --config "$RECIPES/grpo.yaml" $RESUME "tgsr.model=$RUNS/sta" "tgsr.ref_model=$RUNS/sta" \
    "tgsr.train_file=$D/qa/train/qa.jsonl" "output_dir=$RUNS/grpo"
