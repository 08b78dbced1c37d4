"""Every command with every bad input of the catalogue: exit 2, one stderr line, the user's files untouched,
nothing written (run in-process through ``lrd_cli.main.main``)."""
import os

import pytest

from lrd_cli.main import COMMANDS, main

from .catalogue import cases
from .conftest import snapshot

CASES = cases()


def run_case(case, lab, capsys, monkeypatch):
    argv = [a.replace("{lab}", lab) for a in case.argv]
    if case.cwd:
        monkeypatch.chdir(os.path.join(lab, case.cwd))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:                       # argparse usage errors
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case, lab, capsys, monkeypatch):
    before = snapshot(lab)
    code, err = run_case(case, lab, capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("lrd ") and "Traceback" not in err, err
    assert "internal error" not in lines[0]
    after = snapshot(lab)
    assert after == before, ({k: v for k, v in after.items() if before.get(k) != v},
                             sorted(set(before) - set(after)))


def test_catalogue_covers_every_command():
    commands = {c.argv[0] for c in CASES}
    assert commands >= set(COMMANDS) | {"finetune", "pipeline"}, set(COMMANDS) - commands   # a new command needs cases
    assert len(CASES) >= 300
