"""Shared by the command-line tests: the ``framework`` fixture and an in-process ``run``."""
import pytest

from lrd_cli.main import main
from tests.conftest import FRAMEWORKS


@pytest.fixture(params=FRAMEWORKS)
def framework(request):
    return request.param


def run(argv, capsys):
    """``lrd argv`` in this process: (exit code, stdout, stderr)."""
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err
