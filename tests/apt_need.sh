# Sourced by the test scripts: `apt_need PKG...` installs the Debian packages that are
# missing (idempotent; apt-get update only when something is missing). Uses $SUDO.
apt_need() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '[apt] apt-get install %s\n' "${missing[*]}" >&2
    ${SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    ${SUDO:-} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
