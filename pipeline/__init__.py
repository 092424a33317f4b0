"""What the scripts share, kept out of them so it can be reused and tested (nothing imports a script).

Command line: ``cli`` (flags, ``load_model``, logging), ``output_folder`` (results folders that are never
overwritten by surprise), ``run_paths`` (no output aliases an input). Video: ``conversion`` (interpolate.py's
run, callable from Python). Training: ``run`` (the start of a run), ``training`` (the entry and the loop),
``checkpoints`` (with resume), ``validation``, ``sparsity`` (the compression report), ``teacher`` (phase 2's frozen
teacher), ``distributed`` (torchrun). Evaluation: ``evaluation`` (the loop and metrics), ``results_file`` (the
original's results.txt), ``comparison`` (side-by-side images). Benchmarks: ``forward_cost`` (FLOPs and profile of
one forward).
"""
