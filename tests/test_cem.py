"""CEM planner: finds known minima, respects bounds, uses the prior, is reproducible."""

from __future__ import annotations

import pytest
import torch

from vjepa_cli.plan import CEMConfig, cem_plan, energy_l1


def _quadratic(target: torch.Tensor, seen: list | None = None):
    """pred[s, h] = (a[s, h] - target[h])^2, goal 0: the 'sum' energy is sum_h mean_A (a_h - t_h)^2."""

    def rollout(z0, actions):  # (S, H, A) -> (S, H, A)
        if seen is not None:
            seen.append(actions.clone())
        return (actions - target) ** 2

    return rollout


def test_cem_finds_quadratic_minimum():
    target = torch.tensor([[0.3, -0.5, 0.1], [-0.2, 0.4, 0.7]])  # (H=2, A=3)
    cfg = CEMConfig(low=(-1.0,) * 3, high=(1.0,) * 3, horizon=2, samples=200, topk=20, iterations=15,
                    energy="sum", momentum_mean=0.1, momentum_std=0.1)
    res = cem_plan(_quadratic(target), None, torch.zeros(3), cfg, torch.Generator().manual_seed(0))
    assert res.actions.shape == (2, 3)
    assert torch.allclose(res.actions, target, atol=0.02)
    assert res.energy < 1e-3
    assert len(res.history) == 15
    assert res.history[-1]["best"] <= res.history[0]["best"]
    assert 0 < res.confidence <= 1


def test_cem_final_energy_point_mass():
    """Integrator z_{t+1} = z_t + a_t: the final-frame energy is minimised when the actions sum to goal - z0."""
    z0, goal = torch.tensor([0.0, 0.0]), torch.tensor([0.5, -0.3])

    def rollout(z, actions):  # (S, H, 2) -> (S, H, 2)
        return z + actions.cumsum(1)

    cfg = CEMConfig(low=(-0.3, -0.3), high=(0.3, 0.3), horizon=3, samples=256, topk=16, iterations=12)
    res = cem_plan(rollout, z0, goal, cfg, torch.Generator().manual_seed(1))
    assert torch.allclose(res.actions.sum(0), goal, atol=0.03)
    assert energy_l1(rollout(z0, res.actions[None]), goal).item() == pytest.approx(res.energy, abs=1e-6)


def test_cem_respects_bounds_everywhere():
    seen: list = []
    target = torch.tensor([[2.0, -3.0]])  # outside the box: the optimum is the corner
    cfg = CEMConfig(low=(-0.5, -0.1), high=(0.5, 0.2), horizon=1, samples=64, topk=8, iterations=5,
                    energy="sum", init_std=(5.0, 5.0))
    res = cem_plan(_quadratic(target, seen), None, torch.zeros(2), cfg, torch.Generator().manual_seed(0))
    allx = torch.cat(seen)
    assert (allx[..., 0] >= -0.5).all() and (allx[..., 0] <= 0.5).all()
    assert (allx[..., 1] >= -0.1).all() and (allx[..., 1] <= 0.2).all()
    assert torch.allclose(res.actions, torch.tensor([[0.5, -0.1]]), atol=1e-3)


def test_cem_init_mean_prior_and_reproducible():
    target = torch.tensor([[0.6]])
    cfg = CEMConfig(low=(-1.0,), high=(1.0,), horizon=1, samples=16, topk=4, iterations=1, energy="sum",
                    init_std=(1e-4,), momentum_mean=0.0)
    # tiny std: the result stays at the prior, proving the mean starts there
    res = cem_plan(_quadratic(target), None, torch.zeros(1), cfg, torch.Generator().manual_seed(0),
                   init_mean=torch.tensor([-0.7]))
    assert res.actions.item() == pytest.approx(-0.7, abs=1e-3)
    cfg2 = CEMConfig(low=(-1.0,), high=(1.0,), horizon=1, samples=16, topk=4, iterations=3, chunk=5)
    a = cem_plan(_quadratic(target), None, torch.zeros(1), cfg2, torch.Generator().manual_seed(3))
    b = cem_plan(_quadratic(target), None, torch.zeros(1), cfg2, torch.Generator().manual_seed(3))
    assert torch.equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="init_mean"):
        cem_plan(_quadratic(target), None, torch.zeros(1), cfg2, torch.Generator(), init_mean=torch.zeros(3, 2))


def test_confidence_reflects_elite_spread():
    flat = lambda z, a: torch.zeros(a.shape[0], a.shape[1], 1)  # noqa: E731  every plan equally good
    cfg = CEMConfig(low=(-1.0,), high=(1.0,), horizon=1, samples=8, topk=4, iterations=1)
    res = cem_plan(flat, None, torch.zeros(1), cfg, torch.Generator().manual_seed(0))
    assert res.elite_spread == 0.0 and res.confidence == 1.0


@pytest.mark.parametrize("kw", [dict(low=(0.0,), high=(0.0,)), dict(topk=500), dict(horizon=0),
                                dict(momentum_mean=1.0), dict(low=(0.0, 1.0), high=(1.0,)),
                                dict(init_std=(0.0,))])
def test_cem_config_validation(kw):
    with pytest.raises(ValueError):
        CEMConfig(**kw)
