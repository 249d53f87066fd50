"""GraphMAE2 pre-training and evaluation.

    python train.py --config cora.yaml                      # paper setting, 1 seed
    python train.py --config cora.yaml --seeds 0 1 2 3 4    # mean ± std over seeds
    python train.py --config cora.yaml --set train.max_epoch=50 --device cpu
    python train.py --help                                  # every flag and config key
"""
import sys

from graphmae2.cli import main

if __name__ == "__main__":
    sys.exit(main())
