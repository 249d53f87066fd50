"""The schema: overrides, type and range checks, and one-line errors naming file, key, value."""
from pathlib import Path

import pytest

from graphmae2.config import Config, ConfigError, load_config


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_then_file_then_set(tmp_path):
    p = write(tmp_path, "train:\n  max_epoch: 50\nmodel:\n  lam: 0.5\n")
    cfg = load_config(p, ["train.max_epoch=7", "train.seeds=[1, 2]"])
    assert cfg.train.max_epoch == 7 and cfg.model.lam == 0.5 and cfg.train.seeds == [1, 2]
    assert cfg.model.num_hidden == Config().model.num_hidden


def test_shipped_configs_load_and_use_an_ema_teacher():
    shipped = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(shipped) >= 7
    for path in shipped:
        name, text = path.name, path.read_text()
        cfg = load_config(name)
        assert cfg.model.lam > 0, name
        # GraphMAE2's own mechanisms (random re-masking, an EMA teacher with 0 < m < 1)
        # unless the config documents a measurement that says otherwise.
        measured = "re-masking measured lower" in text or "measured higher than GraphMAE2's random" in text
        assert cfg.model.remask_method == "random" or measured, name
        assert 0 < cfg.ema.momentum < 1 or measured, name


@pytest.mark.parametrize("text,match", [
    ("train:\n  max_epch: 5\n", r"c.yaml: unknown key 'train.max_epch' \(did you mean 'train.max_epoch'\?\)"),
    ("trian:\n  max_epoch: 5\n", r"unknown section 'trian' \(did you mean 'train'\?\)"),
    ("model:\n  mask_rate: 1.5\n", r"model.mask_rate: 1.5 is out of range; allowed: float > 0.0 and < 1.0"),
    ("model:\n  remask_rate: 0\n", r"model.remask_rate: 0.0 is out of range"),
    ("ema:\n  momentum: 1.2\n", r"ema.momentum: 1.2 is out of range; allowed: float >= 0.0 and <= 1.0"),
    ("train:\n  max_epoch: ten\n", r"train.max_epoch: 'ten' is not a valid value; allowed: int >= 1"),
    ("train:\n  lr: 0\n", r"train.lr: 0.0 is out of range; allowed: float > 0.0"),
    ("model:\n  num_hidden: 100\n  num_heads: 8\n", r"model.num_hidden=100 must be divisible by model.num_heads=8"),
    ("model:\n  encoder: gatt\n",
     r"model.encoder: 'gatt' is not allowed \(did you mean 'gat'\?\); allowed: one of gat, gcn"),
    ("data:\n  dataset: coraa\n",
     r"data.dataset: 'coraa' is not allowed \(did you mean 'cora'\?\); allowed: one of cora, citeseer, pubmed"),
    ("train:\n  max_epoch: 5\n  max_epoch: 6\n", r"c.yaml:3:3: duplicate key 'max_epoch'"),
    ("train:\n  max_epoch: [5\n", r"c.yaml:3:1: malformed YAML"),
    ("- 1\n- 2\n", r"top level must be a mapping"),
])
def test_bad_config_file_gives_one_line_error(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("item,match", [
    ("train.max_epoch", r"expected section.key=value"),
    ("max_epoch=5", r"must be section.key"),
    ("train.deterministic=maybe", r"train.deterministic: 'maybe' is not a valid value; allowed: bool"),
    ("model.num_heads=2.5", r"model.num_heads: 2.5 is not a valid value"),
])
def test_bad_set_gives_one_line_error(item, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [item])


def test_missing_config_lists_available(tmp_path):
    with pytest.raises(ConfigError, match=r"config file 'nope.yaml' not found; available in .*cora.yaml"):
        load_config("nope.yaml")


def test_config_name_resolves_against_configs_dir():
    assert load_config("cora.yaml").data.dataset == "cora"


def test_docs_config_md_matches_the_schema():
    from pathlib import Path

    from graphmae2.config import schema_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "config.md"
    assert doc.read_text() == schema_markdown(), "regenerate: python -m graphmae2.config > docs/config.md"
