"""`make bench`: the project's speed and memory promises as figures measured against same-run baselines."""
