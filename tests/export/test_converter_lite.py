"""The 310 path's converter_lite step: the missing tool is one clear error; the command line is the documented one."""
import os
import stat
import sys

import pytest

from lrd_bench import converter
from lrd_core.errors import DeviceError, MismatchError


def test_missing_converter_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("LRD_CONVERTER_LITE", raising=False)
    mindir = tmp_path / "net.mindir"
    mindir.write_bytes(b"x")
    with pytest.raises(DeviceError, match="converter_lite is not installed here; on the Ascend 310 host install"):
        converter.convert(str(mindir), str(tmp_path / "out"))
    with pytest.raises(MismatchError, match="does not exist; make it with `lrd export --format MINDIR`"):
        converter.convert(str(tmp_path / "missing.mindir"), str(tmp_path / "out"))
    assert converter.main(["--mindir", str(mindir), "--out", str(tmp_path / "o")]) == 2


def test_converter_command_line_and_output(tmp_path, monkeypatch):
    fake = tmp_path / "converter_lite"
    fake.write_text(f"#!{sys.executable}\nimport sys\nargs = dict(a.split('=', 1) for a in sys.argv[1:])\n"
                    f"open(args['--outputFile'] + '.mindir', 'w').write(' '.join(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("LRD_CONVERTER_LITE", str(fake))
    mindir = tmp_path / "net.mindir"
    mindir.write_bytes(b"x")
    written = converter.convert(str(mindir), str(tmp_path / "net_lite.mindir"), "Ascend")
    assert written == str(tmp_path / "net_lite.mindir")
    assert open(written).read() == (f"--fmk=MINDIR --modelFile={mindir} --outputFile={tmp_path / 'net_lite'} "
                                    f"--saveType=MINDIR --optimize=ascend_oriented")
    assert os.path.basename(converter.command("c", "a.mindir", "b", "CPU")[-1]) == "--optimize=general"
