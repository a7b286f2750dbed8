"""
Next-item losses over large catalogs: cut (linear) cross-entropy that never materialises the logits, its sampled
variant, the materialised references, and blockwise full-catalog ranking for evaluation.

With a batch of `N` scored positions and a catalog of `V` items, full softmax cross-entropy builds the `N x V` logits,
their log-softmax and, in backward, their gradient: at `N = 256 * 100` and `V = 1M` that is ~95 GB per fp32 copy.
[`linear_cross_entropy`] (Cut Cross-Entropy, Wijmans et al. 2024) computes the same loss and gradients while holding
only one `N x block_size` block of logits at a time: the forward pass streams over catalog blocks with an online
log-sum-exp; the backward pass recomputes each block's logits from the saved log-sum-exp and accumulates the
gradients for the hidden states and the catalog vectors. [`sampled_linear_cross_entropy`] (CCE-) streams the same way
over each position's own candidate set (target plus sampled negatives), which never materialises the `N x K x d`
gathered negative vectors that the sampled softmax (CE-) needs. Both sampled losses also take negatives shared by
groups of positions: one set per sequence (`negatives` of shape `(B, K)` for `(B, T)` targets) or one set for every
position of a batch (`(K,)`). The negative logits are then one `T x K` product per sequence (one `N x K` product) with
`K` vectors, where per-position negatives gather `N x K` of them.
"""

from __future__ import annotations

import importlib.util
import math

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")
IMPLS = ("auto", "torch", "cce")
# Elements of one block of logits when the caller gives no block size. On CPU 2**22 fp32 values (16 MiB) already make
# the per-block overhead of the Python loop negligible; on an accelerator 2**26 (256 MiB) keeps the matmuls large
# enough to fill it (SASRec's 25,600 positions get blocks of 2,621 items), still tiny next to the ~95 GB of logits.
DEFAULT_BLOCK_ELEMENTS = 2**22
DEFAULT_BLOCK_ELEMENTS_ACCELERATOR = 2**26
MIN_BLOCK_SIZE = 256
# The sampled loss gathers `rows x chunk x d` candidate vectors per chunk; its point is to stay far below the
# `rows x (1 + K) x d` that the materialised sampled softmax gathers (twice, with its gradient): a smaller budget.
DEFAULT_CHUNK_ELEMENTS = 2**20
MIN_CHUNK_SIZE = 16
# With a gradient to compute and the default block budget, CCE on CPU takes rows in chunks against the whole catalog
# and computes the gradients in its forward pass (three products per block, as CE, instead of the streamed
# forward-then-recompute's four) when a chunk still holds this many rows; with fewer, re-reading the catalog for every
# chunk costs more than the recomputation saves (measured on CPU: 0.85x the streamed time at 100k items, 1.3x at 1M).
MIN_FUSED_ROWS = 32


def cut_cross_entropy_available() -> bool:
    """Whether the optional `cut-cross-entropy` package (Apple's CUDA kernels for CCE) is importable."""
    return importlib.util.find_spec("cut_cross_entropy") is not None


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")


def _block_elements(tensor: torch.Tensor) -> int:
    return DEFAULT_BLOCK_ELEMENTS if tensor.device.type == "cpu" else DEFAULT_BLOCK_ELEMENTS_ACCELERATOR


def _auto_block_size(
    rows: int,
    width: int,
    block_size: int | None,
    elements: int = DEFAULT_BLOCK_ELEMENTS,
    minimum: int = MIN_BLOCK_SIZE,
) -> int:
    """A block width such that `rows x block` stays near `elements` values, between `minimum` and `width`."""
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"block_size must be a positive integer, got {block_size}.")
        return min(block_size, max(width, 1))
    return max(1, min(max(width, 1), max(minimum, elements // max(rows, 1))))


def _reduce(per_row: torch.Tensor, valid: torch.Tensor, shape: torch.Size, reduction: str) -> torch.Tensor:
    """Applies `reduction` to the losses of the valid rows; `"none"` scatters them back with 0 at ignored rows."""
    if reduction == "sum":
        return per_row.sum()
    if reduction == "mean":
        # As F.cross_entropy: the mean over non-ignored positions, NaN when every position is ignored.
        return per_row.sum() / valid.sum()
    full = per_row.new_zeros(valid.numel())
    full = full.index_copy(0, valid.nonzero().squeeze(1), per_row)
    return full.reshape(shape)


# ------------------------------------------------------------------------------------------------------- full catalog


class LinearCrossEntropyFunction(torch.autograd.Function):
    """
    Per-row cross-entropy of `hidden @ catalog.T` against `targets`, streamed over catalog blocks.

    Inputs are the valid rows only: `hidden [N, d]`, `catalog [V, d]`, `targets [N]` in `[0, V)`. Returns the fp32
    per-row losses `[N]`. Memory beyond inputs and gradients: one `N x block_size` fp32 block and `O(N)` statistics.

    With `fused_rows > 0` the forward pass instead takes `fused_rows` rows at a time against the whole catalog and
    computes the gradients then (as a materialised CE would, one `fused_rows x V` block at a time), for the gradient
    of the per-row losses' sum; the backward pass scales them by the incoming gradient, exact when that is the same
    for every row (`"mean"` and `"sum"`), and otherwise recomputes as the streamed pass does.
    """

    @staticmethod
    def forward(
        ctx, hidden: torch.Tensor, catalog: torch.Tensor, targets: torch.Tensor, block_size: int, fused_rows: int = 0
    ):
        ctx.block_size = block_size
        ctx.fused = None
        if fused_rows > 0:
            return LinearCrossEntropyFunction._fused_forward(ctx, hidden, catalog, targets, fused_rows)
        hidden32 = hidden.float()
        rows = hidden.shape[0]
        running_max = hidden32.new_full((rows,), -math.inf)
        running_sum = hidden32.new_zeros(rows)
        for start in range(0, catalog.shape[0], block_size):
            logits = hidden32 @ catalog[start : start + block_size].float().T
            block_max = logits.amax(dim=1)
            new_max = torch.maximum(running_max, block_max)
            # Online log-sum-exp: rescale the running sum to the new maximum, then add the block (in place, so one
            # block of memory suffices).
            running_sum.mul_(torch.exp(running_max - new_max))
            running_sum.add_(logits.sub_(new_max.unsqueeze(1)).exp_().sum(dim=1))
            running_max = new_max
            del logits  # one block alive at a time: free it before the next matmul allocates
        lse = running_max + torch.log(running_sum)
        target_logits = (hidden32 * catalog[targets].float()).sum(dim=1)
        ctx.save_for_backward(hidden, catalog, targets, lse)
        return lse - target_logits

    @staticmethod
    def _fused_forward(ctx, hidden, catalog, targets, rows_per_chunk):
        need_hidden, need_catalog = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hidden32, catalog32 = hidden.float(), catalog.float()
        rows = hidden.shape[0]
        losses = hidden32.new_empty(rows)
        lse = hidden32.new_empty(rows)
        grad_hidden = torch.empty_like(hidden32) if need_hidden else None
        grad_catalog = torch.zeros_like(catalog32) if need_catalog else None
        for start in range(0, rows, rows_per_chunk):
            stop = min(start + rows_per_chunk, rows)
            chunk, chunk_targets = hidden32[start:stop], targets[start:stop]
            logits = chunk @ catalog32.T
            target_logits = logits.gather(1, chunk_targets.unsqueeze(1)).squeeze(1)
            row_max = logits.amax(dim=1, keepdim=True)
            # d loss_n / d logit_nv = softmax_nv - [v = target_n], built in place of the logits (one block alive).
            grad_logits = logits.sub_(row_max).exp_()
            row_sum = grad_logits.sum(dim=1, keepdim=True)
            grad_logits.div_(row_sum)
            chunk_lse = (row_max + row_sum.log()).squeeze(1)
            lse[start:stop] = chunk_lse
            losses[start:stop] = chunk_lse - target_logits
            grad_logits[torch.arange(stop - start, device=logits.device), chunk_targets] -= 1.0
            if need_hidden:
                torch.mm(grad_logits, catalog32, out=grad_hidden[start:stop])
            if need_catalog:
                grad_catalog.addmm_(grad_logits.T, chunk)
            del logits, grad_logits
        ctx.save_for_backward(hidden, catalog, targets, lse)
        ctx.fused = (grad_hidden, grad_catalog)
        return losses

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        # fp32 maths as in the forward, also when `loss.backward()` is called inside an autocast region (which would
        # otherwise redo the block products in bf16 and mix dtypes in the accumulation).
        with torch.autocast(grad_loss.device.type, enabled=False):
            return LinearCrossEntropyFunction._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx, grad_loss: torch.Tensor):
        if ctx.fused is not None:
            grad_hidden, grad_catalog = ctx.fused
            ctx.fused = None  # the forward's gradients serve one backward; free them with it
            grad = grad_loss.float()
            if grad.numel() == 0 or bool((grad == grad[0]).all()):
                # The same incoming gradient for every row (mean, sum): the forward's gradients, scaled.
                hidden, catalog = ctx.saved_tensors[:2]
                scale = grad[0] if grad.numel() else 0.0
                if grad_hidden is not None:
                    grad_hidden = grad_hidden.mul_(scale).to(hidden.dtype)
                if grad_catalog is not None:
                    grad_catalog = grad_catalog.mul_(scale).to(catalog.dtype)
                return grad_hidden, grad_catalog, None, None, None
            del grad_hidden, grad_catalog  # per-row weights (reduction="none"): recompute, weighting each row
        hidden, catalog, targets, lse = ctx.saved_tensors
        need_hidden, need_catalog = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hidden32 = hidden.float()
        grad = grad_loss.float()
        grad_hidden = torch.zeros_like(hidden32) if need_hidden else None
        grad_catalog = torch.zeros(catalog.shape, dtype=torch.float32, device=catalog.device) if need_catalog else None
        for start in range(0, catalog.shape[0], ctx.block_size):
            block = catalog[start : start + ctx.block_size].float()
            # d loss_n / d logit_nv = softmax_nv - [v = target_n]; the softmax part is recomputed per block from the
            # saved log-sum-exp, scaled by the incoming gradient, and the one-hot part is added once below.
            probs = (hidden32 @ block.T).sub_(lse.unsqueeze(1)).exp_().mul_(grad.unsqueeze(1))
            if need_hidden:
                grad_hidden.addmm_(probs, block)
            if need_catalog:
                grad_catalog[start : start + ctx.block_size] = probs.T @ hidden32
            del probs
        if need_hidden:
            grad_hidden.sub_(catalog[targets].float() * grad.unsqueeze(1))
            grad_hidden = grad_hidden.to(hidden.dtype)
        if need_catalog:
            grad_catalog.index_add_(0, targets, hidden32 * grad.unsqueeze(1), alpha=-1.0)
            grad_catalog = grad_catalog.to(catalog.dtype)
        return grad_hidden, grad_catalog, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    block_size: int | None = None,
    impl: str = "auto",
    filter_eps: float | str | None = None,
) -> torch.Tensor:
    r"""
    Cross-entropy of the logits `hidden @ catalog.T` against `targets`, without materialising the logits (Cut
    Cross-Entropy). Equals `F.cross_entropy((hidden @ catalog.T).float(), targets, ignore_index=..., reduction=...)`
    in value and in the gradients for `hidden` and `catalog`.

    With the pure-PyTorch implementation the forward pass streams over blocks of `block_size` catalog rows, keeping a
    running maximum and sum per row (online log-sum-exp); the backward pass recomputes each block's logits and adds
    its contribution to the gradients. Peak memory beyond the inputs and their gradients is one `N x block_size` fp32
    block instead of several `N x V` tensors, for one extra matmul (the recomputation). On CPU, when a gradient is
    needed and no `block_size` is given, rows are instead taken in chunks against the whole catalog while a chunk of
    the default block budget still holds `MIN_FUSED_ROWS` rows (catalogs up to ~131k items): the forward pass computes
    the gradients as it goes (no recomputation, the products CE does), still one block of logits at a time.

    Args:
        hidden (`torch.Tensor` of shape `(..., d)`):
            The sequence model's output states (e.g. SASRec's hidden state at every position).
        catalog (`torch.Tensor` of shape `(V, d)`):
            The catalog's item vectors: the (tied) output layer.
        targets (`torch.LongTensor` of shape `(...)`):
            Row of `catalog` that is the next item at each position, or `ignore_index` (padding).
        ignore_index (`int`, *optional*, defaults to -100):
            Target value of positions that contribute nothing.
        reduction (`str`, *optional*, defaults to `"mean"`):
            `"mean"` over non-ignored positions (NaN when there are none, as `F.cross_entropy`), `"sum"`, or `"none"`
            (a tensor shaped like `targets`, 0 at ignored positions).
        block_size (`int`, *optional*):
            Catalog rows per block; by default about 2**22 logits per block on CPU (16 MiB in fp32), 2**26 on
            accelerators.
        impl (`str`, *optional*, defaults to `"auto"`):
            `"torch"`: the streaming pure-PyTorch implementation (any device, exact in fp32); `"cce"`: the CUDA
            kernels of the optional `cut-cross-entropy` package, which compute in the 16-bit dtype of their operands
            (its backward takes only bf16/fp16: fp32 `hidden` is cast to the CUDA autocast dtype when autocast is on,
            and refused when a gradient is needed otherwise); `"auto"`: `"cce"` for CUDA tensors in bf16/fp16 or under
            CUDA autocast (`--bf16`) when that package is installed, `"torch"` otherwise (so fp32 training stays
            exact).
        filter_eps (`float`, `str` or `None`, *optional*):
            Passed to `cut-cross-entropy` (`impl="cce"`): its gradient filtering skips blocks whose softmax is below
            this value. The default `None` keeps the kernel exact; `"auto"` is the package's (bf16-oriented) default.

    Returns:
        `torch.Tensor`: the fp32 loss (a scalar, or shaped like `targets` with `reduction="none"`).
    """
    _check_reduction(reduction)
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}.")
    if catalog.ndim != 2 or hidden.shape[-1] != catalog.shape[1]:
        raise ValueError(
            f"hidden (..., d) and catalog (V, d) must agree in d, got {tuple(hidden.shape)}, {tuple(catalog.shape)}."
        )
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(f"targets must have shape {tuple(hidden.shape[:-1])}, got {tuple(targets.shape)}.")
    kernel_dtype = _kernel_dtype(hidden)
    if impl == "auto":
        impl = "cce" if kernel_dtype is not None and cut_cross_entropy_available() else "torch"
    if impl == "cce":
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or catalog.requires_grad)
        if hidden.is_cuda and kernel_dtype is None and needs_grad:
            raise ValueError(
                "impl='cce': the cut-cross-entropy kernel's backward takes only bf16/fp16 operands, got "
                f"{hidden.dtype} outside autocast; train with --bf16, pass 16-bit tensors, or use impl='torch'."
            )
        return _cut_cross_entropy_kernel(
            hidden.to(kernel_dtype or hidden.dtype), catalog, targets, ignore_index, reduction, filter_eps
        )

    flat_targets = targets.reshape(-1)
    valid = flat_targets != ignore_index
    rows = valid.nonzero().squeeze(1)
    valid_targets = flat_targets[rows]
    if valid_targets.numel() and (int(valid_targets.min()) < 0 or int(valid_targets.max()) >= catalog.shape[0]):
        raise IndexError(f"targets must lie in [0, {catalog.shape[0]}) or equal ignore_index={ignore_index}.")
    valid_hidden = hidden.reshape(-1, hidden.shape[-1])[rows]
    block = _auto_block_size(rows.numel(), catalog.shape[0], block_size, _block_elements(hidden))
    fused_rows = 0
    if block_size is None and hidden.device.type == "cpu":
        needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or catalog.requires_grad)
        chunk_rows = DEFAULT_BLOCK_ELEMENTS // max(catalog.shape[0], 1)
        fused_rows = chunk_rows if needs_grad and chunk_rows >= min(MIN_FUSED_ROWS, rows.numel()) else 0
    # fp32 maths on the given operands, also under --bf16 (autocast would redo the block products in bf16).
    with torch.autocast(hidden.device.type, enabled=False):
        per_row = LinearCrossEntropyFunction.apply(valid_hidden, catalog, valid_targets, block, fused_rows)
    return _reduce(per_row, valid, targets.shape, reduction)


def _kernel_dtype(hidden: torch.Tensor) -> torch.dtype | None:
    """The 16-bit dtype the cut-cross-entropy kernel would compute `hidden` in, or `None` (not CUDA, or fp32)."""
    if not hidden.is_cuda:
        return None
    if hidden.dtype in (torch.float16, torch.bfloat16):
        return hidden.dtype
    if torch.is_autocast_enabled("cuda"):
        # Under autocast the logits `hidden @ catalog.T` would be a 16-bit matmul: the kernel computes the same.
        dtype = torch.get_autocast_dtype("cuda")
        return dtype if dtype in (torch.float16, torch.bfloat16) else None
    return None


def _cut_cross_entropy_kernel(hidden, catalog, targets, ignore_index, reduction, filter_eps) -> torch.Tensor:
    if not hidden.is_cuda:
        raise ValueError("impl='cce' runs the cut-cross-entropy CUDA kernels: pass CUDA tensors.")
    if not cut_cross_entropy_available():
        raise ImportError("impl='cce' needs the optional package `cut-cross-entropy` (pip install cut-cross-entropy).")
    from cut_cross_entropy import linear_cross_entropy as cce_linear_cross_entropy

    # The kernels want one dtype for both operands; the loss is returned in fp32 like the PyTorch path.
    catalog = catalog.to(hidden.dtype)
    loss = cce_linear_cross_entropy(
        hidden, catalog, targets, ignore_index=ignore_index, reduction=reduction, filter_eps=filter_eps, impl="cce"
    )
    return loss.float()


# ------------------------------------------------------------------------------------------------ sampled candidates


def _shares_negatives(targets: torch.Tensor, negatives: torch.Tensor) -> bool:
    """
    Whether the negative sets are shared: `negatives` of shape `targets.shape[:j] + (K,)` with `j < targets.ndim` is
    one set per index of the first `j` axes, shared by the positions along the others (`(K,)`: one set for every
    position; `(B, K)` for `(B, T)` targets: a set per sequence), where `targets.shape + (K,)` is a set per position.
    """
    axes = negatives.ndim - 1
    return axes < targets.ndim and tuple(negatives.shape[:-1]) == tuple(targets.shape[:axes])


def _grouped_candidates(
    targets: torch.Tensor,
    negatives: torch.Tensor,
    negative_mask: torch.Tensor | None,
    ignore_index: int,
    remove_accidental_hits: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Shared negatives in groups: the targets `[G, R]` (R positions per set of negatives), the sets `[G, K]` (padding,
    negative values, clamped to 0), which negatives each position keeps `[G, R, K]` (none at ignored positions) and
    the validity of every position `[G, R]`.
    """
    if negative_mask is not None and tuple(negative_mask.shape) != (*targets.shape, negatives.shape[-1]):
        raise ValueError(
            f"negative_mask must have shape {(*targets.shape, negatives.shape[-1])} (positions x shared negatives), "
            f"got {tuple(negative_mask.shape)}."
        )
    axes = negatives.ndim - 1
    group_negatives = negatives.reshape(math.prod(negatives.shape[:-1]), negatives.shape[-1])
    group_targets = targets.reshape(group_negatives.shape[0], math.prod(targets.shape[axes:]))
    valid = group_targets != ignore_index
    keep = valid.unsqueeze(2) & (group_negatives >= 0).unsqueeze(1)
    if negative_mask is not None:
        keep = keep & negative_mask.reshape(keep.shape).bool()
    if remove_accidental_hits:
        keep = keep & (group_negatives.unsqueeze(1) != group_targets.unsqueeze(2))
    return group_targets, group_negatives.clamp(min=0), keep, valid


def _check_rows(catalog: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> None:
    if (targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= catalog.shape[0])) or (
        negatives.numel() and int(negatives.max()) >= catalog.shape[0]
    ):
        raise IndexError(f"targets and negatives must lie in [0, {catalog.shape[0]}) (targets may be ignore_index).")


def _candidates(
    targets: torch.Tensor,
    negatives: torch.Tensor,
    negative_mask: torch.Tensor | None,
    ignore_index: int,
    remove_accidental_hits: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flattens targets and negatives into the valid rows' candidate indices `[n, 1 + K]` (target first) and mask."""
    if negatives.ndim != targets.ndim + 1 or tuple(negatives.shape[:-1]) != tuple(targets.shape):
        raise ValueError(
            f"negatives must have shape {tuple(targets.shape)} + (K,) (a set per position), or a prefix of it + (K,) "
            f"(a set shared along the remaining axes), got {tuple(negatives.shape)}."
        )
    if negative_mask is not None and negative_mask.shape != negatives.shape:
        raise ValueError(f"negative_mask must have the shape of negatives {tuple(negatives.shape)}.")
    flat_targets = targets.reshape(-1)
    valid = flat_targets != ignore_index
    rows = valid.nonzero().squeeze(1)
    row_targets = flat_targets[rows]
    row_negatives = negatives.reshape(-1, negatives.shape[-1])[rows]
    keep = row_negatives >= 0
    if negative_mask is not None:
        keep &= negative_mask.reshape(-1, negatives.shape[-1])[rows].bool()
    if remove_accidental_hits:
        keep &= row_negatives != row_targets.unsqueeze(1)
    candidates = torch.cat([row_targets.unsqueeze(1), row_negatives.clamp(min=0)], dim=1)
    mask = torch.cat([torch.ones_like(keep[:, :1]), keep], dim=1)
    return candidates, mask, valid, rows


class SampledLinearCrossEntropyFunction(torch.autograd.Function):
    """
    Per-row cross-entropy over each row's own candidates (`candidates[:, 0]` the target), streamed over candidate
    chunks: `hidden [n, d]`, `catalog [V, d]`, `candidates [n, C]` rows of `catalog`, `mask [n, C]` (False = not a
    candidate). Memory beyond inputs and gradients: one `n x chunk x d` gather at a time.
    """

    @staticmethod
    def forward(ctx, hidden, catalog, candidates, mask, chunk):
        hidden32 = hidden.float()
        rows = hidden.shape[0]
        running_max = hidden32.new_full((rows,), -math.inf)
        running_sum = hidden32.new_zeros(rows)
        for start in range(0, candidates.shape[1], chunk):
            logits = SampledLinearCrossEntropyFunction._logits(hidden32, catalog, candidates, mask, start, chunk)
            new_max = torch.maximum(running_max, logits.amax(dim=1))
            running_sum.mul_(torch.exp(running_max - new_max))
            running_sum.add_(logits.sub_(new_max.unsqueeze(1)).exp_().sum(dim=1))
            running_max = new_max
            del logits
        lse = running_max + torch.log(running_sum)
        target_logits = (hidden32 * catalog[candidates[:, 0]].float()).sum(dim=1)
        ctx.save_for_backward(hidden, catalog, candidates, mask, lse)
        ctx.chunk = chunk
        return lse - target_logits

    @staticmethod
    def _logits(hidden32, catalog, candidates, mask, start, chunk):
        vectors = catalog[candidates[:, start : start + chunk]].float()  # [n, c, d]
        logits = torch.bmm(vectors, hidden32.unsqueeze(2)).squeeze(2)
        return logits.masked_fill_(~mask[:, start : start + chunk], -math.inf)

    @staticmethod
    def backward(ctx, grad_loss):
        # fp32 maths also when `loss.backward()` runs inside an autocast region (see LinearCrossEntropyFunction).
        with torch.autocast(grad_loss.device.type, enabled=False):
            return SampledLinearCrossEntropyFunction._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx, grad_loss):
        hidden, catalog, candidates, mask, lse = ctx.saved_tensors
        need_hidden, need_catalog = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hidden32 = hidden.float()
        grad = grad_loss.float()
        grad_hidden = torch.zeros_like(hidden32) if need_hidden else None
        grad_catalog = torch.zeros(catalog.shape, dtype=torch.float32, device=catalog.device) if need_catalog else None
        for start in range(0, candidates.shape[1], ctx.chunk):
            index = candidates[:, start : start + ctx.chunk]
            vectors = catalog[index].float()
            logits = torch.bmm(vectors, hidden32.unsqueeze(2)).squeeze(2)
            logits.masked_fill_(~mask[:, start : start + ctx.chunk], -math.inf)
            probs = logits.sub_(lse.unsqueeze(1)).exp_().mul_(grad.unsqueeze(1))  # masked -> exp(-inf) = 0
            if need_hidden:
                grad_hidden.add_(torch.bmm(probs.unsqueeze(1), vectors).squeeze(1))
            if need_catalog:
                # A candidate drawn several times (or by several rows) receives the sum of its contributions.
                contributions = probs.unsqueeze(2) * hidden32.unsqueeze(1)
                grad_catalog.index_add_(0, index.reshape(-1), contributions.reshape(-1, hidden32.shape[1]))
                del contributions
            del vectors, logits, probs
        targets = candidates[:, 0]
        if need_hidden:
            grad_hidden.sub_(catalog[targets].float() * grad.unsqueeze(1))
            grad_hidden = grad_hidden.to(hidden.dtype)
        if need_catalog:
            grad_catalog.index_add_(0, targets, hidden32 * grad.unsqueeze(1), alpha=-1.0)
            grad_catalog = grad_catalog.to(catalog.dtype)
        return grad_hidden, grad_catalog, None, None, None


class GroupedNegativesCrossEntropyFunction(torch.autograd.Function):
    """
    Per-position cross-entropy of the target's logit against it plus `K` negatives shared by a group of positions,
    streamed over chunks of groups (or of one group's positions): `hidden [G, R, d]`, `target_vectors [G, R, d]`,
    `negative_vectors [G, K, d]` (group g's negatives), `keep [G, R, K]` (False = not a candidate of that position).
    The negative logits are one `R x K` product per group instead of `R x K` gathered vectors. Memory beyond inputs
    and gradients: one `groups x rows x K` block of logits at a time.
    """

    @staticmethod
    def forward(ctx, hidden, target_vectors, negative_vectors, keep, group_chunk, row_chunk):
        hidden32, negative32 = hidden.float(), negative_vectors.float()
        target_logits = (hidden32 * target_vectors.float()).sum(dim=2)
        lse = torch.empty_like(target_logits)
        for groups, rows in _group_blocks(hidden.shape[0], hidden.shape[1], group_chunk, row_chunk):
            logits = torch.bmm(hidden32[groups, rows], negative32[groups].transpose(1, 2))
            logits.masked_fill_(~keep[groups, rows], -math.inf)
            lse[groups, rows] = torch.logaddexp(target_logits[groups, rows], torch.logsumexp(logits, dim=2))
            del logits
        ctx.save_for_backward(hidden, target_vectors, negative_vectors, keep, lse, target_logits)
        ctx.chunks = (group_chunk, row_chunk)
        return lse - target_logits

    @staticmethod
    def backward(ctx, grad_loss):
        # fp32 maths also when `loss.backward()` runs inside an autocast region (see LinearCrossEntropyFunction).
        with torch.autocast(grad_loss.device.type, enabled=False):
            return GroupedNegativesCrossEntropyFunction._backward(ctx, grad_loss)

    @staticmethod
    def _backward(ctx, grad_loss):
        hidden, target_vectors, negative_vectors, keep, lse, target_logits = ctx.saved_tensors
        hidden32, target32, negative32 = hidden.float(), target_vectors.float(), negative_vectors.float()
        grad = grad_loss.float()
        # d loss / d target logit = p_target - 1, per position, times the incoming gradient.
        target_weight = ((torch.exp(target_logits - lse) - 1.0) * grad).unsqueeze(2)
        grad_hidden = target32 * target_weight
        grad_negative = torch.zeros_like(negative32)
        for groups, rows in _group_blocks(hidden.shape[0], hidden.shape[1], *ctx.chunks):
            logits = torch.bmm(hidden32[groups, rows], negative32[groups].transpose(1, 2))
            logits.masked_fill_(~keep[groups, rows], -math.inf)
            probs = logits.sub_(lse[groups, rows].unsqueeze(2)).exp_().mul_(grad[groups, rows].unsqueeze(2))
            grad_hidden[groups, rows] += torch.bmm(probs, negative32[groups])
            grad_negative[groups] += torch.bmm(probs.transpose(1, 2), hidden32[groups, rows])
            del logits, probs
        grad_target = hidden32 * target_weight
        return (
            grad_hidden.to(hidden.dtype),
            grad_target.to(target_vectors.dtype),
            grad_negative.to(negative_vectors.dtype),
            None,
            None,
            None,
        )


def _group_blocks(num_groups: int, num_rows: int, group_chunk: int, row_chunk: int):
    """Slices `(groups, rows)` covering `[num_groups, num_rows]`: whole groups `group_chunk` at a time, or rows."""
    for group_start in range(0, num_groups, group_chunk):
        groups = slice(group_start, group_start + group_chunk)
        for row_start in range(0, num_rows, row_chunk):
            yield groups, slice(row_start, row_start + row_chunk)


def _grouped_sampled_loss(hidden, catalog, targets, negatives, negative_mask, ignore_index, reduction,
                          remove_accidental_hits, stream: bool, block_size: int | None = None):  # fmt: skip
    """CE- (the `[G, R, 1 + K]` logits materialised) or CCE- (`stream`, chunks) with negatives shared in groups."""
    group_targets, group_negatives, keep, valid = _grouped_candidates(
        targets, negatives, negative_mask, ignore_index, remove_accidental_hits
    )
    _check_rows(catalog, group_targets[valid], group_negatives)
    dim = hidden.shape[-1]
    if group_targets.shape[0] == 1:
        # One set for every position: only the valid positions are scored, as with per-position negatives.
        rows = valid[0].nonzero().squeeze(1)
        group_targets, keep = group_targets[:, rows], keep[:, rows]
        group_hidden = hidden.reshape(-1, dim)[rows].unsqueeze(0)
    else:
        # A set per sequence keeps the [G, R] layout for its batched products; ignored positions are scored with a
        # zero state and a valid row's vector, so that neither their state nor their target can reach the result.
        group_hidden = hidden.reshape(*group_targets.shape, dim)
        group_hidden = torch.where(valid.unsqueeze(2), group_hidden, group_hidden.new_zeros(()))
        group_targets = torch.where(valid, group_targets, 0)
    num_groups, num_rows = group_targets.shape
    with torch.autocast(hidden.device.type, enabled=False):
        # Ignored positions keep no negative (`keep`): their loss is 0 and their gradient too.
        target_vectors, negative_vectors = catalog[group_targets], catalog[group_negatives]
        if not stream:
            hidden32 = group_hidden.float()
            target_logits = (hidden32 * target_vectors.float()).sum(dim=2, keepdim=True)
            negative_logits = torch.bmm(hidden32, negative_vectors.float().transpose(1, 2)).masked_fill(
                ~keep, -math.inf
            )
            logits = torch.cat([target_logits, negative_logits], dim=2).reshape(-1, 1 + group_negatives.shape[1])
            per_position = F.cross_entropy(
                logits, logits.new_zeros(logits.shape[0], dtype=torch.long), reduction="none"
            )
        else:
            # About DEFAULT_CHUNK_ELEMENTS logits per chunk (`block_size` positions): whole groups when they fit.
            rows = _auto_block_size(
                group_negatives.shape[1], num_groups * num_rows, block_size, DEFAULT_CHUNK_ELEMENTS, 1
            )
            group_chunk, row_chunk = (rows // max(num_rows, 1), max(num_rows, 1)) if rows >= num_rows else (1, rows)
            per_position = GroupedNegativesCrossEntropyFunction.apply(
                group_hidden, target_vectors, negative_vectors, keep, group_chunk, row_chunk
            )
    flat_valid = valid.reshape(-1)
    per_position = per_position.reshape(-1)
    return _reduce(per_position if num_groups == 1 else per_position[flat_valid], flat_valid, targets.shape, reduction)


def sampled_linear_cross_entropy(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    negative_mask: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    remove_accidental_hits: bool = True,
    block_size: int | None = None,
) -> torch.Tensor:
    r"""
    Sampled softmax cross-entropy (CE-) streamed like Cut Cross-Entropy (CCE-): for every position, the cross-entropy
    of the target's logit against the target plus that position's negatives, without materialising the gathered
    negative vectors `[N, K, d]` or the logits `[N, 1 + K]` at once. Equals [`sampled_cross_entropy`] in value and
    gradients.

    Args:
        hidden (`torch.Tensor` of shape `(..., d)`): output states.
        catalog (`torch.Tensor` of shape `(V, d)`): item vectors that targets and negatives index.
        targets (`torch.LongTensor` of shape `(...)`): target rows of `catalog`, or `ignore_index`.
        negatives (`torch.LongTensor`): negative rows of `catalog`, negative values being padding (not candidates):
            `targets.shape + (K,)`, a set per position; or `targets.shape[:j] + (K,)` with `j < targets.ndim`, a set
            shared by the positions along the remaining axes (`(B, K)` for `(B, T)` targets: one set per sequence;
            `(K,)`: one set for every position).
        negative_mask (`torch.BoolTensor` of shape `targets.shape + (K,)`, *optional*): False removes a negative of a
            position (e.g. an accidental hit that the caller detected by item identity); also for shared negatives.
        ignore_index (`int`, *optional*, defaults to -100): target value of positions that contribute nothing.
        reduction (`str`, *optional*, defaults to `"mean"`): `"mean"`, `"sum"` or `"none"` ([`linear_cross_entropy`]).
        remove_accidental_hits (`bool`, *optional*, defaults to `True`): masks negatives equal to the position's
            target row, which is an accidental hit whenever the rows of `catalog` are distinct items.
        block_size (`int`, *optional*): candidates per chunk; by default about 2**20 gathered values (at least 16
            candidates) per chunk. With shared negatives: positions per chunk, by default about 2**20 logits per
            chunk (whole groups when they fit).
    """
    _check_reduction(reduction)
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(f"targets must have shape {tuple(hidden.shape[:-1])}, got {tuple(targets.shape)}.")
    if _shares_negatives(targets, negatives):
        return _grouped_sampled_loss(hidden, catalog, targets, negatives, negative_mask, ignore_index, reduction,
                                     remove_accidental_hits, True, block_size)  # fmt: skip
    candidates, mask, valid, rows = _candidates(
        targets, negatives, negative_mask, ignore_index, remove_accidental_hits
    )
    _check_rows(catalog, candidates[:, 0], candidates)
    valid_hidden = hidden.reshape(-1, hidden.shape[-1])[rows]
    chunk = _auto_block_size(
        rows.numel() * hidden.shape[-1], candidates.shape[1], block_size, DEFAULT_CHUNK_ELEMENTS, MIN_CHUNK_SIZE
    )
    with torch.autocast(hidden.device.type, enabled=False):
        per_row = SampledLinearCrossEntropyFunction.apply(valid_hidden, catalog, candidates, mask, chunk)
    return _reduce(per_row, valid, targets.shape, reduction)


def sampled_cross_entropy(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    negative_mask: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    remove_accidental_hits: bool = True,
) -> torch.Tensor:
    """
    The materialised sampled softmax (CE-): logits `[n, 1 + K]` of the target and the negatives (masked ones at
    `-inf`), cross-entropy against column 0. Arguments as [`sampled_linear_cross_entropy`].
    """
    _check_reduction(reduction)
    if _shares_negatives(targets, negatives):
        return _grouped_sampled_loss(hidden, catalog, targets, negatives, negative_mask, ignore_index, reduction,
                                     remove_accidental_hits, False)  # fmt: skip
    candidates, mask, valid, rows = _candidates(
        targets, negatives, negative_mask, ignore_index, remove_accidental_hits
    )
    valid_hidden = hidden.reshape(-1, hidden.shape[-1])[rows].float()
    with torch.autocast(hidden.device.type, enabled=False):
        logits = torch.einsum("nd,ncd->nc", valid_hidden, catalog[candidates].float()).masked_fill(~mask, -math.inf)
    per_row = F.cross_entropy(logits, logits.new_zeros(logits.shape[0], dtype=torch.long), reduction="none")
    return _reduce(per_row, valid, targets.shape, reduction)


def sampled_binary_cross_entropy(
    hidden: torch.Tensor,
    catalog: torch.Tensor,
    targets: torch.Tensor,
    negatives: torch.Tensor,
    *,
    negative_mask: torch.Tensor | None = None,
    ignore_index: int = -100,
    remove_accidental_hits: bool = True,
) -> torch.Tensor:
    """
    SASRec's original loss: binary cross-entropy of the target's logit against 1 and of each negative's against 0,
    `mean_positions(-log sigmoid(s_target)) + mean_negatives(-log(1 - sigmoid(s_negative)))` over valid positions and
    valid negatives (with one negative per position exactly SASRec's). Arguments as [`sampled_linear_cross_entropy`].
    """
    candidates, mask, _, rows = _candidates(targets, negatives, negative_mask, ignore_index, remove_accidental_hits)
    valid_hidden = hidden.reshape(-1, hidden.shape[-1])[rows].float()
    with torch.autocast(hidden.device.type, enabled=False):
        logits = torch.einsum("nd,ncd->nc", valid_hidden, catalog[candidates].float())
    positive = F.softplus(-logits[:, 0]).mean()
    negative_mask = mask[:, 1:]
    negative = F.softplus(logits[:, 1:])[negative_mask].sum() / negative_mask.sum().clamp(min=1)
    return positive + negative


__all__ = [
    "GroupedNegativesCrossEntropyFunction",
    "LinearCrossEntropyFunction",
    "SampledLinearCrossEntropyFunction",
    "cut_cross_entropy_available",
    "linear_cross_entropy",
    "sampled_binary_cross_entropy",
    "sampled_cross_entropy",
    "sampled_linear_cross_entropy",
]
