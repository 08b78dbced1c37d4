"""The issue's data-loss scenarios and the output rules of :mod:`lrd_core.io`, in both frameworks."""
import os
import stat

import pytest

from lrd_cli.main import main
from lrd_core.errors import LRDError
from lrd_core.io import OutputError, atomic_dir, atomic_file, check_output_dir

from .conftest import snapshot
from .lab import MODEL

WEIGHTS = {"torch": "model.pt", "mindspore": "model.ckpt"}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_compress_out_dot_in_a_folder_of_user_files_keeps_everything(framework, lab, tmp_path, monkeypatch, capsys):
    """`lrd compress ... --out .` in a folder holding the input checkpoint and notes.txt used to delete both."""
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    (work / "m.pt").write_bytes(open(os.path.join(lab, "good.pt"), "rb").read())
    (work / "notes.txt").write_text("mine\n")
    before = snapshot(str(work))
    monkeypatch.chdir(work)
    argv = ["compress", "--framework", framework, *MODEL, "--checkpoint", "m.pt", "--plan",
            os.path.join(lab, "plan.json"), "--out", "."]
    assert main(argv) == 2 and main(argv + ["--force"]) == 2         # the input is never an output, even forced
    assert "would replace the input m.pt" in capsys.readouterr().err
    assert snapshot(str(work)) == before and mode(work) == 0o755
    # without the input inside, --force writes beside the user's file and deletes nothing
    (work / "m.pt").rename(tmp_path / "m.pt")
    argv[argv.index("m.pt")] = str(tmp_path / "m.pt")
    assert main(argv) == 2                                               # notes.txt is not lrd's
    assert main(argv + ["--force"]) == 0
    assert sorted(os.listdir(work)) == sorted(["notes.txt", "plan.json", WEIGHTS[framework]])
    assert (work / "notes.txt").read_text() == "mine\n" and mode(work) == 0o755
    assert os.path.samefile(os.getcwd(), work)                           # the working folder was filled in place


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_convert_into_a_victim_folder_refuses_and_force_keeps_its_files(framework, lab, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep\n")
    argv = ["convert", "--src", os.path.join(lab, "comp_torch"), "--to", framework, "--out", str(victim)]
    assert main(argv) == 2 and os.listdir(victim) == ["keep.txt"]
    assert main(argv + ["--force"]) == 0
    assert sorted(os.listdir(victim)) == sorted(["keep.txt", "plan.json", WEIGHTS[framework]])
    assert (victim / "keep.txt").read_text() == "keep\n"
    # forced again for the other framework: its weights would sit beside these stale ones -> refused, nothing deleted
    before = snapshot(str(victim))
    other = "torch" if framework == "mindspore" else "mindspore"
    assert main(argv[:-3] + [other, "--out", str(victim), "--force"]) == 2
    assert f"holds {WEIGHTS[framework]} beside other files" in capsys.readouterr().err
    assert snapshot(str(victim)) == before


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_outputs_follow_the_umask(framework, lab, tmp_path, umask022):
    """Files 0644 and folders 0755 under umask 022 (MindSpore saves checkpoints and MindIR read-only: 0400)."""
    out = tmp_path / "c"
    assert main(["compress", "--framework", framework, *MODEL, "--plan", os.path.join(lab, "plan.json"),
                 "--out", str(out)]) == 0
    assert mode(out) == 0o755 and {n: mode(out / n) for n in os.listdir(out)} == {
        "plan.json": 0o644, WEIGHTS[framework]: 0o644}
    suffix = ".ckpt" if framework == "mindspore" else ".pt"
    assert main(["convert", "--src", os.path.join(lab, "good.npz"), "--out", str(tmp_path / f"w{suffix}")]) == 0
    assert mode(tmp_path / f"w{suffix}") == 0o644
    fmt = "MINDIR" if framework == "mindspore" else "ONNX"
    target = tmp_path / f"net.{fmt.lower()}"
    assert main(["export", "--framework", framework, "--model", "resnet18", "--compressed", str(out), "--format", fmt,
                 "--out", str(target), "--no-check"]) == 0
    assert mode(target) == 0o644
    # re-writing a folder of lrd's own files replaces it as a whole and keeps the folder's permissions
    os.chmod(out, 0o750)
    assert main(["convert", "--src", str(out), "--to", "torch", "--out", str(out.parent / "d")]) == 0
    assert main(["convert", "--src", os.path.join(lab, "comp_torch"), "--to", "torch", "--out", str(out)]) == 0
    assert mode(out) == 0o750 and sorted(os.listdir(out)) == ["model.pt", "plan.json"]
    assert [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".old-" in n] == []


def test_an_output_folder_is_replaced_only_by_its_own_kind(tmp_path):
    run = tmp_path / "run"
    (run / "finetuned").mkdir(parents=True)
    (run / "summary.json").write_text("{}")
    with pytest.raises(OutputError, match="other than lrd's compressed-model files .*finetuned, summary.json"):
        check_output_dir(str(run))
    assert check_output_dir(str(run), kind="run") == []


def test_file_system_failures_are_output_errors_and_leave_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad in (afile / "out.json", "/proc/lrd-no-such/out.json", tmp_path):
        with pytest.raises(OutputError):
            with atomic_file(str(bad)) as tmp:
                open(tmp, "w").write("never")
    with pytest.raises(OutputError, match="is a file"):
        with atomic_dir(str(afile)):
            pass
    with pytest.raises(OutputError, match="not a regular file"):
        with atomic_file("/dev/null"):
            pass
    # a full disk while writing: the temporary is removed, the old file kept, one OutputError
    (tmp_path / "out.json").write_text("old")

    def full(_):
        raise OSError(28, "No space left on device")
    with pytest.raises(OutputError, match="no space left"):
        with atomic_file(str(tmp_path / "out.json")) as tmp:
            open(tmp, "w").write("partial")
            full(tmp)
    assert sorted(os.listdir(tmp_path)) == ["afile", "out.json"] and (tmp_path / "out.json").read_text() == "old"
    with pytest.raises(OutputError):
        with atomic_dir(str(tmp_path / "d")) as tmp:
            open(os.path.join(tmp, "plan.json"), "w").write("partial")
            full(tmp)
    assert sorted(os.listdir(tmp_path)) == ["afile", "out.json"]
    assert issubclass(OutputError, LRDError)


def test_stale_temporaries_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    dead = 2 ** 22 + 12345                                    # above the default pid_max: never alive
    stale = [tmp_path / f".out.json.tmp-{dead}-abc.json", tmp_path / f".c.tmp-{dead}-xyz",
             tmp_path / f".c.old-{dead}-q"]
    stale[0].write_text("half")
    stale[1].mkdir()
    stale[2].mkdir()
    alive = tmp_path / f".c.tmp-{os.getpid()}-live"            # this process's: kept
    alive.mkdir()
    other = tmp_path / f".notes.tmp-{dead}-1"                  # another output's: kept
    other.write_text("x")
    with atomic_file(str(tmp_path / "out.json")) as tmp:
        open(tmp, "w").write("{}")
    with atomic_dir(str(tmp_path / "c")) as tmp:
        open(os.path.join(tmp, "plan.json"), "w").write("{}")
    assert sorted(os.listdir(tmp_path)) == sorted(["out.json", "c", alive.name, other.name])
