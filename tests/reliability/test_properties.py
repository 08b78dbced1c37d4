"""Property tests: edited plan JSON and wrong API arguments end either in a valid result or in one LRDError
with a one-line message — never in another exception (hypothesis, derandomized: the same examples every run)."""
import copy
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from lrd_core import LRDError, Plan
from lrd_core.cost import decomposed_cost, layer_macs, layer_params
from lrd_data import ArrayData

from .lab import KW, SHAPE

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)
EXAMPLES = {"torch": 40, "mindspore": 20}

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(-2 ** 40, 2 ** 40),
                    st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from(["", "x", "2", "svd",
                                                                                              "tucker2", "none"]))
VALUES = st.one_of(SCALARS, st.lists(st.integers(-2, 40), max_size=5), st.lists(SCALARS, max_size=3),
                   st.dictionaries(st.sampled_from(["a", "stage", "is_stem"]), SCALARS, max_size=2))
LAYER_KEYS = ["ranks", "method", "selected", "name", "kind", "reason", "params_after", "info", "note"]
INFO_KEYS = ["kernel", "stride", "padding", "dilation", "groups", "in_channels", "out_channels", "input_hw",
             "has_bias", "role", "unsupported", "name"]
TOP_KEYS = ["version", "config", "layers", "meta", "totals"]
CONFIG_KEYS = ["mode", "ratio", "ranks", "rank_multiple", "energy", "include", "tucker_iters", "roles"]


def _one_line(exc):
    text = str(exc)
    assert text.strip() and "\n" not in text.strip(), repr(text)


@st.composite
def edits(draw, n_layers):
    """A list of edits of a plan's JSON object: (where, key, value or a deletion/duplication)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["layer", "layer", "info", "info", "top", "config", "role", "dup", "ranks"]))
        k = draw(st.integers(0, n_layers - 1))
        if where == "ranks":                           # mostly plausible ranks: some valid, some just outside
            out.append((where, k, None, draw(st.lists(st.integers(0, 9), min_size=1, max_size=3))))
            continue
        keys = {"layer": LAYER_KEYS, "info": INFO_KEYS, "top": TOP_KEYS, "config": CONFIG_KEYS,
                "role": ["stage", "is_stem", "is_downsample", "is_final_dense", "x"], "dup": [None]}[where]
        key = draw(st.sampled_from(keys))
        value = draw(st.one_of(VALUES, st.just("<delete>")))
        out.append((where, k, key, value))
    return out


def apply(plan: dict, changes) -> dict:
    d = copy.deepcopy(plan)
    for where, k, key, value in changes:
        try:
            layer = d["layers"][k]
            target = {"layer": lambda: layer, "info": lambda: layer["info"], "top": lambda: d,
                      "config": lambda: d["config"], "role": lambda: layer["info"]["role"], "ranks": lambda: layer,
                      "dup": lambda: None}[where]()
        except (KeyError, IndexError, TypeError):
            continue
        if where == "dup":
            d["layers"].append(copy.deepcopy(layer))
        elif where == "ranks":
            layer["ranks"] = value
        elif isinstance(target, dict):
            if value == "<delete>":
                target.pop(key, None)
            else:
                target[key] = value
    return d


@pytest.fixture(scope="module")
def base_plans(lab):
    return {fw: json.loads(open(os.path.join(lab, "plan.json")).read()) for fw in ("torch", "mindspore")}


def check_plan_outcome(fw, d):
    """Load the edited plan; if it loads, compress a fresh model with it: success must give a network whose
    parameter count is what the (recomputed) plan says, failure must leave the model as it was."""
    try:
        plan = Plan.from_dict(json.loads(json.dumps(d)))
    except LRDError as exc:
        _one_line(exc)
        return "refused at load"
    for lp in plan.layers:                          # costs are recomputed, never taken from the file
        assert (lp.params_before, lp.macs_before) == (layer_params(lp.info), layer_macs(lp.info))
        if lp.decomposed:
            assert (lp.params_after, lp.macs_after) == decomposed_cost(lp.info, lp.method, lp.ranks)
    model = fw.models.resnet18(**KW, seed=0)
    before = fw.state_to_numpy(model)
    try:
        fw.compress(model, plan)
    except LRDError as exc:
        _one_line(exc)
        after = fw.state_to_numpy(model)
        assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
        return "refused at compress"
    t = plan.totals
    others = fw.count_params(fw.models.resnet18(**KW, seed=0)) - t["params_before"]
    assert fw.count_params(model) == others + t["params_after"]
    y = fw.predict(model, np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32))
    assert y.shape == (1, 10) and np.all(np.isfinite(y))
    return "compressed"


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_edited_plans_load_validly_or_fail_in_one_line(framework, base_plans, request):
    fw = request.getfixturevalue("lrd_" + framework)
    base = base_plans[framework]
    seen = []

    @settings(max_examples=EXAMPLES[framework], **SETTINGS)
    @given(edits(len(base["layers"])))
    def run(changes):
        seen.append(check_plan_outcome(fw, apply(base, changes)))

    run()
    assert "refused at load" in seen and "compressed" in seen, seen     # both outcomes were exercised


# ---------------------------------------------------------------------------------------- API arguments
SIGNATURES = {
    "inspect": ("model", "shape"), "plan": ("model", "shape", "options"), "compress": ("model", "plan"),
    "rebuild": ("model", "plan"), "save": ("model", "plan", "path"), "load": ("path", "model"),
    "load_numpy": ("model", "arrays"), "load_checkpoint": ("model", "path"), "read_checkpoint": ("path",),
    "write_checkpoint": ("arrays", "path"), "state_to_numpy": ("model",), "count_params": ("model",),
    "predict": ("model", "inputs"), "evaluate": ("model", "data"), "set_frozen": ("model", "frozen"),
    "with_plan": ("model", "plan"), "load_plan": ("path",),
}


def pools(fw, lab):
    """Candidate values of each argument slot: right and wrong types, edge values, broken files."""
    good_plan = Plan.from_json(os.path.join(lab, "plan.json"))
    arrays = fw.state_to_numpy(fw.models.resnet18(**KW, seed=0))
    nan = {k: (np.full_like(v, np.nan) if v.dtype.kind == "f" else v) for k, v in arrays.items()}
    junk = [None, 0, -1, 2.5, True, "", "notaplan", [], {}, (1, 3, 32, 32), np.zeros(3), object()]
    files = [os.path.join(lab, n) for n in ("good.pt", "good.ckpt", "trunc.pt", "random.npz", "nan.pt", "folder.pt",
                                            "missing.pt", "comp_torch", "comp_badplan", "comp_nan", "afile/x.pt")]
    return {
        "model": ["<model>"] * 4 + junk[:7],
        "shape": [(1, 3, 32, 32), (2, 3, 32, 32), (1, 3, 4, 4), (0, 3, 32, 32), (1, 3, -1, 32), (1, 3, 32),
                  (1, 3, 32.5, 32), "32", None, (1, 1, 32, 32)],
        "options": [{}, {"mode": "mode3"}, {"ratio": 0.5}, {"ratio": "2"}, {"mode": ["x"]}, {"energy": "x"},
                    {"ranks": {"fc": 2.5}}, {"ranks": 5}, {"rank_multiple": True}, {"include": [3]},
                    {"rank_selection": "manual", "ranks": {"layer1.*": 2, "layer1\\.0\\..*": 3}},
                    {"ranks": {"fc": 3}}, {"colour": 1}, {"tucker_iters": -1}],
        "plan": [good_plan] * 3 + junk[:8] + [good_plan.to_dict()],
        "path": files + ["out/c", "out/x.npz", "out/x.ckpt", "out/x.pt", "", None, 3],
        "arrays": [arrays, arrays, nan, {"conv1.weight": np.zeros(3)}, {"conv1.weight": "x"}, None, [], "x", {1: 2}],
        "inputs": [np.zeros((1, 3, 32, 32), np.float32), np.zeros((2, 3, 16, 16)), np.zeros((1, 5)), np.zeros(0),
                   "abc", None, [[1, 2]], np.zeros((1, 1, 32, 32))],
        "data": [ArrayData(np.zeros((4, 3, 32, 32), np.float32), np.arange(4), 10),
                 ArrayData(np.zeros((4, 3, 16, 16), np.float32), np.arange(4), 10),
                 ArrayData(np.zeros((4, 1, 32, 32), np.float32), np.arange(4), 10),
                 np.zeros((4, 3, 32, 32), np.float32), [(np.zeros((2, 3, 32, 32)), np.zeros(2))], "digits", None, 3],
        "frozen": [[], ["conv1.weight"], ["nosuch"], "conv1.weight", None, [1], [["x"]], 3, {"fc.weight"}],
    }


def check_call(fw, name, args):
    args = [fw.models.resnet18(**KW, seed=0) if isinstance(a, str) and a == "<model>" else a for a in args]
    kwargs = args.pop() if SIGNATURES[name][-1] == "options" else {}
    if name in ("inspect", "plan"):
        args, kwargs = args[:1], {**kwargs, "input_shape": args[1]}
    try:
        out = getattr(fw, name)(*args, **kwargs)
    except LRDError as exc:
        _one_line(exc)
        return "error"
    expect = {"inspect": list, "plan": Plan, "save": str, "read_checkpoint": dict, "write_checkpoint": str,
              "state_to_numpy": dict, "count_params": int, "predict": np.ndarray, "evaluate": float,
              "set_frozen": list, "load_plan": Plan}
    if name in expect:
        assert isinstance(out, expect[name]), (name, type(out))
    if name == "evaluate":
        assert 0.0 <= out <= 1.0
    elif name in ("compress", "rebuild", "load", "load_numpy", "load_checkpoint", "with_plan"):
        assert isinstance(out, fw.BACKEND.model_type)
    return "ok"


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_api_arguments_give_a_result_or_one_lrd_error(framework, lab, tmp_path, monkeypatch, request):
    fw = request.getfixturevalue("lrd_" + framework)
    monkeypatch.chdir(tmp_path)                    # relative output paths land here
    pool = pools(fw, lab)
    names = sorted(SIGNATURES)
    seen = []

    @settings(max_examples=3 * EXAMPLES[framework], **SETTINGS)
    @given(st.sampled_from(names).flatmap(
        lambda n: st.tuples(st.just(n), st.tuples(*[st.sampled_from(pool[slot]) for slot in SIGNATURES[n]]))))
    def run(call):
        name, args = call
        seen.append(check_call(fw, name, list(args)))

    run()
    assert "ok" in seen and "error" in seen
