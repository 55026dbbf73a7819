"""The stacked replica engine: every replica of a run trained as one batched computation.

The R replicas' parameters are stacked along a new leading dimension
(``torch.func.stack_module_state``) and one vmapped functional call of the model computes all R
forward passes at once: vmap turns a convolution over stacked weights into one grouped
convolution with groups = R and a linear layer into one batched matmul, so R small models cost
a few large kernels instead of R times many small ones. The loss is the sum of the replicas'
losses, so each replica's parameters get exactly their own gradient.

One Adam steps the stacked parameters. Adam is elementwise and every replica takes the same
steps at the same rates (they share the schedule), so its moments are each replica's own,
stacked, and its step count (hence its bias correction) is each replica's; its parameter groups
are named as a replica's (``group{g}``, ``decoder``, ``projection``) and DEFT's per-group rates
are set on them. A frozen or closed group gets no gradient in every replica alike, so Adam
leaves it alone as the threads engine does.

Everything else stays with the :class:`~deft_tune.training.replica.Replica` objects: batches, noise
generator (drawn per replica, as a one-replica run draws it), probe batch, information tracker
and hooks. Each replica's model is a view of its slice of the stacked parameters, so its
evaluation, representations and model file read the live weights with no copy. A checkpoint
holds per-replica model and optimizer state dicts exactly as the threads engine writes them, so
either engine resumes the other's checkpoint.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call, stack_module_state, vmap

from deft_tune.config import RunConfig
from deft_tune.model import (
    apply_lr_scales,
    kl_per_latent,
    objective_loss,
    parameter_groups,
    reconstruction_loss,
    run_autocast,
)
from deft_tune.schedules import Position
from deft_tune.training.replica import Replica

__all__ = ["StackedReplicas"]

log = logging.getLogger(__name__)


class StackedReplicas:
    """The replicas of one run trained as one batched computation; see the module docstring.

    Built from the replicas a trainer made (their models initialised, each from its own seed);
    from then on their models' parameters are views of the stacked ones.
    """

    def __init__(self, replicas: Sequence[Replica], config: RunConfig) -> None:
        self.replicas = list(replicas)
        self.config = config
        self.device = self.replicas[0].device
        models = [replica.model for replica in self.replicas]
        names = {id(p): name for name, p in models[0].named_parameters()}
        params, _ = stack_module_state(models)  # no buffers
        self.params: dict[str, torch.Tensor] = params
        for r, model in enumerate(models):
            for name, p in model.named_parameters():
                p.data = params[name].detach()[r]  # the replica's model is a view of its slice
        self.skeleton = copy.deepcopy(models[0]).to("meta")  # the stage; its weights unused
        self._encoder = _prefixed(params, "encoder.")
        self._decoder = _prefixed(params, "decoder.")
        lr = config.training.lr
        groups = [
            {**group, "params": [params[names[id(p)]] for p in group["params"]]}
            for group in parameter_groups(models[0], lr)
        ]
        self.optimizer = torch.optim.Adam(groups, lr=lr)
        count = len(self.replicas)
        self._sums = torch.zeros(count, 3, dtype=torch.float64, device=self.device)
        self._steps_summed = 0
        self._bad_step = torch.full((count,), -1, dtype=torch.int64, device=self.device)
        self._stage: int | None = None

    def enter_stage(self, at: Position) -> None:
        """Open the stage's groups, freeze or slow the earlier ones (a no-op within a stage);
        the replicas enter it on their own (their models, trackers and logs)."""
        if at.stage == self._stage:
            return
        self._stage = at.stage
        self.skeleton.encoder.set_stage(at.stage, freeze=at.freeze)
        apply_lr_scales(self.optimizer, at.lr_scales)

    # --- training ---------------------------------------------------------------------------

    def _encode(
        self, params: dict[str, torch.Tensor], images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = functional_call(self.skeleton.encoder, params, (images,))
        return out[0], out[1]

    def _decode(
        self,
        params: dict[str, torch.Tensor],
        mean: torch.Tensor,
        logvar: torch.Tensor,
        noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = mean + torch.exp(0.5 * logvar) * noise  # as GroupedVAE.forward
        return functional_call(self.skeleton.decoder, params, (z,)), z

    def _terms(
        self,
        output: torch.Tensor,
        images: torch.Tensor,
        mean: torch.Tensor,
        logvar: torch.Tensor,
        z: torch.Tensor,
        at: Position,
    ) -> torch.Tensor:
        """One replica's (loss, reconstruction, KL), as Replica.train_step computes them."""
        recon = reconstruction_loss(output, images, self.config.model.loss)
        kl = kl_per_latent(mean, logvar)
        loss = objective_loss(
            self.config.objective, recon, kl, z, mean, logvar, beta=at.beta, step=at.step
        )
        return torch.stack([loss, recon.mean(), kl.sum(1).mean()])

    def train_step(self, at: Position) -> None:
        """One optimizer step of every replica at ``at`` (the stage must have been entered)."""
        images = torch.stack([replica.batches.next() for replica in self.replicas])
        with run_autocast(self.config, self.device):
            mean, logvar = vmap(self._encode)(self._encoder, images)
            noise = torch.stack([
                torch.randn(mean.shape[1:], generator=replica.noise_generator,
                            device=mean.device, dtype=mean.dtype)
                for replica in self.replicas
            ])  # fmt: skip
            output, z = vmap(self._decode)(self._decoder, mean, logvar, noise)
        terms = vmap(self._terms, in_dims=(0, 0, 0, 0, 0, None))(
            output, images, mean.float(), logvar.float(), z.float(), at
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms[:, 0].sum().backward()  # replicas are independent: each gets its own gradient
        self.optimizer.step()
        terms = terms.detach()
        self._sums += terms
        bad = ~torch.isfinite(terms).all(1) & (self._bad_step < 0)
        self._bad_step = torch.where(bad, at.step, self._bad_step)
        self._steps_summed += 1

    def flush(self) -> None:
        """Hand the losses summed since the last flush to the replicas (before they report)."""
        for r, replica in enumerate(self.replicas):
            replica.add_losses(self._sums[r], self._steps_summed, self._bad_step[r])
        self._sums.zero_()
        self._steps_summed = 0
        self._bad_step.fill_(-1)

    # --- checkpoints: per-replica state, as the threads engine writes it --------------------

    def state_dicts(self) -> list[dict[str, Any]]:
        """Each replica's state dict with its own (unstacked, copied) weights and Adam state."""
        self.flush()
        stacked = self.optimizer.state_dict()
        out = []
        for r, replica in enumerate(self.replicas):
            state = replica.state_dict()
            state["model"] = {k: v.clone() for k, v in state["model"].items()}
            state["optimizer"] = {
                "state": {i: {k: v.clone() if k == "step" else v[r].clone()
                              for k, v in entry.items()}
                          for i, entry in stacked["state"].items()},
                "param_groups": copy.deepcopy(stacked["param_groups"]),
            }  # fmt: skip
            out.append(state)
        return out

    def load_optimizers(self, states: Sequence[dict[str, Any]], at: Position) -> None:
        """Stack the replicas' Adam states (their weights were loaded into the views)."""
        self._stage = None
        self.enter_stage(at)
        first = states[0]
        merged: dict[int, dict[str, torch.Tensor]] = {}
        for i, entry in first["state"].items():
            merged[i] = {}
            for key, value in entry.items():
                parts = [state["state"][i][key] for state in states]
                if key == "step":
                    if any(float(p) != float(value) for p in parts):
                        raise ValueError(f"the replicas' Adam step counts differ ({parts})")
                    merged[i][key] = value.clone()
                else:
                    merged[i][key] = torch.stack(parts).to(self.device)
        self.optimizer.load_state_dict({"state": merged, "param_groups": first["param_groups"]})


def _prefixed(params: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
