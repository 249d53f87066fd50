"""The one configuration schema: every key's type, default, allowed range and why.

YAML files and ``--set`` hold overrides only; everything is checked against the
dataclasses below when loaded, so a typo or an out-of-range value fails in the first
second with a message naming the file, the key, the value and what is allowed, never at
epoch 1,999. The CLI help and docs/config.md are generated from the same fields.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml


class ConfigError(ValueError):
    """A bad configuration value; the message is one line meant for the user."""


def _f(default: Any, help: str, *, choices: Optional[Sequence[Any]] = None,
       low: Optional[float] = None, high: Optional[float] = None,
       low_open: bool = False, high_open: bool = False) -> Any:
    meta = {"help": help, "choices": tuple(choices) if choices else None, "low": low,
            "high": high, "low_open": low_open, "high_open": high_open}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


#: Evaluation modes of a frozen encoder (``eval.mode``, ``--eval``).
EVAL_MODES = ("linear", "finetune", "cluster")

DATASETS = ("cora", "citeseer", "pubmed", "synthetic", "ogbn-arxiv", "ogbn-products", "npz", "custom")


@dataclass
class DataConfig:
    dataset: str = _f("cora", "dataset name (ogbn-*: raw OGB files under data.root; npz: your own graph "
                      "in data.path; custom: a graph handed to graphmae2.pretrain, recorded as such)",
                      choices=DATASETS)
    path: Optional[str] = _f(None, "your graph for data.dataset=npz: a .npz of arrays (x, edge_index "
                             "or src/dst, optional y and train/val/test masks), a .pt of the same dict "
                             "or of a PyG Data, or a folder of .npy arrays (indptr, indices, x memory-mapped, "
                             "optional y and masks) for graphs larger than memory")
    root: Optional[str] = _f(None, "where downloaded datasets are cached (default ~/.cache/graphmae2)")
    mode: str = _f("fullbatch", "full graph per step, or batches of PPR ego-graphs",
                   choices=("fullbatch", "minibatch"))
    batch_size: int = _f(256, "ego-graphs per global batch (minibatch mode)", low=1)
    steps_per_epoch: int = _f(0, "optimizer steps per epoch in minibatch mode: the first this many batches of "
                              "the epoch's shuffled order (0: every batch, one pass over all ego-graphs)", low=0)
    ego_k: int = _f(128, "nodes per ego-graph: the seed and its top PPR neighbours", low=2)
    ppr_alpha: float = _f(0.15, "teleport probability of the personalised PageRank", low=0.0, high=1.0,
                          low_open=True, high_open=True)
    ppr_eps: float = _f(1e-4, "push tolerance of the approximate PageRank", low=0.0, low_open=True)
    ppr_rank: str = _f("score", "how ego-graph members are ranked: score (PPR estimate), or degree (the estimate "
                       "times min(1, 1/deg), the GraphMAE2 reference's normalisation)", choices=("score", "degree"))
    ppr_workers: int = _f(1, "processes computing ego-graphs", low=1)
    num_workers: int = _f(0, "DataLoader worker processes assembling batches (minibatch mode: training and the "
                          "embedding pass)", low=0)
    features: Optional[str] = _f(None, "optional .npy feature matrix, memory-mapped (minibatch mode)")
    feature_norm: str = _f("none", "input feature scaling: none, or row (each row divided by its L1 norm, "
                           "as DGL's Planetoid datasets do)", choices=("none", "row"))
    synthetic_nodes: int = _f(10000, "nodes of the synthetic graph", low=3)
    synthetic_edges: int = _f(100000, "undirected edges of the synthetic graph", low=1)
    synthetic_features: int = _f(128, "feature dimensions of the synthetic graph", low=1)


@dataclass
class ModelConfig:
    encoder: str = _f("gat", "encoder network", choices=("gat", "gcn"))
    decoder: str = _f("gat", "decoder network", choices=("gat", "gcn", "mlp", "linear"))
    num_hidden: int = _f(1024, "encoder output width (all heads together)", low=1)
    num_heads: int = _f(8, "attention heads per encoder layer; divides num_hidden", low=1)
    num_out_heads: int = _f(1, "attention heads of the decoder", low=1)
    num_layers: int = _f(2, "encoder layers", low=1)
    activation: str = _f("prelu", "activation", choices=("prelu", "elu", "relu", "gelu", "none"))
    in_drop: float = _f(0.2, "feature dropout in the GNN layers", low=0.0, high=1.0, high_open=True)
    attn_drop: float = _f(0.1, "attention dropout", low=0.0, high=1.0, high_open=True)
    negative_slope: float = _f(0.2, "LeakyReLU slope of the attention scores", low=0.0)
    residual: bool = _f(False, "residual connections in the encoder")
    norm: str = _f("none", "normalisation in the encoder", choices=("none", "layernorm", "batchnorm"))
    mask_rate: float = _f(0.5, "fraction of nodes whose input features are masked",
                          low=0.0, high=1.0, low_open=True, high_open=True)
    replace_rate: float = _f(0.15, "of the masked nodes, the fraction given another node's "
                             "features instead of the [MASK] token", low=0.0, high=1.0, high_open=True)
    remask_method: str = _f("random", "decoder re-masking: fresh random nodes per view, or "
                            "exactly the encoder-masked nodes", choices=("random", "fixed"))
    remask_rate: float = _f(0.5, "fraction of nodes re-masked in each decoding view",
                            low=0.0, high=1.0, low_open=True, high_open=True)
    num_remask: int = _f(3, "decoding views per step (random re-masking)", low=1)
    alpha_l: float = _f(3.0, "exponent of the scaled cosine reconstruction error", low=1.0)
    lam: float = _f(0.1, "weight of the latent-prediction loss (0 turns the branch off)", low=0.0)
    latent_nodes: str = _f("unmasked", "where the latent loss is taken (full batch): the nodes the encoder "
                           "saw unmasked, or all nodes (masked ones too, as the authors' full-batch script)",
                           choices=("unmasked", "all"))
    projector_hidden: int = _f(256, "hidden width of the latent projector", low=1)
    latent_target: str = _f("reference", "how the latent loss compares prediction and EMA target (formulas in "
                            "graphmae2/model.py): reference (GraphMAE2's, as is), standardise (both per dimension "
                            "over the latent nodes, no affine), batchnorm (BatchNorm in the projector, as "
                            "BYOL/BGRL), centre (target minus an EMA centre, as DINO), whiten (prediction "
                            "standardised, target standardised and decorrelated, after W-MSE)",
                            choices=("reference", "standardise", "batchnorm", "centre", "whiten"))
    drop_edge_rate: float = _f(0.0, "DropEdge: each step the encoder and the EMA teacher each see the graph with "
                               "this fraction of edges dropped, two independent draws (the reference's "
                               "drop_edge_rate); the decoder sees the full graph", low=0.0, high=1.0, high_open=True)
    whiten_shrinkage: float = _f(0.01, "alpha of latent_target=whiten: the target is decorrelated with "
                                 "(1 - alpha) * correlation + alpha * identity; 0 whitens fully (0.01 keeps "
                                 "the target's centred rank above 10 % of the width on Cora and CiteSeer, "
                                 "0.1 does not on Cora)", low=0.0, high=1.0)
    centre_momentum: float = _f(0.9, "momentum of the latent_target=centre centre, per step (DINO's 0.9)",
                                low=0.0, high=1.0, high_open=True)
    init: str = _f("graphmae", "initialisation of the GAT attention vectors (formulas in graphmae2/layers/gat.py): "
                   "graphmae (xavier_normal on one [1, heads*dim] row) or reference (xavier_normal per head, "
                   "on [1, heads, dim], as the official GraphMAE2 code and DGL: 6 % smaller for 8 heads of 128, "
                   "29 % for the one-head decoder)", choices=("graphmae", "reference"))


@dataclass
class EMAConfig:
    momentum: float = _f(0.996, "teacher momentum m in t <- m*t + (1-m)*s", low=0.0, high=1.0)
    schedule: str = _f("constant", "momentum schedule over training steps", choices=("constant", "cosine"))
    momentum_end: float = _f(1.0, "final momentum of the cosine schedule", low=0.0, high=1.0)
    delay_epochs: int = _f(0, "epochs before the EMA starts; during them the teacher follows delay_mode", low=0)
    delay_mode: str = _f("copy", "the teacher during ema.delay_epochs: copy (a copy of the student after every "
                         "step) or freeze (kept at its initial weights, as the GraphMAE2 reference's "
                         "delayed_ema_epoch)", choices=("copy", "freeze"))
    timing: str = _f("after_step", "when the teacher moves: after_step (t <- m*t + (1-m)*s from the weights "
                     "the optimizer step just made: at m = 0 the teacher is the student) or before_step (from the "
                     "weights this step's forward used, before the optimizer step, as the official GraphMAE2 "
                     "code: at m = 0 the teacher lags the student by one step)",
                     choices=("after_step", "before_step"))
    teacher_dropout: bool = _f(False, "run the teacher in training mode, so its latent targets see dropout "
                               "(as the GraphMAE2 reference does); default: eval mode, clean targets")


@dataclass
class TrainConfig:
    max_epoch: int = _f(1000, "pre-training epochs (full-batch steps)", low=1)
    lr: float = _f(0.001, "learning rate", low=0.0, low_open=True)
    weight_decay: float = _f(2e-4, "weight decay", low=0.0)
    optimizer: str = _f("adam", "optimizer", choices=("adam", "adamw"))
    scheduler: str = _f("cosine", "learning-rate schedule", choices=("none", "cosine"))
    grad_clip: float = _f(0.0, "max gradient norm (0 = no clipping)", low=0.0)
    seeds: List[int] = _f([0], "seeds; one full run per seed")
    deterministic: bool = _f(True, "bitwise-repeatable kernels (slower on GPU)")
    precision: str = _f("fp32", "fp32, or bf16: dense matmuls (projections, attention scores) under bfloat16 "
                        "autocast; message passing, the sparse first layer, losses and latent-target transforms "
                        "in float32 (graphmae2/precision.py)",
                        choices=("fp32", "bf16"))
    checkpoint_every: int = _f(100, "epochs between checkpoints (and at the end)", low=1)
    on_nan: str = _f("stop", "what a NaN/Inf loss does", choices=("stop", "skip"))
    monitor_every: int = _f(100, "epochs between collapse checks (0 = never); costs one SVD", low=0)


@dataclass
class EvalConfig:
    mode: str = _f("linear", "evaluation of the frozen encoder", choices=EVAL_MODES)
    lr: float = _f(0.01, "linear-probe learning rate", low=0.0, low_open=True)
    weight_decay: float = _f(1e-4, "linear-probe weight decay", low=0.0)
    weight_decay_grid: List[float] = _f([], "if set, probe once per weight decay listed and report the one with "
                                        "the best validation accuracy (eval.weight_decay is then unused)", low=0.0)
    max_epoch: int = _f(300, "linear-probe epochs", low=1)
    ties: str = _f("first", "which epoch the linear probe reports when several share the best validation accuracy: "
                   "first, or last (as the GraphMAE2 reference does)", choices=("first", "last"))
    finetune_lr: float = _f(0.005, "fine-tuning learning rate", low=0.0, low_open=True)
    finetune_weight_decay: float = _f(5e-4, "fine-tuning weight decay", low=0.0)
    finetune_max_epoch: int = _f(200, "fine-tuning epochs", low=1)
    finetune_patience: int = _f(50, "fine-tuning early-stopping patience (epochs)", low=1)
    cluster_n_init: int = _f(10, "k-means restarts", low=1)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> Dict[str, Dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], source: str = "<dict>") -> "Config":
        cfg = cls()
        for section, values in (d or {}).items():
            if section not in SECTIONS:
                raise ConfigError(f"{source}: unknown section {section!r}{_suggest(section, SECTIONS)}; "
                                  f"allowed: {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}")
            for key, value in values.items():
                set_value(cfg, f"{section}.{key}", value, source)
        validate(cfg, source)
        return cfg


SECTIONS = tuple(f.name for f in dataclasses.fields(Config))


def schema() -> List[Tuple[str, dataclasses.Field]]:
    """Every ``section.key`` with its dataclass field, in declaration order."""
    out = []
    for sec in dataclasses.fields(Config):
        for f in dataclasses.fields(sec.default_factory()):
            out.append((f"{sec.name}.{f.name}", f))
    return out


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(f: dataclasses.Field) -> str:
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(str(c) for c in m["choices"])
    parts = []
    if m.get("low") is not None:
        parts.append(f"{'>' if m['low_open'] else '>='} {m['low']}")
    if m.get("high") is not None:
        parts.append(f"{'<' if m['high_open'] else '<='} {m['high']}")
    kind = _type_name(f)
    return f"{kind} {' and '.join(parts)}".strip()


def _type_name(f: dataclasses.Field) -> str:
    t = str(f.type)
    for name in ("List[int]", "List[float]", "Optional[str]", "bool", "int", "float", "str"):
        if name in t:
            return {"List[int]": "list of integers", "List[float]": "list of numbers",
                    "Optional[str]": "string or null"}.get(name, name)
    return t


def _coerce(f: dataclasses.Field, value: Any, where: str) -> Any:
    kind = _type_name(f)
    bad = ConfigError(f"{where}: {value!r} is not a valid value; allowed: {_describe(f)}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise bad
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise bad
        return value
    if kind == "float":
        return _as_float(value, bad)
    if kind == "str":
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "string or null":
        if value is not None and not isinstance(value, str):
            raise bad
        return value
    if kind == "list of integers":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value or \
                any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ConfigError(f"{where}: {value!r} is not a valid value; allowed: a non-empty list of integers")
        return list(value)
    if kind == "list of numbers":
        value = value if isinstance(value, list) else [value]
        value = [_as_float(v, ConfigError(f"{where}: {value!r} is not a valid value; allowed: "
                                           f"{_describe(f)}")) for v in value]
        for v in value:
            _check_range(f, v, where)
        return value
    raise bad


def _as_float(value: Any, bad: ConfigError) -> float:
    """A number; strings like ``1e-3`` too (YAML 1.1 reads exponents without a dot as text)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise bad from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad
    return float(value)


def _check_range(f: dataclasses.Field, value: Any, where: str) -> None:
    m = f.metadata
    ok = True
    if m.get("choices") is not None and value not in m["choices"]:
        extra = _suggest(str(value), [str(c) for c in m["choices"]])
        raise ConfigError(f"{where}: {value!r} is not allowed{extra}; allowed: {_describe(f)}")
    if m.get("low") is not None:
        ok &= value > m["low"] if m["low_open"] else value >= m["low"]
    if m.get("high") is not None:
        ok &= value < m["high"] if m["high_open"] else value <= m["high"]
    if not ok:
        raise ConfigError(f"{where}: {value!r} is out of range; allowed: {_describe(f)}")


def set_value(cfg: Config, dotted: str, value: Any, source: str = "--set") -> None:
    """Set ``section.key`` on ``cfg`` after type and range checks."""
    if "." not in dotted:
        raise ConfigError(f"{source}: key {dotted!r} must be section.key, e.g. train.max_epoch")
    section, key = dotted.split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"{source}: unknown section {section!r}{_suggest(section, SECTIONS)}; "
                          f"allowed: {', '.join(SECTIONS)}")
    sec = getattr(cfg, section)
    fields = {f.name: f for f in dataclasses.fields(sec)}
    if key not in fields:
        every = [k for k, _ in schema()]
        raise ConfigError(f"{source}: unknown key {dotted!r}{_suggest(dotted, every)}")
    where = f"{source}: {dotted}"
    value = _coerce(fields[key], value, where)
    if not isinstance(value, list):
        _check_range(fields[key], value, where)
    setattr(sec, key, value)


def validate(cfg: Config, source: str = "config") -> None:
    """Cross-key checks that no single field can express."""
    m = cfg.model
    if m.encoder == "gat" and m.num_hidden % m.num_heads != 0:
        raise ConfigError(f"{source}: model.num_hidden={m.num_hidden} must be divisible by "
                          f"model.num_heads={m.num_heads}")
    if cfg.ema.delay_epochs > cfg.train.max_epoch:
        raise ConfigError(f"{source}: ema.delay_epochs={cfg.ema.delay_epochs} exceeds "
                          f"train.max_epoch={cfg.train.max_epoch}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Dict:
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(f"{loader.name}:{mark.line + 1}:{mark.column + 1}: duplicate key {key!r}")
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def resolve_config_path(path: Union[str, os.PathLike]) -> Path:
    """``path`` if it exists, else ``configs/<path>``; a missing file lists what exists."""
    p = Path(path)
    if p.is_file():
        return p
    candidate = CONFIG_DIR / p.name
    if not p.parent.parts and candidate.is_file():
        return candidate
    known = sorted(q.name for q in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    raise ConfigError(f"config file {str(path)!r} not found; available in {CONFIG_DIR}: "
                      f"{', '.join(known) or 'none'}")


def load_config(path: Optional[Union[str, os.PathLike]] = None,
                overrides: Sequence[str] = ()) -> Config:
    """Defaults, then the YAML file's overrides, then ``section.key=value`` overrides."""
    cfg = Config()
    source = "defaults"
    if path is not None:
        p = resolve_config_path(path)
        source = str(p)
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                              f"{exc.start}); save the config as UTF-8") from None
        loader = _UniqueKeyLoader(text)
        loader.name = source
        try:
            data = loader.get_single_data()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
            raise ConfigError(f"{where}: malformed YAML: {exc.problem}") from None
        except yaml.YAMLError as exc:  # e.g. a control character: a reader error, no mark
            raise ConfigError(f"{source}: malformed YAML: {' '.join(str(exc).split())}") from None
        finally:
            loader.dispose()
        if data is not None and not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
        cfg = Config.from_dict(data or {}, source)
    for item in overrides:
        key, value = parse_override(item)
        set_value(cfg, key, value, "--set")
    validate(cfg, source if not overrides else f"{source} + --set")
    return cfg


def parse_override(item: str) -> Tuple[str, Any]:
    """``section.key=value`` -> (key, YAML-parsed value)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.max_epoch=100")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: missing key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(f"--set {item!r}: value {raw!r} is not valid YAML") from None
    return key, value


def diff_from_defaults(cfg: Config) -> Dict[str, Any]:
    """``section.key -> value`` for every value that differs from the default."""
    base = Config().to_dict()
    now = cfg.to_dict()
    return {f"{s}.{k}": v for s in now for k, v in now[s].items() if base[s][k] != v}


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def schema_markdown() -> str:
    """The config reference as a Markdown table (docs/config.md is this, verbatim)."""
    lines = ["# Configuration keys", "",
             "Generated from `graphmae2/config.py` by `python -m graphmae2.config > docs/config.md`;",
             "a test checks that this file matches the schema.", "",
             "| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for key, f in schema():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"| `{key}` | `{default!r}` | {_describe(f)} | {f.metadata['help']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(schema_markdown(), end="")
