"""The format table: the six GGUF formats with the geometry the GGUF definitions give."""

from __future__ import annotations

import pytest
from format_cases import ALL_FORMATS
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from compiler import formats


def test_exactly_the_six_formats():
    assert tuple(formats.FORMATS) == ("Q4_0", "Q5_0", "Q8_0", "Q4_K", "Q5_K", "Q6_K")


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_geometry_matches_gguf(fmt):
    spec = formats.get_format(fmt)
    assert spec.name == fmt
    assert (spec.block_weights, spec.block_bytes) == GGML_QUANT_SIZES[GGMLQuantizationType[fmt]]
    assert sum(field.nbytes for field in spec.fields) == spec.block_bytes
    assert spec.scale_fields and all(field.dtype == "f16" for field in spec.scale_fields)


def test_field_offsets():
    q6 = formats.get_format("Q6_K")
    assert [q6.field_offset(f.name) for f in q6.fields] == [0, 128, 192, 208]
    q5k = formats.get_format("Q5_K")
    assert [q5k.field_offset(f.name) for f in q5k.fields] == [0, 2, 4, 16, 48]
    with pytest.raises(KeyError):
        q6.field_offset("dmin")


def test_inconsistent_spec_is_refused():
    with pytest.raises(ValueError, match="fields take 3 bytes"):
        formats.FormatSpec("X", 32, 4, (formats.Field("d", "f16", 1), formats.Field("q", "u8", 1)))
