//! `{{ variable }}` templates, as used by Spin in component variables,
//! `allowed_outbound_hosts` and trigger addresses.

use std::fmt;

/// A parsed template: literal text interleaved with variable references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unclosed '{{{{' in template {0:?}")]
    Unclosed(String),
    #[error("invalid variable name {name:?} in template {template:?}: {reason}")]
    InvalidName {
        name: String,
        template: String,
        reason: String,
    },
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| TemplateError::Unclosed(source.to_string()))?;
            let name = after[..end].trim();
            validate_variable_name(name).map_err(|reason| TemplateError::InvalidName {
                name: name.to_string(),
                template: source.to_string(),
                reason,
            })?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self {
            parts,
            source: source.to_string(),
        })
    }

    /// The variables this template refers to, in order of appearance.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    pub fn is_literal(&self) -> bool {
        self.references().next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders the template; `lookup` returns `None` for a variable with no
    /// value, which makes rendering fail naming that variable.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(&lookup(name)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Spin variable names are lower snake case: words of lowercase letters and
/// digits, each starting with a letter, joined by single underscores.
pub fn validate_variable_name(name: &str) -> Result<(), String> {
    validate_id(name, '_')
}

/// Spin component ids are kebab case: words of lowercase letters and digits,
/// each starting with a letter, joined by single hyphens.
pub fn validate_component_id(id: &str) -> Result<(), String> {
    validate_id(id, '-')
}

fn validate_id(id: &str, delimiter: char) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    for word in id.split(delimiter) {
        let mut chars = word.chars();
        let Some(first) = chars.next() else {
            return Err(format!(
                "must not have empty words (leading, trailing or doubled '{delimiter}')"
            ));
        };
        if !first.is_ascii_lowercase() {
            return Err(format!(
                "each '{delimiter}'-separated word must start with a lowercase ASCII letter"
            ));
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit())) {
            return Err(format!(
                "character {bad:?} is not allowed (use lowercase ASCII letters, digits and '{delimiter}')"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Result<String, String> {
        match name {
            "host" => Ok("example.com".into()),
            "port" => Ok("8080".into()),
            other => Err(other.to_string()),
        }
    }

    #[test]
    fn renders_literals_and_variables() {
        let t = Template::parse("https://{{ host }}:{{port}}/x").unwrap();
        assert_eq!(t.references().collect::<Vec<_>>(), ["host", "port"]);
        assert_eq!(t.render(vars).unwrap(), "https://example.com:8080/x");
        assert!(Template::parse("plain").unwrap().is_literal());
    }

    #[test]
    fn missing_variable_is_reported_by_name() {
        let t = Template::parse("{{ nope }}").unwrap();
        assert_eq!(t.render(vars).unwrap_err(), "nope");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            Template::parse("{{ host"),
            Err(TemplateError::Unclosed(_))
        ));
        assert!(matches!(
            Template::parse("{{ Host }}"),
            Err(TemplateError::InvalidName { .. })
        ));
        assert!(matches!(
            Template::parse("{{ }}"),
            Err(TemplateError::InvalidName { .. })
        ));
    }

    #[test]
    fn id_rules() {
        assert!(validate_component_id("catalog").is_ok());
        assert!(validate_component_id("probe-http2").is_ok());
        assert!(validate_component_id("Probe").is_err());
        assert!(validate_component_id("probe--x").is_err());
        assert!(validate_component_id("2probe").is_err());
        assert!(validate_variable_name("pg_url").is_ok());
        assert!(validate_variable_name("pg-url").is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Text without `{{` is a literal and renders to itself.
        #[test]
        fn literals_render_unchanged(text in "[^{]*") {
            let t = Template::parse(&text).unwrap();
            prop_assert!(t.is_literal());
            prop_assert_eq!(t.render(|_| Err::<String, ()>(())).unwrap(), text);
        }

        /// Substitution puts each value exactly where its reference was.
        #[test]
        fn substitution_is_positional(a in "[^{}]*", b in "[^{}]*", v in "[a-z0-9]*") {
            let t = Template::parse(&format!("{a}{{{{ name }}}}{b}")).unwrap();
            prop_assert_eq!(t.render(|_| Ok::<_, ()>(v.clone())).unwrap(), format!("{a}{v}{b}"));
        }
    }
}
