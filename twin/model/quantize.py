"""int8 copies of the weights, for generating one token at a time on a CPU.

Decoding a token multiplies one row by every weight matrix: the time goes into reading
the weights, not into arithmetic. An int8 copy with one scale per output row halves
what is read (PyTorch's `_weight_int8pack_mm` computes with it directly), and the
output layer of Gemma (262k x 640) goes from about 28 ms to 14 ms a token. For a
prompt, many rows at once, bf16 matmuls are faster, so the bf16 weight stays and is
used there. The relative error of an int8 product is under 1%.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (values, scales) with weight ~= values * scales[:, None]."""
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-8)
    values = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8)
    return values, scales.to(weight.dtype)


class DecodeLinear(torch.nn.Linear):
    """A Linear that uses its int8 copy for a single row, its own weight otherwise."""

    qweight: torch.Tensor | None
    qscale: torch.Tensor | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qweight is not None and x.shape[:-1].numel() == 1 and x.dtype == self.qscale.dtype:
            y = torch.ops.aten._weight_int8pack_mm(x.reshape(1, -1), self.qweight, self.qscale)
            y = y.reshape(*x.shape[:-1], -1)
            return y + self.bias if self.bias is not None else y
        return F.linear(x, self.weight, self.bias)

    def refresh(self) -> None:
        """Re-make the int8 copy after the bf16 weight changed (an adapter was merged)."""
        self.qweight, self.qscale = int8_rows(self.weight)


def use_int8_for_decoding(model: torch.nn.Module) -> list[DecodeLinear]:
    """Turn every plain Linear of `model` into a DecodeLinear (in place); returns them.

    Only on CPUs: CUDA's bf16 decoding is not short of memory bandwidth the same way."""
    converted = []
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.device.type == "cpu":
            module.__class__ = DecodeLinear
            module.refresh()
            converted.append(module)
    return converted
