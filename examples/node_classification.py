"""Node classification on top of a pre-trained GraphMAE2 encoder, fine-tuned end to end.

    python examples/node_classification.py runs/cora-YYYYmmdd-HHMMSS/checkpoint.pt [--epochs 100]
"""
import argparse

import torch
import torch.nn.functional as F

from graphmae2 import embed, load_dataset, load_encoder

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("--epochs", type=int, default=100)
args = parser.parse_args()

torch.manual_seed(0)
encoder = load_encoder(args.checkpoint)                       # eval mode, carries its config
data = load_dataset(encoder.config.data.dataset)
head = torch.nn.Linear(encoder.out_dim, data.num_classes)
optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3, weight_decay=5e-4)

best_val, test_at_best = 0.0, 0.0
for _ in range(args.epochs):
    encoder.train()
    logits = head(encoder(data.graph, data.x))
    loss = F.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    pred = head(embed(encoder, data.graph, data.x)).argmax(1)  # eval mode, no grad
    val = (pred[data.val_mask] == data.y[data.val_mask]).float().mean().item()
    test = (pred[data.test_mask] == data.y[data.test_mask]).float().mean().item()
    if val > best_val:
        best_val, test_at_best = val, test
print(f"val_acc: {best_val:.4f}  test_acc: {test_at_best:.4f}")
