"""The PyTorch mirror of the gollm TypeScript engine (runtime/reference.ts).

One module, both architectures, selected by :class:`config.ModelConfig`:

- ``llama``: RMSNorm, RoPE (``half`` = HF ``rotate_half``: dim i paired with i + head_dim/2;
  ``interleaved`` = Meta / llama2.c adjacent pairs (2i, 2i+1)), grouped-query attention,
  SwiGLU MLP ``w2(silu(w1 x) * w3 x)``, optional q/k/v bias (Qwen2), no other biases.
- ``gpt2``: LayerNorm with bias, learned position embeddings, GELU (tanh approximation,
  HF ``gelu_new``), bias on every linear layer.
- the fields of issue #10 (``llama`` only; see core/config.ts): RoPE scaling (``linear``,
  ``llama3``, ``yarn``, ``rope_freq_factors``; :func:`rope_inv_freq` mirrors core/rope.ts),
  partial rotary (``rope_dimension_count``), per-head q/k RMSNorm (``qk_norm``, Qwen3/Gemma 3),
  GeGLU (``mlp: geglu``), sandwich norms (``post_norms``), ``embed_scale``,
  ``query_pre_attn_scalar``, attention and final soft-capping, per-layer sliding windows
  (``sliding_window`` + ``layer_types``) and Gemma 3's local RoPE base. python/test_model_arch.py
  checks this mirror against transformers' logits on tests/fixtures/hf.

``state_dict()`` keys are exactly the canonical tensor names of docs/DESIGN.md "Tensor names"
(``tok_embeddings.weight``, ``layers.{i}.attn.wq.weight``, ..., ``norm.weight``,
``output.weight`` only when ``tie_embeddings`` is false), so a state dict can be written to
safetensors as is. Follows llama2.c ``model.py`` (Karpathy) and nanoGPT for structure.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from config import ModelConfig, layer_window


class RMSNorm(nn.Module):
    """Root-mean-square norm: ``x / sqrt(mean(x²) + eps) * weight`` (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., dim) → (..., dim). Computed in float32."""
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).type_as(x)


def _norm(c: ModelConfig) -> nn.Module:
    if c.norm == "rmsnorm":
        return RMSNorm(c.dim, c.norm_eps)
    return nn.LayerNorm(c.dim, eps=c.norm_eps, bias=True)


def rope_inv_freq(c: ModelConfig, local: bool = False, context: int | None = None) -> torch.Tensor:
    """The RoPE inverse frequencies (mirror of core/rope.ts ``ropeInvFreq``), float64.

    ``theta^(-2i/d)`` for i in [0, d/2), d = ``rope_dimension_count``, then the config's scaling:
    ``linear`` divides by the factor; ``llama3`` keeps wavelengths below ``orig / high``,
    divides those above ``orig / low`` and blends between; ``yarn`` ramps from the base
    frequencies (pairs below the beta_fast correction dim) to the divided ones (above
    beta_slow's); ``rope_freq_factors`` divide pair by pair; ``longrope`` divides by
    ``rope_long_factors`` when ``context`` (default ``context_length``) exceeds
    ``rope_original_context_length``, else by ``rope_short_factors`` (core/rope.ts
    ``longropeFactors``). ``local``: Gemma 3's sliding layers, base ``rope_local_base_freq``, unscaled.

    Returns:
        (d/2) float64.
    """
    d = c.rope_dimension_count
    theta = (c.rope_local_base_freq or c.rope_theta) if local else c.rope_theta
    base = theta ** (-torch.arange(d // 2, dtype=torch.float64) * 2 / d)  # (d/2)
    base = base.float().double()  # rounded to f32 like HF's inv_freq buffer and core/rope.ts
    if local:
        return base
    f = c.rope_scaling_factor
    if c.rope_scaling in ("none", "linear"):
        out = base / (f if c.rope_scaling == "linear" else 1.0)
        if c.rope_freq_factors is not None:
            out = out / torch.tensor(c.rope_freq_factors, dtype=torch.float64)
        return out
    orig = c.rope_original_context_length
    if c.rope_scaling == "longrope":
        ctx = c.context_length if context is None else context
        ext = c.rope_long_factors if ctx > orig else c.rope_short_factors
        return base / torch.tensor(ext, dtype=torch.float64)
    if c.rope_scaling == "llama3":
        low, high = c.rope_low_freq_factor, c.rope_high_freq_factor
        wavelen = 2 * math.pi / base
        smooth = (orig / wavelen - low) / (high - low)
        blended = (1 - smooth) * base / f + smooth * base
        out = torch.where(wavelen > orig / low, base / f, blended)
        return torch.where(wavelen < orig / high, base, out)
    # yarn (transformers _compute_yarn_parameters, truncate=True)
    def corr_dim(rot: float) -> float:
        return d * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))

    lo = max(math.floor(corr_dim(c.rope_yarn_beta_fast)), 0)
    hi = min(math.ceil(corr_dim(c.rope_yarn_beta_slow)), d - 1)
    if lo == hi:
        hi += 0.001
    ramp = ((torch.arange(d // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(0, 1)
    return base / f * ramp + base * (1 - ramp)


def rope_tables(
    c: ModelConfig, n_pos: int, device: torch.device | None = None, local: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles, computed in float64 then cast to float32.

    Angle of pair i at position p: ``p * inv_freq[i]`` (:func:`rope_inv_freq`); both are
    multiplied by ``rope_attn_factor`` (yarn's attention factor; 1 otherwise and for ``local``).

    Returns:
        ``(cos, sin)``, each (n_pos, rope_dimension_count/2) float32.
    """
    inv = rope_inv_freq(c, local)  # (rd/2)
    m = 1.0 if local else c.rope_attn_factor
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]  # (n_pos, rd/2)
    return (torch.cos(ang) * m).float().to(device), (torch.sin(ang) * m).float().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, style: str) -> torch.Tensor:
    """Rotate query/key heads: the first ``rd = 2 * cos.shape[-1]`` dims of each head (all of
    them unless partial rotary); the rest pass through.

    Args:
        x: (batch, heads, seq, head_dim).
        cos, sin: (seq, rd/2) for the positions of ``x``.
        style: ``half`` (pairs (i, i+rd/2)) or ``interleaved`` (pairs (2i, 2i+1)).

    Returns:
        (batch, heads, seq, head_dim), same dtype as ``x``.
    """
    rd = 2 * cos.shape[-1]
    if rd < x.shape[-1]:
        return torch.cat((apply_rope(x[..., :rd], cos, sin, style), x[..., rd:]), dim=-1)
    xf = x.float()
    if style == "half":
        h = xf.shape[-1] // 2
        a, b = xf[..., :h], xf[..., h:]
        out = torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    else:
        a, b = xf[..., 0::2], xf[..., 1::2]
        out = torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    return out.type_as(x)


class Attention(nn.Module):
    """Causal multi-head attention with grouped-query KV heads (query head h reads KV head
    ``h // (n_heads / n_kv_heads)``), via ``F.scaled_dot_product_attention``; explicitly
    (scores, soft-cap, window mask, softmax) when the layer soft-caps or slides."""

    def __init__(self, c: ModelConfig, dropout: float = 0.0, window: int | None = None) -> None:
        super().__init__()
        self.c = c
        gpt2 = c.arch == "gpt2"
        self.wq = nn.Linear(c.dim, c.q_dim, bias=c.attn_bias)  # (q_dim, dim)
        self.wk = nn.Linear(c.dim, c.kv_dim, bias=c.attn_bias)  # (kv_dim, dim)
        self.wv = nn.Linear(c.dim, c.kv_dim, bias=c.attn_bias)  # (kv_dim, dim)
        if c.qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.norm_eps)  # (head_dim), shared by the heads
            self.k_norm = RMSNorm(c.head_dim, c.norm_eps)
        self.wo = nn.Linear(c.q_dim, c.dim, bias=gpt2)  # (dim, q_dim)
        self.dropout = dropout
        self.window = window  # this layer's sliding window (config.layer_window), or None
        self.scale = c.query_pre_attn_scalar**-0.5

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, seq, dim); cos/sin: (seq, rope_dim/2) or None (gpt2) → (batch, seq, dim)."""
        c = self.c
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, c.n_heads, c.head_dim)  # (b, t, n_heads, head_dim)
        k = self.wk(x).view(b, t, c.n_kv_heads, c.head_dim)  # (b, t, n_kv_heads, head_dim)
        v = self.wv(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)  # (b, n_kv_heads, t, head_dim)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)  # per head, before RoPE (Qwen3, Gemma 3)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (b, heads, t, head_dim)
        if cos is not None and sin is not None:
            q = apply_rope(q, cos, sin, c.rope_style)
            k = apply_rope(k, cos, sin, c.rope_style)
        if c.n_kv_heads != c.n_heads:
            rep = c.n_heads // c.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)  # (b, n_heads, t, head_dim)
            v = v.repeat_interleave(rep, dim=1)
        drop = self.dropout if self.training else 0.0
        cap = c.attn_logit_softcapping
        if cap is None and self.window is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop, scale=self.scale)
        else:
            att = (q @ k.transpose(-2, -1)) * self.scale  # (b, n_heads, t, t)
            if cap is not None:
                att = cap * torch.tanh(att / cap)
            p = torch.arange(t, device=x.device)
            seen = p[None, :] <= p[:, None]  # causal: key u <= query p
            if self.window is not None:
                seen = seen & (p[None, :] > p[:, None] - self.window)  # u in p - W + 1 .. p
            att = att.masked_fill(~seen, float("-inf")).softmax(-1)
            y = F.dropout(att, drop) @ v  # (b, n_heads, t, head_dim)
        return self.wo(y.transpose(1, 2).reshape(b, t, c.q_dim))


class FeedForward(nn.Module):
    """SwiGLU ``w2(silu(w1 x) * w3 x)`` (llama), GeGLU ``w2(gelu_tanh(w1 x) * w3 x)`` (Gemma)
    or ``w2(gelu_tanh(w1 x))`` (gpt2, with biases)."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        gpt2 = c.arch == "gpt2"
        self.mlp = c.mlp
        self.w1 = nn.Linear(c.dim, c.hidden_dim, bias=gpt2)  # (hidden_dim, dim)
        if self.mlp != "gelu":
            self.w3 = nn.Linear(c.dim, c.hidden_dim, bias=False)  # (hidden_dim, dim)
        self.w2 = nn.Linear(c.hidden_dim, c.dim, bias=gpt2)  # (dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, dim) → (batch, seq, dim)."""
        if self.mlp == "swiglu":
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        if self.mlp == "geglu":
            return self.w2(F.gelu(self.w1(x), approximate="tanh") * self.w3(x))
        return self.w2(F.gelu(self.w1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(attn_norm(x))`` then ``x + ffn(ffn_norm(x))``;
    with ``post_norms`` (Gemma's sandwich) each sublayer's output is normed before the add."""

    def __init__(self, c: ModelConfig, dropout: float = 0.0, layer: int = 0) -> None:
        super().__init__()
        self.attn_norm = _norm(c)
        self.attn = Attention(c, dropout, layer_window(c, layer))
        if c.post_norms:
            self.attn_post_norm = _norm(c)
        self.ffn_norm = _norm(c)
        self.ffn = FeedForward(c)
        if c.post_norms:
            self.ffn_post_norm = _norm(c)
        self.post_norms = c.post_norms
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, seq, dim) → (batch, seq, dim)."""
        a = self.attn(self.attn_norm(x), cos, sin)
        x = x + self.drop(self.attn_post_norm(a) if self.post_norms else a)
        f = self.ffn(self.ffn_norm(x))
        return x + self.drop(self.ffn_post_norm(f) if self.post_norms else f)


class Transformer(nn.Module):
    """Decoder-only transformer with canonical tensor names (see module docstring).

    Example:
        >>> from config import parse_config
        >>> c = parse_config({"arch": "llama", "vocab_size": 64, "dim": 32, "n_layers": 1,
        ...     "n_heads": 4, "hidden_dim": 48, "context_length": 16, "norm": "rmsnorm",
        ...     "norm_eps": 1e-5, "mlp": "swiglu", "tie_embeddings": True}, "<doc>")
        >>> Transformer(c)(torch.zeros(1, 5, dtype=torch.long)).shape
        torch.Size([1, 5, 64])
    """

    def __init__(self, c: ModelConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = c
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim)  # (vocab_size, dim)
        if c.arch == "gpt2":
            self.pos_embeddings = nn.Embedding(c.context_length, c.dim)  # (context_length, dim)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(Block(c, dropout, i) for i in range(c.n_layers))
        self.norm = _norm(c)
        if not c.tie_embeddings:
            self.output = nn.Linear(c.dim, c.vocab_size, bias=False)  # (vocab_size, dim)
        if c.arch == "llama":
            cos, sin = rope_tables(c, c.context_length)
            self.register_buffer("rope_cos", cos, persistent=False)  # (context_length, rope_dim/2)
            self.register_buffer("rope_sin", sin, persistent=False)
            if c.rope_local_base_freq is not None:  # Gemma 3's sliding layers
                cos, sin = rope_tables(c, c.context_length, local=True)
                self.register_buffer("rope_cos_local", cos, persistent=False)
                self.register_buffer("rope_sin_local", sin, persistent=False)
        self.local = [c.rope_local_base_freq is not None and layer_window(c, i) is not None for i in range(c.n_layers)]
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """GPT-2 style init: N(0, std) matrices/embeddings, residual projections scaled by
        1/sqrt(2·n_layers), zero biases, unit norm weights."""
        for name, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * self.config.n_layers) if name.endswith(("wo.weight", "w2.weight")) else std
                nn.init.normal_(p, 0.0, s)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.ones_(p)

    def lm_head_weight(self) -> torch.Tensor:
        """(vocab_size, dim): ``output.weight``, or ``tok_embeddings.weight`` when tied."""
        return self.tok_embeddings.weight if self.config.tie_embeddings else self.output.weight

    def forward(self, tokens: torch.Tensor, pos: int = 0) -> torch.Tensor:
        """Logits of every position.

        Args:
            tokens: (batch, seq) int64 token ids, each in [0, vocab_size).
            pos: Absolute position of ``tokens[:, 0]`` (the model is stateless, so this only
                offsets RoPE / position embeddings; attention sees only ``tokens``).

        Returns:
            (batch, seq, vocab_size) logits.

        Raises:
            ValueError: when ``pos + seq`` exceeds ``context_length``.
        """
        c = self.config
        _, t = tokens.shape
        if pos + t > c.context_length:
            raise ValueError(f"positions {pos}..{pos + t - 1} exceed context_length {c.context_length}")
        x = self.tok_embeddings(tokens)  # (b, t, dim)
        if c.embed_scale != 1:
            x = x * torch.tensor(c.embed_scale, dtype=x.dtype)  # Gemma: sqrt(dim) in the model's dtype
        cos = sin = cos_l = sin_l = None
        if c.arch == "gpt2":
            x = x + self.pos_embeddings(torch.arange(pos, pos + t, device=tokens.device))
        else:
            cos, sin = self.rope_cos[pos : pos + t], self.rope_sin[pos : pos + t]  # (t, rope_dim/2)
            if c.rope_local_base_freq is not None:
                cos_l, sin_l = self.rope_cos_local[pos : pos + t], self.rope_sin_local[pos : pos + t]
        x = self.drop(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos_l, sin_l) if self.local[i] else layer(x, cos, sin)
        x = self.norm(x)
        logits = F.linear(x, self.lm_head_weight())  # (b, t, vocab_size)
        cap = c.final_logit_softcapping
        return logits if cap is None else cap * torch.tanh(logits / cap)

    def canonical_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under the canonical names (docs/DESIGN.md "Tensor names"), contiguous,
        detached, in checkpoint order.
        With tied embeddings there is no ``output.weight`` (never a duplicate)."""
        return {k: v.detach().contiguous() for k, v in self.state_dict().items()}

    @torch.no_grad()
    def generate_greedy(self, tokens: list[int], n: int) -> list[int]:
        """Greedy decoding (argmax, lowest id on ties) of ``n`` new tokens after ``tokens``.
        Recomputes the whole prefix each step (no KV cache), within ``context_length``."""
        ids = list(tokens)
        dev = self.tok_embeddings.weight.device
        for _ in range(n):
            ctx = ids[-self.config.context_length :]
            logits = self(torch.tensor([ctx], dtype=torch.long, device=dev))[0, -1]
            ids.append(int(torch.argmax(logits)))
        return ids[len(tokens) :]


def expected_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Canonical tensor names and shapes for a config (mirror of core/weights.ts ``expectedShapes``)."""
    gpt2, ln = c.arch == "gpt2", c.norm == "layernorm"
    m: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (c.vocab_size, c.dim)}
    if gpt2:
        m["pos_embeddings.weight"] = (c.context_length, c.dim)
    for i in range(c.n_layers):
        p = f"layers.{i}."
        m[p + "attn_norm.weight"] = (c.dim,)
        if ln:
            m[p + "attn_norm.bias"] = (c.dim,)
        m[p + "attn.wq.weight"] = (c.q_dim, c.dim)
        if c.attn_bias:
            m[p + "attn.wq.bias"] = (c.q_dim,)
        m[p + "attn.wk.weight"] = (c.kv_dim, c.dim)
        if c.attn_bias:
            m[p + "attn.wk.bias"] = (c.kv_dim,)
        m[p + "attn.wv.weight"] = (c.kv_dim, c.dim)
        if c.attn_bias:
            m[p + "attn.wv.bias"] = (c.kv_dim,)
        if c.qk_norm:
            m[p + "attn.q_norm.weight"] = (c.head_dim,)
            m[p + "attn.k_norm.weight"] = (c.head_dim,)
        m[p + "attn.wo.weight"] = (c.dim, c.q_dim)
        if gpt2:
            m[p + "attn.wo.bias"] = (c.dim,)
        if c.post_norms:
            m[p + "attn_post_norm.weight"] = (c.dim,)
        m[p + "ffn_norm.weight"] = (c.dim,)
        if ln:
            m[p + "ffn_norm.bias"] = (c.dim,)
        m[p + "ffn.w1.weight"] = (c.hidden_dim, c.dim)
        if gpt2:
            m[p + "ffn.w1.bias"] = (c.hidden_dim,)
        if c.mlp != "gelu":
            m[p + "ffn.w3.weight"] = (c.hidden_dim, c.dim)
        m[p + "ffn.w2.weight"] = (c.dim, c.hidden_dim)
        if gpt2:
            m[p + "ffn.w2.bias"] = (c.dim,)
        if c.post_norms:
            m[p + "ffn_post_norm.weight"] = (c.dim,)
    m["norm.weight"] = (c.dim,)
    if ln:
        m["norm.bias"] = (c.dim,)
    if not c.tie_embeddings:
        m["output.weight"] = (c.vocab_size, c.dim)
    return m


def parameter_count(c: ModelConfig) -> int:
    """Scalar parameters of a model with this config (tied output counted once)."""
    return sum(math.prod(s) for s in expected_shapes(c).values())
