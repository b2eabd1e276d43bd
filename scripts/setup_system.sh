#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages this project needs, when they are missing. Needs root (or
# passwordless sudo); otherwise it lists what is missing and fails.
#
#   scripts/setup_system.sh             everything: tests, the local environment and packaging
#   scripts/setup_system.sh packaging   only what `make package` needs (the ODBC layer's sources)
set -euo pipefail

# scripts/package.py builds the ODBC layer from these packages' libraries (found with dpkg and
# ldd, checked with readelf); the zips themselves are written by Python's zipfile.
packaging=(
  unixodbc              # ODBC driver manager (libodbc2, libodbcinst2) shipped in the Lambda ODBC layer
  tdsodbc               # FreeTDS: the SQL Server driver shipped in the Lambda ODBC layer
  binutils              # readelf: the glibc symbol versions every layer library needs
)
testing=(
  postgresql            # throwaway PostgreSQL servers for tests and the demo
  mariadb-server        # throwaway MariaDB servers (MySQL pipelines, stand-in sources)
  unixodbc-dev          # ODBC headers for pyodbc
  odbc-postgresql       # psqlODBC: PostgreSQL as a stand-in SQL Server source through pyodbc
  odbc-mariadb          # MariaDB Connector/ODBC
  zip unzip
)

case "${1:-all}" in
  packaging) packages=("${packaging[@]}") ;;
  all) packages=("${packaging[@]}" "${testing[@]}") ;;
  *) echo "usage: $0 [packaging]" >&2; exit 2 ;;
esac

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
