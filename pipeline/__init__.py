"""What the scripts share, kept out of them so it can be reused and tested (nothing imports a script): the command
line (``cli``), the start of a training run (``run``), its loop (``training``), checkpoints and resume
(``checkpoints``), validation, the compression report (``sparsity``), torchrun support (``distributed``), and the
evaluation loop with its side-by-side images (``evaluation``, ``comparison``)."""
