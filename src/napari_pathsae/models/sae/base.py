"""The SAE every architecture shares: weights in SAELens's layout, input normalisation, decoding.

Inputs are centred and scaled by one scalar, except outlier dimensions (foundation-model
embeddings have a few massive ones), which are scaled down to a bound so they cannot dominate
the reconstruction loss (see ``train.normalisation_stats``). On save the normalisation is
folded into W_enc, W_dec and b_dec, so the files compute exactly the same features from raw
embeddings with SAELens's formula ``f = act((x - b_dec) @ W_enc + b_enc)``, ``x̂ = f @ W_dec + b_dec``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class SAEConfig:
    """The shape every architecture shares; each architecture's config (registry entry) adds its own fields.

    ``SAEConfig(arch=..., ...)`` builds that architecture's config class, so ``SAEConfig("topk", d_in, d_sae,
    k=8)`` gives a ``TopKConfig`` (callers outside this folder construct configs this way).
    """

    arch: str
    d_in: int
    d_sae: int
    aux_coefficient: float = 1 / 32  # AuxK loss weight (every architecture)
    dead_after: int = 20_000  # inputs without firing after which a latent counts as dead

    def __new__(cls, *args, **kwargs):
        arch = kwargs.get("arch", args[0] if args else None)
        if cls is SAEConfig and arch is not None:  # no arguments: copy/pickle rebuilding an instance
            from .registry import get

            cls = get(arch).config
        return super().__new__(cls)

    def to_dict(self) -> dict:
        return asdict(self)

    def narrow(self, d_sae: int) -> None:
        """The width after ``SAE.keep_latents``; configs with width-bounded fields (k) clamp them too."""
        self.d_sae = d_sae


class SAE(nn.Module):
    """Base: linear encoder/decoder with tied-shape biases; subclasses define ``activate`` and their loss terms
    (``sparsity_loss``, or ``loss_terms`` for other kinds)."""

    def __init__(self, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        w_dec = torch.randn(cfg.d_sae, cfg.d_in)
        w_dec = w_dec / w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.t().clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("input_mean", torch.zeros(cfg.d_in))
        self.register_buffer("input_scale", torch.ones(cfg.d_in))
        self.register_buffer("inputs_since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    # --- normalisation -----------------------------------------------------------------------
    def set_normalisation(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        self.input_mean.copy_(mean)
        self.input_scale.copy_(scale)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_scale

    # --- forward -----------------------------------------------------------------------------
    def pre_activations(self, x_norm: torch.Tensor) -> torch.Tensor:
        return (x_norm - self.b_dec) @ self.W_enc + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode_normalised(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations of raw embeddings (inference form)."""
        return self.inference_activate(self.pre_activations(self.normalise(x)))

    def inference_activate(self, pre: torch.Tensor) -> torch.Tensor:
        return self.activate(pre)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return self.decode_normalised(f) * self.input_scale + self.input_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # --- training ----------------------------------------------------------------------------
    def training_loss(self, x_norm: torch.Tensor) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        """Total loss, its parts, and the activations (for dead-latent bookkeeping)."""
        pre = self.pre_activations(x_norm)
        f = self.activate(pre)
        x_hat = self.decode_normalised(f)
        mse = (x_hat - x_norm).pow(2).mean()
        terms = {"mse": mse, **self.loss_terms(pre, f, x_norm), "aux": self.auxiliary_loss(pre, f, x_norm - x_hat)}
        total = sum(terms.values())
        return total, {name: float(term.detach()) for name, term in terms.items()}, f

    def loss_terms(self, pre: torch.Tensor, f: torch.Tensor, x_norm: torch.Tensor) -> dict[str, torch.Tensor]:
        """The architecture's terms added to the MSE (logged by name): its sparsity penalty by default."""
        return {"sparsity": self.sparsity_loss(pre, f)}

    def sparsity_loss(self, pre: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), device=pre.device)

    def auxiliary_loss(self, pre: torch.Tensor, f: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """AuxK (Gao et al. 2024), for every architecture: the top dead latents must reconstruct what the live
        ones missed, so their directions follow the data back into use. A gradient, not a reset: Anthropic's
        resampling made the ReLU SAE's loss jump from 14 to 360 on the step it ran."""
        dead = self.dead_mask
        n_dead = int(dead.sum())
        if n_dead == 0 or not self.training:
            return torch.zeros((), device=pre.device)
        k_aux = min(self.cfg.d_in // 2, n_dead)
        masked = torch.where(dead, torch.relu(pre), torch.zeros_like(pre))
        values, indices = masked.topk(k_aux, dim=-1)
        aux_f = torch.zeros_like(pre).scatter_(-1, indices, values)
        reconstruction = aux_f @ self.W_dec
        scale = residual.pow(2).mean().clamp_min(1e-8)
        return self.cfg.aux_coefficient * (reconstruction - residual.detach()).pow(2).mean() / scale

    @torch.no_grad()
    def track_firing(self, f: torch.Tensor) -> None:
        fired = (f > 0).any(dim=0)
        self.inputs_since_fired += f.shape[0]
        self.inputs_since_fired[fired] = 0

    @property
    def dead_mask(self) -> torch.Tensor:
        return self.inputs_since_fired >= self.cfg.dead_after

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        """Unit-norm decoder rows (the sparsity penalty cannot shrink f by growing W_dec)."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_gradient(self) -> None:
        """Project out the decoder gradient along each row, so steps keep rows near unit norm."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(dim=1, keepdim=True)
            self.W_dec.grad.sub_(parallel * self.W_dec)

    @torch.no_grad()
    def keep_latents(self, keep: torch.Tensor) -> None:
        """Drop every latent not in the boolean mask ``keep`` (those that never fired on the training data:
        they compute nothing, so every input's activations and reconstruction stay exactly as they were)."""
        for name in ("W_dec", "b_enc", *self._latent_parameters()):
            param = getattr(self, name)
            param.data = param.data[keep].clone()
        self.W_enc.data = self.W_enc.data[:, keep].clone()
        self.inputs_since_fired = self.inputs_since_fired[keep].clone()
        self.cfg.narrow(int(keep.sum()))

    def _latent_parameters(self) -> tuple[str, ...]:
        """Names of the subclass's other per-latent parameters (sliced by ``keep_latents``)."""
        return ()

    # --- files -------------------------------------------------------------------------------
    def threshold_tensor(self) -> torch.Tensor | None:
        """Per-latent threshold for JumpReLU-form inference; None for other architectures."""
        return None

    @torch.no_grad()
    def folded_weights(self) -> dict[str, torch.Tensor]:
        """SAELens-layout weights acting on raw embeddings (normalisation folded in)."""
        mean, scale = self.input_mean, self.input_scale
        weights = {
            "W_enc": (self.W_enc / scale[:, None]).contiguous(),
            "W_dec": (self.W_dec * scale[None, :]).contiguous(),
            "b_enc": self.b_enc.clone(),
            "b_dec": (self.b_dec * scale + mean).contiguous(),
        }
        threshold = self.threshold_tensor()
        if threshold is not None:
            weights["threshold"] = threshold.clone()
        return {k: v.detach().float().cpu() for k, v in weights.items()}
