//! A function's AWS environment: its variables and its clients, handed out port by port. Asking
//! for a port the function did not declare is an error, and what was asked for is recorded, so
//! that a test can hold each function's wiring to its declared ports (and so to its IAM).

use crate::Port;
use mailbridge_core::services::Settings;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Vars = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct AwsEnv {
    #[allow(dead_code)] // read by whichever clients are enabled
    config: aws_types::SdkConfig,
    vars: Vars,
    declared: &'static [Port],
    used: Mutex<BTreeSet<Port>>,
    read: Mutex<BTreeSet<String>>,
}

impl AwsEnv {
    /// The process's environment and the SDK's default configuration, for a function that
    /// declared `ports`.
    #[cfg(feature = "native")]
    pub async fn from_process(ports: &'static [Port]) -> Self {
        let config = aws_config::load_from_env().await;
        Self::new(config, ports, |name| std::env::var(name).ok())
    }

    /// A WebAssembly component's environment, as its host passes it (`wasmtime serve --env`):
    /// the region (`AWS_REGION`), the credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN` if temporary), `AWS_ENDPOINT_URL` if set; every AWS call goes out
    /// through the host's `wasi:http` outgoing handler.
    #[cfg(feature = "wasi")]
    pub fn from_wasi(ports: &'static [Port]) -> Result<Self, BoxError> {
        use aws_credential_types::Credentials;
        use aws_types::sdk_config::{SharedAsyncSleep, SharedCredentialsProvider};
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let need =
            |name: &str| var(name).ok_or_else(|| format!("environment variable {name} is not set"));
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .ok_or("environment variable AWS_REGION is not set")?;
        let credentials = Credentials::new(
            need("AWS_ACCESS_KEY_ID")?,
            need("AWS_SECRET_ACCESS_KEY")?,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        let mut config = aws_types::SdkConfig::builder()
            .region(aws_types::region::Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build())
            .sleep_impl(SharedAsyncSleep::new(aws_smithy_wasm::wasi::WasiSleep))
            .behavior_version(
                aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest(),
            );
        if let Some(url) = var("AWS_ENDPOINT_URL") {
            config = config.endpoint_url(url);
        }
        Ok(Self::new(config.build(), ports, move |name| var(name)))
    }

    pub fn new(
        config: aws_types::SdkConfig,
        ports: &'static [Port],
        vars: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            config,
            vars: Box::new(vars),
            declared: ports,
            used: Mutex::new(BTreeSet::new()),
            read: Mutex::new(BTreeSet::new()),
        }
    }

    /// A variable the function needs.
    pub fn var(&self, name: &str) -> Result<String, BoxError> {
        self.optional_var(name)
            .ok_or_else(|| format!("environment variable {name} is not set").into())
    }

    /// A variable the function may do without.
    pub fn optional_var(&self, name: &str) -> Option<String> {
        self.read.lock().expect("lock").insert(name.to_string());
        (self.vars)(name).filter(|v| !v.is_empty())
    }

    /// Takes a declared port; an undeclared one is a wiring mistake, reported at start-up.
    fn port(&self, port: Port) -> Result<(), BoxError> {
        if !self.declared.contains(&port) {
            return Err(format!(
                "this function uses {port:?} without declaring it in its PORTS (and so without its IAM permission)"
            )
            .into());
        }
        self.used.lock().expect("lock").insert(port);
        Ok(())
    }

    /// The ports the wiring took.
    pub fn used(&self) -> BTreeSet<Port> {
        self.used.lock().expect("lock").clone()
    }

    /// The variables the wiring read.
    pub fn variables(&self) -> BTreeSet<String> {
        self.read.lock().expect("lock").clone()
    }

    /// The settings of a function that serves mailboxes: `PUBLIC_BASE_URL`, the token key
    /// (`TOKEN_KEY_SECRET`), the profile secret prefix (`PROFILE_SECRET_PREFIX`) and the hosts a
    /// custom cloud may name (`CUSTOM_CLOUD_HOSTS`, optional).
    pub fn settings(&self) -> Result<Settings, BoxError> {
        let mut settings = Settings::new(self.var("PUBLIC_BASE_URL")?);
        self.port(Port::SealingKey)?;
        settings.token_key_name = self.var("TOKEN_KEY_SECRET")?;
        self.port(Port::ProfileSecrets)?;
        settings.profile_secret_prefix = self.var("PROFILE_SECRET_PREFIX")?;
        if let Some(hosts) = self.optional_var("CUSTOM_CLOUD_HOSTS") {
            settings = settings.with_custom_cloud_hosts(&[hosts]);
        }
        Ok(settings)
    }

    /// The name of the admin token's secret (`ADMIN_TOKEN_SECRET`).
    pub fn admin_token_name(&self) -> Result<String, BoxError> {
        self.port(Port::AdminToken)?;
        self.var("ADMIN_TOKEN_SECRET")
    }

    /// The state table (`TABLE_NAME`).
    #[cfg(feature = "dynamodb")]
    pub fn state(&self) -> Result<Arc<crate::DynamoStateStore>, BoxError> {
        self.port(Port::State)?;
        Ok(Arc::new(crate::DynamoStateStore::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.var("TABLE_NAME")?,
        )))
    }

    /// The state table, read-only and for subscription records only (`TABLE_NAME`).
    #[cfg(feature = "dynamodb")]
    pub fn subscription_lookup(&self) -> Result<Arc<crate::DynamoStateStore>, BoxError> {
        self.limited_state(Port::SubscriptionLookup)
    }

    /// The state table, for the maintenance round's whole-partition reads only (`TABLE_NAME`).
    #[cfg(feature = "dynamodb")]
    pub fn state_scan(&self) -> Result<Arc<crate::DynamoStateStore>, BoxError> {
        self.limited_state(Port::StateScan)
    }

    #[cfg(feature = "dynamodb")]
    fn limited_state(&self, port: Port) -> Result<Arc<crate::DynamoStateStore>, BoxError> {
        self.port(port)?;
        Ok(Arc::new(crate::DynamoStateStore::limited(
            aws_sdk_dynamodb::Client::new(&self.config),
            self.var("TABLE_NAME")?,
            port.grant(),
        )))
    }

    /// The message bucket (`BUCKET_NAME`), written under `messages/`.
    #[cfg(feature = "s3")]
    pub fn message_store(&self) -> Result<Arc<crate::S3BlobStore>, BoxError> {
        self.port(Port::MessageStore)?;
        Ok(Arc::new(crate::S3BlobStore::new(
            aws_sdk_s3::Client::new(&self.config),
            self.var("BUCKET_NAME")?,
        )))
    }

    /// The import queue (`QUEUE_URL`), for sending jobs.
    #[cfg(feature = "sqs")]
    pub fn queue(&self) -> Result<Arc<crate::SqsQueue>, BoxError> {
        self.port(Port::QueueSend)?;
        Ok(Arc::new(self.sqs()?))
    }

    /// The import queue (`QUEUE_URL`), for handing received jobs back.
    #[cfg(feature = "sqs")]
    pub fn redelivery(&self) -> Result<Arc<crate::SqsQueue>, BoxError> {
        self.port(Port::QueueRedelivery)?;
        Ok(Arc::new(self.sqs()?))
    }

    /// The import queue (`QUEUE_URL`), polled by a worker that Lambda's trigger does not feed
    /// (the import component), with long polling.
    #[cfg(feature = "sqs")]
    pub fn job_source(&self) -> Result<Arc<crate::SqsQueue>, BoxError> {
        self.port(Port::QueueTrigger)?;
        Ok(Arc::new(self.sqs()?.long_polling(20)))
    }

    #[cfg(feature = "sqs")]
    fn sqs(&self) -> Result<crate::SqsQueue, BoxError> {
        Ok(crate::SqsQueue::new(
            aws_sdk_sqs::Client::new(&self.config),
            self.var("QUEUE_URL")?,
        ))
    }

    /// The event bus (`EVENT_BUS_NAME`).
    #[cfg(feature = "eventbridge")]
    pub fn events(&self) -> Result<Arc<crate::EventBridgeEvents>, BoxError> {
        self.port(Port::Events)?;
        Ok(Arc::new(crate::EventBridgeEvents::new(
            aws_sdk_eventbridge::Client::new(&self.config),
            self.var("EVENT_BUS_NAME")?,
        )))
    }

    /// KMS, to sign client assertions with certificate keys.
    #[cfg(feature = "kms")]
    pub fn certificate_keys(&self) -> Result<Arc<crate::KmsKeys>, BoxError> {
        self.port(Port::CertificateKeys)?;
        Ok(Arc::new(crate::KmsKeys::new(aws_sdk_kms::Client::new(
            &self.config,
        ))))
    }

    /// Secrets Manager. What it may read is what the function's secret ports grant
    /// ([`AwsEnv::settings`], [`AwsEnv::admin_token_name`]).
    #[cfg(feature = "secretsmanager")]
    pub fn secrets(&self) -> Arc<crate::SecretsManagerStore> {
        Arc::new(crate::SecretsManagerStore::new(
            aws_sdk_secretsmanager::Client::new(&self.config),
        ))
    }
}

#[cfg(all(
    feature = "dynamodb",
    feature = "sqs",
    feature = "secretsmanager",
    feature = "eventbridge",
    feature = "kms"
))]
impl AwsEnv {
    /// The mailbox services over the state table, the import queue, Secrets Manager and the event
    /// bus, with
    /// Microsoft's identity platform and Graph as `microsoft` gives them.
    pub fn mail_services(
        &self,
        settings: Settings,
        microsoft: mailbridge_core::ports::Microsoft,
        metrics: Arc<dyn mailbridge_core::ports::Metrics>,
    ) -> Result<mailbridge_core::services::MailServices, BoxError> {
        let (identity, graph) = microsoft;
        let store = self.state()?;
        let ports = mailbridge_core::services::MailPorts {
            // Every container works on the same mailboxes: the pace records are shared.
            pace_store: store.clone(),
            store,
            secrets: self.secrets(),
            identity,
            graph,
            queue: self.queue()?,
            events: self.events()?,
            signer: self.certificate_keys()?,
            clock: Arc::new(mailbridge_core::ports::SystemClock),
            metrics,
        };
        Ok(mailbridge_core::services::MailServices::new(
            ports, settings,
        )?)
    }
}
