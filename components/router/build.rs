//! SHA-1 digests of the Lua scripts, computed once at build time: the
//! router sends `EVALSHA` on every request, and hashing the scripts in every
//! fresh instance showed up in profiles (3.5 % of the host's CPU).

use sha1::{Digest, Sha1};

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let mut consts = String::new();
    for (name, file) in [("ROUTE_SHA", "src/route.lua"), ("DONE_SHA", "src/done.lua")] {
        println!("cargo:rerun-if-changed={file}");
        let text = std::fs::read(file).expect("reading a script");
        let hex: String = Sha1::digest(&text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        consts.push_str(&format!("pub const {name}: &str = \"{hex}\";\n"));
    }
    std::fs::write(out.join("script_sha.rs"), consts).expect("writing script_sha.rs");
}
