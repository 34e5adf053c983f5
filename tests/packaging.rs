//! The Debian packaging: the systemd unit and `[package.metadata.deb]` say
//! what docs/operations.md promises, and every file they name exists.
//! `deb_package_contents` builds the .deb with cargo-deb (installed by
//! `.ci/run`) and reads it back.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `[Section]` → key → values (a key may repeat, as systemd allows).
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key=value line");
        assert!(!current.is_empty(), "key outside a section: {line}");
        sections
            .entry(current.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    sections
}

fn unit() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    parse_unit(&std::fs::read_to_string(root().join("packaging/sngate.service")).unwrap())
}

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

fn one<'a>(
    unit: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
    section: &str,
    key: &str,
) -> &'a str {
    let values = &unit[section]
        .get(key)
        .unwrap_or_else(|| panic!("[{section}] {key} missing"));
    assert_eq!(values.len(), 1, "[{section}] {key} set once");
    &values[0]
}

#[test]
fn unit_runs_sngate_as_its_own_user_with_the_packaged_config() {
    let u = unit();
    assert_eq!(one(&u, "Service", "Type"), "simple");
    assert_eq!(
        one(&u, "Service", "ExecStart"),
        "/usr/bin/sngate --config /etc/sngate/sngate.toml"
    );
    assert_eq!(one(&u, "Service", "Restart"), "on-failure");
    assert_eq!(one(&u, "Service", "User"), "sngate");
    assert_eq!(one(&u, "Service", "SupplementaryGroups"), "dialout");
    assert_eq!(one(&u, "Service", "StateDirectory"), "sngate");
    assert_eq!(one(&u, "Service", "ConfigurationDirectory"), "sngate");
    assert_eq!(one(&u, "Install", "WantedBy"), "multi-user.target");
}

#[test]
fn unit_is_hardened_but_may_write_its_state_directory() {
    let u = unit();
    assert_eq!(one(&u, "Service", "ProtectSystem"), "strict");
    assert_eq!(one(&u, "Service", "ReadWritePaths"), "/var/lib/sngate");
    assert_eq!(one(&u, "Service", "NoNewPrivileges"), "yes");
    assert_eq!(one(&u, "Service", "ProtectHome"), "yes");
    assert_eq!(one(&u, "Service", "PrivateTmp"), "yes");
    assert_eq!(one(&u, "Service", "CapabilityBoundingSet"), "");
    // Serial radios are devices: the unit must not hide /dev.
    assert!(!u["Service"].contains_key("PrivateDevices"));
    let families = one(&u, "Service", "RestrictAddressFamilies");
    for f in ["AF_INET", "AF_INET6"] {
        assert!(families.split(' ').any(|x| x == f), "{families}");
    }
}

#[test]
fn persistence_path_of_the_packaged_config_is_the_state_directory() {
    let config = sngate::config::Config::load(&root().join("config/sngate.toml")).unwrap();
    assert_eq!(config.persistence.path, Path::new("/var/lib/sngate"));
}

#[test]
fn deb_installs_the_binary_config_as_conffile_and_unit() {
    let deb = deb_metadata();
    let conf: Vec<&str> = deb["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(conf, ["/etc/sngate/sngate.toml"]);
    let assets: Vec<(String, String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            let s = |i: usize| a[i].as_str().unwrap().to_string();
            (s(0), s(1), s(2))
        })
        .collect();
    let dest = |d: &str| assets.iter().find(|a| a.1 == d).cloned();
    let bin = dest("usr/bin/").expect("binary asset");
    assert_eq!(
        (bin.0.as_str(), bin.2.as_str()),
        ("target/release/sngate", "755")
    );
    let config = dest("etc/sngate/sngate.toml").expect("config asset");
    assert_eq!(config.0, "config/sngate.toml");
    for (src, _, mode) in &assets {
        assert!(u32::from_str_radix(mode, 8).is_ok(), "octal mode {mode}");
        if !src.starts_with("target/") {
            assert!(root().join(src).is_file(), "asset {src} exists");
        }
    }
    let units = deb["systemd-units"].as_table().unwrap();
    assert_eq!(units["enable"].as_bool(), Some(true));
    assert_eq!(units["unit-name"].as_str(), Some("sngate"));
    let dir = units["unit-scripts"].as_str().unwrap();
    assert!(root().join(dir).join("sngate.service").is_file());
    assert!(
        deb["depends"].as_str().unwrap().contains("adduser"),
        "postinst uses adduser"
    );
}

#[test]
fn maintainer_scripts_create_the_system_user_and_keep_debhelper_hooks() {
    let deb = deb_metadata();
    let dir = root().join(deb["maintainer-scripts"].as_str().unwrap());
    for name in ["postinst", "postrm"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{name} is a sh script");
        assert!(text.contains("set -e"), "{name} stops on errors");
        // cargo-deb puts the systemd enable/start snippets here.
        assert!(text.contains("#DEBHELPER#"), "{name} has #DEBHELPER#");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is executable");
    }
    let postinst = std::fs::read_to_string(dir.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"));
    assert!(postinst.contains("--ingroup sngate"));
    assert!(postinst.contains("adduser --quiet sngate dialout"));
    assert!(postinst.contains("getent passwd sngate"), "idempotent");
}

#[test]
fn maintainer_scripts_are_valid_sh() {
    let deb = deb_metadata();
    let dir = root().join(deb["maintainer-scripts"].as_str().unwrap());
    for name in ["postinst", "postrm"] {
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(status.success(), "sh -n {name}");
    }
}

/// The package to check: the one named by `SNGATE_DEB` (e.g. the arm64 one
/// from scripts/cross-aarch64.sh), or else one cargo-deb builds here from the
/// test build's binary (`--profile dev`: the same files and maintainer
/// scripts as a release package, only the binary is unoptimised). `.ci/run`
/// installs cargo-deb.
fn built_deb(dir: &Path) -> PathBuf {
    if let Some(path) = std::env::var_os("SNGATE_DEB") {
        return root().join(path);
    }
    // The binary cargo-deb packages is the one this test run built.
    assert!(Path::new(env!("CARGO_BIN_EXE_sngate")).is_file());
    let deb = dir.join("sngate.deb");
    let out = std::process::Command::new("cargo")
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--no-strip",
            "--fast",
        ])
        .arg("--output")
        .arg(&deb)
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo deb failed (install it with `cargo install --locked cargo-deb`, as .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

#[test]
fn deb_package_contents() {
    let dir = tempfile::tempdir().unwrap();
    let deb = built_deb(dir.path());
    let list = std::process::Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for path in [
        "./usr/bin/sngate",
        "./etc/sngate/sngate.toml",
        "sngate.service",
        "./usr/share/doc/sngate/operations.md",
    ] {
        assert!(list.contains(path), "{path} in:\n{list}");
    }
    let info = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: sngate"), "{info}");
    assert!(info.contains("adduser"), "{info}");
    let postinst = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("postinst")
        .output()
        .unwrap();
    let postinst = String::from_utf8_lossy(&postinst.stdout);
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(postinst.contains("enable sngate.service"), "{postinst}");
    let conffiles = std::process::Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&conffiles.stdout).trim(),
        "/etc/sngate/sngate.toml"
    );
}

/// Unpacked into a throwaway root, the package's binary runs and accepts the
/// packaged config file (what `systemctl start sngate` would run).
#[test]
fn deb_unpacked_into_a_throwaway_root_runs_with_its_conffile() {
    let dir = tempfile::tempdir().unwrap();
    let deb = built_deb(dir.path());
    let root_dir = dir.path().join("root");
    let status = std::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&root_dir)
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x");
    if std::env::var_os("SNGATE_DEB").is_some() {
        // A foreign-architecture package (arm64) cannot run here; its
        // smoke test is scripts/cross-aarch64.sh under qemu-user.
        return;
    }
    let out = std::process::Command::new(root_dir.join("usr/bin/sngate"))
        .arg("check-config")
        .arg(root_dir.join("etc/sngate/sngate.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
    let unit = std::fs::read_to_string(root_dir.join("lib/systemd/system/sngate.service"))
        .or_else(|_| {
            std::fs::read_to_string(root_dir.join("usr/lib/systemd/system/sngate.service"))
        })
        .expect("the unit is installed under lib/systemd/system");
    assert!(unit.contains("ExecStart=/usr/bin/sngate"), "{unit}");
}

/// systemd's own checker accepts the unit (with ExecStart pointed at the
/// freshly built binary, since /usr/bin/sngate is not installed here).
#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        panic!("systemd-analyze is not installed (Debian package systemd)");
    };
    let text = std::fs::read_to_string(root().join("packaging/sngate.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sngate.service");
    std::fs::write(
        &unit,
        text.replace("/usr/bin/sngate", env!("CARGO_BIN_EXE_sngate")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
