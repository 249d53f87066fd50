"""Our pre-trained encoder through the official GraphMAE2 probe, on the official code's own
Cora data: whether the probe or the data explain a difference in accuracy.

    DGLBACKEND=pytorch OMP_NUM_THREADS=1 OUTDATED_IGNORE=1 ~/.cache/graphmae2/dgl-reference-venv/bin/python \\
        benchmarks/reference/reference_probe.py --reference REF --run RUN_DIR/seed-0 --probe-seeds 0 1 2

Prints whether DGL's ``CoraGraphDataset`` (as the official ``load_small_dataset`` returns
it) and graphmae2's packaged Cora agree (features after row normalisation, labels, the
three masks, the edge count), then the official ``_linear_probing_full_batch`` (its
``LogisticRegression``, Adam lr 0.025, weight decay 1e-4, 300 epochs, the last of tied
best-validation epochs) on the run's embeddings, once per probe seed; compare with the
run's own ``result.json``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reference_epoch_time import REPO, enter_reference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="checkout of THUDM/GraphMAE2 at bc473e8")
    p.add_argument("--run", type=Path, required=True, help="a graphmae2 seed directory or checkpoint")
    p.add_argument("--probe-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args()
    run = args.run.resolve()
    enter_reference(args.reference.resolve())
    sys.path.append(str(REPO))  # graphmae2, beside the official modules

    import torch
    from datasets.data_proc import load_small_dataset
    from models.finetune import LogisticRegression, _linear_probing_full_batch
    from utils import set_random_seed

    import graphmae2
    from graphmae2.datasets.features import normalize_features

    graph, (_, num_classes) = load_small_dataset("cora")
    ours = graphmae2.load_dataset("cora")
    x = normalize_features(ours.x, "row")
    print(f"features: max |official - ours| {float((graph.ndata['feat'] - x).abs().max()):.2g}")
    for key, mine in [("label", ours.y), ("train_mask", ours.train_mask), ("val_mask", ours.val_mask),
                      ("test_mask", ours.test_mask)]:
        print(f"{key}: equal {torch.equal(graph.ndata[key].to(mine.dtype), mine)}")
    print(f"edges: official {graph.num_edges()}, ours {ours.graph.num_edges}")
    z = graphmae2.embed(graphmae2.load_encoder(run), ours.graph, x)
    for seed in args.probe_seeds:
        set_random_seed(seed)
        head = LogisticRegression(z.shape[1], num_classes)
        optimizer = torch.optim.Adam(head.parameters(), lr=0.025, weight_decay=1e-4)
        last, best = _linear_probing_full_batch(head, graph, z, optimizer, 300, "cpu", mute=True)
        print(f"official probe, seed {seed}: test {best:.4f} at the best validation epoch, {last:.4f} at the last")


if __name__ == "__main__":
    main()
