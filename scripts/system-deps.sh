#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium (browser tests through Playwright,
# never `playwright install`) and OpenLDAP's slapd (directory sign-in tests). Installed only
# where missing; CI runs as root on a clean machine of this kind.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null || missing+=(ldap-utils)
if [ ${#missing[@]} -eq 0 ]; then
  echo "system-deps: chromium, slapd, ldap-utils present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts slapd on install; the tests start their own on a free port.
service slapd stop >/dev/null 2>&1 || pkill -x slapd || true
echo "system-deps: installed ${missing[*]}"
