"""Training one task from a config: LRACLI (the LightningCLI of the harness, lightning_cli.py) and the in-process
run the suite and every sweep trial make (run.py: fit_task, check_config)."""
