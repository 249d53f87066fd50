"""Initial weights of the official GraphMAE2 model and of graphmae2's, parameter by
parameter: shape, and std, mean and kurtosis over seeds, for the Cora recipe (issue 36: does any
initialisation differ besides the attention vectors?).

    DGLBACKEND=pytorch OMP_NUM_THREADS=1 OUTDATED_IGNORE=1 ~/.cache/graphmae2/dgl-reference-venv/bin/python \\
        benchmarks/reference/init_parity.py --reference /path/to/THUDM-GraphMAE2 --seeds 0 1 2 3 4

The official side is its own ``build_model`` with its Cora config after its
``set_random_seed``; ours is :func:`graphmae2.trainer.build_model` with
``configs/cora.yaml``. Parameters are paired by order of creation within each module
(the official GAT stores ``fc.weight`` as ``[out, in]``, ours ``[in, out]``); the EMA
copies, equal to their sources at step 0 in both, are left out.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from reference_epoch_time import REPO, enter_reference

#: official parameter name -> ours, for the Cora recipe (2-layer GAT encoder, 1-layer GAT decoder)
PAIRS = {
    "enc_mask_token": "enc_mask_token", "dec_mask_token": "dec_mask_token",
    "encoder_to_decoder.weight": "encoder_to_decoder.weight",
    **{f"encoder.gat_layers.{i}.{a}": f"encoder.layers.{i}.{b}" for i in (0, 1) for a, b in (
        ("fc.weight", "weight"), ("attn_l", "att_src"), ("attn_r", "att_dst"), ("bias", "bias"),
        ("activation.weight", "act.weight"))},
    **{f"decoder.gat_layers.0.{a}": f"decoder.layers.0.{b}" for a, b in (
        ("fc.weight", "weight"), ("attn_l", "att_src"), ("attn_r", "att_dst"), ("bias", "bias"))},
    **{f"{m}.{i}.{w}": f"{m}.{i}.{w}" for m, i, w in (
        ("projector", 0, "weight"), ("projector", 0, "bias"), ("projector", 1, "weight"), ("projector", 2, "weight"),
        ("projector", 2, "bias"), ("predictor", 0, "weight"), ("predictor", 1, "weight"), ("predictor", 1, "bias"))},
}


def stats(model) -> dict:
    """Per parameter: shape, std, mean and kurtosis (3 for a normal draw, 1.8 for a
    uniform one; NaN for a constant)."""
    out = {}
    for n, p in model.named_parameters():
        v = p.detach().double().flatten()
        std = v.std().item() if v.numel() > 1 else float("nan")
        kurt = (((v - v.mean()) ** 4).mean() / v.var(unbiased=False) ** 2).item() if std > 0 else float("nan")
        out[n] = (tuple(p.shape), std, v.mean().item(), kurt)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, required=True, help="checkout of THUDM/GraphMAE2 at bc473e8")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = p.parse_args()
    enter_reference(args.reference.resolve())
    sys.path.append(str(REPO))
    sys.argv = ["main_full_batch.py", "--dataset", "cora", "--use_cfg", "--device", "-1"]

    from models import build_model as official_model
    from utils import build_args, load_best_configs, set_random_seed

    from graphmae2.config import load_config
    from graphmae2.trainer import build_model

    official_cfg = load_best_configs(build_args())
    official_cfg.num_features = 1433
    ours_cfg = load_config(REPO / "configs" / "cora.yaml")
    official, ours = [], []
    for seed in args.seeds:
        set_random_seed(seed)
        official.append(stats(official_model(official_cfg)))
        ours.append(stats(build_model(ours_cfg, 1433, seed)))

    def mean(side, name, i):
        return statistics.mean(s[name][i] for s in side)

    print(f"seeds {args.seeds}: mean over seeds of each parameter's std, mean and kurtosis")
    print("| official | ours | shape (official / ours) | std | mean | kurtosis |")
    print("| --- | --- | --- | --- | --- | --- |")
    for a, b in PAIRS.items():
        print(f"| `{a}` | `{b}` | {official[0][a][0]} / {ours[0][b][0]} | {mean(official, a, 1):.5f} / "
              f"{mean(ours, b, 1):.5f} | {mean(official, a, 2):+.5f} / {mean(ours, b, 2):+.5f} | "
              f"{mean(official, a, 3):.2f} / {mean(ours, b, 3):.2f} |")
    left = (set(official[0]) - set(PAIRS) - {n for n in official[0] if n.split(".")[0].endswith("_ema")},
            set(ours[0]) - set(PAIRS.values()))
    if any(left):
        print(f"unpaired: official {sorted(left[0])}, ours {sorted(left[1])}")


if __name__ == "__main__":
    main()
