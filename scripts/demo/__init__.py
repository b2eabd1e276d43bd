"""`make demo` (`python -m scripts.demo`): every landed pipeline end to end on this machine, with no
cloud and no Docker.

1. packages the functions for this machine's Python (build/local, so the python3.12 zips in build/
   are left alone);
2. starts moto's server on a free loopback port and a throwaway PostgreSQL (the unified database
   and the stand-in source databases; MariaDB too when a pipeline reads from MySQL) in build/demo/;
3. runs the real `terraform apply` of environments/local.tfvars against moto, from a copy of the
   Terraform code under build/demo/ with a provider file pointing every endpoint at moto (what
   tflocal does), so the user's working directory and state are never touched;
4. writes the local servers' credentials into the database secrets Terraform created, starts the
   event router (scripts/localenv) on the applied wiring, and drives each pipeline with sample
   data: migrations first (they create the tables the others load into), then files for the file
   loader, then rows changed in the source for the table sync and its schedule fired;
5. waits until everything is idle and prints what went in, what came out, where, and how long.

The package: `processes` (stale runs, packaging, the moto server), `terraform` (the apply against
moto), `environment` (databases, secrets, the router: everything up), `report` (what each
pipeline reports), `pipelines/` (one driver module per pipeline: a new pipeline adds a file there)
and `__main__` (the command line).

`--keep` (`make demo KEEP=1`) leaves it all running until Ctrl-C and prints how to send your own
events. A run killed half way leaves build/demo/ behind; the next run (or `make demo-down`) stops
what it recorded there and starts clean.
"""
