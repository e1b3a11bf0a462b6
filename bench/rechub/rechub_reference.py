#!/usr/bin/python3
"""Reference measurement: Torch-RecHub's own model classes and trainers on ShardRec's generated data,
with the hyper-parameters read from the same ShardRec config that `shardrec train` runs.

Models (--model NAME reads configs/NAME.pbtxt unless --config is given):
  CTR data (`shardrec gen-data ctr`):  deepfm, widedeep, dcn, dcnv2, afm, fibinet, edcn
  sequence data (`gen-data seq`):      din, dien, bst
  multi-task data (`gen-data mtl`):    shared_bottom, esmm, mmoe, ple
Each is built from Torch-RecHub's class of that name (torch_rechub.models.ranking.DeepFM, WideDeep,
DCN, DCNv2, AFM, FiBiNet, EDCN, DIN, DIEN, BST; torch_rechub.models.multi_task.SharedBottom, ESMM,
MMOE, PLE) and trained with Torch-RecHub's own training step: CTRTrainer.train_one_epoch (DIEN
with loss_mode=False, as its example) or MTLTrainer.train_one_epoch, evaluated with the trainers'
evaluate (sklearn roc_auc_score; per task for multi-task models).

Torch-RecHub is NOT vendored: point TORCH_RECHUB_SRC (or --rechub-src) at a directory that
contains the `torch_rechub` package (a checkout or `git archive` of
https://github.com/datawhalechina/torch-rechub). It is imported from there via sys.path.

Hyper-parameters come from the ShardRec config (a small reader for protobuf text format below;
`--set field.path=value` applies the same overrides `shardrec train --set` would): features
(types, embedding dims, shared tables, sequence max_len, dense transforms), the embedding init
std, batch size, dense optimizer (Adam lr, weight decay, betas, eps), early-stopping patience and
every field of the model block. A model field the mapping below does not know is an error, so
the two sides cannot silently diverge when a config changes. Where Torch-RecHub cannot express a
config value, or does something else by design, the difference is recorded in the output's
"differences" list (and bench/rechub/README.md explains each).

Preprocessing (not timed), the same inputs ShardRec's parser produces:
  * dense: empty -> `fill` (0), then the config's transform (LOG: log(1 + max(x, 0)); MINMAX:
    (x - min) / (max - min) clipped to [0, 1]; NONE: raw value).
  * sparse / sequence ids: one vocabulary per embedding table (a feature and every feature
    `shared_with` it), ids encoded in sorted order of the raw strings over train + validation +
    test (sklearn LabelEncoder's order, as the reference's examples); tables that hold a sequence
    reserve row 0 for padding (padding_idx=0, a zero row that never trains). Empty categorical
    values are their own id ("" as a class); sequence values are split on the config's separator,
    "" and the config's `padding` values are dropped, the last max_len kept and left-padded with
    0 (Torch-RecHub's pad_sequences(padding='pre', truncating='pre'), i.e. right-aligned, most
    recent last, as ShardRec's reader).
  * labels: `label`, or the config's data.label_columns (multi-task).

Loaders (--loader):
  * rechub: Torch-RecHub's DataGenerator(...).generate_dataloader(): a torch DataLoader over
    TorchDataset (per-sample dict indexing + default_collate), shuffle=True, num_workers=0: the
    library's own input path, timed as part of the training loop as in its trainers.
  * tensor: a tuned input path: each batch is sliced from pre-built tensors with one random
    permutation per epoch, so the timed loop is (almost) only forward/backward/optimizer step.
    Everything else (model, trainer step, loss, optimizer) is unchanged.

Timing: train samples/s = training samples / wall time spent inside train_one_epoch, summed over
the epochs run. CSV reading, preprocessing and evaluation are not timed (reported separately).
The epoch loop is the trainers' fit() without the model.pth save: train_one_epoch, validation
AUC, EarlyStopper (the config's patience, on the task ShardRec's trainer watches); the best
validation weights are restored before the test AUC (as ShardRec does).

Environment: set MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 (and optionally
OMP_WAIT_POLICY=PASSIVE) in the environment BEFORE starting Python; bench/rechub/compare.sh does.
"""

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# model name -> (data kind, family)
MODELS = {
    "deepfm": ("ctr", "ranking"), "widedeep": ("ctr", "ranking"), "dcn": ("ctr", "ranking"),
    "dcnv2": ("ctr", "ranking"), "afm": ("ctr", "ranking"), "fibinet": ("ctr", "ranking"),
    "edcn": ("ctr", "ranking"),
    "din": ("seq", "ranking"), "dien": ("seq", "ranking"), "bst": ("seq", "ranking"),
    "shared_bottom": ("mtl", "multi_task"), "esmm": ("mtl", "multi_task"), "mmoe": ("mtl", "multi_task"),
    "ple": ("mtl", "multi_task"),
}
# The config's model block (oneof field name) for each model.
MODEL_BLOCK = {"widedeep": "wide_deep"}


class ConfigMismatch(Exception):
    pass


# ---- protobuf text format (the subset ShardRec's configs use) ------------------------------------

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}\[\]:,;<>]|[^\s{}\[\]:,;<>#"\']+')


class Msg:
    """A parsed text-format message: field name -> list of values (scalars as strings, or Msg).
    Tracks which fields were read, so unmapped fields can be reported."""

    def __init__(self, path=""):
        self.fields = {}
        self.path = path
        self.read = set()

    def add(self, key, value):
        self.fields.setdefault(key, []).append(value)

    def has(self, key):
        return key in self.fields

    def values(self, key):
        self.read.add(key)
        return self.fields.get(key, [])

    def get(self, key, default=None, conv=str):
        v = self.values(key)
        if not v:
            return default
        return _convert(v[-1], conv)

    def list(self, key, conv=str):
        return [_convert(v, conv) for v in self.values(key)]

    def msg(self, key):
        v = self.values(key)
        return v[-1] if v else Msg(f"{self.path}.{key}".lstrip("."))

    def msgs(self, key):
        return self.values(key)

    def unread(self):
        return sorted(k for k in self.fields if k not in self.read)


def _convert(v, conv):
    if isinstance(v, Msg):
        return v
    if conv is bool:
        return v.lower() in ("true", "t", "1")
    if conv is str and len(v) >= 2 and v[0] in "\"'" and v[-1] == v[0]:
        return bytes(v[1:-1], "utf-8").decode("unicode_escape")
    return conv(v)


def parse_pbtxt(text, path=""):
    toks = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")]
    pos = 0

    def message(m, end):
        nonlocal pos
        while pos < len(toks) and toks[pos] != end:
            name = toks[pos]
            pos += 1
            if toks[pos] == ":":
                pos += 1
            if toks[pos] in ("{", "<"):
                close = "}" if toks[pos] == "{" else ">"
                pos += 1
                sub = Msg(f"{m.path}.{name}".lstrip("."))
                message(sub, close)
                pos += 1
                m.add(name, sub)
            elif toks[pos] == "[":
                pos += 1
                while toks[pos] != "]":
                    if toks[pos] == ",":
                        pos += 1
                        continue
                    if toks[pos] == "{":
                        pos += 1
                        sub = Msg(f"{m.path}.{name}".lstrip("."))
                        message(sub, "}")
                        pos += 1
                        m.add(name, sub)
                    else:
                        m.add(name, toks[pos])
                        pos += 1
                pos += 1
            else:
                m.add(name, toks[pos])
                pos += 1
            if pos < len(toks) and toks[pos] in (",", ";"):
                pos += 1

    root = Msg()
    message(root, None)
    return root


def apply_set(cfg, assignment):
    """`--set a.b.c=value` as `shardrec train --set` for singular message paths: replaces field c
    (a list for repeated fields: comma-separated, optional [])."""
    if "=" not in assignment:
        sys.exit(f"error: --set {assignment}: expected FIELD.PATH=VALUE")
    path, value = assignment.split("=", 1)
    comps = path.strip().split(".")
    m = cfg
    for c in comps[:-1]:
        if not m.has(c):
            m.add(c, Msg(f"{m.path}.{c}".lstrip(".")))
        m = m.fields[c][-1]
        if not isinstance(m, Msg):
            sys.exit(f"error: --set {assignment}: {c} is not a message")
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    parts = [p.strip() for p in value.split(",")] if value else []
    m.fields[comps[-1]] = parts


# ---- Torch-RecHub import -----------------------------------------------------------------------

def import_rechub(src):
    """Imports the needed Torch-RecHub submodules from `src` without running most package __init__s.

    torch_rechub/__init__.py reads importlib.metadata("torch-rechub") (fails when the package is not
    pip-installed) and imports every subpackage; trainers/__init__.py imports all trainers. We
    register bare package objects for `torch_rechub` and those subpackages (with __path__ pointing
    at the source) so that only the modules below and what they import are loaded.
    models/multi_task/__init__.py runs as is (it imports the five multi-task models, which
    mtl_trainer.py and utils/mtl.py import by that package name). No module of Torch-RecHub is
    replaced: only those package __init__ files are skipped.
    """
    if not src:
        sys.exit("error: set TORCH_RECHUB_SRC (or --rechub-src) to a directory containing the torch_rechub package, e.g.\n"
                 "  git clone https://github.com/datawhalechina/torch-rechub /tmp/torch-rechub && export TORCH_RECHUB_SRC=/tmp/torch-rechub")
    src = os.path.abspath(src)
    if os.path.basename(src.rstrip("/")) == "torch_rechub" and not os.path.isdir(os.path.join(src, "torch_rechub")):
        src = os.path.dirname(src)
    pkg_dir = os.path.join(src, "torch_rechub")
    if not os.path.isfile(os.path.join(pkg_dir, "models", "ranking", "deepfm.py")):
        sys.exit(f"error: {pkg_dir}/models/ranking/deepfm.py not found; TORCH_RECHUB_SRC must contain the torch_rechub package")
    sys.path.insert(0, src)
    for name in ["torch_rechub", "torch_rechub.basic", "torch_rechub.models", "torch_rechub.models.ranking",
                 "torch_rechub.trainers", "torch_rechub.utils"]:
        mod = types.ModuleType(name)
        mod.__path__ = [os.path.join(src, *name.split("."))]
        mod.__package__ = name
        sys.modules[name] = mod
    rh = types.SimpleNamespace(src=src)
    rh.features = importlib.import_module("torch_rechub.basic.features")
    rh.initializers = importlib.import_module("torch_rechub.basic.initializers")
    rh.data = importlib.import_module("torch_rechub.utils.data")
    return rh


def rechub_class(rh, module, cls):
    return getattr(importlib.import_module(f"torch_rechub.models.{module}"), cls)


# ---- input pipelines ---------------------------------------------------------------------------

class TensorLoader:
    """Batches sliced from pre-built tensors (the tuned input path). Yields (x_dict, y) like the
    DataLoader over Torch-RecHub's TorchDataset does."""

    def __init__(self, x, y, batch_size, shuffle, seed=0):
        import torch
        self.x = {k: torch.as_tensor(v) for k, v in x.items()}
        self.y = torch.as_tensor(y)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.gen = torch.Generator().manual_seed(seed)
        self.n = len(self.y)

    def __len__(self):
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        import torch
        if self.shuffle:
            perm = torch.randperm(self.n, generator=self.gen)
            x = {k: v.index_select(0, perm) for k, v in self.x.items()}
            y = self.y.index_select(0, perm)
        else:
            x, y = self.x, self.y
        for b in range(0, self.n, self.batch_size):
            yield {k: v[b:b + self.batch_size] for k, v in x.items()}, y[b:b + self.batch_size]


class StepLimit:
    def __init__(self, loader, steps):
        self.loader, self.steps = loader, steps

    def __len__(self):
        return min(len(self.loader), self.steps)

    def __iter__(self):
        for i, item in enumerate(self.loader):
            if i >= self.steps:
                return
            yield item


# ---- features and data -------------------------------------------------------------------------

class Feature:
    def __init__(self, m, emb_dim):
        self.name = m.get("name")
        self.type = m.get("type", "SPARSE")
        self.column = m.get("column", self.name)
        self.shared_with = m.get("shared_with")
        self.dim = m.get("dim", emb_dim, int)
        self.pooling = m.get("pooling", "MEAN")
        self.max_len = m.get("max_len", 50, int)
        self.separator = m.get("separator", "|")
        self.padding = set(m.list("padding"))
        self.transform = m.get("transform", "NONE")
        self.min = m.get("min", None, float)
        self.max = m.get("max", None, float)
        self.fill = m.get("fill", 0.0, float)
        if m.has("table"):
            raise ConfigMismatch(f"feature {self.name}: `table` (named tables) is not mapped")
        self.root = None  # name of the feature that owns the embedding table
        self.vocab = None
        self.padding_idx = None

    @property
    def categorical(self):
        return self.type in ("SPARSE", "SEQUENCE")


def resolve_tables(features):
    by_name = {f.name: f for f in features}
    for f in features:
        if not f.categorical:
            continue
        root, seen = f, set()
        while root.shared_with:
            if root.name in seen or root.shared_with not in by_name:
                raise ConfigMismatch(f"feature {f.name}: shared_with {root.shared_with} is not a feature")
            seen.add(root.name)
            root = by_name[root.shared_with]
        f.root = root.name


def split_sequences(series, sep):
    """'a|b|c' strings -> (tokens as one object array, tokens per row). One join + split in C."""
    import numpy as np
    s = series.fillna("").astype(str)
    tokens = np.array(sep.join(s.tolist()).split(sep), dtype=object)
    counts = s.str.count(re.escape(sep)).to_numpy() + 1
    return tokens, counts


def pad_pre(codes, counts, max_len):
    """Right-aligns each row's last max_len codes in a [N, max_len] array (0 = padding)."""
    import numpy as np
    n = len(counts)
    keep = np.minimum(counts, max_len)
    ends = np.cumsum(counts)
    start_keep = ends - keep
    out = np.zeros((n, max_len), dtype=np.int64)
    rows = np.repeat(np.arange(n), keep)
    offs = np.arange(keep.sum()) - np.repeat(np.cumsum(keep) - keep, keep)
    out[rows, max_len - keep[rows] + offs] = codes[np.repeat(start_keep, keep) + offs]
    return out


def load_and_preprocess(data_dir, features, label_cols):
    """Reads train/validation/test.csv and returns ({split: (x_dict, y)}, per-table vocab sizes)."""
    import numpy as np
    import pandas as pd
    cat_cols = sorted({f.column for f in features if f.categorical})
    frames, sizes = [], {}
    for split in ["train", "validation", "test"]:
        path = os.path.join(data_dir, f"{split}.csv")
        if not os.path.isfile(path):
            sys.exit(f"error: {path} not found (generate it with: shardrec gen-data KIND --out {data_dir})")
        # keep_default_na=False: categorical values such as "NA" stay strings (ShardRec hashes them);
        # empty cells are "" (categorical) or coerced to NaN below (dense).
        df = pd.read_csv(path, dtype={c: str for c in cat_cols}, keep_default_na=False)
        missing = [c for c in [f.column for f in features] + label_cols if c not in df.columns]
        if missing:
            sys.exit(f"error: {path} has no column(s) {missing}")
        sizes[split] = len(df)
        frames.append(df)
    data = pd.concat(frames, ignore_index=True)
    del frames
    n = len(data)
    x = {}
    # dense
    for f in features:
        if f.type != "DENSE":
            continue
        v = pd.to_numeric(data[f.column], errors="coerce").fillna(f.fill).to_numpy(dtype=np.float64)
        if f.transform == "LOG":
            v = np.log1p(np.maximum(v, 0.0))
        elif f.transform == "MINMAX":
            v = np.clip((v - f.min) / (f.max - f.min), 0.0, 1.0)
        x[f.name] = v.astype(np.float32)
    # categorical: one vocabulary per table
    tables = {}
    for f in features:
        if f.categorical:
            tables.setdefault(f.root, []).append(f)
    vocab = {}
    for root, members in tables.items():
        parts, layout = [], []
        for f in members:
            if f.type == "SPARSE":
                vals = data[f.column].fillna("").astype(str).to_numpy(dtype=object)
                parts.append(vals)
                layout.append((f, None, len(vals)))
            else:
                tokens, counts = split_sequences(data[f.column], f.separator)
                keep = ~pd.Series(tokens, copy=False).isin(f.padding | {""}).to_numpy()
                row_of = np.repeat(np.arange(n), counts)
                counts = np.bincount(row_of[keep], minlength=n)
                tokens = tokens[keep]
                parts.append(tokens)
                layout.append((f, counts, len(tokens)))
        codes, uniques = pd.factorize(np.concatenate(parts), sort=True)
        has_seq = any(f.type == "SEQUENCE" for f in members)
        offset = 1 if has_seq else 0  # row 0 = padding for tables that hold a sequence
        codes = codes.astype(np.int64) + offset
        vocab[root] = len(uniques) + offset
        start = 0
        for f, counts, length in layout:
            c = codes[start:start + length]
            start += length
            x[f.name] = c if counts is None else pad_pre(c, counts, f.max_len)
            f.vocab = vocab[root]
            f.padding_idx = 0 if has_seq else None
    y = data[label_cols].to_numpy(dtype=np.float32)
    if len(label_cols) == 1:
        y = y[:, 0]
    out, start = {}, 0
    for split in ["train", "validation", "test"]:
        end = start + sizes[split]
        out[split] = ({k: v[start:end] for k, v in x.items()}, y[start:end])
        start = end
    return out, vocab


# ---- config -> Torch-RecHub model --------------------------------------------------------------

ACTIVATIONS = {"RELU": "relu", "PRELU": "prelu", "SIGMOID": "sigmoid", "LEAKYRELU": "leakyrelu", "DICE": "dice"}


class Builder:
    """Maps one ShardRec config onto Torch-RecHub objects, recording what cannot be matched."""

    def __init__(self, rh, cfg, name, args):
        self.rh, self.cfg, self.name, self.args = rh, cfg, name, args
        self.differences = []
        emb = cfg.msg("embedding")
        self.emb_dim = emb.get("dim", 16, int)
        init = emb.msg("init")
        if init.get("kind", "NORMAL") != "NORMAL":
            raise ConfigMismatch("embedding.init.kind: only NORMAL is mapped (Torch-RecHub's RandomNormal)")
        self.init_std = init.get("std", 1e-4, float)
        self.init_mean = init.get("mean", 0.0, float)
        self.features = [Feature(m, self.emb_dim) for m in cfg.msgs("features")]
        resolve_tables(self.features)
        self.by_name = {f.name: f for f in self.features}
        block = MODEL_BLOCK.get(name, name)
        model = cfg.msg("model")
        if not model.has(block):
            raise ConfigMismatch(f"config has no model.{block} block (has: {sorted(model.fields)})")
        self.m = model.msg(block)

    def note(self, text):
        self.differences.append(text)

    # features
    def feat(self, names):
        out = []
        for n in names:
            if n not in self.by_name:
                raise ConfigMismatch(f"model.{self.name}: unknown feature {n}")
            out.append(self.by_name[n])
        return out

    def flat(self, pool=None):
        """ShardRec's 'every feature the part can take' for flat inputs: sparse, dense and mean/sum
        pooled sequences (CONCAT sequences only enter attention models)."""
        pool = self.features if pool is None else pool
        return [f for f in pool if f.type != "SEQUENCE" or f.pooling != "CONCAT"]

    def rh_feature(self, f):
        F = self.rh.features
        if f.type == "DENSE":
            return F.DenseFeature(f.name)
        init = self.rh.initializers.RandomNormal(self.init_mean, self.init_std)
        shared = None if f.root == f.name else f.root
        if f.type == "SPARSE":
            return F.SparseFeature(f.name, vocab_size=f.vocab, embed_dim=f.dim, shared_with=shared,
                                   padding_idx=f.padding_idx, initializer=init)
        return F.SequenceFeature(f.name, vocab_size=f.vocab, embed_dim=f.dim, pooling=f.pooling.lower(),
                                 shared_with=shared, padding_idx=f.padding_idx, initializer=init)

    def rh_features(self, fs):
        # One Torch-RecHub feature object per config feature (its embedding table is cached on it).
        if not hasattr(self, "_rh"):
            self._rh = {}
        out = []
        for f in fs:
            if f.name not in self._rh:
                self._rh[f.name] = self.rh_feature(f)
            out.append(self._rh[f.name])
        return out

    # MLPs
    def mlp(self, m, default_dims, what, fixed_activation=None, allow_dims=True):
        dims = m.list("dims", int) or list(default_dims)
        if not allow_dims and m.values("dims"):
            raise ConfigMismatch(f"{what}.dims: must be empty (fixed by the model)")
        dropout = m.get("dropout", 0.0, float)
        rates = m.list("dropout_rates", float)
        if rates:
            if len(set(rates)) != 1:
                self.note(f"{what}.dropout_rates {rates}: Torch-RecHub's MLP has one dropout rate; using {rates[0]}")
            dropout = rates[0]
        # fixed_activation: the model class sets the activation itself (the caller notes a mismatch).
        act = fixed_activation.upper() if fixed_activation else m.get("activation", "RELU")
        m.read.add("activation")
        if act not in ACTIVATIONS:
            raise ConfigMismatch(f"{what}.activation {act}: Torch-RecHub's activation_layer has no such activation")
        if not m.get("batch_norm", True, bool):
            self.note(f"{what}.batch_norm false: Torch-RecHub's MLP always has BatchNorm1d")
        self.check_read(m, what)
        params = {"dims": dims, "dropout": dropout}
        if fixed_activation is None:
            params["activation"] = ACTIVATIONS[act]
        return params

    def towers(self, n_task, what, default_dims=(8,)):
        """`towers`: one Mlp for every task, or one per task (ShardRec's rule)."""
        ms = self.m.msgs("towers")
        if len(ms) > 1 and len(ms) != n_task:
            raise ConfigMismatch(f"{what}: {len(ms)} towers for {n_task} tasks")
        ms = ms or [Msg(what)]
        return [self.mlp(ms[i] if len(ms) > 1 else ms[0], default_dims, f"{what}[{i}]") for i in range(n_task)]

    def check_read(self, m, what):
        left = m.unread()
        if left:
            raise ConfigMismatch(f"{what}: field(s) {left} not mapped to Torch-RecHub in rechub_reference.py")

    def task_types(self, n_default=2):
        tt = self.m.list("task_types") or ["classification"] * self.m.get("num_tasks", n_default, int)
        if any(t != "classification" for t in tt):
            raise ConfigMismatch(f"model.{self.name}.task_types {tt}: only classification tasks are compared")
        return tt

    def mtl_loss(self, n_task):
        loss = self.m.msg("loss")
        kind = loss.get("kind", "WEIGHTED_SUM")
        weights = loss.list("weights", float)
        clamp = loss.get("uwl_clamp", True, bool)
        alpha = loss.get("gradnorm_alpha", 0.16, float)
        self.check_read(loss, f"model.{self.name}.loss")
        if kind == "UWL":
            if not clamp:
                self.note("loss.uwl_clamp false: Torch-RecHub's UWL always clamps the log-variances at 0")
            return {"method": "uwl"}
        if kind == "GRADNORM":
            return {"method": "gradnorm", "alpha": alpha}
        if self.name == "esmm":
            if weights and any(w != 1 for w in weights):
                self.note(f"loss weights {weights}: Torch-RecHub's MTLTrainer sums ESMM's CTR and CTCVR losses with weight 1")
        else:
            w = weights or [1.0] * n_task
            if any(abs(x - w[0]) > 1e-12 for x in w):
                self.note(f"loss weights {w}: Torch-RecHub's MTLTrainer averages the task losses (weights 1/T)")
            elif abs(w[0] - 1.0 / n_task) > 1e-12:
                self.note(f"loss: ShardRec sums the task losses with weight {w[0]:g}, Torch-RecHub's MTLTrainer "
                          f"averages them (1/{n_task}); Adam's update is invariant to that scale except through weight decay and eps")
        return None

    def build(self):
        """Returns (model, info) with info: trainer kind, loss_mode, task names, early-stop task."""
        name, m = self.name, self.m
        path = f"model.{MODEL_BLOCK.get(name, name)}"
        info = {"trainer": "ctr", "loss_mode": True}
        sparse_all = [f for f in self.features if f.type == "SPARSE" or (f.type == "SEQUENCE" and f.pooling != "CONCAT")]
        dense_all = [f for f in self.features if f.type == "DENSE"]
        R = lambda cls: rechub_class(self.rh, "ranking." + cls[0], cls[1])  # noqa: E731
        feats = lambda key, default: self.feat(m.list(key)) if m.list(key) else default  # noqa: E731

        if name == "deepfm":
            fm = feats("fm_features", [f for f in sparse_all if f.dim == self.emb_dim])
            deep = feats("deep_features", self.flat())
            mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
            model = R(("deepfm", "DeepFM"))(deep_features=self.rh_features(deep), fm_features=self.rh_features(fm), mlp_params=mlp)
        elif name == "widedeep":
            wide = feats("wide_features", self.flat())
            deep = feats("deep_features", self.flat())
            mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
            model = R(("widedeep", "WideDeep"))(wide_features=self.rh_features(wide), deep_features=self.rh_features(deep), mlp_params=mlp)
        elif name == "dcn":
            fs = feats("features", self.flat())
            mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
            model = R(("dcn", "DCN"))(features=self.rh_features(fs), n_cross_layers=m.get("cross_num", 3, int), mlp_params=mlp)
        elif name == "dcnv2":
            fs = feats("features", self.flat())
            param = m.get("cross_parameterization", "MATRIX")
            if param != "MATRIX":
                raise ConfigMismatch(f"{path}.cross_parameterization {param}: Torch-RecHub's DCNv2 has only matrix layers")
            mix = m.get("use_low_rank_mixture", True, bool)
            if not mix:
                self.note("full-rank cross layer: Torch-RecHub's CrossNetV2 adds b_l outside the product x0 * (W x_l) + b_l, ShardRec inside")
            structure = m.get("structure", "PARALLEL").lower()
            mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
            model = R(("dcn_v2", "DCNv2"))(features=self.rh_features(fs), n_cross_layers=m.get("cross_num", 3, int), mlp_params=mlp,
                                           model_structure=structure, use_low_rank_mixture=mix,
                                           low_rank=m.get("low_rank", 32, int), num_experts=m.get("num_experts", 4, int))
        elif name == "afm":
            fs = feats("features", [f for f in sparse_all if f.dim == self.emb_dim])
            units = m.list("attention_units", int) or [64]
            if len(units) != 1:
                raise ConfigMismatch(f"{path}.attention_units {units}: Torch-RecHub's AFM has one attention layer (t)")
            rate = m.get("dropout_rate", 0.0, float)
            if rate:
                self.note(f"dropout_rate {rate}: Torch-RecHub's AFM has no dropout")
            self.note("attention: Torch-RecHub's AFM softmaxes a single score per row (its weight is always 1, "
                      "so W, b and h never learn); ShardRec softmaxes over the F(F-1)/2 pairs (the paper)")
            dims = {f.dim for f in fs}
            model = R(("afm", "AFM"))(fm_features=self.rh_features(fs), embed_dim=dims.pop(), t=units[0])
        elif name == "fibinet":
            fs = feats("features", self.features)
            fields = [f for f in fs if f.type != "DENSE"]
            dense = [f for f in fs if f.type == "DENSE"]
            if dense:
                self.note(f"{len(dense)} dense feature(s): Torch-RecHub's FiBiNet drops dense values (its EmbeddingLayer "
                          "with squeeze_dim=False returns only the sparse stack); ShardRec appends them to the MLP input")
            btype = m.get("bilinear_type", "field_interaction")
            mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
            model = R(("fibinet", "FiBiNet"))(features=self.rh_features(fields), mlp_params=mlp,
                                              reduction_ratio=m.get("reduction_ratio", 3, int), bilinear_type=btype)
        elif name == "edcn":
            fs = feats("features", self.flat())
            bridge = {"HADAMARD_PRODUCT": "hadamard_product", "ADD": "pointwise_addition", "POINTWISE_ADDITION": "pointwise_addition",
                      "CONCAT": "concatenation", "CONCATENATION": "concatenation",
                      "ATTENTION_POOLING": "attention_pooling"}[m.get("bridge_type", "HADAMARD_PRODUCT")]
            reg = m.get("use_regulation_module", True, bool)
            gate = m.get("gate_type", "FGU")
            if reg:
                self.note(f"regulation ({gate}): Torch-RecHub's gate is a softmax over one scalar per field (always 1, "
                          "i.e. no gating); ShardRec's gates are softmaxes over the fields (the paper), scaled by F")
            mlp = self.mlp(m.msg("mlp"), [], f"{path}.mlp", allow_dims=False)
            mlp.pop("dims")
            mlp["dims"] = []  # EDCN replaces them by [D, D]
            model = R(("edcn", "EDCN"))(features=self.rh_features(fs), n_cross_layers=m.get("cross_num", 3, int), mlp_params=mlp,
                                        bridge_type=bridge, use_regulation_module=reg, temperature=m.get("temperature", 1.0, float))
        elif name in ("din", "dien", "bst"):
            hist = self.feat(m.list("history_features"))
            target = self.feat(m.list("target_features"))
            neg = self.feat(m.list("neg_history_features")) if name == "dien" else []
            taken = {f.name for f in hist + target + neg}
            others = feats("features", [f for f in self.flat() if f.name not in taken])
            if not hist or len(hist) != len(target):
                raise ConfigMismatch(f"{path}: history_features and target_features must pair up")
            if name == "din":
                act = m.get("activation", "DICE")
                units = m.list("attention_units", int) or [36]
                top = m.msg("mlp")
                top_act = top.get("activation", act)  # ShardRec: mlp.activation, else `activation`
                if top_act != "DICE":
                    self.note(f"top MLP activation {top_act}: Torch-RecHub's DIN fixes dice")
                mlp = self.mlp(top, [256, 128], f"{path}.mlp", fixed_activation="dice")
                att = {"dims": units, "activation": ACTIVATIONS[act], "use_softmax": m.get("use_softmax", False, bool)}
                self.note("padding: Torch-RecHub's DIN scores padded history positions too (their embedding is the zero "
                          "padding row, so they add nothing to the pooled sum but enter the attention MLP's batch norm); "
                          "ShardRec masks them")
                model = R(("din", "DIN"))(features=self.rh_features(others), history_features=self.rh_features(hist),
                                          target_features=self.rh_features(target), mlp_params=mlp, attention_mlp_params=att)
            elif name == "dien":
                units = m.list("interest_units", int)
                if units and any(u != f.dim for u, f in zip(units * len(hist), hist)):
                    raise ConfigMismatch(f"{path}.interest_units {units}: Torch-RecHub ties the GRU width to the embedding dim")
                gru = m.get("gru_type", "AUGRU")
                if gru != "AUGRU":
                    raise ConfigMismatch(f"{path}.gru_type {gru}: Torch-RecHub's DIEN has only AUGRU")
                if len(neg) != len(hist):
                    raise ConfigMismatch(f"{path}: one neg_history_feature per history feature")
                top_act = m.msg("mlp").get("activation", "DICE")
                if top_act != "DICE":
                    self.note(f"top MLP activation {top_act}: Torch-RecHub's DIEN fixes dice")
                mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp", fixed_activation="dice")
                model = R(("dien", "DIEN"))(features=self.rh_features(others), history_features=self.rh_features(hist),
                                            neg_history_features=self.rh_features(neg), target_features=self.rh_features(target),
                                            mlp_params=mlp, alpha=m.get("alpha", 0.2, float))
                info["loss_mode"] = False
            else:
                hidden = m.get("hidden_size", 2048, int)
                if hidden != 2048:
                    raise ConfigMismatch(f"{path}.hidden_size {hidden}: Torch-RecHub's BST uses TransformerEncoderLayer's "
                                         "default feed-forward width 2048")
                self.note("positions: Torch-RecHub numbers tokens from the start of the padded array, ShardRec counts back "
                          "from the target; with fixed-length left padding both give each step one learned embedding")
                mlp = self.mlp(m.msg("mlp"), [256, 128], f"{path}.mlp")
                model = R(("bst", "BST"))(features=self.rh_features(others), history_features=self.rh_features(hist),
                                          target_features=self.rh_features(target), mlp_params=mlp,
                                          nhead=m.get("num_heads", 8, int), dropout=m.get("dropout_rate", 0.2, float),
                                          num_layers=m.get("num_layers", 1, int), max_seq_len=m.get("max_seq_len", 51, int))
        else:
            info["trainer"] = "mtl"
            label_cols = self.cfg.msg("data").list("label_columns")
            MT = lambda mod, cls: rechub_class(self.rh, "multi_task." + mod, cls)  # noqa: E731
            fs = feats("features", self.flat())
            if name == "esmm":
                dense = [f for f in fs if f.type == "DENSE"]
                fs = [f for f in fs if f.type != "DENSE"]
                if dense:
                    self.note(f"{len(dense)} dense feature(s) dropped: Torch-RecHub's ESMM takes sparse features only "
                              "(user_features + item_features); ShardRec's config feeds them to both towers")
                if len({f.dim for f in fs}) != 1:
                    raise ConfigMismatch("esmm: Torch-RecHub's ESMM needs one embedding dim")
                if m.has("bottom"):
                    raise ConfigMismatch(f"{path}.bottom: Torch-RecHub's ESMM has no shared bottom")
                towers = self.towers(2, f"{path}.towers", (16, 8))  # [CTR tower, CVR tower]
                self.mtl_loss(2)
                half = len(fs) // 2  # the reference's user/item split only decides the concat order
                model = MT("esmm", "ESMM")(user_features=self.rh_features(fs[:half]), item_features=self.rh_features(fs[half:]),
                                           cvr_params=towers[1], ctr_params=towers[0])
                info.update(task_types=["classification"] * 3, labels=["cvr", "ctr", "ctcvr"], earlystop_task=1,
                            report={label_cols[0]: 1, label_cols[1]: 2, "cvr(pCVR vs purchase)": 0})
            else:
                tt = self.task_types()
                n = len(tt)
                adaptive = self.mtl_loss(n)
                towers = self.towers(n, f"{path}.towers")
                if name == "shared_bottom":
                    bottom = self.mlp(m.msg("bottom"), [117], f"{path}.bottom")
                    model = MT("shared_bottom", "SharedBottom")(self.rh_features(fs), tt, bottom_params=bottom, tower_params_list=towers)
                else:
                    gate = m.msg("gate")
                    if gate.get("activation", "SOFTMAX") != "SOFTMAX" or not gate.get("batch_norm", True, bool):
                        raise ConfigMismatch(f"{path}.gate: Torch-RecHub's gates are Linear -> BatchNorm1d -> softmax")
                    expert = self.mlp(m.msg("expert"), [16], f"{path}.expert")
                    if name == "mmoe":
                        model = MT("mmoe", "MMOE")(self.rh_features(fs), tt, m.get("num_experts", 8, int), expert_params=expert,
                                                   tower_params_list=towers)
                    else:
                        model = MT("ple", "PLE")(self.rh_features(fs), tt, n_level=m.get("num_layers", 1, int),
                                                 n_expert_specific=m.get("num_experts", 2, int),
                                                 n_expert_shared=m.get("num_shared_experts", 1, int), expert_params=expert,
                                                 tower_params_list=towers)
                m.read.update({"num_tasks"})
                info.update(task_types=tt, labels=label_cols, earlystop_task=0, adaptive=adaptive,
                            report={c: i for i, c in enumerate(label_cols)})
        self.check_read(m, path)
        used = set()
        for f in getattr(self, "_rh", {}).values():
            used.add(f.name)
        info["used_features"] = [f.name for f in self.features if f.name in used]
        return model, info


def trainer_settings(cfg, args, notes):
    t = cfg.msg("trainer")
    opt = t.msg("optimizer")
    kind = opt.get("kind", "ADAM")
    if kind not in ("ADAM", "ADAMW"):
        raise ConfigMismatch(f"trainer.optimizer.kind {kind}: only ADAM / ADAMW are mapped")
    params = {"lr": opt.get("lr", 1e-3, float), "weight_decay": opt.get("weight_decay", 1e-5, float)}
    betas = (opt.get("beta1", 0.9, float), opt.get("beta2", 0.999, float))
    if betas != (0.9, 0.999):
        params["betas"] = betas
    eps = opt.get("eps", 1e-8, float)
    if eps != 1e-8:
        params["eps"] = eps
    if args.lr is not None:
        params["lr"] = args.lr
    if args.weight_decay is not None:
        params["weight_decay"] = args.weight_decay
    if t.has("scheduler"):
        notes.append("trainer.scheduler: not mapped (the reference runs without one)")
    emb_opt = cfg.msg("embedding").msg("optimizer")
    emb_lr = emb_opt.get("lr", None, float)
    if emb_lr is not None and abs(emb_lr - params["lr"]) > 1e-12:
        notes.append(f"embedding lr {emb_lr} vs dense lr {params['lr']}: Torch-RecHub trains tables with the dense optimizer")
    return {
        "optimizer_fn": kind,
        "optimizer_params": params,
        "batch_size": args.batch_size or t.get("batch_size", 2048, int),
        "eval_batch_size": args.eval_batch_size or t.get("eval_batch_size", 8192, int),
        "epochs": args.epochs if args.epochs is not None else t.get("epochs", 1, int),
        # 0 = no early stopping in ShardRec; EarlyStopper(patience=0) would stop at the first miss.
        "patience": (args.patience if args.patience is not None else t.get("early_stopping_patience", 0, int)) or 10**9,
        "seed": args.seed if args.seed is not None else t.get("seed", 2022, int),
    }


# ---- main --------------------------------------------------------------------------------------

def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with train.csv, validation.csv, test.csv (shardrec gen-data KIND)")
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--config", help="ShardRec config to read hyper-parameters from (default: configs/MODEL.pbtxt)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD.PATH=VALUE",
                   help="override a config field, as `shardrec train --set` (repeatable)")
    p.add_argument("--epochs", type=int, help="default: trainer.epochs of the config")
    p.add_argument("--batch-size", type=int, help="default: trainer.batch_size")
    p.add_argument("--eval-batch-size", type=int, help="default: trainer.eval_batch_size")
    p.add_argument("--lr", type=float, help="default: trainer.optimizer.lr")
    p.add_argument("--weight-decay", type=float, help="default: trainer.optimizer.weight_decay")
    p.add_argument("--patience", type=int, help="EarlyStopper patience (default: trainer.early_stopping_patience)")
    p.add_argument("--seed", type=int, help="torch seed (default: trainer.seed)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--loader", choices=["rechub", "tensor"], default="rechub")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0 = whole epoch)")
    p.add_argument("--rechub-src", default=os.environ.get("TORCH_RECHUB_SRC"),
                   help="directory containing the torch_rechub package (default: $TORCH_RECHUB_SRC)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--quiet", action="store_true", help="disable Torch-RecHub's tqdm bars")
    return p.parse_args()


def main():
    args = parse_args()
    t0 = time.perf_counter()
    config_path = args.config or os.path.join(ROOT, "configs", f"{args.model}.pbtxt")
    if not os.path.isfile(config_path):
        sys.exit(f"error: config {config_path} not found")
    with open(config_path) as f:
        cfg = parse_pbtxt(f.read())
    for s in args.set:
        apply_set(cfg, s)
    rh = import_rechub(args.rechub_src)
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    if args.quiet:
        import tqdm as _tqdm
        _orig = _tqdm.tqdm

        class _Quiet(_orig):
            def __init__(self, *a, **k):
                k["disable"] = True
                super().__init__(*a, **k)
        _tqdm.tqdm = _Quiet

    kind, family = MODELS[args.model]
    try:
        builder = Builder(rh, cfg, args.model, args)
        settings = trainer_settings(cfg, args, builder.differences)
    except ConfigMismatch as e:
        sys.exit(f"error: {config_path}: {e}")
    label_cols = cfg.msg("data").list("label_columns") or ["label"]
    # Only the features the model reads are loaded (the x dict is what the DataLoader indexes).
    t_pre = time.perf_counter()
    splits, vocab = load_and_preprocess(args.data, builder.features, label_cols)
    preprocess_seconds = time.perf_counter() - t_pre

    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])
    try:
        model, info = builder.build()
    except ConfigMismatch as e:
        sys.exit(f"error: {config_path}: {e}")
    used = set(info["used_features"])
    splits = {k: ({n: a for n, a in x.items() if n in used}, y) for k, (x, y) in splits.items()}
    if info["trainer"] == "mtl" and args.model == "esmm":
        # labels [cvr, ctr, ctcvr] as the reference's ESMM example: cvr = purchase (entire space),
        # ctr = click, ctcvr = click * purchase.
        splits = {k: (x, np.stack([y[:, 1], y[:, 0], y[:, 0] * y[:, 1]], axis=1)) for k, (x, y) in splits.items()}
    n_params = sum(p.numel() for p in model.parameters())
    n_emb_params = sum(p.numel() for n, p in model.named_parameters() if "embed_dict" in n)

    opt_fn = torch.optim.Adam if settings["optimizer_fn"] == "ADAM" else torch.optim.AdamW
    common = dict(optimizer_fn=opt_fn, optimizer_params=settings["optimizer_params"], n_epoch=settings["epochs"],
                  earlystop_patience=settings["patience"], device="cpu")
    if info["trainer"] == "ctr":
        ctr_trainer = importlib.import_module("torch_rechub.trainers.ctr_trainer")
        trainer = ctr_trainer.CTRTrainer(model, loss_mode=info["loss_mode"], **common)
    else:
        mtl_trainer = importlib.import_module("torch_rechub.trainers.mtl_trainer")
        trainer = mtl_trainer.MTLTrainer(model, task_types=info["task_types"], adaptive_params=info.get("adaptive"),
                                         earlystop_taskid=info["earlystop_task"], **common)

    bs = settings["batch_size"]
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits["train"], splits["validation"], splits["test"]
    if args.loader == "rechub":
        dg = rh.data.DataGenerator(x_tr, y_tr)
        train_dl, _, _ = dg.generate_dataloader(x_va, y_va, x_te, y_te, batch_size=bs)
    else:
        train_dl = TensorLoader(x_tr, y_tr, bs, shuffle=True, seed=settings["seed"])
    # Evaluation is not timed; batched slicing gives the same predictions as the DataLoader.
    val_dl = TensorLoader(x_va, y_va, settings["eval_batch_size"], shuffle=False)
    test_dl = TensorLoader(x_te, y_te, settings["eval_batch_size"], shuffle=False)
    if args.max_steps > 0:
        train_dl = StepLimit(train_dl, args.max_steps)

    def scores(dl):
        s = trainer.evaluate(trainer.model, dl)
        if info["trainer"] == "ctr":
            return float(s), {"label": float(s)}
        per = {name: float(s[i]) for name, i in info["report"].items()}
        return float(s[info["earlystop_task"]]), per

    tag = f"[rechub {args.model}/{args.loader}]"
    epochs, train_seconds, train_samples, best_epoch, best_per = [], 0.0, 0, 0, None
    cpu0 = time.process_time()
    n_train = len(y_tr)
    # MTLTrainer prints its losses to stdout; keep stdout for the JSON.
    with contextlib.redirect_stdout(sys.stderr):
        for e in range(settings["epochs"]):
            steps = len(train_dl)
            samples = min(n_train, steps * bs)
            t = time.perf_counter()
            c = time.process_time()
            loss = trainer.train_one_epoch(train_dl)
            sec = time.perf_counter() - t
            cpu = time.process_time() - c
            train_seconds += sec
            train_samples += samples
            t_ev = time.perf_counter()
            val, val_per = scores(val_dl)
            eval_sec = time.perf_counter() - t_ev
            loss_v = [float(v) for v in loss] if isinstance(loss, (list, tuple)) else float(loss)
            epochs.append({"epoch": e + 1, "train_loss": loss_v, "train_samples": samples, "seconds": round(sec, 3),
                           "cpu_seconds": round(cpu, 3), "samples_per_sec": round(samples / sec, 1),
                           "validation_auc": val_per if info["trainer"] == "mtl" else val, "eval_seconds": round(eval_sec, 3)})
            print(f"{tag} epoch {e + 1}: {samples} samples in {sec:.2f} s ({samples / sec:.0f} samples/s), "
                  f"loss {loss_v}, validation auc {val_per if info['trainer'] == 'mtl' else round(val, 5)}",
                  file=sys.stderr, flush=True)
            improved = val > trainer.early_stopper.best_auc
            stop = trainer.early_stopper.stop_training(val, trainer.model.state_dict())
            if improved:
                best_epoch, best_per = e + 1, val_per
            if stop:
                break
        if trainer.early_stopper.best_weights is not None:
            trainer.model.load_state_dict(trainer.early_stopper.best_weights)
        _, test_per = scores(test_dl)
    cpu_total = time.process_time() - cpu0
    best_per = best_per or epochs[-1]["validation_auc"]

    env_keys = ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "OMP_WAIT_POLICY", "OMP_NUM_THREADS"]
    mtl = info["trainer"] == "mtl"
    result = {
        "impl": "torch-rechub",
        "model": args.model,
        "rechub_class": type(model).__module__.replace("torch_rechub.", "") + "." + type(model).__name__,
        "trainer": "MTLTrainer" if mtl else "CTRTrainer",
        "loader": args.loader,
        "config": os.path.relpath(config_path, ROOT) if config_path.startswith(ROOT) else config_path,
        "config_overrides": args.set,
        "train_samples_per_sec": round(train_samples / train_seconds, 1) if train_seconds > 0 else 0,
        "train_samples": train_samples,
        "train_seconds": round(train_seconds, 3),
        # single task: a number; multi-task: {label column: AUC} as ShardRec's auc_<label>
        "validation_auc": best_per if mtl else (best_per["label"] if isinstance(best_per, dict) else best_per),
        "test_auc": test_per if mtl else test_per["label"],
        "best_epoch": best_epoch,
        "epochs": epochs,
        "preprocess_seconds": round(preprocess_seconds, 3),
        "cpu_seconds_after_preprocess": round(cpu_total, 3),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "rows": {k: int(len(v[1])) for k, v in splits.items()},
        "features": info["used_features"],
        "vocab": {k: int(v) for k, v in vocab.items()},
        "params": int(n_params),
        "embedding_params": int(n_emb_params),
        "hyper": {"batch_size": bs, "eval_batch_size": settings["eval_batch_size"], "optimizer": settings["optimizer_fn"],
                  **settings["optimizer_params"], "embed_dim": builder.emb_dim, "init_std": builder.init_std,
                  "epochs": settings["epochs"], "patience": settings["patience"], "seed": settings["seed"],
                  "max_steps": args.max_steps},
        "differences": builder.differences,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rechub_src": rh.src,
        "rechub_rev": os.environ.get("TORCH_RECHUB_REV", ""),
        "env": {k: os.environ.get(k) for k in env_keys},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
