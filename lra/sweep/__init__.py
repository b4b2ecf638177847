"""`lra sweep`: Optuna studies over dotted config keys: the sweep file (config.py), storage, sampler and pruner
(study.py), a trial (objective.py), the best trial's config (export.py) and the command (command.py)."""
