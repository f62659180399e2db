//! `fermyon:spin/variables@2.0.0`: application variables (with defaults,
//! `required` and `secret`), resolved from `--variable name=value` first,
//! then the `SPIN_VARIABLE_<NAME>` environment provider, then defaults; and
//! component variables, templates over them, which are what a component can read.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use fado_manifest::{Manifest, Template};
use wasmtime::component::{HasSelf, Linker};

use super::{Capability, ComponentIndex, StoreData};
use crate::app::AppContext;

use crate::bindings::fermyon::spin2_0_0::variables::{self as v2, Error};

/// Resolves application variables once, at load; values do not change while
/// the application runs.
pub struct VariableResolver {
    values: HashMap<String, Option<String>>,
}

impl VariableResolver {
    /// `cli` holds `--variable` pairs; `env` reads the process environment.
    pub fn new(
        manifest: &Manifest,
        cli: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        for (name, _) in cli {
            if !manifest.variables.contains_key(name) {
                bail!(
                    "--variable {name}: the application declares no variable {name:?} (declared: {})",
                    manifest
                        .variables
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let mut values = HashMap::new();
        let mut missing = Vec::new();
        for (name, var) in &manifest.variables {
            let from_cli = cli
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            let value = from_cli
                .or_else(|| env(&env_name(name)))
                .or_else(|| var.default.clone());
            if value.is_none() && var.required {
                missing.push(name.clone());
            }
            values.insert(name.clone(), value);
        }
        if !missing.is_empty() {
            let hints: Vec<String> = missing
                .iter()
                .map(|n| format!("{n} (set {} or pass --variable {n}=VALUE)", env_name(n)))
                .collect();
            bail!(
                "{}: no value for required variable(s): {}",
                manifest.file.display(),
                hints.join(", ")
            );
        }
        Ok(Self { values })
    }

    pub fn render(&self, template: &Template) -> Result<String> {
        template.render(|name| {
            self.values
                .get(name)
                .cloned()
                .flatten()
                .ok_or_else(|| anyhow::anyhow!("variable {name:?} has no value"))
        })
    }
}

/// The environment variable the environment provider reads for `name`.
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

pub struct Variables {
    components: Vec<Arc<HashMap<String, String>>>,
}

pub struct InstanceVariables {
    values: Arc<HashMap<String, String>>,
}

impl Capability for Variables {
    type InstanceState = InstanceVariables;

    fn add_to_linker(
        linker: &mut Linker<StoreData>,
        get: fn(&mut StoreData) -> &mut InstanceVariables,
    ) -> Result<()> {
        v2::add_to_linker::<StoreData, HasSelf<InstanceVariables>>(linker, get)
            .map_err(anyhow::Error::from)
    }

    fn configure(app: &AppContext) -> Result<Self> {
        let mut components = Vec::new();
        for c in &app.components {
            let mut values = HashMap::new();
            for (name, template) in &c.manifest.variables {
                let value = app.resolver.render(template).map_err(|e| {
                    anyhow::anyhow!(
                        "{}: field `component.{}.variables.{name}`: {e}",
                        app.manifest.file.display(),
                        c.id
                    )
                })?;
                values.insert(name.clone(), value);
            }
            components.push(Arc::new(values));
        }
        Ok(Self { components })
    }

    fn instance_state(&self, component: ComponentIndex) -> Result<InstanceVariables> {
        Ok(InstanceVariables {
            values: self.components[component].clone(),
        })
    }
}

impl v2::Host for InstanceVariables {
    async fn get(&mut self, name: String) -> Result<String, Error> {
        // Spin looks names up case-insensitively by lower-casing them first.
        let key = name.to_ascii_lowercase();
        if let Err(reason) = fado_manifest::template::validate_variable_name(&key) {
            return Err(Error::InvalidName(format!("{name:?}: {reason}")));
        }
        self.values
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::Undefined(format!("no variable for {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            Path::new("spin.toml"),
            r#"
            spin_manifest_version = 2
            [application]
            name = "t"
            [variables]
            greeting = { default = "hello" }
            token = { required = true, secret = true }
            [[trigger.http]]
            route = "/"
            component = "c"
            [component.c]
            source = "c.wasm"
            [component.c.variables]
            message = "{{ greeting }}, {{ token }}"
            "#,
        )
        .unwrap()
    }

    #[test]
    fn precedence_cli_then_env_then_default() {
        let m = manifest();
        let env = |k: &str| (k == "SPIN_VARIABLE_TOKEN").then(|| "from-env".to_string());
        let r = VariableResolver::new(&m, &[], env).unwrap();
        let t = &m.components["c"].variables["message"];
        assert_eq!(r.render(t).unwrap(), "hello, from-env");
        let cli = vec![("token".to_string(), "from-cli".to_string())];
        let r = VariableResolver::new(&m, &cli, env).unwrap();
        assert_eq!(r.render(t).unwrap(), "hello, from-cli");
    }

    #[test]
    fn missing_required_is_an_error_naming_it() {
        let err = VariableResolver::new(&manifest(), &[], |_| None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("token") && err.contains("SPIN_VARIABLE_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn unknown_cli_variable_is_an_error() {
        let cli = vec![("nope".to_string(), "x".to_string())];
        let err = VariableResolver::new(&manifest(), &cli, |_| None)
            .err()
            .unwrap();
        assert!(err.to_string().contains("nope"));
    }
}
