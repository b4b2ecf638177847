"""The generated LRA tasks: ListOps (listops.py) and Pathfinder (pathfinder.py, its drawing in pathfinder_stamps.py)."""
