//! Where the API URL and the admin token come from: flags, then the
//! environment, then the config file, then the default. Pure: the caller
//! reads files and the environment and passes what it found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The API FaDO listens on out of the box (`fado up`).
pub const DEFAULT_API: &str = "http://127.0.0.1:3000";

/// Where the config file is when none is named: `fado/config.toml` under
/// `$XDG_CONFIG_HOME`, or under `~/.config` when that is unset or not an
/// absolute path (as the XDG base directory specification says). `env`
/// reads an environment variable.
pub fn default_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    Some(
        xdg_base(&env, "XDG_CONFIG_HOME", ".config")?
            .join("fado")
            .join("config.toml"),
    )
}

/// An XDG base directory: `$var` when it is an absolute path, else `$HOME`
/// joined with `under_home` (e.g. `.local/share` for `XDG_DATA_HOME`).
pub fn xdg_base(
    env: impl Fn(&str) -> Option<String>,
    var: &str,
    under_home: &str,
) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(under_home)))
}

/// The config file (see [`default_path`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Base URL of FaDO's listener, e.g. `http://127.0.0.1:3000`.
    pub api: Option<String>,
    pub token: Option<String>,
    /// A file holding the token; relative paths are relative to the config file.
    pub token_file: Option<PathBuf>,
}

impl ConfigFile {
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Where a setting came from, to name it when it turns out wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    /// A field of the config file at this path.
    Config(PathBuf),
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "the {flag} option"),
            Origin::Env(var) => write!(f, "${var}"),
            Origin::Config(path) => write!(f, "the config file {}", path.display()),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// The token to send, or where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Value { value: String, from: Origin },
    File { path: PathBuf, from: Origin },
    None,
}

impl Token {
    /// Names where the token came from, for a 401's hint.
    pub fn describe(&self) -> String {
        match self {
            Token::Value { from, .. } => format!("the token came from {from}"),
            Token::File { path, from } => {
                format!("the token was read from {} (named by {from})", path.display())
            }
            Token::None => "no token was given: use --token, --token-file, $FADO_TOKEN or `token` in the config file".into(),
        }
    }
}

/// What was found, highest precedence first within each field.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub api_flag: Option<String>,
    pub api_env: Option<String>,
    pub token_flag: Option<String>,
    pub token_file_flag: Option<PathBuf>,
    pub token_env: Option<String>,
    /// The config file that was read, and its path.
    pub config: Option<(PathBuf, ConfigFile)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub api: String,
    pub api_from: Origin,
    pub token: Token,
}

/// Flags win over the environment, which wins over the config file. Empty
/// values count as unset, so `FADO_TOKEN=` does not hide the config file.
pub fn resolve(s: Sources) -> Resolved {
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let (config_path, config) = match s.config {
        Some((p, c)) => (Some(p), c),
        None => (None, ConfigFile::default()),
    };
    let from_config = || Origin::Config(config_path.clone().unwrap_or_default());

    let (api, api_from) = if let Some(v) = set(s.api_flag) {
        (v, Origin::Flag("--api"))
    } else if let Some(v) = set(s.api_env) {
        (v, Origin::Env("FADO_API"))
    } else if let Some(v) = set(config.api.clone()) {
        (v, from_config())
    } else {
        (DEFAULT_API.to_string(), Origin::Default)
    };

    let token = if let Some(value) = set(s.token_flag) {
        Token::Value {
            value,
            from: Origin::Flag("--token"),
        }
    } else if let Some(path) = s.token_file_flag {
        Token::File {
            path,
            from: Origin::Flag("--token-file"),
        }
    } else if let Some(value) = set(s.token_env) {
        Token::Value {
            value,
            from: Origin::Env("FADO_TOKEN"),
        }
    } else if let Some(value) = set(config.token.clone()) {
        Token::Value {
            value,
            from: from_config(),
        }
    } else if let Some(file) = config.token_file.clone() {
        let base = config_path.as_deref().and_then(Path::parent);
        let path = match base {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file,
        };
        Token::File {
            path,
            from: from_config(),
        }
    } else {
        Token::None
    };
    Resolved {
        api: api.trim_end_matches('/').to_string(),
        api_from,
        token,
    }
}

/// The token in a token file: its content without surrounding whitespace
/// (files usually end with a newline); `None` when that leaves nothing.
pub fn token_from_file(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_follows_xdg_config_home() {
        let env = |xdg: Option<&'static str>| {
            move |name: &str| match name {
                "XDG_CONFIG_HOME" => xdg.map(String::from),
                "HOME" => Some("/home/op".to_string()),
                _ => None,
            }
        };
        assert_eq!(
            default_path(env(Some("/etc/op-config"))),
            Some(PathBuf::from("/etc/op-config/fado/config.toml"))
        );
        for unset_or_relative in [None, Some(""), Some("relative/dir")] {
            assert_eq!(
                default_path(env(unset_or_relative)),
                Some(PathBuf::from("/home/op/.config/fado/config.toml")),
                "XDG_CONFIG_HOME={unset_or_relative:?}"
            );
        }
        assert_eq!(default_path(|_: &str| None), None);
    }

    fn config(text: &str) -> Option<(PathBuf, ConfigFile)> {
        Some((
            PathBuf::from("/home/op/.config/fado/config.toml"),
            ConfigFile::parse(text).unwrap(),
        ))
    }

    #[test]
    fn defaults_apply_without_anything() {
        let r = resolve(Sources::default());
        assert_eq!(r.api, DEFAULT_API);
        assert_eq!(r.api_from, Origin::Default);
        assert_eq!(r.token, Token::None);
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_config_file() {
        let file = config("api = \"http://cfg:1/\"\ntoken = \"from-config\"");
        let r = resolve(Sources {
            config: file.clone(),
            ..Sources::default()
        });
        assert_eq!(r.api, "http://cfg:1");
        assert!(
            matches!(r.token, Token::Value { ref value, from: Origin::Config(_) } if value == "from-config")
        );

        let r = resolve(Sources {
            api_env: Some("http://env:2".into()),
            token_env: Some("from-env".into()),
            config: file.clone(),
            ..Sources::default()
        });
        assert_eq!(
            (r.api.as_str(), r.api_from),
            ("http://env:2", Origin::Env("FADO_API"))
        );
        assert!(
            matches!(r.token, Token::Value { ref value, from: Origin::Env(_) } if value == "from-env")
        );

        let r = resolve(Sources {
            api_flag: Some("http://flag:3".into()),
            api_env: Some("http://env:2".into()),
            token_file_flag: Some("/run/token".into()),
            token_env: Some("from-env".into()),
            config: file,
            ..Sources::default()
        });
        assert_eq!(r.api, "http://flag:3");
        assert_eq!(
            r.token,
            Token::File {
                path: "/run/token".into(),
                from: Origin::Flag("--token-file")
            }
        );
    }

    #[test]
    fn empty_values_do_not_hide_lower_sources() {
        let r = resolve(Sources {
            token_env: Some(String::new()),
            config: config("token = \"t\""),
            ..Sources::default()
        });
        assert!(matches!(
            r.token,
            Token::Value {
                from: Origin::Config(_),
                ..
            }
        ));
    }

    #[test]
    fn token_files_in_the_config_are_relative_to_it() {
        let r = resolve(Sources {
            config: config("token_file = \"admin-token\""),
            ..Sources::default()
        });
        assert!(
            matches!(r.token, Token::File { ref path, .. } if path == Path::new("/home/op/.config/fado/admin-token"))
        );
        assert!(r.token.describe().contains("config.toml"));
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let e = ConfigFile::parse("api = \"x\"\ntokn = \"y\"").unwrap_err();
        assert!(e.to_string().contains("tokn"), "{e}");
    }

    #[test]
    fn token_files_are_trimmed() {
        assert_eq!(token_from_file("abc\n").as_deref(), Some("abc"));
        assert_eq!(token_from_file(" \n"), None);
    }
}
