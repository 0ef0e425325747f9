"""Our own forward for Llama-architecture models, shaped for sampling many rows of few prompts.

The sampler's rows are k samples of a handful of prompts, one new token per row per step. The
model's own forward treats every row as a separate sequence, which on a CPU wastes most of a
step (profiled: SmolLM2-135M, 64 rows of one 526-token prompt, 2 threads):
- each row holds a full copy of its prompt's KV cache (~24 MB a row in fp32), so attention
  reads ~1.5 GB per step. Here a prompt's KV is kept once (`Prefix`) and all of its rows attend
  to it in one batched product (their queries stacked as one long query), plus each row's own
  generated tokens (`Suffix`); the two partial softmaxes are merged by their log-sum-exp
  ("cascade" or shared-prefix attention);
- with bfloat16 weights the big matmuls run on the CPU's bf16 units (AMX, avx512_bf16), while
  the residual stream, norms, rotary embedding, attention and logits stay in fp32;
- q/k/v and gate/up are fused into one matmul each: fewer, larger products.
Models this module cannot reproduce exactly (biases, other activations, other architectures,
adapters other than plain LoRA) get `None` from `decoder_for`, and the sampler falls back to
the model's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

_flash_with_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu

ATTENTION_DTYPE = torch.float32
"""The dtype of the prompt's keys and values and of attention over them, whatever the weights'
dtype: the CPU flash-attention kernel took 17% less time in fp32 than in bf16 in a profile of 64
rows of one 526-token prompt (AMD EPYC with avx512_bf16, no AMX), and fp32 is the more exact."""


class Unsupported(Exception):
    """The model has something this forward does not reproduce; use the model's own."""


@dataclass
class Prefix:
    """One prompt's KV cache, shared by all its rows, and its last position's logits."""

    keys: list[torch.Tensor]
    """Per layer [1, kv_heads, length, head_dim], rotary applied, in ATTENTION_DTYPE."""
    values: list[torch.Tensor]
    logits: torch.Tensor
    """[vocab] float32: the distribution of the first generated token."""
    length: int


class Suffix:
    """The generated tokens' keys and values, one slot per row, written in place (float32),
    and one layer's queries by slot."""

    def __init__(self, layers: int, slots: int, kv_heads: int, group: int, capacity: int,
                 head_dim: int):
        shape = (slots, kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape) for _ in range(layers)]
        self.values = [torch.zeros(shape) for _ in range(layers)]
        # Reused by every layer and step; an idle slot keeps a stale (finite) query whose
        # output is never read.
        self.queries = torch.zeros(slots, kv_heads, group, head_dim)


@dataclass
class _Layer:
    qkv: torch.Tensor
    out: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


def decoder_for(model, dtype: torch.dtype) -> LlamaDecoder | None:
    """A decoder holding `model`'s weights (an unmerged LoRA folded in), or None if the model
    is not one this forward reproduces."""
    try:
        return LlamaDecoder(model, dtype)
    except Unsupported:
        return None


def weights_version(model) -> tuple:
    """Changes whenever a parameter is replaced or written in place (an optimizer step): a
    decoder built from older weights is stale."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


class LlamaDecoder:
    """The weights of a Llama model laid out for decoding, and the forward over them."""

    def __init__(self, model, dtype: torch.dtype):
        base = _base_model(model)
        config = base.config
        if getattr(config, "model_type", None) != "llama":
            raise Unsupported("not a llama model")
        if (getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False)
                or config.hidden_act != "silu" or getattr(config, "pretraining_tp", 1) > 1):
            raise Unsupported("biases, another activation or tensor-parallel slices")
        if dtype not in (torch.float32, torch.bfloat16):
            raise Unsupported(f"dtype {dtype}")
        inner = base.model
        if inner.embed_tokens.weight.device.type != "cpu":
            raise Unsupported("the cascade attention kernel here is the CPU one")
        if type(inner.embed_tokens) is not torch.nn.Embedding:
            raise Unsupported("a wrapped embedding")
        self.dtype = dtype
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.scale = self.head_dim ** -0.5
        self.embed = inner.embed_tokens.weight.detach()
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            # Each RMSNorm's weight is folded into the matmul that follows it (x*w @ W.T
            # = x @ (W*w).T): one elementwise op less per norm.
            norm_in = layer.input_layernorm.weight.detach().float()
            norm_post = layer.post_attention_layernorm.weight.detach().float()
            self.layers.append(_Layer(
                qkv=_fold(torch.cat([_weight(attn.q_proj), _weight(attn.k_proj),
                                     _weight(attn.v_proj)]), norm_in, dtype),
                out=_weight(attn.o_proj).to(dtype).contiguous(),
                gate_up=_fold(torch.cat([_weight(mlp.gate_proj), _weight(mlp.up_proj)]),
                              norm_post, dtype),
                down=_weight(mlp.down_proj).to(dtype).contiguous()))
        self.head = _fold(_weight(base.lm_head), inner.norm.weight.detach().float(), dtype)
        self.rotary = inner.rotary_emb
        self._cos = self._sin = torch.empty(0)

    # Pieces ---------------------------------------------------------------------------
    # A decode step is hundreds of small ops, each a parallel region that both threads must
    # enter: the fewer, the better (fused norms, one rotary for q and k together, one-op
    # cache writes), since on a busy machine every region can wait a scheduler slice.

    def _normed(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm (its weight is in `weight`), then the matmul: the scaling computed in fp32
        and written straight in the compute dtype."""
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        scale = torch.rsqrt(rms.square_().div_(x.shape[-1]).add_(self.eps))
        return F.linear(torch.mul(x, scale, out=x.new_empty(x.shape, dtype=self.dtype)), weight)

    def _linear(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(self.dtype), weight)

    def _rope_tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sign-folded sin [rows, 1, head_dim] in fp32, from the model's own rotary
        module (so any rope scaling it implements applies), computed once up to the largest
        position. With the sign folded in, rotating is x * cos + swap_halves(x) * sin."""
        top = int(positions.max()) + 1
        if self._cos.shape[0] < top:
            size = max(top, 2 * self._cos.shape[0], 1024)
            cos, sin = self.rotary(torch.zeros(1, dtype=torch.float32),
                                   torch.arange(size).unsqueeze(0))
            half = self.head_dim // 2
            sin = sin[0].float().clone()
            sin[:, :half] = -sin[:, :half]
            self._cos, self._sin = cos[0].float(), sin
        return self._cos[positions].unsqueeze(1), self._sin[positions].unsqueeze(1)

    def _qkv(self, layer: _Layer, x: torch.Tensor, rope):
        """Queries [rows, heads, d] and keys [rows, kv_heads, d], rotary applied, in fp32;
        values [rows, kv_heads, d] in the compute dtype."""
        qkv = self._normed(x, layer.qkv)
        d, rows = self.head_dim, x.shape[0]
        qk = qkv[:, :(self.heads + self.kv_heads) * d].float().view(rows, -1, d)
        half = d // 2
        qk = torch.addcmul(qk * rope[0], torch.cat((qk[..., half:], qk[..., :half]), -1), rope[1])
        v = qkv[:, (self.heads + self.kv_heads) * d:].view(rows, self.kv_heads, d)
        return qk[:, :self.heads], qk[:, self.heads:], v

    def _mlp_and_out(self, layer: _Layer, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        x = torch.add(x, self._linear(attended.reshape(x.shape[0], -1), layer.out))
        gate, up = self._normed(x, layer.gate_up).chunk(2, dim=-1)
        return torch.add(x, F.linear(F.silu(gate) * up, layer.down))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        # The head is a fifth of the FLOPs: bf16 like the other matmuls, softmax in fp32 after.
        return self._normed(x, self.head).float()

    # Prefill and decode ---------------------------------------------------------------

    def prefill(self, ids: list[int]) -> Prefix:
        """Run one prompt (no padding, causal attention) and keep its KV for its rows."""
        tokens = torch.tensor(ids)
        rope = self._rope_tables(torch.arange(len(ids)))
        x = self.embed[tokens].float()
        keys, values = [], []
        for layer in self.layers:
            q, k, v = self._qkv(layer, x, rope)
            q = q.to(ATTENTION_DTYPE).transpose(0, 1)[None]
            k = k.to(ATTENTION_DTYPE).transpose(0, 1)[None].contiguous()
            v = v.to(ATTENTION_DTYPE).transpose(0, 1)[None].contiguous()
            keys.append(k)
            values.append(v)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale,
                                                      enable_gqa=True)
            x = self._mlp_and_out(layer, x, attended[0].transpose(0, 1))
        return Prefix(keys, values, self._logits(x[-1:])[0], len(ids))

    def suffix(self, slots: int, capacity: int) -> Suffix:
        return Suffix(len(self.layers), slots, self.kv_heads, self.heads // self.kv_heads,
                      capacity, self.head_dim)

    def step(self, tokens: torch.Tensor, slots: torch.Tensor, written: torch.Tensor,
             groups: list[tuple[Prefix, torch.Tensor | None]], suffix: Suffix) -> torch.Tensor:
        """Logits [rows, vocab] (fp32) after one new token for each row.

        Row i is suffix slot `slots[i]`, which already holds `written[i]` generated tokens
        (its new token is written after them). `groups` covers the rows once: each prompt's
        prefix with the batch positions of its rows (None: all rows).
        """
        rows = tokens.shape[0]
        slot_count, kv, capacity, d = suffix.keys[0].shape
        positions = written.clone()
        for prefix, members in groups:
            if members is None:
                positions += prefix.length
            else:
                positions[members] += prefix.length
        rope = self._rope_tables(positions)
        span = int(written.max()) + 1
        # Where each row's new key goes in the flattened cache, one entry per KV head.
        at = ((slots[:, None] * kv + torch.arange(kv)) * capacity + written[:, None]).view(-1)
        # Which of a slot's suffix entries its row may see: those up to and including its new
        # one; idle slots see one (stale) entry so their softmax stays finite.
        limit = torch.zeros(slot_count, dtype=torch.long)
        limit[slots] = written
        visible = torch.where(torch.arange(span) <= limit[:, None], 0.0, float("-inf"))
        visible = visible[:, None, None, :].expand(slot_count, kv, 1, span).reshape(-1, 1, span)
        full = None if rows == slot_count and bool((slots == torch.arange(rows)).all()) else slots
        x = self.embed[tokens].float()
        for index, layer in enumerate(self.layers):
            q, k, v = self._qkv(layer, x, rope)
            suffix.keys[index].view(-1, d).index_copy_(0, at, k.reshape(-1, d))
            suffix.values[index].view(-1, d).index_copy_(0, at, v.reshape(-1, d).float())
            q = q.reshape(rows, kv, -1, d)
            prefix_out, prefix_lse = self._attend_prefixes(q, groups, index)
            suffix_out, suffix_lse = self._attend_suffix(q, full, suffix, index, span, visible)
            # Two softmaxes over disjoint keys, merged as one: weights e^lse_a : e^lse_b.
            share = torch.sigmoid(prefix_lse - suffix_lse).unsqueeze(-1)
            x = self._mlp_and_out(layer, x, torch.lerp(suffix_out, prefix_out, share))
        return self._logits(x)

    def _attend_prefixes(self, q: torch.Tensor, groups, index: int):
        """Each prompt's rows against its shared prefix: one flash-attention call per prompt,
        its rows' queries stacked into one long query sequence per KV head."""
        rows, kv, g, d = q.shape
        out = lse = None
        for prefix, members in groups:
            part = q if members is None else q[members]
            n = part.shape[0]
            stacked = part.to(ATTENTION_DTYPE).permute(1, 0, 2, 3).reshape(1, kv, n * g, d)
            o, l = _flash_with_lse(stacked, prefix.keys[index], prefix.values[index], 0.0, False,
                                   scale=self.scale)
            o = o.float().reshape(kv, n, g, d).permute(1, 0, 2, 3)
            l = l.reshape(kv, n, g).permute(1, 0, 2)
            if members is None:
                return o, l
            if out is None:
                out, lse = q.new_empty(rows, kv, g, d), q.new_empty(rows, kv, g)
            out[members], lse[members] = o, l
        return out, lse

    def _attend_suffix(self, q: torch.Tensor, slots: torch.Tensor | None, suffix: Suffix,
                       index: int, span: int, visible: torch.Tensor):
        """Every row against its own generated tokens, in fp32. Computed over all slots (idle
        ones on stale queries) so the cache is read in place, never gathered."""
        rows, kv, g, d = q.shape
        slot_count = suffix.keys[index].shape[0]
        full = q if slots is None else suffix.queries.index_copy_(0, slots, q)
        keys = suffix.keys[index][:, :, :span].reshape(-1, span, d)
        values = suffix.values[index][:, :, :span].reshape(-1, span, d)
        scores = torch.baddbmm(visible, full.reshape(-1, g, d), keys.transpose(1, 2),
                               alpha=self.scale)
        weights = torch.softmax(scores, -1)
        out = torch.bmm(weights, values).view(slot_count, kv, g, d)
        # The log-sum-exp from the softmax: its largest weight is e^(max - lse), and at least
        # 1/span, so lse = max - log(largest weight) loses nothing. One fused softmax and two
        # reductions cost a fraction of torch.logsumexp's separate passes.
        lse = (scores.amax(-1) - weights.amax(-1).log_()).view(slot_count, kv, g)
        if slots is None:
            return out, lse
        return out[slots], lse[slots]


def _fold(weight: torch.Tensor, norm: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (weight.float() * norm).to(dtype).contiguous()


def _base_model(model):
    """The transformers model under a peft wrapper (whose LoRA layers `_weight` folds in)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _weight(module) -> torch.Tensor:
    """A linear layer's effective weight [out, in]: a plain Linear's, or a peft LoRA layer's
    base weight plus its active adapters' deltas (unless already merged or disabled)."""
    if type(module) is torch.nn.Linear:
        if module.bias is not None:
            raise Unsupported("a linear layer with a bias")
        return module.weight.detach()
    try:
        from peft.tuners.lora import Linear as LoraLinear
    except ImportError:
        raise Unsupported(f"a {type(module).__name__} layer") from None
    if type(module) is not LoraLinear:
        raise Unsupported(f"a {type(module).__name__} layer")
    base = module.get_base_layer()
    if type(base) is not torch.nn.Linear or base.bias is not None:
        raise Unsupported("a LoRA layer over something other than a bias-free Linear")
    weight = base.weight.detach()
    if module.merged or module.disable_adapters:
        return weight
    for name in module.active_adapters:
        if name in module.lora_A:
            if module.use_dora.get(name, False):
                raise Unsupported("DoRA")
            weight = weight + module.get_delta_weight(name).detach().to(weight.dtype)
    return weight
