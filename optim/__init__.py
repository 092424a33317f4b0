"""Optimizers: OBProxSG (the sparsifying optimizer of ST-MFNet Mini) and the script-facing factories."""
from optim.factory import OPTIMIZERS, make_optimizer, make_scheduler, parse_decay_type
from optim.obproxsg import ORTHANT, PROX_SG, OBProxSG, PhaseSwitches

__all__ = [
    "OBProxSG", "OPTIMIZERS", "ORTHANT", "PROX_SG", "PhaseSwitches", "make_optimizer", "make_scheduler",
    "parse_decay_type",
]
