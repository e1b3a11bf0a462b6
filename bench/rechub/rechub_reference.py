#!/usr/bin/python3
"""Reference measurement: Torch-RecHub's DeepFM / WideDeep on ShardRec's generated CTR data.

Trains Torch-RecHub's own model classes with Torch-RecHub's own training step
(`CTRTrainer.train_one_epoch`) and evaluation (`CTRTrainer.evaluate`, sklearn roc_auc_score) on the
train/validation/test CSVs written by `shardrec gen-data ctr`, with the hyper-parameters of
ShardRec's configs/deepfm.pbtxt and configs/widedeep.pbtxt, and prints one JSON object.

Torch-RecHub is NOT vendored: point TORCH_RECHUB_SRC (or --rechub-src) at a directory that
contains the `torch_rechub` package (a checkout or `git archive` of
https://github.com/datawhalechina/torch-rechub). It is imported from there via sys.path.

Preprocessing (not timed) follows examples/ranking/run_criteo.py except where ShardRec's configs
say otherwise, so that both sides see the same inputs:
  * dense I1..I13: empty -> 0, then log(1 + max(x, 0))  (ShardRec `transform: LOG`; the example
    uses MinMaxScaler and also adds discretised copies of the dense columns as extra sparse
    features, which ShardRec's configs do not have)
  * sparse C1..C26: empty -> "" (its own category; ShardRec hashes the empty string to one id),
    sklearn LabelEncoder per column fit on train + validation + test (as the example, which
    encodes the whole file before splitting); vocab_size = number of distinct values.

Model (Torch-RecHub classes, ShardRec's feature split):
  * deepfm:   DeepFM(deep_features = C1..C26 + I1..I13, fm_features = C1..C26)   (ShardRec: "FM
              gets C1..C26, the MLP all 39"; the example feeds only the dense features to the MLP)
  * widedeep: WideDeep(wide_features = I1..I13, deep_features = C1..C26)         (as the example)
  * embeddings 16-dim, N(0, 1e-4) (SparseFeature default); MLP [256, 128], dropout 0.2, relu
    (Linear -> BatchNorm1d -> ReLU -> Dropout, + Linear(128, 1)).
Training: CTRTrainer with torch.optim.Adam(lr 1e-3, weight_decay 1e-5) over ALL parameters
(embedding tables included, as CTRTrainer does), BCELoss on sigmoid outputs, batch 2048, shuffled
every epoch. The epoch loop is CTRTrainer.fit() without its model.pth save: train_one_epoch
(timed), validation AUC, EarlyStopper (patience 2, like ShardRec's configs); the best validation
weights are restored before the test AUC (as ShardRec does).

Loaders (--loader):
  * rechub: Torch-RecHub's DataGenerator(...).generate_dataloader(): a torch DataLoader over
    TorchDataset (per-sample dict indexing + default_collate), shuffle=True, num_workers=0: the
    library's own input path, timed as part of the training loop as in CTRTrainer.
  * tensor: a tuned input path: each batch is sliced from pre-built tensors with one random
    permutation per epoch, so the timed loop is (almost) only forward/backward/optimizer step.
    Everything else (model, trainer step, loss, optimizer) is unchanged.

Timing: train samples/s = training samples / wall time spent inside train_one_epoch, summed over
the epochs run. CSV reading, preprocessing and evaluation are not timed (reported separately).

Environment: set MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 (and optionally
OMP_WAIT_POLICY=PASSIVE) in the environment BEFORE starting Python; bench/rechub/compare.sh does.
"""

import argparse
import importlib
import json
import os
import platform
import sys
import time
import types

DENSE = [f"I{i}" for i in range(1, 14)]
SPARSE = [f"C{i}" for i in range(1, 27)]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="directory with train.csv, validation.csv, test.csv (shardrec gen-data ctr)")
    p.add_argument("--model", choices=["deepfm", "widedeep"], required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--eval-batch-size", type=int, default=8192)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--embed-dim", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=2, help="EarlyStopper patience (ShardRec configs: 2)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--loader", choices=["rechub", "tensor"], default="rechub")
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (0 = whole epoch; for smoke tests)")
    p.add_argument("--rechub-src", default=os.environ.get("TORCH_RECHUB_SRC"),
                   help="directory containing the torch_rechub package (default: $TORCH_RECHUB_SRC)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--quiet", action="store_true", help="disable Torch-RecHub's tqdm bars")
    return p.parse_args()


def import_rechub(src):
    """Imports the needed Torch-RecHub submodules from `src` without running package __init__s.

    torch_rechub/__init__.py reads importlib.metadata("torch-rechub") (fails when the package is not
    pip-installed) and imports every subpackage; trainers/__init__.py imports all trainers. We
    register bare package objects for `torch_rechub` and its subpackages (with __path__ pointing at
    the source) so that only the modules below and what they import are loaded. No module of
    Torch-RecHub is replaced: only the package __init__ files are skipped.
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
    m = types.SimpleNamespace()
    m.features = importlib.import_module("torch_rechub.basic.features")
    m.deepfm = importlib.import_module("torch_rechub.models.ranking.deepfm")
    m.widedeep = importlib.import_module("torch_rechub.models.ranking.widedeep")
    m.ctr_trainer = importlib.import_module("torch_rechub.trainers.ctr_trainer")
    m.data = importlib.import_module("torch_rechub.utils.data")
    m.src = src
    return m


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


def load_and_preprocess(data_dir):
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import LabelEncoder
    dtypes = {c: str for c in SPARSE}
    frames = {}
    for split in ["train", "validation", "test"]:
        path = os.path.join(data_dir, f"{split}.csv")
        if not os.path.isfile(path):
            sys.exit(f"error: {path} not found (generate it with: shardrec gen-data ctr --out {data_dir})")
        frames[split] = pd.read_csv(path, dtype=dtypes)
    sizes = {k: len(v) for k, v in frames.items()}
    data = pd.concat([frames["train"], frames["validation"], frames["test"]], ignore_index=True)
    del frames
    data[SPARSE] = data[SPARSE].fillna("")
    dense = data[DENSE].apply(pd.to_numeric, errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    data[DENSE] = np.log1p(np.maximum(dense, 0.0)).astype(np.float32)
    vocab = {}
    for feat in SPARSE:
        lbe = LabelEncoder()
        data[feat] = lbe.fit_transform(data[feat]).astype(np.int64)
        vocab[feat] = int(len(lbe.classes_))
    y = data["label"].to_numpy(dtype=np.float32)
    cols = SPARSE + DENSE
    out = {}
    start = 0
    for split in ["train", "validation", "test"]:
        end = start + sizes[split]
        part = data.iloc[start:end]
        # Torch-RecHub's df_to_dict layout: {column: numpy array}
        out[split] = ({c: part[c].to_numpy() for c in cols}, y[start:end])
        start = end
    return out, vocab


def main():
    args = parse_args()
    t0 = time.perf_counter()
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
        rh.ctr_trainer.tqdm.tqdm = _Quiet

    t_pre = time.perf_counter()
    splits, vocab = load_and_preprocess(args.data)
    preprocess_seconds = time.perf_counter() - t_pre

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    F = rh.features
    sparse_feas = [F.SparseFeature(f, vocab_size=vocab[f], embed_dim=args.embed_dim) for f in SPARSE]
    dense_feas = [F.DenseFeature(f) for f in DENSE]
    mlp_params = {"dims": [256, 128], "dropout": args.dropout, "activation": "relu"}
    if args.model == "deepfm":
        model = rh.deepfm.DeepFM(deep_features=sparse_feas + dense_feas, fm_features=sparse_feas, mlp_params=mlp_params)
    else:
        model = rh.widedeep.WideDeep(wide_features=dense_feas, deep_features=sparse_feas, mlp_params=mlp_params)
    n_params = sum(p.numel() for p in model.parameters())
    n_emb_params = sum(p.numel() for n, p in model.named_parameters() if "embed_dict" in n)

    trainer = rh.ctr_trainer.CTRTrainer(model, optimizer_params={"lr": args.lr, "weight_decay": args.weight_decay},
                                        n_epoch=args.epochs, earlystop_patience=args.patience, device="cpu")

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits["train"], splits["validation"], splits["test"]
    if args.loader == "rechub":
        dg = rh.data.DataGenerator(x_tr, y_tr)
        train_dl, _, _ = dg.generate_dataloader(x_va, y_va, x_te, y_te, batch_size=args.batch_size)
    else:
        train_dl = TensorLoader(x_tr, y_tr, args.batch_size, shuffle=True, seed=args.seed)
    # Evaluation is not timed; batched slicing gives the same predictions as the DataLoader.
    val_dl = TensorLoader(x_va, y_va, args.eval_batch_size, shuffle=False)
    test_dl = TensorLoader(x_te, y_te, args.eval_batch_size, shuffle=False)
    if args.max_steps > 0:
        train_dl = StepLimit(train_dl, args.max_steps)

    epochs = []
    train_seconds = 0.0
    train_samples = 0
    best_epoch = 0
    cpu0 = time.process_time()
    for e in range(args.epochs):
        steps = len(train_dl)
        samples = min(len(y_tr), steps * args.batch_size)
        t = time.perf_counter()
        c = time.process_time()
        loss = trainer.train_one_epoch(train_dl)
        sec = time.perf_counter() - t
        cpu = time.process_time() - c
        train_seconds += sec
        train_samples += samples
        t_ev = time.perf_counter()
        val_auc = float(trainer.evaluate(trainer.model, val_dl))
        eval_sec = time.perf_counter() - t_ev
        epochs.append({"epoch": e + 1, "train_loss": float(loss), "train_samples": samples, "seconds": round(sec, 3),
                       "cpu_seconds": round(cpu, 3), "samples_per_sec": round(samples / sec, 1),
                       "validation_auc": val_auc, "eval_seconds": round(eval_sec, 3)})
        print(f"[rechub {args.model}/{args.loader}] epoch {e + 1}: {samples} samples in {sec:.2f} s "
              f"({samples / sec:.0f} samples/s), loss {loss:.5f}, validation auc {val_auc:.5f}", file=sys.stderr, flush=True)
        improved = val_auc > trainer.early_stopper.best_auc
        stop = trainer.early_stopper.stop_training(val_auc, trainer.model.state_dict())
        if improved:
            best_epoch = e + 1
        if stop:
            break
    if trainer.early_stopper.best_weights is not None:
        trainer.model.load_state_dict(trainer.early_stopper.best_weights)
    test_auc = float(trainer.evaluate(trainer.model, test_dl))
    cpu_total = time.process_time() - cpu0

    env_keys = ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "OMP_WAIT_POLICY", "OMP_NUM_THREADS"]
    result = {
        "impl": "torch-rechub",
        "model": args.model,
        "loader": args.loader,
        "train_samples_per_sec": round(train_samples / train_seconds, 1) if train_seconds > 0 else 0,
        "train_samples": train_samples,
        "train_seconds": round(train_seconds, 3),
        "validation_auc": trainer.early_stopper.best_auc if best_epoch else epochs[-1]["validation_auc"],
        "test_auc": test_auc,
        "best_epoch": best_epoch,
        "epochs": epochs,
        "preprocess_seconds": round(preprocess_seconds, 3),
        "cpu_seconds_after_preprocess": round(cpu_total, 3),
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "rows": {k: int(len(v[1])) for k, v in splits.items()},
        "vocab_total": int(sum(vocab.values())),
        "params": int(n_params),
        "embedding_params": int(n_emb_params),
        "hyper": {"batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
                  "embed_dim": args.embed_dim, "mlp": [256, 128], "dropout": args.dropout, "epochs": args.epochs,
                  "patience": args.patience, "seed": args.seed, "max_steps": args.max_steps},
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
