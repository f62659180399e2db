//! Spin compatibility, checked statically: every component the workspace
//! builds may import only interfaces Spin's platform world provides (and
//! this host implements), and export only a Spin trigger entry point. A
//! component that needed something only `fado` understands would fail here
//! before it could fail under Spin.

use std::path::{Path, PathBuf};

use wit_parser::{Resolve, WorldItem, WorldKey};

/// `package/interface` prefixes a component may import, with the versions allowed.
const IMPORTS: &[(&str, &str)] = &[
    ("wasi:cli/environment", "0.2"),
    ("wasi:cli/exit", "0.2"),
    ("wasi:cli/stdin", "0.2"),
    ("wasi:cli/stdout", "0.2"),
    ("wasi:cli/stderr", "0.2"),
    ("wasi:cli/terminal-input", "0.2"),
    ("wasi:cli/terminal-output", "0.2"),
    ("wasi:cli/terminal-stdin", "0.2"),
    ("wasi:cli/terminal-stdout", "0.2"),
    ("wasi:cli/terminal-stderr", "0.2"),
    ("wasi:clocks/monotonic-clock", "0.2"),
    ("wasi:clocks/wall-clock", "0.2"),
    ("wasi:random/random", "0.2"),
    ("wasi:random/insecure", "0.2"),
    ("wasi:random/insecure-seed", "0.2"),
    ("wasi:io/error", "0.2"),
    ("wasi:io/poll", "0.2"),
    ("wasi:io/streams", "0.2"),
    // Only `files` mounts are visible through these.
    ("wasi:filesystem/types", "0.2"),
    ("wasi:filesystem/preopens", "0.2"),
    // Connections only to what `allowed_outbound_hosts` allows.
    ("wasi:sockets/network", "0.2"),
    ("wasi:sockets/instance-network", "0.2"),
    ("wasi:sockets/tcp", "0.2"),
    ("wasi:sockets/tcp-create-socket", "0.2"),
    ("wasi:sockets/udp", "0.2"),
    ("wasi:sockets/udp-create-socket", "0.2"),
    ("wasi:sockets/ip-name-lookup", "0.2"),
    ("wasi:http/types", "0.2"),
    ("wasi:http/outgoing-handler", "0.2"),
    ("fermyon:spin/redis", "2.0.0"),
    ("fermyon:spin/key-value", "2.0.0"),
    ("fermyon:spin/variables", "2.0.0"),
    ("fermyon:spin/mqtt", "2.0.0"),
    ("fermyon:spin/mysql", "2.0.0"),
    ("fermyon:spin/rdbms-types", "2.0.0"),
    ("fermyon:spin/redis-types", ""),
    ("spin:postgres/postgres", "4.0.0"),
    ("fermyon:spin/sqlite", "2.0.0"),
    ("spin:sqlite/sqlite", "3.0.0"),
    ("wasi:keyvalue/store", "0.2.0-draft2"),
    ("wasi:keyvalue/atomics", "0.2.0-draft2"),
    ("wasi:keyvalue/batch", "0.2.0-draft2"),
];

const EXPORTS: &[(&str, &str)] = &[
    ("wasi:http/incoming-handler", "0.2"),
    ("fermyon:spin/inbound-redis", ""),
];

/// Whether `name` (e.g. `wasi:io/poll@0.2.6`) matches an allowed entry:
/// same interface, and a version equal to or (for `0.2`) within the entry's.
fn allowed(name: &str, list: &[(&str, &str)]) -> bool {
    let (iface, version) = name.split_once('@').unwrap_or((name, ""));
    list.iter().any(|(i, v)| {
        *i == iface
            && match *v {
                "" => version.is_empty(),
                "0.2" => version.starts_with("0.2."),
                exact => version == exact,
            }
    })
}

fn names<'a>(
    resolve: &Resolve,
    items: impl Iterator<Item = (&'a WorldKey, &'a WorldItem)>,
) -> Vec<String> {
    items
        .map(|(key, item)| match (key, item) {
            (WorldKey::Interface(id), _) => resolve
                .id_of(*id)
                .unwrap_or_else(|| format!("anonymous interface {id:?}")),
            (WorldKey::Name(n), WorldItem::Function(_)) => format!("bare function {n}"),
            (WorldKey::Name(n), _) => format!("bare item {n}"),
        })
        .collect()
}

/// Every component crate in the workspace and the `.wasm` it builds.
fn workspace_components() -> Vec<(String, PathBuf)> {
    let root = harness::workspace();
    let mut out = Vec::new();
    for dir in ["components", "tests/components", "examples/functions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let manifest = e.path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            if !text.contains("cdylib") {
                continue;
            }
            let name = text
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("name = \"")
                        .and_then(|r| r.strip_suffix('"'))
                })
                .unwrap_or_else(|| panic!("no package name in {}", manifest.display()))
                .to_string();
            let wasm = harness::target_dir()
                .join("wasm32-wasip2/release")
                .join(format!("{}.wasm", name.replace('-', "_")));
            out.push((name, wasm));
        }
    }
    out.sort();
    out
}

fn check(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (infra/test builds every component)",
            path.display()
        )
    });
    let decoded = wit_component::decode(&bytes)
        .unwrap_or_else(|e| panic!("{}: not a component: {e:#}", path.display()));
    let wit_component::DecodedWasm::Component(resolve, world) = decoded else {
        return vec!["is a WIT package, not a component".into()];
    };
    let world = &resolve.worlds[world];
    let mut problems = Vec::new();
    for name in names(&resolve, world.imports.iter()) {
        if !allowed(&name, IMPORTS) {
            problems.push(format!("imports {name}"));
        }
    }
    let exported = names(&resolve, world.exports.iter());
    if exported.is_empty() {
        problems.push("exports no trigger entry point".into());
    }
    for name in exported {
        if !allowed(&name, EXPORTS) {
            problems.push(format!("exports {name}"));
        }
    }
    problems
}

#[test]
fn every_component_imports_only_what_spin_provides() {
    let components = workspace_components();
    assert!(
        components.len() >= 4,
        "found too few components: {components:?}"
    );
    let mut failures = Vec::new();
    for (name, wasm) in &components {
        for p in check(wasm) {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(
        failures.is_empty(),
        "components outside Spin's platform world:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_allowlist_rejects_what_spin_or_fado_lack() {
    assert!(allowed("wasi:io/poll@0.2.6", IMPORTS));
    assert!(allowed("fermyon:spin/variables@2.0.0", IMPORTS));
    assert!(allowed("fermyon:spin/redis-types", IMPORTS));
    assert!(allowed("wasi:sockets/tcp@0.2.12", IMPORTS));
    assert!(allowed("spin:sqlite/sqlite@3.0.0", IMPORTS));
    assert!(allowed("fermyon:spin/mysql@2.0.0", IMPORTS));
    assert!(allowed("fermyon:spin/mqtt@2.0.0", IMPORTS));
    for bad in [
        "wasi:sockets/tcp@0.3.0",
        "wasi:io/poll@0.3.0",
        "spin:sqlite/sqlite@3.1.0",
        "fermyon:spin/redis@3.0.0",
        "spin:postgres/postgres@3.0.0",
        "fermyon:spin/llm@2.0.0",
        "spin:mqtt/mqtt@3.0.0",
        "spin:mysql/mysql@3.0.0",
        "fado:host/anything",
    ] {
        assert!(!allowed(bad, IMPORTS), "{bad} must be refused");
    }
    assert!(
        !allowed("wasi:cli/run@0.2.0", EXPORTS),
        "a command component is not a trigger handler"
    );
}
