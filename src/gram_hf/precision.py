"""Mixed precision that runs on every CPU.

`--bf16` on a CPU trains under `torch.autocast("cpu", dtype=torch.bfloat16)`. Most ops then run in bf16 everywhere,
but torch sends an autocast LSTM/GRU to oneDNN's bf16 RNN primitive, which exists only on CPUs with native bf16
(AVX512-BF16 or AMX); elsewhere (e.g. an AVX2-only CPU) the forward fails with "could not create a primitive
descriptor for the LSTM forward propagation primitive". [`run_recurrent`] runs a recurrent module in the autocast
dtype where the machine can, and in fp32 with autocast off where it cannot, so that `--bf16` trains on any CPU.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast casts to on `device_type`, or `None` when autocast is off there."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


@functools.cache
def cpu_autocast_supports_recurrent(dtype: torch.dtype) -> bool:
    """
    Whether this CPU runs an LSTM forward and backward under `torch.autocast("cpu", dtype=dtype)`.

    Probed once per process with a 4-unit LSTM on two steps: capability flags do not tell (oneDNN can be capped below
    the hardware with `ONEDNN_MAX_CPU_ISA`, and torch's own check accepts CPUs whose oneDNN build then refuses the
    primitive), so the probe runs exactly the call that would fail.
    """
    lstm = nn.LSTM(4, 4, batch_first=True)
    inputs = torch.zeros(1, 2, 4, requires_grad=True)
    try:
        with torch.enable_grad(), torch.autocast("cpu", dtype=dtype):
            states, _ = lstm(inputs)
        states.float().sum().backward()
    except RuntimeError as error:
        logger.info(
            "This CPU has no %s kernel for recurrent layers under autocast (%s); they run in float32.",
            dtype,
            str(error).splitlines()[0],
        )
        return False
    return True


def run_recurrent(module: nn.RNNBase, inputs: torch.Tensor, *args, **kwargs):
    r"""
    Calls a recurrent `module` (`nn.LSTM`, `nn.GRU`, `nn.RNN`) so that it runs on any CPU under mixed precision.

    Outside CPU autocast, or on a CPU with a kernel for the autocast dtype, this is `module(inputs, *args, **kwargs)`.
    Otherwise the module runs in float32 with autocast off (the inputs, and any initial state in `args`/`kwargs`, are
    cast to float32) and returns float32 outputs; the layers after it autocast again as usual. The module's weights
    must then be float32, as they are under the Trainer's `--bf16` (fp32 master weights).

    Args:
        module (`nn.RNNBase`): the recurrent layer.
        inputs (`torch.Tensor`): its input sequence.
        *args, **kwargs: passed on to the module (e.g. the initial state).

    Returns:
        What `module` returns.
    """
    dtype = _autocast_dtype("cpu") if inputs.device.type == "cpu" else None
    if dtype is None or dtype == torch.float32 or cpu_autocast_supports_recurrent(dtype):
        return module(inputs, *args, **kwargs)
    weight_dtypes = {parameter.dtype for parameter in module.parameters()}
    if weight_dtypes - {torch.float32}:
        raise ValueError(
            f"{type(module).__name__} has {sorted(map(str, weight_dtypes))} weights, but this CPU has no {dtype} "
            "kernel for recurrent layers under autocast, so they must run in float32: keep the model's weights in "
            "float32 (the Trainer's --bf16 does) or train on a GPU."
        )
    with torch.autocast("cpu", enabled=False):
        return module(inputs.float(), *_to_float(args), **_to_float(kwargs))


def _to_float(value):
    """`value` with its floating-point tensors (also inside tuples, lists and dicts) cast to float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_float(item) for key, item in value.items()}
    return value
