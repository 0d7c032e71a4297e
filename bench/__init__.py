"""Measuring and documenting the notebook; run each job as `python -m bench.<name>`.

- notebook.py      the notebook from Python: its parameters, its definitions, running it in a
                   kernel (used by the tests too)
- measure.py       speed: the floor pass, a step, the peer, coarse to fine, precision, layout,
                   memory, a GPU run
- timings.py       how long a class waits (cell timestamps) and how long the tests take
- gallery.py       the README's 512 px gallery
- variants.py      Run All at full size under the exercises' settings, odd images, a GPU's
                   arithmetic
- dependencies.py  why torchvision and pygifsicle are left out, measured
- readme.py        renders the README's tables from results.json and dependencies.json
"""
