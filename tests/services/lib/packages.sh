# Sourced by the service scripts: install Debian packages that are missing. Needs `log_step`.

# Install those of the packages "$@" that are not installed; when apt-get cannot find them, update
# its index once and try again.
ensure_packages() {
    local missing=() pkg status apt_opts=(-y -q -o DPkg::Lock::Timeout=600)
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || missing+=("$pkg")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log_step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install "${apt_opts[@]}" "${missing[@]}"; then
        log_step "install failed without an index update: running apt-get update"
        apt-get update -q -o DPkg::Lock::Timeout=600
        apt-get install "${apt_opts[@]}" "${missing[@]}"
    fi
}
