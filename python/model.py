"""The PyTorch mirror of the gollm TypeScript engine (runtime/reference.ts).

One module, both architectures, selected by :class:`config.ModelConfig`:

- ``llama``: RMSNorm, RoPE (``half`` = HF ``rotate_half``: dim i paired with i + head_dim/2;
  ``interleaved`` = Meta / llama2.c adjacent pairs (2i, 2i+1)), grouped-query attention,
  SwiGLU MLP ``w2(silu(w1 x) * w3 x)``, optional q/k/v bias (Qwen2), no other biases.
- ``gpt2``: LayerNorm with bias, learned position embeddings, GELU (tanh approximation,
  HF ``gelu_new``), bias on every linear layer.

``state_dict()`` keys are exactly DESIGN.md's canonical tensor names
(``tok_embeddings.weight``, ``layers.{i}.attn.wq.weight``, ..., ``norm.weight``,
``output.weight`` only when ``tie_embeddings`` is false), so a state dict can be written to
safetensors as is. Follows llama2.c ``model.py`` (Karpathy) and nanoGPT for structure.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from config import ModelConfig


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


def rope_tables(c: ModelConfig, n_pos: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles, computed in float64 then cast to float32.

    Angle of frequency index i at position p: ``p * theta^(-2i/head_dim)``, i in [0, head_dim/2).

    Returns:
        ``(cos, sin)``, each (n_pos, head_dim/2) float32.
    """
    half = c.head_dim // 2
    inv = c.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / c.head_dim)  # (half)
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]  # (n_pos, half)
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, style: str) -> torch.Tensor:
    """Rotate query/key heads.

    Args:
        x: (batch, heads, seq, head_dim).
        cos, sin: (seq, head_dim/2) for the positions of ``x``.
        style: ``half`` (pairs (i, i+head_dim/2)) or ``interleaved`` (pairs (2i, 2i+1)).

    Returns:
        (batch, heads, seq, head_dim), same dtype as ``x``.
    """
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
    ``h // (n_heads / n_kv_heads)``), via ``F.scaled_dot_product_attention``."""

    def __init__(self, c: ModelConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.c = c
        gpt2 = c.arch == "gpt2"
        self.wq = nn.Linear(c.dim, c.q_dim, bias=c.attn_bias)  # (q_dim, dim)
        self.wk = nn.Linear(c.dim, c.kv_dim, bias=c.attn_bias)  # (kv_dim, dim)
        self.wv = nn.Linear(c.dim, c.kv_dim, bias=c.attn_bias)  # (kv_dim, dim)
        self.wo = nn.Linear(c.q_dim, c.dim, bias=gpt2)  # (dim, q_dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, seq, dim); cos/sin: (seq, head_dim/2) or None (gpt2) → (batch, seq, dim)."""
        c = self.c
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, c.n_heads, c.head_dim).transpose(1, 2)  # (b, n_heads, t, head_dim)
        k = self.wk(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)  # (b, n_kv_heads, t, head_dim)
        v = self.wv(x).view(b, t, c.n_kv_heads, c.head_dim).transpose(1, 2)  # (b, n_kv_heads, t, head_dim)
        if cos is not None and sin is not None:
            q = apply_rope(q, cos, sin, c.rope_style)
            k = apply_rope(k, cos, sin, c.rope_style)
        if c.n_kv_heads != c.n_heads:
            rep = c.n_heads // c.n_kv_heads
            k = k.repeat_interleave(rep, dim=1)  # (b, n_heads, t, head_dim)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (b, n_heads, t, head_dim)
        return self.wo(y.transpose(1, 2).reshape(b, t, c.q_dim))


class FeedForward(nn.Module):
    """SwiGLU ``w2(silu(w1 x) * w3 x)`` (llama) or ``w2(gelu_tanh(w1 x))`` (gpt2, with biases)."""

    def __init__(self, c: ModelConfig) -> None:
        super().__init__()
        gpt2 = c.arch == "gpt2"
        self.swiglu = c.mlp == "swiglu"
        self.w1 = nn.Linear(c.dim, c.hidden_dim, bias=gpt2)  # (hidden_dim, dim)
        if self.swiglu:
            self.w3 = nn.Linear(c.dim, c.hidden_dim, bias=False)  # (hidden_dim, dim)
        self.w2 = nn.Linear(c.hidden_dim, c.dim, bias=gpt2)  # (dim, hidden_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, seq, dim) → (batch, seq, dim)."""
        if self.swiglu:
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        return self.w2(F.gelu(self.w1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(attn_norm(x))`` then ``x + ffn(ffn_norm(x))``."""

    def __init__(self, c: ModelConfig, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn_norm = _norm(c)
        self.attn = Attention(c, dropout)
        self.ffn_norm = _norm(c)
        self.ffn = FeedForward(c)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None) -> torch.Tensor:
        """x: (batch, seq, dim) → (batch, seq, dim)."""
        x = x + self.drop(self.attn(self.attn_norm(x), cos, sin))
        return x + self.drop(self.ffn(self.ffn_norm(x)))


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
        self.layers = nn.ModuleList(Block(c, dropout) for _ in range(c.n_layers))
        self.norm = _norm(c)
        if not c.tie_embeddings:
            self.output = nn.Linear(c.dim, c.vocab_size, bias=False)  # (vocab_size, dim)
        if c.arch == "llama":
            cos, sin = rope_tables(c, c.context_length)
            self.register_buffer("rope_cos", cos, persistent=False)  # (context_length, head_dim/2)
            self.register_buffer("rope_sin", sin, persistent=False)
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
        cos = sin = None
        if c.arch == "gpt2":
            x = x + self.pos_embeddings(torch.arange(pos, pos + t, device=tokens.device))
        else:
            cos, sin = self.rope_cos[pos : pos + t], self.rope_sin[pos : pos + t]  # (t, head_dim/2)
        x = self.drop(x)
        for layer in self.layers:
            x = layer(x, cos, sin)
        x = self.norm(x)
        return F.linear(x, self.lm_head_weight())  # (b, t, vocab_size)

    def canonical_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under DESIGN.md names, contiguous, detached, in checkpoint order.
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
        m[p + "attn.wo.weight"] = (c.dim, c.q_dim)
        if gpt2:
            m[p + "attn.wo.bias"] = (c.dim,)
        m[p + "ffn_norm.weight"] = (c.dim,)
        if ln:
            m[p + "ffn_norm.bias"] = (c.dim,)
        m[p + "ffn.w1.weight"] = (c.hidden_dim, c.dim)
        if gpt2:
            m[p + "ffn.w1.bias"] = (c.hidden_dim,)
        if c.mlp == "swiglu":
            m[p + "ffn.w3.weight"] = (c.hidden_dim, c.dim)
        m[p + "ffn.w2.weight"] = (c.dim, c.hidden_dim)
        if gpt2:
            m[p + "ffn.w2.bias"] = (c.dim,)
    m["norm.weight"] = (c.dim,)
    if ln:
        m["norm.bias"] = (c.dim,)
    if not c.tie_embeddings:
        m["output.weight"] = (c.vocab_size, c.dim)
    return m


def parameter_count(c: ModelConfig) -> int:
    """Scalar parameters of a model with this config (tied output counted once)."""
    return sum(math.prod(s) for s in expected_shapes(c).values())
