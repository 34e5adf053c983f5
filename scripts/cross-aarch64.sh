#!/usr/bin/env bash
# Cross-builds sngate for 64-bit Raspberry Pi OS (aarch64, Debian bookworm or
# later), packages it as an arm64 .deb and smoke-tests the binary under qemu:
# it starts with the packaged default config (binds moved to free loopback
# ports), and an MQTT-SN publish must reach mosquitto_sub.
#
# The toolchain comes from Debian (no rustup target download needed):
# rustc-web + libstd-rust-web-dev:arm64 + gcc-aarch64-linux-gnu, with
# rustup's (or Debian's) cargo. Binaries link glibc 2.36, so they need
# Raspberry Pi OS bookworm or newer.
#
#   scripts/cross-aarch64.sh            # aarch64 (Pi 3/4/5, 64-bit OS)
#   scripts/cross-aarch64.sh --armv7    # armhf (Pi 2/3/4, 32-bit OS); see docs/operations.md
#   SKIP_INSTALL=1 scripts/cross-aarch64.sh   # toolchain already installed
#
# Run as root (it installs Debian packages). Output: target/debian/sngate_*_{arm64,armhf}.deb
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
DEB_ARCH=arm64
GNU=aarch64-linux-gnu
QEMU=qemu-aarch64-static
if [ "${1:-}" = "--armv7" ]; then
  TARGET=armv7-unknown-linux-gnueabihf
  DEB_ARCH=armhf
  GNU=arm-linux-gnueabihf
  QEMU=qemu-arm-static
fi

step() { printf '\n== %s\n' "$*"; }

if [ -z "${SKIP_INSTALL:-}" ]; then
  step "installing the Debian cross toolchain for $DEB_ARCH"
  if ! dpkg --print-foreign-architectures | grep -qx "$DEB_ARCH"; then
    dpkg --add-architecture "$DEB_ARCH"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    rustc-web "libstd-rust-web-dev:$DEB_ARCH" "gcc-$GNU" "libc6-dev-$DEB_ARCH-cross" \
    qemu-user-static mosquitto-clients >/dev/null
fi

RUSTC_WEB=$(dpkg -L rustc-web | grep -E '/bin/rustc$' | head -n1)
[ -x "$RUSTC_WEB" ] || { echo "rustc-web's rustc not found" >&2; exit 1; }
echo "rustc: $RUSTC_WEB ($("$RUSTC_WEB" --version))"

# A separate target dir: artifacts of another rustc never mix with rustup's.
export CARGO_TARGET_DIR=target/cross
export RUSTC="$RUSTC_WEB"
linker_var="CARGO_TARGET_$(echo "$TARGET" | tr 'a-z-' 'A-Z_')_LINKER"
export "$linker_var=$GNU-gcc"

step "building sngate for $TARGET"
cargo build --release --locked --target "$TARGET" --bin sngate
BIN="$CARGO_TARGET_DIR/$TARGET/release/sngate"
"$GNU-strip" -o "$BIN.stripped" "$BIN"
file "$BIN.stripped" 2>/dev/null || true
ls -l "$BIN.stripped"

step "packaging the $DEB_ARCH .deb"
VERSION=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["packages"][0]["version"])')
OUT="target/debian/sngate_${VERSION}_${DEB_ARCH}.deb"
if command -v cargo-deb >/dev/null 2>&1; then
  # cargo-deb rewrites target/release/ to $CARGO_TARGET_DIR/$TARGET/release/.
  cp "$BIN.stripped" "$BIN"
  cargo deb --no-build --no-strip --target "$TARGET" --output "$OUT"
else
  # Without cargo-deb: the same layout by hand, from the same packaging files.
  STAGE=$(mktemp -d)
  chmod 755 "$STAGE"
  trap 'rm -rf "$STAGE"' EXIT
  install -D -m 755 "$BIN.stripped" "$STAGE/usr/bin/sngate"
  install -D -m 640 config/sngate.toml "$STAGE/etc/sngate/sngate.toml"
  install -D -m 644 packaging/sngate.service "$STAGE/lib/systemd/system/sngate.service"
  install -D -m 644 README.md "$STAGE/usr/share/doc/sngate/README.md"
  install -D -m 644 docs/operations.md "$STAGE/usr/share/doc/sngate/operations.md"
  install -D -m 644 config/sngate.example.toml "$STAGE/usr/share/doc/sngate/examples/sngate.example.toml"
  mkdir -p "$STAGE/DEBIAN"
  cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: sngate
Version: $VERSION
Architecture: $DEB_ARCH
Maintainer: sngate developers <sngate@example.invalid>
Depends: libc6 (>= 2.34), adduser
Section: net
Priority: optional
Description: MQTT-SN 1.2 gateway with a built-in MQTT 3.1.1/5.0 broker
 sngate is an MQTT-SN 1.2 gateway (UDP and serial radios) with a built-in
 MQTT 3.1.1/5.0 broker, in one process with one TOML config file.
CONTROL
  echo /etc/sngate/sngate.toml >"$STAGE/DEBIAN/conffiles"
  enable='if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
    systemctl enable sngate.service >/dev/null || true
    systemctl restart sngate.service >/dev/null || true
fi'
  stop='if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl --no-reload disable --now sngate.service >/dev/null || true
fi'
  awk -v s="$enable" '{ if ($0 == "#DEBHELPER#") print s; else print }' \
    packaging/debian/postinst >"$STAGE/DEBIAN/postinst"
  awk -v s="" '{ if ($0 == "#DEBHELPER#") print s; else print }' \
    packaging/debian/postrm >"$STAGE/DEBIAN/postrm"
  printf '#!/bin/sh\nset -e\n%s\nexit 0\n' "$stop" >"$STAGE/DEBIAN/prerm"
  chmod 755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/postrm" "$STAGE/DEBIAN/prerm"
  mkdir -p target/debian
  dpkg-deb --root-owner-group --build "$STAGE" "$OUT" >/dev/null
fi
dpkg-deb -I "$OUT" | sed -n '1,20p'
dpkg-deb -c "$OUT"

step "smoke test under $QEMU"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQTT_PORT=$(free_port)
SN_PORT=$(free_port)
SMOKE=$(mktemp -d)
# The packaged default config, with its listeners moved to free loopback ports.
sed -e "s/^bind = \"0.0.0.0:1883\"/bind = \"127.0.0.1:$MQTT_PORT\"/" \
    -e "s/^bind = \"0.0.0.0:1884\"/bind = \"127.0.0.1:$SN_PORT\"/" \
    -e 's/^bind = "\[::\]:1884"/bind = "[::1]:'"$SN_PORT"'"/' \
    config/sngate.toml >"$SMOKE/sngate.toml"
# No `-L /usr/$GNU`: libstd-rust-web-dev:$DEB_ARCH pulls in the multiarch
# libc6:$DEB_ARCH, which the host's ld.so.cache lists; qemu's -L would load the
# cross package's ld.so with that other build's libc.so.6, and a mismatched
# ld.so/libc pair spins forever in the first pthread_create.
RUN=("$QEMU" "$BIN.stripped")
"${RUN[@]}" check-config "$SMOKE/sngate.toml"
"${RUN[@]}" --config "$SMOKE/sngate.toml" >"$SMOKE/sngate.log" 2>&1 &
GW_PID=$!
cleanup() { kill "$GW_PID" 2>/dev/null || true; wait "$GW_PID" 2>/dev/null || true; rm -rf "$SMOKE"; }
trap cleanup EXIT
for _ in $(seq 1 50); do
  grep -q "MQTT-SN gateway listening" "$SMOKE/sngate.log" && break
  sleep 0.2
done
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t 'smoke/#' -C 1 -W 20 >"$SMOKE/got" &
SUB_PID=$!
sleep 1
# The publisher is the aarch64 binary too (its `sn pub` client).
"${RUN[@]}" sn pub -p "$SN_PORT" --topic smoke/aarch64 --message "hello from $DEB_ARCH" --qos 1
wait "$SUB_PID"
got=$(cat "$SMOKE/got")
echo "mosquitto_sub received: $got"
[ "$got" = "hello from $DEB_ARCH" ] || { cat "$SMOKE/sngate.log"; exit 1; }
echo "RSS under qemu: $(grep VmRSS "/proc/$GW_PID/status" 2>/dev/null || echo n/a)"
step "ok: $OUT"
