#!/usr/bin/python3
"""Builds compare.sh's markdown table (stdout) and WORKDIR/summary.json from the run outputs:
WORKDIR/shardrec-<model>/metrics.json and WORKDIR/rechub-<model>-{tensor,rechub}.json.
Inputs come from the environment compare.sh exports (CMP_*)."""

import json
import os

wd = os.environ["CMP_WORKDIR"]
models = os.environ["CMP_MODELS"].split()
env = os.environ.get
PHASES = ["forward", "backward", "optimizer", "push", "refresh", "wait", "assemble"]
KIND = {m: "ctr" for m in "deepfm widedeep dcn dcnv2 afm fibinet edcn".split()}
KIND.update({m: "seq" for m in "din dien bst".split()})
KIND.update({m: "mtl" for m in "shared_bottom esmm mmoe ple".split()})


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt_auc(v):
    """A number, or {task: auc} for multi-task models (ShardRec's auc_<label> keys)."""
    if v is None:
        return "n/a"
    if isinstance(v, dict):
        return " / ".join(f"{k} {x:.4f}" for k, x in v.items())
    return f"{v:.4f}"


def shardrec_aucs(split):
    if split is None:
        return None
    if "auc" in split:
        return split["auc"]
    per = {k[4:]: v for k, v in split.items() if k.startswith("auc_")}
    return per or None


def ref_aucs(v, labels):
    if isinstance(v, dict):  # multi-task: keep the tasks ShardRec reports, in its order
        return {k: v[k] for k in labels if k in v} if labels else v
    return v


rows_of = {"ctr": env("CMP_ROWS"), "seq": env("CMP_SEQ_ROWS"), "mtl": env("CMP_MTL_ROWS")}
kinds = sorted({KIND[m] for m in models}, key=["ctr", "seq", "mtl"].index)
print("Data: " + "; ".join(
    f"`shardrec gen-data {k} --rows {rows_of[k]} --seed {env('CMP_SEED')}" + (f" --vocab {env('CMP_VOCAB')}`" if k != "mtl" else "`")
    for k in kinds) + f" (80/10/10 split). Epochs per side: {env('CMP_EPOCHS')}. Threads: {env('CMP_THREADS')}.\n")
print("| model | impl | train samples/s | validation AUC | test AUC | ShardRec / this (speed) |")
print("|---|---|---:|---:|---:|---:|")
summary, phases_rows, notes = [], [], []
for m in models:
    s = load(os.path.join(wd, f"shardrec-{m}", "metrics.json"))
    sr = s["throughput"]["train_samples_per_sec"] if s else None
    labels = []
    if s:
        srs = s["throughput"]["step_samples_per_sec"]
        va, te = shardrec_aucs(s.get("validation")), shardrec_aucs(s.get("test"))
        labels = list(va.keys()) if isinstance(va, dict) else []
        print(f"| {m} | ShardRec | {sr:,.0f} (step only: {srs:,.0f}) | {fmt_auc(va)} | {fmt_auc(te)} | |")
        summary.append({"model": m, "impl": "shardrec", "train_samples_per_sec": sr, "step_samples_per_sec": srs,
                        "validation_auc": va, "test_auc": te, "best_epoch": s.get("best_epoch")})
        ep = s["epochs"][-1] if s.get("epochs") else {}
        step_ms = ep.get("step_ms", {})
    else:
        print(f"| {m} | ShardRec | failed (see shardrec-{m}.log) | | | |")
        step_ms = {}
    ratio_tensor = None
    for loader, label in [("tensor", "Torch-RecHub (tensor batches)"), ("rechub", "Torch-RecHub (its DataLoader)")]:
        p = os.path.join(wd, f"rechub-{m}-{loader}.json")
        r = load(p)
        if r is None:
            if os.path.exists(os.path.join(wd, f"rechub-{m}-{loader}.log")):
                print(f"| {m} | {label} | failed (see rechub-{m}-{loader}.log) | | | |")
            continue
        partial = r["hyper"]["max_steps"] > 0
        va = None if partial else ref_aucs(r["validation_auc"], labels)
        te = None if partial else ref_aucs(r["test_auc"], labels)
        if partial:
            label += f", {r['hyper']['max_steps']} steps/epoch"
        rs = r["train_samples_per_sec"]
        ratio = sr / rs if sr and rs else None
        if loader == "tensor":
            ratio_tensor = ratio
            for d in r.get("differences", []):
                notes.append((m, d))
        print(f"| {m} | {label} | {rs:,.0f} | {fmt_auc(va)} | {fmt_auc(te)} | "
              f"{'n/a' if ratio is None else f'{ratio:.2f}x'} |")
        summary.append({"model": m, "impl": "torch-rechub", "loader": loader, "rechub_class": r.get("rechub_class"),
                        "train_samples_per_sec": rs, "validation_auc": va, "test_auc": te,
                        "best_epoch": r["best_epoch"], "speed_ratio_shardrec_over_ref": ratio,
                        "partial_epochs": partial, "differences": r.get("differences", [])})
    if step_ms:
        total = sum(step_ms.values())
        top = max(step_ms, key=step_ms.get)
        phases_rows.append(f"| {m} | " + " / ".join(f"{step_ms.get(k, 0):.1f}" for k in PHASES) +
                           f" | {total:.1f} | {top} ({100 * step_ms[top] / total:.0f}%) | "
                           f"{'n/a' if ratio_tensor is None else f'{ratio_tensor:.2f}x'} |")

if phases_rows:
    print("\nShardRec per-step time by phase (ms, last epoch's mean per step, from metrics.json `step_ms`):\n")
    print("| model | " + " / ".join(PHASES) + " | sum | largest | vs tensor reference |")
    print("|---|---|---:|---|---:|")
    for row in phases_rows:
        print(row)
overrides = env("CMP_OVERRIDES", "").strip()
if overrides:
    print("\nConfig overrides on both sides (inputs Torch-RecHub's class can take; `--shipped-configs` drops them):\n")
    for line in overrides.splitlines():
        print(f"- {line}")
if notes:
    print("\nDifferences the reference cannot match (from rechub_reference.py's `differences`):\n")
    for m, d in notes:
        print(f"- {m}: {d}")
with open(os.path.join(wd, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
