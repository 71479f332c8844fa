"""The NVRTC target the CUDA launcher asks for (no GPU needed: the capability is faked)."""

from __future__ import annotations

import pytest
import torch

from runtime_schema.cuda_launcher import architecture_options


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((9, 0), ("--gpu-architecture=sm_90a",)),  # H100 / H200: wgmma needs sm_90a
        ((8, 0), ()),  # A100: CuPy's own target (sm_80)
        ((8, 9), ()),
        ((10, 0), ()),  # no arch-specific path written for it: the portable one
    ],
)
def test_arch_specific_target_per_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)
    assert architecture_options(arch_specific=True) == expected


def test_portable_build_never_names_a_target(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (9, 0))
    assert architecture_options(arch_specific=False) == ()
