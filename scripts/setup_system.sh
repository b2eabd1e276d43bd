#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the tests and the local environment need, when they are
# missing. Needs root (or passwordless sudo); otherwise it lists what is missing and fails.
set -euo pipefail

packages=(
  postgresql            # throwaway PostgreSQL servers for tests and the demo
  mariadb-server        # throwaway MariaDB servers (MySQL pipelines, stand-in sources)
  unixodbc unixodbc-dev # ODBC driver manager for pyodbc
  odbc-postgresql       # psqlODBC: PostgreSQL as a stand-in SQL Server source through pyodbc
  odbc-mariadb          # MariaDB Connector/ODBC
  tdsodbc               # FreeTDS: the SQL Server driver shipped in the Lambda ODBC layer
  zip unzip
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
