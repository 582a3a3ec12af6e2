"""Registration solvers (task ``registration``): one module per method family (classical baselines, learned
networks); each registers its classes as entry points of ``phantombench.solvers``."""
