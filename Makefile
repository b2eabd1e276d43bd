# Entry points. `make help` lists them; the README explains each.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
PY         := $(abspath $(VENV))/bin/python
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION := 3.3.30
BUILD_DIR  ?= build
RUNTIME    ?= python3.12
ARCH       ?= x86_64
ENV        ?= dev
PYTEST_ARGS ?=
# Test processes: the Terraform checks run in one (they share session-wide plans), the other files
# spread over the rest (tests/conftest.py groups them).
TEST_WORKERS ?= 2
PACKAGE_ARGS ?=

# Terraform: the binary on PATH with a project-local CLI config that installs the hashicorp
# providers from a filesystem mirror when this machine has one (see scripts/terraform_cli_config.sh).
TERRAFORM  ?= terraform
export TF_CLI_CONFIG_FILE := $(CURDIR)/.terraform-cli/terraformrc
export TF_IN_AUTOMATION := 1
# Terraform source besides the root's own files; build/ holds generated copies and stays out.
TF_FMT_DIRS := modules environments examples tests

.PHONY: help setup system-packages package-prerequisites package test tf-check lint fmt bench bench-readme clean plan apply tflocal-apply docs demo demo-down

# Variables the target descriptions mention: `make help` prints their values, not their names.
HELP_VARS := BUILD_DIR ENV RUNTIME ARCH

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
	  | sed $(foreach v,$(HELP_VARS),-e 's|$$($(v))|$($(v))|g') \
	  | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: system-packages $(VENV)/.installed $(CHECKOV_VENV)/.installed $(TF_CLI_CONFIG_FILE) ## Install system packages (as root), the pinned .venv and the Terraform CLI config

system-packages:
	@scripts/setup_system.sh

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements-dev.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

# checkov in its own venv (CHECKOV_VENV): its pinned dependencies conflict with ours.
$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $@

$(TF_CLI_CONFIG_FILE): scripts/terraform_cli_config.sh
	@scripts/terraform_cli_config.sh $@ >/dev/null

# Packaging needs a Python with pip (the venv, before `make setup` fills it) and, for the ODBC layer,
# unixODBC and FreeTDS from Debian packages: not the test servers or checkov.
package-prerequisites: $(VENV)/bin/python
	$(if $(findstring --without-odbc-layer,$(PACKAGE_ARGS)),,@scripts/setup_system.sh packaging)

package: package-prerequisites ## Build one reproducible zip per function + the ODBC layer under $(BUILD_DIR)/ (RUNTIME=, ARCH=)
	$(PY) scripts/package.py --build-dir $(BUILD_DIR) --runtime $(RUNTIME) --arch $(ARCH) $(PACKAGE_ARGS)

test: setup package ## Run every test: unit, real databases, moto, Terraform (validate, plan, checkov, apply)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

tf-check: setup package ## Terraform checks only: fmt, validate, plan per environment, checkov, apply to moto
	$(PY) -m pytest tests/terraform $(PYTEST_ARGS)

lint: setup ## ruff and terraform fmt -check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TERRAFORM) fmt -check . && $(TERRAFORM) fmt -check -recursive $(TF_FMT_DIRS)

fmt: setup ## Format Python (ruff) and Terraform
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(TERRAFORM) fmt . && $(TERRAFORM) fmt -recursive $(TF_FMT_DIRS)

plan: setup package ## terraform plan of environments/$(ENV).tfvars (workspace $(ENV); TF_BACKEND_CONFIG= for an S3 backend) saved to $(BUILD_DIR)/plans/$(ENV).tfplan
	@test -f environments/$(ENV).tfvars || { echo "no environments/$(ENV).tfvars"; exit 1; }
	mkdir -p $(BUILD_DIR)/plans
	@# The module declares no backend (it is also a child module): a TF_BACKEND_CONFIG adds the S3 one.
	$(if $(TF_BACKEND_CONFIG),printf 'terraform {\n  backend "s3" {}\n}\n' > backend_override.tf)
	$(TERRAFORM) init -input=false $(if $(TF_BACKEND_CONFIG),-reconfigure -backend-config=$(TF_BACKEND_CONFIG))
	$(TERRAFORM) workspace select -or-create $(ENV)
	$(TERRAFORM) plan -input=false -var-file=environments/$(ENV).tfvars -var build_dir=$(BUILD_DIR) -out=$(BUILD_DIR)/plans/$(ENV).tfplan

apply: ## Apply the plan saved by `make plan ENV=...`: exactly what was reviewed, with the zips it was planned with
	@test -f $(BUILD_DIR)/plans/$(ENV).tfplan || { echo "no $(BUILD_DIR)/plans/$(ENV).tfplan: run make plan ENV=$(ENV) first"; exit 1; }
	$(TERRAFORM) workspace select $(ENV)
	$(TERRAFORM) apply -input=false $(BUILD_DIR)/plans/$(ENV).tfplan

# LocalStack's community edition has no RDS: the pipelines use a PostgreSQL of yours that LocalStack's
# Lambda containers reach (create_database = false; docs/local.md walks through it). Its password
# comes from LOCALSTACK_DB_PASSWORD in the environment; TFLOCAL_VAR_FILES adds -var-files of yours.
LOCALSTACK_DB_HOST ?= pipelines-postgres
LOCALSTACK_DB_PORT ?= 5432
LOCALSTACK_DB_NAME ?= pipelines
LOCALSTACK_DB_USER ?= postgres
TFLOCAL_VAR_FILES  ?=
TFLOCAL_DIR        := $(BUILD_DIR)/tflocal

tflocal-apply: setup package ## Deploy environments/local.tfvars to a running LocalStack (community: an existing PostgreSQL, LOCALSTACK_DB_*), then read it back (TFLOCAL_ARGS=-destroy tears down)
	mkdir -p $(TFLOCAL_DIR) && rm -rf $(TFLOCAL_DIR)/modules
	cp *.tf $(TFLOCAL_DIR)/ && cp -r modules $(TFLOCAL_DIR)/modules
	printf 'provider "aws" {}\n' > $(TFLOCAL_DIR)/providers.tf
	$(PY) -m scripts.localstack prepare --output $(TFLOCAL_DIR)/existing-database.tfvars.json --prefix pipelines-local \
	  --db-host $(LOCALSTACK_DB_HOST) --db-port $(LOCALSTACK_DB_PORT) --db-name $(LOCALSTACK_DB_NAME) --db-username $(LOCALSTACK_DB_USER)
	cd $(TFLOCAL_DIR) && $(CURDIR)/$(VENV)/bin/tflocal init -input=false && \
	  $(CURDIR)/$(VENV)/bin/tflocal apply -input=false -auto-approve $(TFLOCAL_ARGS) \
	    -var-file=$(CURDIR)/environments/local.tfvars -var-file=existing-database.tfvars.json \
	    $(foreach f,$(TFLOCAL_VAR_FILES),-var-file=$(abspath $(f))) -var build_dir=$(abspath $(BUILD_DIR))
	$(if $(findstring -destroy,$(TFLOCAL_ARGS)),,TERRAFORM=$(TERRAFORM) $(PY) -m scripts.localstack check --terraform-dir $(TFLOCAL_DIR))

docs: setup ## Regenerate module READMEs' input/output tables
	$(PY) scripts/tf_docs.py

bench: setup package ## Run the pipeline benchmarks (BENCH=name for one); each prints a ratio against a baseline measured in the same run and records it in build/bench/results.json
	PYTHONPATH=lambda_src $(PY) -m scripts.bench $(BENCH)

bench-readme: setup ## Rewrite README.md's performance table from build/bench/results.json (run `make bench` first)
	$(PY) -m scripts.bench._readme

demo: setup ## Every pipeline end to end on this machine: moto + local PostgreSQL + terraform apply + event router (KEEP=1 leaves it up)
	$(PY) -m scripts.demo $(if $(KEEP),--keep)

demo-down: ## Stop and remove what a killed `make demo` left in build/demo
	$(PY) -m scripts.demo --down

clean: ## Remove build output, Terraform working directories and caches (keeps .venv)
	rm -rf $(BUILD_DIR) .terraform-cli .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name .terraform -o -name __pycache__ \) -type d -print0 | xargs -0 rm -rf
	@# Lock files of scratch runs go; the root's, which pins the provider, is committed and stays.
	find . -path ./$(VENV) -prune -o \( \( -name .terraform.lock.hcl ! -path ./.terraform.lock.hcl \) -o -name 'terraform.tfstate*' \) -type f -print0 | xargs -0 rm -f
