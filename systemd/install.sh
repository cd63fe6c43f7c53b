#!/usr/bin/env bash
# Installs fma-edge as a systemd service. Run as root from the repository root:
#   dotnet publish src/FmaEdge.Cli -c Release -r linux-x64 --self-contained -o artifacts/publish/fma-edge
#   sudo systemd/install.sh [PUBLISH_DIR]
# Idempotent: re-running upgrades the binaries and keeps /etc/fma-edge and /var/lib/fma-edge.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
publish="${1:-$root/artifacts/publish/fma-edge}"
prefix=/opt/fma-edge

die() { echo "install.sh: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root"
[[ -x "$publish/fma-edge" ]] || die "no published fma-edge in $publish (see the header of this script)"
command -v systemctl >/dev/null || die "systemd is required"

# A dedicated system user; operators join group fma-edge to use 'fma-edge status' (socket mode 0660).
if ! id fma-edge >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/fma-edge --no-create-home --shell /usr/sbin/nologin fma-edge
fi
getent group video >/dev/null && usermod -aG video fma-edge

# Binaries: root-owned, read-only for the service.
install -d -m 0755 "$prefix"
cp -a "$publish/." "$prefix/"
chown -R root:root "$prefix"
ln -sf "$prefix/fma-edge" /usr/local/bin/fma-edge

# Configuration: keep an existing site file.
install -d -m 0750 -o root -g fma-edge /etc/fma-edge
if [[ ! -e /etc/fma-edge/10-site.json ]]; then
  install -m 0640 -o root -g fma-edge "$here/10-site.example.json" /etc/fma-edge/10-site.json
fi

# State and the default drop folder (writers need group fma-edge to drop files).
install -d -m 0750 -o fma-edge -g fma-edge /var/lib/fma-edge /var/lib/fma-edge/models
install -d -m 2770 -o fma-edge -g fma-edge /srv/fma-edge /srv/fma-edge/inbox
shopt -s nullglob
for m in "$root"/models/*.onnx; do
  [[ -e "/var/lib/fma-edge/models/$(basename "$m")" ]] || install -m 0640 -o fma-edge -g fma-edge "$m" /var/lib/fma-edge/models/
done

install -m 0644 "$here/fma-edge.service" /etc/systemd/system/fma-edge.service
systemd-analyze verify /etc/systemd/system/fma-edge.service
systemctl daemon-reload
systemctl enable fma-edge.service
systemctl restart fma-edge.service
echo "installed; check with: fma-edge status   (or journalctl -u fma-edge -f)"
