"""The training methods by name: what each does, which options it reads, and their defaults.

``SpikingClassifier`` and the experiment cells both train through ``METHODS[name].fit``, so a
method has one set of defaults wherever it runs. The defaults are read from the signatures of
``fit_cvx``, ``train_sg``, ``fine_tune`` and ``fit_search``, so they are written once. Adding a method means
adding one ``Method`` to ``METHODS`` here (with its fit function, here or in its own module).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from .._validation import check_choice, check_int, check_positive
from ..convex.penalties import get_penalty
from ..snn import ParallelSNN
from ..snn.grown import GrownSNN
from .heads import Head
from .methods import fine_tune, fit_cvx, fit_sg, fit_sg_cvx
from .report import FitReport
from .search import GENERATORS, fit_search, make_generators
from .sg import Augment, train_sg


def _defaults(fn: Callable, keys: tuple[str, ...]) -> dict:
    params = inspect.signature(fn).parameters
    return {k: params[k].default for k in keys}


# option -> default, grouped by the stage that reads it
CVX_OPTIONS = _defaults(fit_cvx, ("penalty", "n_regs", "min_ratio", "tol", "grid", "witness",
                                  "witness_scale"))
SG_OPTIONS = _defaults(train_sg, ("epochs", "lrs", "batch_size", "weight_decay", "path_norm_reg", "patience"))
# the fine-tuning stage of a hybrid: its learning rates; its other SG options are the SG ones
FINE_TUNE_OPTIONS = {"ft_lrs": inspect.signature(fine_tune).parameters["lrs"].default}
_READOUT_KEYS = ("penalty", "n_regs", "min_ratio", "tol")  # the convex stage of SG-CVX (no sampling, no grid)
_FS = inspect.signature(fit_search).parameters
_MG = inspect.signature(make_generators).parameters
# the witness search: reg as a share of reg_max, rounds, the generators by name and their
# candidates (and ascent steps) per round, the wall-clock budget of the search, columns added per round
SEARCH_OPTIONS = dict(reg_ratio=_FS["reg_ratio"].default, search_rounds=_FS["max_rounds"].default,
                      generators=("ascent",), search_candidates=_MG["candidates"].default,
                      search_steps=_MG["steps"].default, search_seconds=_FS["max_seconds"].default,
                      max_add=_FS["max_add"].default)
_SEARCH_CONVEX_KEYS = ("penalty", "tol")
_FT_SG_KEYS = ("epochs", "batch_size", "weight_decay", "path_norm_reg", "patience")

Split = tuple  # (X, y, X_val, y_val)


@dataclass(frozen=True)
class Method:
    """One training method.

    Attributes:
        name: the registry key ("cvx", "sg", ...).
        summary: one line on what it does.
        certified: True when the returned network's readout is a certified convex solution (its
            report carries a certificate per head).
        options: every option the method reads, with its default.
        run: the function behind ``fit``.
    """

    name: str
    summary: str
    certified: bool
    options: Mapping[str, object]
    run: Callable[..., tuple[ParallelSNN | GrownSNN, FitReport]]

    def resolve(self, options: Mapping[str, object]) -> dict:
        """The defaults updated with ``options``; unknown option names are a ValueError."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"method {self.name!r} has no option(s) {unknown}; "
                             f"it reads {sorted(self.options)}")
        return dict(self.options) | dict(options)

    def fit(self, X_train, y_train, X_val, y_val, net_kwargs: dict, heads: list[Head] | None = None, *,
            seed: int = 0, fine_tune_split: Split | None = None, augment: Augment | None = None,
            progress: bool = False, device: str | torch.device | None = None, distributed=None,
            **options) -> tuple[ParallelSNN | GrownSNN, FitReport]:
        """Train; returns (network, report).

        Args:
            X_train, y_train, X_val, y_val: the training and validation splits (labels: one
                array per head, or a single array for the default head).
            net_kwargs: ``ParallelSNN`` arguments without d_in / n_out.
            heads: the output heads (default: ``default_heads`` of ``y_train``).
            fine_tune_split: (X, y, X_val, y_val) of the fine-tuning stage of a hybrid (default:
                fine-tune on the validation split, validate on the training split).
            augment: transforms every training mini-batch of the SG stages (see ``train_sg``).
            options: the method's ``options``, overriding their defaults.
            distributed: True (the default torch.distributed group) or a process group: the
                training splits (``X_train`` and the fine-tuning split's training part) are this
                rank's rows; the validation splits are the same on every rank. Methods that
                cannot run distributed raise ValueError.
        """
        opts = self.resolve(options)
        split = (X_train, y_train, X_val, y_val)
        ft_split = fine_tune_split if fine_tune_split is not None else (X_val, y_val, X_train, y_train)
        if len(ft_split) != 4:
            raise ValueError(f"fine_tune_split must be (X, y, X_val, y_val), got {len(ft_split)} items")
        if distributed is None or distributed is False:
            return self.run(split, ft_split, net_kwargs, heads, seed, opts, augment, progress, device)
        if "distributed" not in inspect.signature(self.run).parameters:
            raise ValueError(f"method {self.name!r} does not run distributed")
        return self.run(split, ft_split, net_kwargs, heads, seed, opts, augment, progress, device,
                        distributed=distributed)


def _pick(opts: dict, keys) -> dict:
    return {k: opts[k] for k in keys}


def _sg_kw(opts: dict, augment) -> dict:
    return dict(_pick(opts, SG_OPTIONS), lrs=tuple(opts["lrs"]), augment=augment)


def _run_cvx(split, ft_split, net_kw, heads, seed, opts, augment, progress, device, distributed=None):
    return fit_cvx(*split, net_kw, heads=heads, seed=seed, progress=progress, device=device,
                   distributed=distributed, **_pick(opts, CVX_OPTIONS))


def _run_sg(split, ft_split, net_kw, heads, seed, opts, augment, progress, device, distributed=None):
    return fit_sg(*split, net_kw, heads=heads, seed=seed, progress=progress, device=device,
                  distributed=distributed, **_sg_kw(opts, augment))


def _run_sg_cvx(split, ft_split, net_kw, heads, seed, opts, augment, progress, device, distributed=None):
    return fit_sg_cvx(*split, net_kw, heads=heads, seed=seed, progress=progress, device=device,
                      distributed=distributed, sg_kwargs=_sg_kw(opts, augment), **_pick(opts, _READOUT_KEYS))


def _check_search(opts: dict) -> None:
    """ValueError / TypeError naming the search option whose value is invalid."""
    get_penalty(opts["penalty"])
    check_positive("tol", opts["tol"])
    check_positive("reg_ratio", opts["reg_ratio"])
    for name in ("search_rounds", "search_candidates", "max_add"):
        check_int(name, opts[name])
    check_int("search_steps", opts["search_steps"], minimum=0)
    if opts["search_seconds"] is not None:
        check_positive("search_seconds", opts["search_seconds"])
    names = opts["generators"]
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise TypeError(f"generators must be a non-empty list of names among {GENERATORS}, got {names!r}")
    for name in names:
        check_choice("generators", name, GENERATORS)


def _search_kw(opts: dict, seed: int, scale: float) -> dict:
    _check_search(opts)
    gens = make_generators(opts["generators"], opts["search_candidates"], opts["search_steps"], scale, seed)
    return dict(_pick(opts, _SEARCH_CONVEX_KEYS), generators=gens, reg_ratio=opts["reg_ratio"],
                max_rounds=opts["search_rounds"], max_seconds=opts["search_seconds"], max_add=opts["max_add"])


def _run_cvx_search(split, ft_split, net_kw, heads, seed, opts, augment, progress, device):
    return fit_search(*split, net_kw, heads=heads, seed=seed, progress=progress, device=device,
                      witness=opts["witness"], witness_scale=opts["witness_scale"],
                      **_search_kw(opts, seed, opts["witness_scale"]))


def _run_sg_cvx_search(split, ft_split, net_kw, heads, seed, opts, augment, progress, device):
    _check_search(opts)  # before the SG stage
    sg_net, sg_rep = fit_sg(*split, net_kw, heads=heads, seed=seed, progress=progress, device=device,
                            **_sg_kw(opts, augment))
    kw = dict(net_kw, beta=sg_net.beta, threshold=sg_net.threshold)
    model, rep = fit_search(*split, kw, heads=heads, witness_net=sg_net, seed=seed, progress=progress,
                            device=device, **_search_kw(opts, seed, 1.0))
    rep.sg_stage = sg_rep
    rep.time_total += sg_rep.time_total
    return model, rep


def _fine_tuned(name: str, first: Callable):
    """A hybrid: ``first`` trains on ``split``, then SG fine-tunes on ``ft_split``."""

    def run(split, ft_split, net_kw, heads, seed, opts, augment, progress, device, distributed=None):
        net, rep = first(split, ft_split, net_kw, heads, seed, opts, augment, progress, device,
                         distributed=distributed)
        ft_kw = dict(_pick(opts, _FT_SG_KEYS), lrs=tuple(opts["ft_lrs"]), augment=augment)
        tuned, ft = fine_tune(net, *ft_split, heads=heads, seed=seed, progress=progress,
                              distributed=distributed, **ft_kw)
        rep.method, rep.fine_tune = name, ft
        rep.time_total += ft.time_total
        return tuned, rep

    return run


def _sg_options(keys) -> dict:
    return {k: SG_OPTIONS[k] for k in keys}


METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method("cvx", "Gaussian witnesses, spike dictionary, certified convex readout, pruned network.",
           True, MappingProxyType(dict(CVX_OPTIONS)), _run_cvx),
    Method("sg", "Surrogate-gradient training from a scaled Gaussian start.",
           False, MappingProxyType(dict(SG_OPTIONS)), _run_sg),
    Method("sg-cvx", "The hidden weights of an SG network as witnesses, certified convex readout.",
           True, MappingProxyType(_pick(CVX_OPTIONS, _READOUT_KEYS) | SG_OPTIONS), _run_sg_cvx),
    Method("cvx-sg", "CVX, then SG fine-tuning of the whole network on the fine-tuning split.",
           False, MappingProxyType(CVX_OPTIONS | _sg_options(_FT_SG_KEYS) | FINE_TUNE_OPTIONS),
           _fine_tuned("cvx-sg", _run_cvx)),
    Method("sg-sg", "SG, then SG fine-tuning on the fine-tuning split.",
           False, MappingProxyType(SG_OPTIONS | FINE_TUNE_OPTIONS), _fine_tuned("sg-sg", _run_sg)),
    Method("cvx-search", "CVX whose dictionary grows by witness search where the dual certificate is "
           "violated; a GrownSNN.", True,
           MappingProxyType(_pick(CVX_OPTIONS, ("penalty", "tol", "witness", "witness_scale"))
                            | SEARCH_OPTIONS),
           _run_cvx_search),
    Method("sg-cvx-search", "SG-CVX whose dictionary (the SG network's neurons) grows by witness search; "
           "a GrownSNN.", True,
           MappingProxyType(_pick(CVX_OPTIONS, _SEARCH_CONVEX_KEYS) | SEARCH_OPTIONS | SG_OPTIONS),
           _run_sg_cvx_search),
)})


def get_method(name) -> Method:
    """``METHODS[name]`` with an error that lists the methods."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a string, one of {sorted(METHODS)}; got {type(name).__name__}")
    if name not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {name!r}")
    return METHODS[name]
