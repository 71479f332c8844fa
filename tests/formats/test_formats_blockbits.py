"""The building blocks of the fast dequantize paths: row gathers, in-place / copied word
views, scratch buffers, and the K-quant scale unpacking (against its packer)."""

from __future__ import annotations

import threading

import torch
from format_cases import generator
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.formats import blockbits
from compiler.formats.workspace import Workspace

WORD_ROW = blockbits.WORDS_PER_32


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_gather_rows_is_the_permutation_of_the_row_grid(sizes, data):
    order = tuple(data.draw(st.permutations(range(len(sizes)))))
    count = 1
    for size in sizes:
        count *= size
    rows = torch.arange(count * WORD_ROW, dtype=torch.int64).view(count, WORD_ROW)
    out = torch.empty_like(rows)
    blockbits.gather_rows(rows, tuple(sizes), order, out)
    expected = rows.view(*sizes, WORD_ROW).permute(*order, len(sizes)).reshape(count, WORD_ROW)
    assert torch.equal(out, expected), (sizes, order)


def test_workspace_reuses_a_name_and_grows_it():
    scratch = Workspace()
    first = scratch.take("planes", (4, 8), torch.int64)
    smaller = scratch.take("planes", (2, 8), torch.int64)
    assert smaller.data_ptr() == first.data_ptr()
    other = scratch.take("quants", (4, 8), torch.int64)
    assert other.data_ptr() != first.data_ptr()
    larger = scratch.take("planes", (8, 8), torch.int64)
    assert larger.shape == (8, 8) and larger.is_contiguous()
    retyped = scratch.take("planes", (8, 8), torch.uint8)
    assert retyped.dtype == torch.uint8 and retyped.shape == (8, 8)


def test_workspace_plans_are_built_once_and_dropped_when_a_buffer_grows():
    scratch = Workspace()
    builds = []

    def build(count):
        builds.append(count)
        return scratch.take("rows", (count, WORD_ROW), torch.int64)

    plan = scratch.plan(("rows", 4), lambda: build(4))
    assert scratch.plan(("rows", 4), lambda: build(4)) is plan
    assert builds == [4]
    # a bigger take replaces the buffer: the plan's view would be of the old one
    bigger = scratch.take("rows", (16, WORD_ROW), torch.int64)
    rebuilt = scratch.plan(("rows", 4), lambda: build(4))
    assert builds == [4, 4]
    assert rebuilt.data_ptr() == bigger.data_ptr() != plan.data_ptr()


def test_workspace_of_this_thread_is_per_thread():
    mine = Workspace.of_this_thread()
    assert Workspace.of_this_thread() is mine
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(Workspace.of_this_thread()))
    thread.start()
    thread.join()
    assert theirs[0] is not mine


def test_block_words_read_aligned_blocks_in_place_and_copy_the_others(seed):
    blocks = torch.randint(0, 256, (6, 144), dtype=torch.uint8, generator=generator(seed))
    expected = blocks[:, 16:144].contiguous().view(torch.int64)
    in_place = blockbits.block_words(blocks, 16, 144, Workspace())
    assert in_place.data_ptr() == blocks.data_ptr() + 16
    assert torch.equal(in_place, expected), f"seed={seed}"
    # a view starting 2 bytes in is not 8-byte aligned: copied, same values
    shifted = blocks.view(-1)[2 : 2 + 5 * 144].view(5, 144)
    copied = blockbits.block_words(shifted, 16, 144, Workspace())
    assert copied.data_ptr() != shifted.data_ptr() + 16
    assert torch.equal(copied, shifted[:, 16:144].contiguous().view(torch.int64)), f"seed={seed}"


def test_stream_words_in_place_or_padded_copy(seed):
    blocks = torch.randint(0, 256, (8, 18), dtype=torch.uint8, generator=generator(seed))
    in_place = blockbits.stream_words(blocks, 8, Workspace())
    assert in_place.data_ptr() == blocks.data_ptr()
    # 7 blocks padded to 8: the first 7 * 18 bytes are the blocks, the tail is scratch
    padded = blockbits.stream_words(blocks[:7], 8, Workspace())
    assert padded.numel() * 8 == 8 * 18
    assert torch.equal(padded.view(torch.uint8)[: 7 * 18], blocks[:7].reshape(-1))


def test_nibble_planes_split_every_byte(seed):
    packed = torch.randint(0, 256, (5, 16), dtype=torch.uint8, generator=generator(seed))
    planes = torch.empty(2, 5, 2, dtype=torch.int64)
    blockbits.nibble_planes_into(packed.view(torch.int64), planes)
    as_bytes = planes.view(torch.uint8).view(2, 5, 16)
    assert torch.equal(as_bytes[0], packed & 0x0F), f"seed={seed}"
    assert torch.equal(as_bytes[1], packed >> 4), f"seed={seed}"


def test_kquant_scale_words_unpack_what_pack_packs(seed):
    gen = generator(seed)
    sc = torch.randint(0, 64, (33, 8), dtype=torch.uint8, generator=gen)
    m = torch.randint(0, 64, (33, 8), dtype=torch.uint8, generator=gen)
    packed = blockbits.pack_kquant_scales(sc, m)  # [33, 12]
    columns = blockbits.int32_columns(packed.contiguous().view(torch.int32))  # [3, 33]
    levels = blockbits.unpack_kquant_scale_words(columns)
    assert torch.equal(levels[0], sc), f"seed={seed}"
    assert torch.equal(levels[1], m), f"seed={seed}"
