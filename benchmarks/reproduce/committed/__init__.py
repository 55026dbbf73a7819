"""docs/RESULTS.md's sections, each read from committed files alone: the experiment-1 units
(``methods``), the IFP draws (``ifp``), the diffusion of the same units (``diffusion``), the
correlated units (``correlated``) and the replay of the DEFT bank (``stoppers``).
benchmarks/reproduce/from_files.py puts them together into the document.
"""
