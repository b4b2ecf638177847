"""`lra suite`: the LRA table from a suite file: the file (config.py), the command that trains it (command.py) and
its results (report.py)."""
