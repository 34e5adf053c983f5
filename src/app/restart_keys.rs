//! Which keys of a reloaded config file cannot take effect without a restart:
//! the key paths whose values differ from the file sngate started with,
//! minus those a reload applies.

use toml::{Table, Value};

use crate::config::Config;

/// Key paths (`listener[0].bind`) written differently in `old` and `new`;
/// a table present on one side only counts as an empty table on the other,
/// so adding `[gateway]` with one key names that key, not the table.
pub(super) fn changed_keys(old: &Table, new: &Table) -> Vec<String> {
    let mut out = Vec::new();
    diff_tables(old, new, "", &mut out);
    out
}

fn child(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn diff_tables(old: &Table, new: &Table, prefix: &str, out: &mut Vec<String>) {
    let empty = Table::new();
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let path = child(prefix, key);
        match (old.get(key), new.get(key)) {
            (Some(Value::Table(a)), Some(Value::Table(b))) => diff_tables(a, b, &path, out),
            (Some(Value::Table(a)), None) => diff_tables(a, &empty, &path, out),
            (None, Some(Value::Table(b))) => diff_tables(&empty, b, &path, out),
            (Some(Value::Array(a)), Some(Value::Array(b)))
                if a.len() == b.len() && a.iter().chain(b).all(Value::is_table) =>
            {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    if let (Value::Table(x), Value::Table(y)) = (x, y) {
                        diff_tables(x, y, &format!("{path}[{i}]"), out);
                    }
                }
            }
            (a, b) if a != b => out.push(path),
            _ => {}
        }
    }
}

/// Whether a reload applies the key at `path` (see docs/operations.md).
pub(super) fn is_reloadable(path: &str) -> bool {
    let head = |p: &str| {
        path == p || path.starts_with(&format!("{p}.")) || path.starts_with(&format!("{p}["))
    };
    if head("log") || head("auth") || head("bridge") {
        return true;
    }
    if head("gateway.predefined") || head("gateway.usernames") {
        return true;
    }
    // `gateway.dtls[N].psk_file`
    path.strip_prefix("gateway.dtls[")
        .and_then(|rest| rest.split_once("]."))
        .is_some_and(|(n, key)| n.parse::<usize>().is_ok() && key == "psk_file")
}

/// Copies the parts a reload applies from `from` into `into`.
pub(super) fn take_reloadable(into: &mut Config, from: &Config) {
    into.log.level = from.log.level;
    into.auth = from.auth.clone();
    into.gateway.predefined = from.gateway.predefined.clone();
    into.gateway.usernames = from.gateway.usernames.clone();
    for (d, f) in into.gateway.dtls.iter_mut().zip(&from.gateway.dtls) {
        d.psk_file = f.psk_file.clone();
    }
    into.bridge = from.bridge.clone();
}

/// Whether `new` differs from `running` in anything a reload cannot apply.
pub(super) fn needs_restart(running: &Config, new: &Config) -> bool {
    let mut probe = new.clone();
    take_reloadable(&mut probe, running);
    probe != *running
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn changed_keys_names_nested_keys_and_array_elements() {
        let old = table("[[listener]]\nbind = \"a\"\n[gateway]\ngateway_id = 1\n");
        let new = table(
            "[[listener]]\nbind = \"b\"\n[gateway]\ngateway_id = 2\n[log]\nlevel = \"debug\"\n",
        );
        assert_eq!(
            changed_keys(&old, &new),
            ["gateway.gateway_id", "listener[0].bind", "log.level"]
        );
    }

    #[test]
    fn arrays_of_different_length_are_one_change() {
        let old = table("[[bridge]]\nname = \"a\"\n");
        let new = table("[[bridge]]\nname = \"a\"\n[[bridge]]\nname = \"b\"\n");
        assert_eq!(changed_keys(&old, &new), ["bridge"]);
    }

    #[test]
    fn reloadable_keys_are_log_auth_bridges_predefined_usernames_and_psk_files() {
        for key in [
            "log.level",
            "auth.acl_file",
            "bridge",
            "bridge[1].addresses",
            "gateway.predefined",
            "gateway.usernames.s1",
            "gateway.dtls[0].psk_file",
        ] {
            assert!(is_reloadable(key), "{key}");
        }
        for key in [
            "listener[0].bind",
            "gateway.dtls[0].bind",
            "gateway.mode",
            "persistence.path",
            "gateway.udp",
            "logs",
        ] {
            assert!(!is_reloadable(key), "{key}");
        }
    }

    #[test]
    fn a_new_listener_needs_a_restart_and_a_new_log_level_does_not() {
        let running = Config::builtin();
        let mut new = running.clone();
        new.log.level = crate::config::LogLevel::Debug;
        assert!(!needs_restart(&running, &new));
        new.listener.clear();
        assert!(needs_restart(&running, &new));
    }
}
