"""The decoding loop's CPU kernels (ladder.backends.hf.decode) against the plain arithmetic they replace."""

from __future__ import annotations

import pytest
import torch

from ladder.backends.hf import attention, decode

pytestmark = pytest.mark.skipif(attention.FLASH_CPU is None, reason="this torch has no fused CPU attention")


def _inputs(rows: int, length: int, width: int, seed: int = 0):
    torch.manual_seed(seed)
    heads, kv, dim = 9, 3, 16
    query = torch.randn(rows, heads, length, dim)
    key, value = torch.randn(rows, kv, width, dim), torch.randn(rows, kv, width, dim)
    # each row has written some columns; token i of the L new ones sees them and the new ones up to itself
    written = torch.randint(0, width - length, (rows,))
    cols = torch.arange(width)
    visible = cols[None, None, :] <= (written[:, None, None] + torch.arange(length)[None, :, None])
    mask = torch.zeros(rows, 1, length, width).masked_fill_(~visible[:, None], torch.finfo(torch.float32).min)
    return query, key, value, mask


@pytest.mark.parametrize("length", [1, 3])
@pytest.mark.parametrize("with_prefix", [True, False])
def test_fused_cascade_attention_equals_the_matmul_softmax_path(monkeypatch, length, with_prefix):
    """Both parts through the fused kernel, merged by their log-sum-exp, equal one softmax over the shared
    prefix and the row's own visible columns."""
    query, key, value, mask = _inputs(rows=5, length=length, width=12)
    prefix = (torch.randn(3, 20, 16), torch.randn(3, 20, 16)) if with_prefix else None
    fused, _ = attention.cascade_attention(None, query, key, value, mask, prefix, 0.25)
    monkeypatch.setattr(attention, "FLASH_CPU", None)
    plain, _ = attention.cascade_attention(None, query, key, value, mask, prefix, 0.25)
    assert fused.shape == plain.shape == (5, length, 9, 16)
    assert torch.allclose(fused, plain, atol=1e-5), float((fused - plain).abs().max())
    # and the plain path is attention: row 0, head 4 (kv head 1), last token, by hand
    q = query[0, 4, -1]
    keys, values = key[0, 1], value[0, 1]
    seen = mask[0, 0, -1] == 0
    if with_prefix:
        keys, values = torch.cat([prefix[0][1], keys[seen]]), torch.cat([prefix[1][1], values[seen]])
    else:
        keys, values = keys[seen], values[seen]
    expected = torch.softmax(keys @ q * 0.25, dim=0) @ values
    assert torch.allclose(plain[0, -1, 4], expected, atol=1e-5)


def test_packed_linears_compute_the_same_products_and_leave_the_modules_as_they_were():
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.GELU(), torch.nn.Linear(48, 8, bias=False))
    x = torch.randn(4, 7, 32)
    with torch.inference_mode():
        plain = model(x)
        with decode.packed_linears([model]):
            assert all("forward" in m.__dict__ for m in model if isinstance(m, torch.nn.Linear))
            packed = model(x)
            one_row = model(x[:1, :1])
        assert all("forward" not in m.__dict__ for m in model)
        assert torch.equal(model(x), plain)
    assert torch.allclose(packed, plain, rtol=1e-5, atol=1e-6)
    assert torch.allclose(one_row, plain[:1, :1], rtol=1e-5, atol=1e-6)
    # bf16 where the processor only emulates it (the tests pin LADDER_CPU_BF16=0), or fp16: nothing is swapped
    for dtype in (torch.bfloat16, torch.float16):
        half = torch.nn.Linear(8, 8).to(dtype)
        with decode.packed_linears([half]):
            assert "forward" not in half.__dict__


def test_packed_bf16_linears_equal_the_plain_bf16_products_where_bf16_is_native(monkeypatch):
    from pathlib import Path

    from ladder.backends import hardware

    try:
        native = bool(hardware.cpu_flags(Path("/proc/cpuinfo").read_text()) & hardware.BF16_FLAGS)
    except OSError:
        native = False
    if not native or not torch.backends.mkldnn.is_available():
        pytest.skip("bf16 weights are packed only on a processor with native bf16 (avx512_bf16/amx_bf16)")
    monkeypatch.setenv("LADDER_CPU_BF16", "1")
    hardware.cpu_has_native_bf16.cache_clear()
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 32)).to(torch.bfloat16)
        x = torch.randn(16, 64, dtype=torch.bfloat16)
        with torch.inference_mode():
            plain = model(x)
            with decode.packed_linears([model]):
                assert all("forward" in m.__dict__ for m in model)
                packed = model(x)
        assert torch.equal(packed, plain)
    finally:
        hardware.cpu_has_native_bf16.cache_clear()


def test_fused_cascade_attention_keeps_a_bf16_dtype(monkeypatch):
    """The log-sum-exp is fp32 whatever the inputs: the merged output goes back to the query's dtype (a
    pinned bf16 model's next linear layer takes nothing else)."""
    query, key, value, mask = (t.to(torch.bfloat16) for t in _inputs(rows=3, length=1, width=8))
    prefix = (torch.randn(3, 10, 16, dtype=torch.bfloat16), torch.randn(3, 10, 16, dtype=torch.bfloat16))
    fused, _ = attention.cascade_attention(None, query, key, value, mask, prefix, 0.25)
    monkeypatch.setattr(attention, "FLASH_CPU", None)
    plain, _ = attention.cascade_attention(None, query, key, value, mask, prefix, 0.25)
    assert fused.dtype == plain.dtype == torch.bfloat16
    assert torch.allclose(fused.float(), plain.float(), atol=3e-2)


def test_prompt_lookup_proposes_what_followed_the_latest_earlier_match():
    """``decode.propose``: the row's own prompt and answer first (latest occurrence), then the shared prefix; the
    longest n-gram first; never more than the room; nothing where the last tokens occur nowhere earlier."""
    prefix = [1, 2, 3, 4, 5, 6]
    index: dict = {}
    decode.ngram_index(prefix, 0, len(prefix), index)
    row = decode.Row(suffix=[9, 2, 3], max_new=64, stops=(), json_end=False)
    assert decode.propose(row, prefix, index, 2) == [4, 5]  # (2, 3) ends at 3 in the prefix
    row = decode.Row(suffix=[7, 2, 3, 8, 9, 2, 3], max_new=64, stops=(), json_end=False)
    assert decode.propose(row, prefix, index, 3) == [8, 9, 2]  # its own earlier (2, 3) wins over the prefix's
    row.generated = [8, 9]
    assert decode.propose(row, prefix, index, 4) == [2, 3, 8, 9]  # (3, 8, 9): the longest match, in its own tokens
    assert decode.propose(row, prefix, index, 0) == []
    assert decode.propose(decode.Row(suffix=[42, 43], max_new=64, stops=(), json_end=False), prefix, index, 4) == []
