#!/usr/bin/env bash
# Regenerates coordinator/.sqlx, the offline data of the coordinator's compile-time checked queries.
# Run it after changing a query or a migration, and commit the result; builds use SQLX_OFFLINE=true
# (.cargo/config.toml) and never need a database.
set -euo pipefail
cd "$(dirname "$0")/.."
db="$(mktemp -d)/prepare.db"
python3 - "$db" coordinator/migrations/*.sql <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for path in sys.argv[2:]:
    con.executescript(open(path).read())
con.commit()
PY
rm -rf coordinator/.sqlx && mkdir -p coordinator/.sqlx
touch coordinator/src/*.rs
SQLX_OFFLINE=false DATABASE_URL="sqlite://$db" SQLX_OFFLINE_DIR="$PWD/coordinator/.sqlx" \
  cargo check -p qor-coordinator --all-targets "$@"
echo "wrote $(ls coordinator/.sqlx | wc -l) query files to coordinator/.sqlx"
