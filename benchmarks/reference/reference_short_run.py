"""The official GraphMAE2 code's Cora recipe for a few epochs, with graphmae2's collapse
statistics of its encoder output: to set a short graphmae2 run beside it.

    DGLBACKEND=pytorch OMP_NUM_THREADS=1 OUTDATED_IGNORE=1 ~/.cache/graphmae2/dgl-reference-venv/bin/python \\
        benchmarks/reference/reference_short_run.py --reference /path/to/THUDM-GraphMAE2 --epochs 100 --seed 0

Its own modules build, train and probe the model (``build_model``, ``PreModel.forward``,
its optimizer, cosine schedule and ``linear_probing_full_batch``, with its Cora config);
only the epoch count is set here, so the cosine schedule spans ``--epochs``. Every 25
epochs it prints the loss and :func:`graphmae2.monitor.embedding_std` and
:func:`~graphmae2.monitor.effective_rank` of the eval-mode embeddings; the probe's line
ends it. The graphmae2 side: ``python train.py --config cora.yaml --set
train.max_epoch=100 train.monitor_every=25``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference_epoch_time import REPO, enter_reference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="checkout of THUDM/GraphMAE2 at bc473e8")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    reference = args.reference.resolve()
    enter_reference(reference)
    sys.path.append(str(REPO))  # graphmae2, beside the official modules
    sys.argv = ["main_full_batch.py", "--dataset", "cora", "--use_cfg", "--device", "-1"]

    import numpy as np
    import torch
    from datasets.data_proc import load_small_dataset
    from models import build_model
    from models.finetune import linear_probing_full_batch
    from utils import build_args, create_optimizer, load_best_configs, set_random_seed

    from graphmae2.monitor import effective_rank, embedding_std

    cfg = load_best_configs(build_args())
    cfg.max_epoch = args.epochs
    graph, (num_features, num_classes) = load_small_dataset("cora")
    cfg.num_features = num_features
    set_random_seed(args.seed)
    model = build_model(cfg)
    optimizer = create_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: (1 + np.cos(e * np.pi / args.epochs)) * 0.5)
    x, nodes = graph.ndata["feat"], torch.arange(graph.num_nodes())
    for epoch in range(args.epochs):
        model.train()
        loss = model(graph, x, targets=nodes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (epoch + 1) % 25 == 0:
            model.eval()
            with torch.no_grad():
                z = model.embed(graph, x)
            print(f"epoch {epoch}: loss {loss.item():.4f}, embedding std {embedding_std(z):.4f}, "
                  f"effective rank {effective_rank(z):.1f}", flush=True)
    linear_probing_full_batch(model, graph, x, num_classes, cfg.lr_f, cfg.weight_decay_f, cfg.max_epoch_f, "cpu",
                              True, mute=False)


if __name__ == "__main__":
    main()
