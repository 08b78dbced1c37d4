"""Process settings that must be in place before MindSpore is first imported.

MindSpore 2.10's CPU convolutions run through oneDNN. On the AVX-512 machines this project was
measured on, oneDNN's AVX-512 convolution kernels inside MindSpore ran ~100x slower than its AVX2
kernels (a 3x3 conv of 0.9 GMAC: 2.0 s vs 0.016 s; torch's own oneDNN was unaffected), so the ISA
is capped at AVX2 unless the user has set ``ONEDNN_MAX_CPU_ISA`` / ``DNNL_MAX_CPU_ISA`` themselves.
Ascend and GPU runs do not use these kernels.
"""
import os

os.environ.setdefault("GLOG_v", "3")
_isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "AVX2"
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", _isa)
os.environ.setdefault("DNNL_MAX_CPU_ISA", _isa)
