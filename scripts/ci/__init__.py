"""Helpers the GitHub workflows run (plan comment, policy check, reviewed plan, drift issue).

Standard library only: they run right after checkout, before anything is installed. Run them from
the repository root as modules, e.g. `python3 -m scripts.ci.plan_comment --help`.
"""
