"""Script logic shared by train.py, distill.py and evaluate.py: the loops, kept out of the scripts so they can be
reused and tested (nothing imports a script)."""
