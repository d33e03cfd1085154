//! `serve`'s configuration: a TOML file, then `MAILBRIDGE_*` environment variables over it. Every
//! problem is one line naming the key, found before anything starts.

use crate::data_dir::DataDir;
use chrono::{DateTime, Utc};
use mailbridge_core::crypto::SealingKey;
use mailbridge_core::model::{AuthType, CertificateCredential, Cloud, KeyRef, ServerProfile};
use mailbridge_core::services::Settings;
use mailbridge_core::Secret;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a secret is: the value of an environment variable, or the content of a file. Never the
/// secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// The secret, or `None` when the variable is unset (or empty) or the file does not exist.
    pub fn read(&self) -> Result<Option<Secret>, String> {
        match self {
            SecretSource::Env(name) => Ok(std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim().to_string()))),
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(v) if v.trim().is_empty() => Ok(None),
                Ok(v) => Ok(Some(Secret::new(v.trim().to_string()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("cannot read {}: {e}", path.display())),
            },
        }
    }

    /// Where it is, in words.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(name) => format!("environment variable {name}"),
            SecretSource::File(path) => format!("file {}", path.display()),
        }
    }
}

/// A server profile as the configuration writes it: the admin API's fields, with the client
/// secret by reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub id: String,
    pub name: String,
    pub cloud: Cloud,
    pub auth: AuthType,
    pub tenant: String,
    pub client_id: String,
    /// The client secret; or, instead, a certificate.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    #[serde(default)]
    pub client_secret_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub certificate: Option<CertificateConfig>,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub backfill_days: u32,
    #[serde(default)]
    pub outlook_category: Option<String>,
}

/// A certificate registered on the app registration, instead of a client secret: the certificate
/// (PEM file) and its private key (PEM), by reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub file: PathBuf,
    pub key: SecretSource,
}

impl ProfileConfig {
    /// The name its client secret goes by inside mailbridge (under the profile prefix).
    pub fn secret_name(&self, settings: &Settings) -> String {
        format!(
            "{}{}/client-secret",
            settings.profile_secret_prefix, self.id
        )
    }

    /// The name its certificate's key goes by inside mailbridge (under the profile prefix).
    pub fn key_name(&self, settings: &Settings) -> String {
        format!(
            "{}{}/certificate-key",
            settings.profile_secret_prefix, self.id
        )
    }

    /// Where each of its secrets is, by the name it goes by inside mailbridge.
    pub fn secret_sources(&self, settings: &Settings) -> Vec<(String, SecretSource)> {
        let mut out = Vec::new();
        if let Some(s) = &self.client_secret {
            out.push((self.secret_name(settings), s.clone()));
        }
        if let Some(c) = &self.certificate {
            out.push((self.key_name(settings), c.key.clone()));
        }
        out
    }

    pub fn profile(&self, settings: &Settings) -> ServerProfile {
        ServerProfile {
            id: self.id.clone(),
            name: self.name.clone(),
            cloud: self.cloud.clone(),
            auth: self.auth,
            tenant: self.tenant.clone(),
            client_id: self.client_id.clone(),
            client_secret_ref: if self.client_secret.is_some() {
                self.secret_name(settings)
            } else {
                String::new()
            },
            client_secret_expires_at: self.client_secret_expires_at,
            is_default: self.is_default,
            approval_required: self.approval_required,
            backfill_days: self.backfill_days,
            outlook_category: self.outlook_category.clone(),
            certificate: self.certificate.as_ref().map(|c| CertificateCredential {
                certificate_pem: std::fs::read_to_string(&c.file).unwrap_or_default(),
                key: KeyRef::SecretStore {
                    name: self.key_name(settings),
                },
            }),
        }
    }
}

/// The file, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    max_message_mb: Option<u64>,
    import_workers: Option<u64>,
    maintenance_minutes: Option<u64>,
    sweep_minutes: Option<u64>,
    event_hook: Option<String>,
    custom_cloud_hosts: Option<Vec<String>>,
    console_admins: Option<Vec<String>>,
    admin_token: Option<SecretSource>,
    sealing_key: Option<SecretSource>,
    #[serde(default)]
    profiles: Vec<ProfileConfig>,
}

/// The environment variables that override the file, each with the key it overrides.
pub const OVERRIDES: &[(&str, &str)] = &[
    ("MAILBRIDGE_LISTEN", "listen"),
    ("MAILBRIDGE_PUBLIC_URL", "public_url"),
    ("MAILBRIDGE_DATA_DIR", "data_dir"),
    ("MAILBRIDGE_MAX_MESSAGE_MB", "max_message_mb"),
    ("MAILBRIDGE_IMPORT_WORKERS", "import_workers"),
    ("MAILBRIDGE_MAINTENANCE_MINUTES", "maintenance_minutes"),
    ("MAILBRIDGE_SWEEP_MINUTES", "sweep_minutes"),
    ("MAILBRIDGE_EVENT_HOOK", "event_hook"),
    ("MAILBRIDGE_CUSTOM_CLOUD_HOSTS", "custom_cloud_hosts"),
    ("MAILBRIDGE_CONSOLE_ADMINS", "console_admins"),
    ("MAILBRIDGE_ADMIN_TOKEN_FILE", "admin_token"),
    ("MAILBRIDGE_SEALING_KEY_FILE", "sealing_key"),
];

/// `serve`'s configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: std::net::SocketAddr,
    /// What Graph and browsers reach (https, or http on loopback), without a trailing slash.
    pub public_url: String,
    pub data_dir: PathBuf,
    pub max_message_mb: u64,
    /// Independent import workers, each as a Lambda container is (1 to 64; 1 by default).
    pub import_workers: usize,
    /// How often the maintenance round runs (1 to 60 minutes; 5 by default).
    pub maintenance_every: std::time::Duration,
    /// How often a subscribed mailbox is swept for what no notification announced (1 to 1,440
    /// minutes; 60 by default).
    pub sweep_minutes: u64,
    pub event_hook: Option<String>,
    pub custom_cloud_hosts: Vec<String>,
    /// User object ids of the console's administrators.
    pub console_admins: Vec<String>,
    pub admin_token: SecretSource,
    pub sealing_key: SecretSource,
    pub profiles: Vec<ProfileConfig>,
}

impl Config {
    /// Reads the file (if any), applies the environment (`env` looks a variable up), and checks
    /// every value. The first problem found is the error, naming its key.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let (written, home): (FileConfig, PathBuf) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let parsed = toml::from_str(&text)
                    .map_err(|e| format!("{}: {}", path.display(), one_line(&e.to_string())))?;
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                (parsed, dir)
            }
            None => (FileConfig::default(), default_home(&env)),
        };
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());

        let listen_text = var("MAILBRIDGE_LISTEN")
            .or(written.listen)
            .unwrap_or_else(|| "127.0.0.1:8300".into());
        let listen: std::net::SocketAddr = listen_text.parse().map_err(|_| {
            format!("listen: {listen_text:?} is not an address and port, such as 127.0.0.1:8300")
        })?;
        let public_url = var("MAILBRIDGE_PUBLIC_URL")
            .or(written.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let public_url = check_public_url(&public_url)?;
        let data_dir = var("MAILBRIDGE_DATA_DIR")
            .map(PathBuf::from)
            .or(written.data_dir)
            .unwrap_or_else(|| PathBuf::from(".local/mailbridge"));
        let max_message_mb = match var("MAILBRIDGE_MAX_MESSAGE_MB") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("max_message_mb: {v:?} is not a number of MB"))?,
            None => written
                .max_message_mb
                .unwrap_or(mailbridge_core::services::MAX_MESSAGE_MB),
        };
        Settings::new(&public_url)
            .with_max_message_mb(max_message_mb)
            .map_err(|e| format!("max_message_mb: {e}"))?;
        let in_range = |key: &str, env: &str, written: Option<u64>, default: u64, max: u64| {
            let value = match var(env) {
                Some(v) => v.trim().parse().ok(),
                None => Some(written.unwrap_or(default)),
            };
            value
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("{key}: give a whole number from 1 to {max}"))
        };
        let import_workers = in_range(
            "import_workers",
            "MAILBRIDGE_IMPORT_WORKERS",
            written.import_workers,
            1,
            64,
        )? as usize;
        let maintenance_minutes = in_range(
            "maintenance_minutes",
            "MAILBRIDGE_MAINTENANCE_MINUTES",
            written.maintenance_minutes,
            5,
            60,
        )?;
        let sweep_minutes = in_range(
            "sweep_minutes",
            "MAILBRIDGE_SWEEP_MINUTES",
            written.sweep_minutes,
            60,
            1440,
        )?;
        let event_hook = var("MAILBRIDGE_EVENT_HOOK").or(written.event_hook);
        if let Some(hook) = &event_hook {
            let ok = reqwest::Url::parse(hook)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!("event_hook: {hook:?} is not an http(s) URL"));
            }
        }
        let custom_cloud_hosts = match var("MAILBRIDGE_CUSTOM_CLOUD_HOSTS") {
            Some(v) => v.split(',').map(|h| h.trim().to_string()).collect(),
            None => written.custom_cloud_hosts.unwrap_or_default(),
        };
        let console_admins: Vec<String> = match var("MAILBRIDGE_CONSOLE_ADMINS") {
            Some(v) => v.split(',').map(|h| h.trim().to_string()).collect(),
            None => written.console_admins.unwrap_or_default(),
        };
        if let Some(bad) = console_admins
            .iter()
            .find(|a| uuid::Uuid::parse_str(a).is_err())
        {
            return Err(format!(
                "console_admins: {bad:?} is not a user object id (a GUID, as Entra ID shows it)"
            ));
        }
        let admin_token = var("MAILBRIDGE_ADMIN_TOKEN_FILE")
            .map(|f| SecretSource::File(f.into()))
            .or(written.admin_token)
            .unwrap_or_else(|| SecretSource::File(home.join("admin-token")));
        let sealing_key = var("MAILBRIDGE_SEALING_KEY_FILE")
            .map(|f| SecretSource::File(f.into()))
            .or(written.sealing_key)
            .unwrap_or_else(|| SecretSource::File(home.join("sealing.key")));
        for (key, source) in [("admin_token", &admin_token), ("sealing_key", &sealing_key)] {
            if let SecretSource::File(path) = source {
                if inside(path, &data_dir) {
                    return Err(format!(
                        "{key}: {} lies inside the data directory {}; keep it elsewhere, so \
                         that a copy of the data is not a copy of its key",
                        path.display(),
                        data_dir.display()
                    ));
                }
            }
        }
        let config = Config {
            listen,
            public_url,
            data_dir,
            max_message_mb,
            import_workers,
            maintenance_every: std::time::Duration::from_secs(maintenance_minutes * 60),
            sweep_minutes,
            event_hook,
            custom_cloud_hosts,
            console_admins,
            admin_token,
            sealing_key,
            profiles: written.profiles,
        };
        config.check_profiles()?;
        Ok(config)
    }

    /// The core's settings for this configuration.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::new(&self.public_url)
            .with_max_message_mb(self.max_message_mb)
            .expect("checked by load");
        settings.schedule.sweep_every = chrono::Duration::minutes(self.sweep_minutes as i64);
        settings.with_custom_cloud_hosts(&self.custom_cloud_hosts)
    }

    /// The profiles as the core stores them.
    pub fn server_profiles(&self) -> Vec<ServerProfile> {
        let settings = self.settings();
        self.profiles.iter().map(|p| p.profile(&settings)).collect()
    }

    fn check_profiles(&self) -> Result<(), String> {
        let settings = self.settings();
        let mut ids = BTreeSet::new();
        for (i, p) in self.profiles.iter().enumerate() {
            let key = format!("profiles[{i}] ({})", p.id);
            if !ids.insert(p.id.as_str()) {
                return Err(format!("{key}: another profile has the id {:?}", p.id));
            }
            let sources = match (&p.client_secret, &p.certificate) {
                (Some(s), None) => vec![("client_secret", s)],
                (None, Some(c)) => {
                    if let Err(e) = std::fs::read_to_string(&c.file) {
                        return Err(format!(
                            "{key}.certificate.file: cannot read {}: {e}",
                            c.file.display()
                        ));
                    }
                    vec![("certificate.key", &c.key)]
                }
                _ => {
                    return Err(format!(
                        "{key}: give client_secret or certificate (one of them)"
                    ))
                }
            };
            settings
                .check_profile(&p.profile(&settings))
                .map_err(|e| format!("{key}: {e}"))?;
            for (field, source) in sources {
                match source.read() {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(format!(
                            "{key}.{field}: the {} is not set or empty",
                            source.describe()
                        ))
                    }
                    Err(e) => return Err(format!("{key}.{field}: {e}")),
                }
            }
        }
        if self.profiles.iter().filter(|p| p.is_default).count() > 1 {
            return Err("profiles: more than one has is_default = true".into());
        }
        Ok(())
    }

    /// The key that seals the secrets file. Generated on the first start only (when the data
    /// directory holds nothing sealed yet), into the configured file, which is then said;
    /// refused when missing while sealed data exists.
    pub fn sealing_key(&self, data: &DataDir) -> Result<SealingKey, String> {
        let sealed = crate::secrets::has_sealed_data(data.path());
        let key = match self.sealing_key.read() {
            Err(e) => return Err(format!("sealing_key: {e}")),
            Ok(Some(key)) => key,
            Ok(None) if sealed => {
                return Err(format!(
                    "sealing_key: the {} is missing, and {} holds data sealed with it; restore \
                     the key (from your backup) to start",
                    self.sealing_key.describe(),
                    data.path().display()
                ))
            }
            Ok(None) => match &self.sealing_key {
                SecretSource::Env(name) => {
                    return Err(format!(
                        "sealing_key: environment variable {name} is not set; put a key in it \
                         (32 random bytes in base64, e.g. `openssl rand -base64 32`)"
                    ))
                }
                SecretSource::File(path) => {
                    let key = SealingKey::generate_base64();
                    write_private(path, key.expose()).map_err(|e| format!("sealing_key: {e}"))?;
                    eprintln!(
                        "mailbridge: generated a new sealing key in {}; back it up: without it \
                         the secrets in {} cannot be read",
                        path.display(),
                        data.path().display()
                    );
                    key
                }
            },
        };
        SealingKey::from_base64(&key).map_err(|e| format!("sealing_key: {e}"))
    }

    /// The admin API's bearer token: generated into the configured file on first start.
    pub fn admin_token(&self) -> Result<Secret, String> {
        match self.admin_token.read() {
            Err(e) => Err(format!("admin_token: {e}")),
            Ok(Some(token)) if token.expose().len() < 24 => Err(format!(
                "admin_token: the token in the {} is shorter than 24 characters",
                self.admin_token.describe()
            )),
            Ok(Some(token)) => Ok(token),
            Ok(None) => match &self.admin_token {
                SecretSource::Env(name) => Err(format!(
                    "admin_token: environment variable {name} is not set"
                )),
                SecretSource::File(path) => {
                    let token = Secret::new(mailbridge_core::crypto::random_token(24));
                    write_private(path, token.expose()).map_err(|e| format!("admin_token: {e}"))?;
                    eprintln!(
                        "mailbridge: generated the admin API's token in {}",
                        path.display()
                    );
                    Ok(token)
                }
            },
        }
    }
}

impl Config {
    /// Asks each profile's Entra ID for its tenant's OpenID configuration, so that a wrong login
    /// URL or tenant stops the start with its key named, rather than the first sign-in.
    pub async fn check_reachable(&self, http: &reqwest::Client) -> Result<(), String> {
        for (i, p) in self.profiles.iter().enumerate() {
            let login = p.cloud.endpoints().login;
            let url = format!("{login}/{}/v2.0/.well-known/openid-configuration", p.tenant);
            let key = format!("profiles[{i}] ({})", p.id);
            let answer = http
                .get(&url)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "{key}.cloud: cannot reach the login URL {login}: {}",
                        one_line(&error_chain(&e))
                    )
                })?;
            match answer.status().as_u16() {
                200..=299 => {}
                400 | 404 => {
                    return Err(format!(
                        "{key}.tenant: {login} does not know the tenant {:?} (HTTP {})",
                        p.tenant,
                        answer.status().as_u16()
                    ))
                }
                status => {
                    return Err(format!(
                        "{key}.cloud: the login URL {login} answered HTTP {status}"
                    ))
                }
            }
        }
        Ok(())
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `https://…`, or `http://…` on a loopback host only; no path beyond `/`, no query.
fn check_public_url(url: &str) -> Result<String, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| format!("public_url: {url:?} is not a URL"))?;
    let Some(host) = parsed.host_str() else {
        return Err(format!("public_url: {url:?} has no host"));
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "public_url: {url:?} must be https (Graph calls only https URLs; http is \
                 accepted on loopback, for a local trial)"
            ))
        }
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "public_url: {url:?} must not have a query or fragment"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Where the admin token and the sealing key go when neither the file nor the configuration
/// names a place: `$XDG_CONFIG_HOME/mailbridge`, or `~/.config/mailbridge`.
fn default_home(env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("mailbridge")
}

/// Whether `path` lies inside `dir` (both taken as absolute, the missing parts as written).
fn inside(path: &Path, dir: &Path) -> bool {
    let absolute = |p: &Path| {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        // Resolve what exists (symbolic links, `..`), keep the rest as written.
        let mut existing = p.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        resolved.extend(rest.iter().rev());
        resolved
    };
    absolute(path).starts_with(absolute(dir))
}

/// Writes a secret to a new file only its owner can read, creating its folder (owner-only too).
fn write_private(path: &Path, value: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| format!("{}: {e}", dir.display()))?;
            }
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    writeln!(file, "{value}").map_err(|e| format!("{}: {e}", path.display()))
}

/// An error message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A configuration file in a fresh folder, with a client secret file beside it.
    struct Setup {
        dir: tempfile::TempDir,
    }

    impl Setup {
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("client-secret"), "s3cr3t\n").unwrap();
            Setup { dir }
        }

        fn file(&self, text: &str) -> PathBuf {
            let path = self.dir.path().join("mailbridge.toml");
            let text = text.replace("$DIR", &self.dir.path().display().to_string());
            std::fs::write(&path, text).unwrap();
            path
        }

        fn load(&self, text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
            let env: HashMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::load(Some(&self.file(text)), |k| env.get(k).cloned())
        }
    }

    const PROFILE: &str = r#"
[[profiles]]
id = "contoso"
name = "Contoso"
cloud = { name = "global" }
auth = "delegated"
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = { file = "$DIR/client-secret" }
is_default = true
"#;

    #[test]
    fn the_example_in_infra_is_a_valid_configuration() {
        let s = Setup::new();
        let example = include_str!("../../../infra/mailbridge.example.toml")
            .replace(
                "client_secret = { env = \"CONTOSO_CLIENT_SECRET\" }",
                "client_secret = { file = \"$DIR/client-secret\" }",
            )
            .replace("/etc/mailbridge", "$DIR/etc");
        let c = s.load(&example, &[]).unwrap();
        assert_eq!(c.public_url, "https://mail.example.com");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8300");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/mailbridge"));
        let p = &c.server_profiles()[0];
        assert_eq!(
            p.client_secret_ref,
            "mailbridge/profiles/contoso/client-secret"
        );
        assert!(p.client_secret_expires_at.is_some());
        assert_eq!(p.cloud, Cloud::Global);
    }

    #[test]
    fn the_readme_shows_the_example_as_it_is() {
        let readme = include_str!("../../../README.md");
        let example = include_str!("../../../infra/mailbridge.example.toml");
        assert!(
            readme.contains(&format!("```toml\n{example}```")),
            "README.md must embed infra/mailbridge.example.toml verbatim"
        );
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let s = Setup::new();
        let c = s
            .load(
                "listen = \"127.0.0.1:9000\"\npublic_url = \"https://a.example\"\n",
                &[
                    ("MAILBRIDGE_LISTEN", "0.0.0.0:9100"),
                    ("MAILBRIDGE_PUBLIC_URL", "https://b.example/"),
                    ("MAILBRIDGE_DATA_DIR", "/srv/mail"),
                    ("MAILBRIDGE_MAX_MESSAGE_MB", "25"),
                    ("MAILBRIDGE_IMPORT_WORKERS", "6"),
                    ("MAILBRIDGE_MAINTENANCE_MINUTES", "2"),
                    ("MAILBRIDGE_SWEEP_MINUTES", "10"),
                    (
                        "MAILBRIDGE_CUSTOM_CLOUD_HOSTS",
                        "proxy.example, gw.example:8443",
                    ),
                    ("MAILBRIDGE_SEALING_KEY_FILE", "/keys/mailbridge.key"),
                ],
            )
            .unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9100");
        assert_eq!(c.public_url, "https://b.example");
        assert_eq!(c.data_dir, PathBuf::from("/srv/mail"));
        assert_eq!(c.max_message_mb, 25);
        assert_eq!(c.import_workers, 6);
        assert_eq!(c.maintenance_every, std::time::Duration::from_secs(120));
        assert_eq!(
            c.settings().schedule.sweep_every,
            chrono::Duration::minutes(10)
        );
        assert_eq!(c.custom_cloud_hosts, ["proxy.example", "gw.example:8443"]);
        assert_eq!(
            c.sealing_key,
            SecretSource::File("/keys/mailbridge.key".into())
        );
        // Nothing set: loopback defaults, the keys beside the file.
        let c = s.load("", &[]).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8300");
        assert_eq!(c.import_workers, 1);
        assert_eq!(c.maintenance_every, std::time::Duration::from_secs(300));
        assert_eq!(
            c.admin_token,
            SecretSource::File(s.dir.path().join("admin-token"))
        );
    }

    #[test]
    fn a_profile_may_use_a_certificate_instead_of_a_secret_but_needs_one_of_them() {
        let s = Setup::new();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mailbridge".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(s.dir.path().join("contoso.crt"), cert.pem()).unwrap();
        std::fs::write(s.dir.path().join("contoso.key"), key.serialize_pem()).unwrap();
        let with_cert = PROFILE.replace(
            "client_secret = { file = \"$DIR/client-secret\" }",
            "certificate = { file = \"$DIR/contoso.crt\", key = { file = \"$DIR/contoso.key\" } }",
        );
        let c = s.load(&with_cert, &[]).unwrap();
        let p = &c.server_profiles()[0];
        assert_eq!(p.client_secret_ref, "");
        let certificate = p.certificate.as_ref().unwrap();
        assert_eq!(certificate.certificate_pem, cert.pem());
        assert_eq!(
            certificate.key,
            KeyRef::SecretStore {
                name: "mailbridge/profiles/contoso/certificate-key".into()
            }
        );
        assert!(p.credential_expires_at().is_some());
        let neither = PROFILE.replace("client_secret = { file = \"$DIR/client-secret\" }\n", "");
        let both = format!(
            "{PROFILE}certificate = {{ file = \"$DIR/contoso.crt\", key = {{ file = \"$DIR/contoso.key\" }} }}\n"
        );
        for text in [neither, both] {
            let e = s.load(&text, &[]).unwrap_err();
            assert!(e.contains("give client_secret or certificate"), "{e}");
        }
        let missing = with_cert.replace("contoso.crt", "nowhere.crt");
        let e = s.load(&missing, &[]).unwrap_err();
        assert!(e.contains("certificate.file: cannot read"), "{e}");
    }

    #[test]
    fn each_mistake_is_one_line_naming_its_key() {
        let s = Setup::new();
        // The file, the environment, what the error must say.
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("colour = \"blue\"\n", &[], "unknown field `colour`"),
            (
                &format!("{PROFILE}client_secret_ref = \"x\"\n"),
                &[],
                "unknown field `client_secret_ref`",
            ),
            ("listen = \"everywhere\"\n", &[], "listen:"),
            ("public_url = \"http://mail.example.com\"\n", &[], "public_url:"),
            ("", &[("MAILBRIDGE_PUBLIC_URL", "ftp://x")], "public_url:"),
            ("max_message_mb = 500\n", &[], "max_message_mb:"),
            ("import_workers = 0\n", &[], "import_workers: give a whole number from 1 to 64"),
            ("", &[("MAILBRIDGE_IMPORT_WORKERS", "many")], "import_workers:"),
            ("maintenance_minutes = 61\n", &[], "maintenance_minutes:"),
            ("sweep_minutes = 0\n", &[], "sweep_minutes:"),
            ("event_hook = \"not a url\"\n", &[], "event_hook:"),
            (
                "sealing_key = { file = \"$DIR/data/key\" }\ndata_dir = \"$DIR/data\"\n",
                &[],
                "sealing_key:",
            ),
            (
                &PROFILE.replace(
                    "{ file = \"$DIR/client-secret\" }",
                    "{ env = \"MAILBRIDGE_TEST_NEVER_SET_7F3A\" }",
                ),
                &[],
                "profiles[0] (contoso).client_secret: the environment variable MAILBRIDGE_TEST_NEVER_SET_7F3A is not set",
            ),
            (
                &PROFILE.replace(
                    "cloud = { name = \"global\" }",
                    "cloud = { name = \"custom\", login = \"https://login.evil.example\", graph = \"https://graph.evil.example\", resource = \"https://graph.microsoft.com\" }",
                ),
                &[],
                "profiles[0] (contoso):",
            ),
            (&format!("{PROFILE}{PROFILE}"), &[], "another profile has the id"),
        ];
        for (text, env, expected) in cases {
            let e = s.load(text, env).expect_err(text);
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_sealing_key_is_generated_once_and_required_after() {
        let s = Setup::new();
        let text = "sealing_key = { file = \"$DIR/keys/sealing.key\" }\n\
                    admin_token = { file = \"$DIR/keys/admin-token\" }\n";
        let c = s.load(text, &[]).unwrap();
        let data = DataDir::open(&s.dir.path().join("data"), crate::Purpose::Serve).unwrap();
        // First start: generated, owner-only.
        let key = c.sealing_key(&data).unwrap();
        let token = c.admin_token().unwrap();
        let key_file = s.dir.path().join("keys/sealing.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Next start: the same.
        assert_eq!(c.admin_token().unwrap().expose(), token.expose());
        let sealed = crate::LocalSecrets::sealed_in(data.path(), key).unwrap();
        sealed.set("x", &Secret::new("y")).unwrap();
        let again = c.sealing_key(&data).unwrap();
        assert!(crate::LocalSecrets::sealed_in(data.path(), again).is_ok());
        // The key lost while sealed data exists: refused, nothing generated.
        std::fs::remove_file(&key_file).unwrap();
        let e = c.sealing_key(&data).unwrap_err();
        assert!(e.contains("holds data sealed with it"), "{e}");
        assert!(!key_file.exists());
    }
}
