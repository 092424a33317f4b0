"""The CPU inference route of the networks, put into a built model by :func:`accelerate`."""
from deploy.cpu.route import accelerate

__all__ = ["accelerate"]
