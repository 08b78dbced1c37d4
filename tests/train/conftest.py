"""Training tests run torch on one thread: on a shared 2-core machine, torch's default of one OpenMP
thread per core makes tiny steps 10-100x slower whenever other processes are busy (spin-waiting)."""
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
