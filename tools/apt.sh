# Sourced by test.sh and devnet.sh: installs the Debian packages the project needs when a fresh machine
# lacks them. `need_deb <file> <package>`: installs <package> unless <file> exists.
# - procps: /bin/kill, which `qor devnet` (stopping its children), the devnet tests and the e2e
#   benchmark run to send signals;
# - chromium: the browser the web app's end-to-end test drives (Playwright's own download does not
#   work on this network).
need_deb() {
  [ -e "$1" ] && return 0
  local apt_get=(apt-get)
  [ "$(id -u)" = 0 ] || apt_get=(sudo apt-get)
  if [ -z "${QOR_APT_UPDATED:-}" ]; then
    "${apt_get[@]}" update -q >/dev/null
    QOR_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q "$2" >/dev/null
}
