"""Issue 13 on the command line: one option vocabulary, honest reports, `lrd eval`."""
import json

import numpy as np
import pytest

from lrd_cli.main import parser
from lrd_core.options import OPTIONS, markdown_table
from tests.cli.conftest import run

TINY = ["--model", "resnet18", "--stem", "cifar", "--num-classes", "10", "--width", "16", "--input-size", "32"]


def _parsers():
    top = parser()
    sub = next(a for a in top._actions if a.choices and isinstance(a.choices, dict))
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if a.choices and isinstance(a.choices, dict)]
        if nested:
            for kind, q in nested[0].choices.items():
                yield f"{name} {kind}", q
        else:
            yield name, p


def test_every_flag_has_help_and_shows_its_default():
    missing = []
    for name, p in _parsers():
        for a in p._actions:
            if a.option_strings and a.help != "==SUPPRESS==" and not (a.help or "").strip():
                missing.append(f"{name} {a.option_strings[0]}")
        text = " ".join(p.format_help().split())
        if name == "plan":
            assert "--rank-multiple RANK_MULTIPLE round ranks to a multiple of this" in text
            assert "1 = exact ranks) (default: 16)" in text
    assert missing == []


def test_plan_options_share_defaults_across_commands():
    defaults = {}
    for name, p in _parsers():
        for a in p._actions:
            if a.dest in ("ratio", "rank_multiple") and a.option_strings and a.help != "==SUPPRESS==":
                defaults.setdefault(a.dest, {})[name] = a.default
    assert set(defaults["ratio"].values()) <= {2.0, None}, defaults
    assert set(defaults["rank_multiple"].values()) <= {16, None}, defaults
    assert {"plan", "bench model"} <= set(defaults["rank_multiple"])


def test_option_table_lists_every_option_and_old_spelling():
    table = markdown_table()
    for name, o in OPTIONS.items():
        assert f"`{o.flag}`" in table
    assert "rank_quantization" in table and "compression_ratio" in table and "vbmf" in table


def test_evbmf_old_flags_exclude_reason_and_errors(framework, tmp_path, capsys):
    out_path = tmp_path / "p.json"
    code, out, err = run(["plan", "--framework", framework, *TINY, "--mode", "mode3", "--rank-selection", "evbmf",
                          "--rank_multiple", "8", "--exclude", "layer4", "--out", str(out_path)], capsys)
    assert code == 0, err
    assert "--rank_multiple is deprecated; use --rank-multiple" in err
    assert "look random-initialised" in err                      # evbmf on untrained weights
    plan = json.loads(out_path.read_text())
    assert plan["config"]["rank_selection"] == "vbmf" and plan["config"]["rank_multiple"] == 8
    layers = {l["name"]: l for l in plan["layers"]}
    assert all(layers[n]["reason"] == "excluded by exclude 'layer4'" for n in layers if n.startswith("layer4"))
    assert "skipped:" in out and "excluded by exclude 'layer4': layer4.0.conv1" in out
    assert "conv+dense params" in out
    done = [l for l in plan["layers"] if l["method"] == "tucker2"]
    assert done and all(0 < l["weight_error"] < 1 for l in done)
    assert all(r % 8 == 0 for l in done for r in l["ranks"])


def test_weight_error_matches_the_compressed_layers(fw):
    """plan.json's weight_error is ||W - W'||/||W|| of the factors compress builds (SVD: exact, known answer)."""
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=16, seed=0)
    plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="vanilla", ratio=2.0, include=["^fc$"])
    lp = plan["layer3.0.conv2"]
    w = fw.state_to_numpy(model)
    name = [k for k in w if k.startswith("layer3.0.conv2") and w[k].ndim == 4][0]
    from lrd_core.factorize.tucker2 import tucker2_factors
    u_out, core, u_in = tucker2_factors(w[name], lp.ranks)
    approx = np.einsum("or,rskl,is->oikl", u_out, core, u_in)
    expected = np.linalg.norm(w[name] - approx) / np.linalg.norm(w[name])
    assert lp.weight_error == pytest.approx(expected, abs=1e-5)


def test_eval_known_answers(framework, tmp_path, capsys):
    """Labels set to the model's own predictions: accuracy 1; shifted by one class: accuracy 0 (both the
    original with a checkpoint and the compressed directory)."""
    from lrd_core.frameworks import adapter

    fw = adapter(framework)
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=16, seed=1)
    ckpt = tmp_path / ("m.ckpt" if framework == "mindspore" else "m.pt")
    fw.write_checkpoint(fw.state_to_numpy(model), str(ckpt))
    x = np.random.default_rng(0).standard_normal((20, 3, 32, 32)).astype(np.float32)
    y = fw.predict(model, x).argmax(1).astype(np.int64)
    np.savez(tmp_path / "own.npz", x=x, y=y)
    np.savez(tmp_path / "off.npz", x=x, y=(y + 1) % 10)
    for data, want in (("own.npz", "1.0000"), ("off.npz", "0.0000")):
        code, out, err = run(["eval", "--framework", framework, *TINY, "--checkpoint", str(ckpt),
                              "--data", str(tmp_path / data), "--batch", "8"], capsys)
        assert code == 0, err
        assert f"top-1 accuracy {want} on 20 samples" in out
    plan = tmp_path / "p.json"
    assert run(["plan", "--framework", framework, *TINY, "--checkpoint", str(ckpt), "--mode", "mode3",
                "--out", str(plan)], capsys)[0] == 0
    assert run(["compress", "--framework", framework, *TINY, "--checkpoint", str(ckpt), "--plan", str(plan),
                "--out", str(tmp_path / "c")], capsys)[0] == 0
    compressed = fw.load(str(tmp_path / "c"), fw.models.resnet18(num_classes=10, stem="cifar", width=16))
    yc = fw.predict(compressed, x).argmax(1).astype(np.int64)
    np.savez(tmp_path / "comp.npz", x=x, y=yc)
    code, out, err = run(["eval", "--framework", framework, "--model", "resnet18", "--compressed",
                          str(tmp_path / "c"), "--data", str(tmp_path / "comp.npz"), "--limit", "10",
                          "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    assert "top-1 accuracy 1.0000 on 10 samples" in out
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == 1.0


def test_eval_refuses_unlabelled_data(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 3, 32, 32), np.float32))
    code, _, err = run(["eval", "--framework", "torch", *TINY, "--data", str(tmp_path / "x.npz")], capsys)
    assert code == 2 and "has no labels" in err


def test_bench_model_reports_paired_ratios_with_spread(framework, tmp_path, capsys):
    from lrd_core.frameworks import adapter
    from lrd_core.plan import Plan

    fw = adapter(framework)
    model = fw.models.resnet18(num_classes=10, stem="cifar", width=16, seed=4)
    ckpt = tmp_path / ("m.ckpt" if framework == "mindspore" else "m.pt")
    fw.write_checkpoint(fw.state_to_numpy(model), str(ckpt))
    x = np.random.default_rng(1).standard_normal((12, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "own.npz", x=x, y=fw.predict(model, x).argmax(1).astype(np.int64))
    out = tmp_path / "r.json"
    code, text, err = run(["bench", "model", "--framework", framework, *TINY, "--batch", "1", "--modes",
                           "original,vanilla", "--no-train", "--repeat", "3", "--warmup", "0", "--checkpoint",
                           str(ckpt), "--eval", str(tmp_path / "own.npz"), "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    base, van = result["results"]
    assert base["accuracy"] == 1.0 and "top-1 (no fine-tune)" in text and "| 100.00% |" in text
    compressed = fw.latency.with_plan(model, Plan.from_dict(result["plans"]["vanilla"]))
    assert van["accuracy"] == pytest.approx(float((fw.predict(compressed, x).argmax(1) ==
                                                   fw.predict(model, x).argmax(1)).mean()))
    assert isinstance(result["threads"], int) and result["threads"] >= 1 and result["threads_requested"] is None
    assert result["ratio"] == 2.0 and result["rank_multiple"] == 16
    rounds = van["infer_round_ratios"]
    assert len(rounds) == 3 and van["infer_ratio"] == pytest.approx(float(np.median(rounds)), rel=1e-3)
    lo, hi = van["infer_ratio_iqr"]
    assert lo <= van["infer_ratio"] <= hi
    assert van["infer_ms"] == pytest.approx(base["infer_ms"] * van["infer_ratio"])     # ms agrees with the ratio
    assert "IQR" in text and "budget met" not in text and "threads None" not in text


def test_readme_option_table_is_the_schema():
    import os
    text = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    table = text.split("<!-- options:begin -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert table == markdown_table()


def test_bench_layer_crossover_is_interpolated_and_spikes_are_dropped():
    from lrd_bench.layer import confirm_steps, crossover, crossover_interpolated, layer, steps
    from lrd_core.latency import Timing

    ranks, ratios = [16, 32, 48, 64], [0.5, 0.8, 1.2, 1.5]
    assert crossover(ranks, ratios) == 48
    assert crossover_interpolated(ranks, ratios) == 40.0            # 0.8 -> 1.2 crosses 1 half way
    assert crossover_interpolated(ranks, [1.1, 1.2, 1.3, 1.4]) is None

    info = layer(64, 64, 3, 1, 8)
    ms = [1.0, 1.1, 1.2, 3.0, 3.1, 3.2, 6.0, 6.1]                   # rises of 1.8 at rank 64 and 2.8 at 112
    rks = [16 * (k + 1) for k in range(8)]
    found = steps(rks, ms)
    assert found == [64, 112]
    truth = {16 * (k + 1): v for k, v in enumerate([1.0, 1.1, 1.2, 3.0, 3.1, 3.2, 3.3, 3.4])}   # 112 was a spike

    def timer(_info, variants, _phase):
        return [Timing([1.0] * 3)] + [Timing([truth[v[1][1]]] * 3) for v in variants[1:]]

    assert confirm_steps(timer, info, "infer@8", rks, ms, found, original=1.0) == [64]


def test_api_progress_bar_and_warnings(fw, capsys, caplog):
    """``progress=True`` draws the EVBMF planning bar with counters on stderr; planning random weights with
    evbmf and planning a compressed model warn through the ``lrd`` logger and record meta.warnings."""
    import logging

    model = fw.models.resnet18(num_classes=10, stem="cifar", width=8, seed=0)
    with caplog.at_level(logging.WARNING, logger="lrd"):
        plan = fw.plan(model, input_shape=(1, 3, 32, 32), mode="mode1", rank_selection="evbmf", progress=True)
    err = capsys.readouterr().err
    assert "planning (evbmf)" in err and "/21" in err
    assert any("look random-initialised" in w for w in plan.meta["warnings"])
    quiet = fw.plan(model, input_shape=(1, 3, 32, 32), mode="mode1", rank_multiple=1, progress=False)
    assert "planning" not in capsys.readouterr().err and "warnings" not in quiet.meta
    fw.compress(model, quiet)
    with caplog.at_level(logging.WARNING, logger="lrd"):
        again = fw.plan(model, input_shape=(1, 3, 32, 32), mode="vanilla", rank_multiple=1)
    assert any("looks already compressed" in w for w in again.meta["warnings"])
    assert any("looks already compressed" in r.getMessage() for r in caplog.records)


def test_freeze_boundaries_of_the_curves():
    from lrd_recipe.report import freeze_boundaries

    summary = {"config": {"freeze": "sequential", "freeze_every": 1, "freeze_unit": "epoch"}}
    assert freeze_boundaries(summary, {"name": "finetune", "steps_per_epoch": 7}, 28) == [7, 14, 21]
    assert freeze_boundaries(summary, {"name": "original", "steps_per_epoch": 7}, 28) == []
    summary["config"].update(freeze_unit="step", freeze_every=5)
    assert freeze_boundaries(summary, {"name": "stage 2", "steps_per_epoch": 7}, 12) == [5, 10]


def test_recipe_yaml_takes_the_shared_names_and_old_ones_with_a_warning(tmp_path, caplog):
    import logging

    from lrd_core.errors import ConfigError
    from lrd_recipe import config

    new = tmp_path / "new.yaml"
    new.write_text("mode: mode2\nratio: 3\nrank_multiple: 8\nrank_selection: evbmf\n")
    cfg = config.parse(["--config_path", str(new)])
    assert (cfg.compression_mode, cfg.compression_ratio, cfg.rank_quantization, cfg.rank_selection) == \
        ("mode2", 3.0, 8, "vbmf")
    old = tmp_path / "old.yaml"
    old.write_text("compression_ratio: 3\n")
    with caplog.at_level(logging.WARNING, logger="lrd"):
        assert config.parse(["--config_path", str(old), "--rank_quantization", "4"]).rank_quantization == 4
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "config key 'compression_ratio' is deprecated; use 'ratio'" in text
    assert "--rank_quantization is deprecated; use --rank_multiple" in text
    both = tmp_path / "both.yaml"
    both.write_text("ratio: 3\ncompression_ratio: 2\n")
    with pytest.raises(ConfigError, match="'ratio' and its old spelling 'compression_ratio' are both given; keep 'ratio'"):
        config.parse(["--config_path", str(both)])
    assert config.namespace().rank_quantization == 16 and config.namespace().compression_ratio == 2.0
