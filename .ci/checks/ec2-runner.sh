#!/usr/bin/env bash
# CI check for crates/ec2-runner: unit and request-level tests, then the
# integration tests against moto, a local EC2-compatible server. Runs from the
# repository root on a fresh machine with only the Rust toolchain and python3;
# it installs moto into a private venv and never contacts AWS.
set -euo pipefail

cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-ec2}"
venv="${EC2_RUNNER_VENV:-$PWD/target-ci/ec2-runner-venv}"

# moto 5 is the line the tests were written against (AL2023 images in its
# image list, MOTO_ENABLE_AMI_VALIDATION); a new major version may change both.
moto_requirement='moto[server]>=5.1,<6'
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "ec2-runner check: installing $moto_requirement into $venv"
  rm -rf "$venv"
  if python3 -m venv "$venv"; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$moto_requirement"
  else
    # Debian's python3 without the python3-venv package cannot put pip in a
    # venv; the system pip can install into it instead (pip >= 22.3).
    echo "ec2-runner check: python3 -m venv failed, using the system pip for the venv"
    rm -rf "$venv"
    python3 -m venv --without-pip "$venv"
    python3 -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check "$moto_requirement"
  fi
fi
export MOTO_SERVER="$venv/bin/moto_server"
# Fail here, not in every test, if the install did not produce a working server.
"$MOTO_SERVER" --help >/dev/null
# .ci/run only needs moto: it lints and tests the whole workspace itself, and
# building ec2-runner alone first would compile its dependencies twice.
if [ "${EC2_RUNNER_SETUP_ONLY:-0}" = 1 ]; then exit 0; fi

# Belt and braces: dummy credentials and no instance metadata, whatever the
# machine has. The tests also clear these for every command they run.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_EC2 || true

cargo fmt -p ec2-runner --check
cargo clippy -p ec2-runner --all-targets --all-features -- -D warnings
# --all-features turns on moto-tests: those tests fail (never skip) without moto.
cargo test -p ec2-runner --all-features
bash -n deploy/ec2/xyz.sh
