//! A thin Graph v1.0 client over the handful of endpoints mailbridge needs.

use crate::errors::parse_retry_after;
use crate::transport::{Answer, Transport};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, StatusCode};
use mailbridge_core::model::*;
use mailbridge_core::ports::{GraphCtx, MailGraph, MimeDownload};
use mailbridge_core::{Error, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Encodes everything but RFC 3986's unreserved characters: ids go into paths as one segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Ask for ids that survive moves between folders.
const IMMUTABLE_IDS: &str = "IdType=\"ImmutableId\"";
/// Delta page size asked for.
const DELTA_PAGE: u32 = 100;

pub struct GraphClient {
    http: Arc<dyn Transport>,
}

/// A request to Graph being put together: its head, the bearer token on, and its body.
struct Req(http::request::Builder, Vec<u8>);

impl Req {
    fn header(self, name: &'static str, value: impl AsRef<str>) -> Self {
        Req(self.0.header(name, value.as_ref()), self.1)
    }

    fn json(self, body: &Value) -> Self {
        Req(
            self.0.header(CONTENT_TYPE, "application/json"),
            serde_json::to_vec(body).unwrap_or_default(),
        )
    }
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorInner,
}

#[derive(Deserialize)]
struct GraphErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserJson {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FolderJson {
    id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    parent_folder_id: Option<String>,
    #[serde(default)]
    child_folder_count: u32,
}

impl From<FolderJson> for GraphFolder {
    fn from(f: FolderJson) -> Self {
        GraphFolder {
            id: f.id,
            display_name: f.display_name,
            parent_folder_id: f.parent_folder_id,
            child_folder_count: f.child_folder_count,
        }
    }
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirectoryUserJson {
    #[serde(flatten)]
    user: UserJson,
    #[serde(default)]
    assigned_licenses: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionJson {
    id: String,
    expiration_date_time: DateTime<Utc>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A Graph error response, read: what [`GraphFailure::decision`] decides from, and what a call
/// that expects some refusals looks at first.
struct GraphFailure {
    status: StatusCode,
    retry_after: Option<std::time::Duration>,
    code: String,
    message: String,
}

impl GraphFailure {
    async fn read(resp: Answer) -> GraphFailure {
        let status = resp.status;
        let retry_after = resp
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let body = resp.bytes().await.unwrap_or_default();
        let (code, message) = serde_json::from_slice::<GraphErrorBody>(&body)
            .map(|b| (b.error.code, b.error.message))
            .unwrap_or_else(|_| (String::new(), String::new()));
        GraphFailure {
            status,
            retry_after,
            code,
            message,
        }
    }

    fn what(&self) -> String {
        if self.code.is_empty() {
            self.status.to_string()
        } else {
            format!("{} {}: {}", self.status, self.code, self.message)
        }
    }

    /// A subscription's creation refused in a way mailbridge answers: 409, where Graph names the
    /// one it has ("Subscription Id <id> already exists for the requested combination"), or 400
    /// on the expiration, where the tenant allows a shorter lifetime.
    fn subscription_refusal(&self) -> Option<SubscriptionAnswer> {
        match self.status {
            StatusCode::CONFLICT => self
                .message
                .split_once("Subscription Id ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(|id| SubscriptionAnswer::Exists { id: id.into() }),
            StatusCode::BAD_REQUEST if self.message.to_ascii_lowercase().contains("expiration") => {
                Some(SubscriptionAnswer::LifetimeRefused(self.what()))
            }
            _ => None,
        }
    }

    /// What the failure means for the caller.
    fn decision(self) -> Error {
        let (status, retry_after, what) = (self.status, self.retry_after, self.what());
        let lower = self.code.to_ascii_lowercase();
        if lower.contains("mailboxnotenabledforrestapi") {
            return Error::MailboxNotEnabled(what);
        }
        if matches!(
            lower.as_str(),
            "syncstatenotfound" | "resyncrequired" | "syncstateinvalid" | "invalidsyncstatedata"
        ) || status == StatusCode::GONE
        {
            return Error::SyncReset(what);
        }
        match status.as_u16() {
            429 => Error::Throttled {
                after: retry_after.unwrap_or(std::time::Duration::from_secs(30)),
            },
            503 if retry_after.is_some() => Error::Throttled {
                after: retry_after.unwrap_or_default(),
            },
            401 => Error::Retry {
                after: None,
                reason: format!("access token rejected: {what}"),
            },
            403 => Error::AccessDenied(what),
            404 => Error::NotFound(what),
            500..=599 => Error::Retry {
                after: retry_after,
                reason: what,
            },
            _ => Error::Permanent(what),
        }
    }
}

/// A successful answer's JSON body.
async fn parse<T: DeserializeOwned>(resp: Answer) -> Result<T> {
    let body = resp.bytes().await?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Permanent(format!("unexpected Graph answer: {e}")))
}

impl GraphClient {
    /// Graph over reqwest (see [`crate::http_client_trusting`]).
    #[cfg(feature = "native")]
    pub fn new(http: reqwest::Client) -> Self {
        Self::over(Arc::new(http))
    }

    /// Graph over any [`Transport`].
    pub fn over(http: Arc<dyn Transport>) -> Self {
        Self { http }
    }

    fn request(&self, ctx: GraphCtx<'_>, method: Method, url: &str) -> Result<Req> {
        // A link from Graph (nextLink, deltaLink) is followed only on the profile's Graph host, so
        // that a token never goes anywhere else.
        if !url.starts_with(&format!("{}/", ctx.graph_base)) {
            return Err(Error::Permanent(format!(
                "refusing to send a token outside {}",
                ctx.graph_base
            )));
        }
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", ctx.token.expose()))
            .map_err(|_| Error::Permanent("an access token that is not a header value".into()))?;
        bearer.set_sensitive(true);
        let head = http::Request::builder()
            .method(method)
            .uri(url)
            .header(AUTHORIZATION, bearer);
        Ok(Req(head, Vec::new()))
    }

    /// Graph's answer: the response when it succeeded, else the failure, read.
    async fn answer(&self, req: Req) -> Result<std::result::Result<Answer, GraphFailure>> {
        let request = req
            .0
            .body(req.1)
            .map_err(|e| Error::Permanent(format!("a Graph request that cannot be sent: {e}")))?;
        let resp = self
            .http
            .send(request)
            .await
            .map_err(|e| Error::retry(format!("Graph unreachable: {e}")))?;
        if resp.status.is_success() {
            Ok(Ok(resp))
        } else {
            Ok(Err(GraphFailure::read(resp).await))
        }
    }

    async fn send(&self, req: Req) -> Result<Answer> {
        self.answer(req).await?.map_err(GraphFailure::decision)
    }

    async fn json<T: DeserializeOwned>(&self, req: Req) -> Result<T> {
        parse(self.send(req).await?).await
    }

    fn user_url(ctx: GraphCtx<'_>, user: &str) -> String {
        format!("{}/v1.0/users/{}", ctx.graph_base, seg(user))
    }
}

#[async_trait]
impl MailGraph for GraphClient {
    async fn me(&self, ctx: GraphCtx<'_>) -> Result<GraphUser> {
        let u: UserJson = self
            .json(self.request(ctx, Method::GET, &format!("{}/v1.0/me", ctx.graph_base))?)
            .await?;
        Ok(user_of(u))
    }

    async fn user(&self, ctx: GraphCtx<'_>, id_or_upn: &str) -> Result<GraphUser> {
        let u: UserJson = self
            .json(self.request(ctx, Method::GET, &Self::user_url(ctx, id_or_upn))?)
            .await?;
        Ok(user_of(u))
    }

    async fn users(&self, ctx: GraphCtx<'_>) -> Result<Vec<DirectoryUser>> {
        let mut url = format!(
            "{}/v1.0/users?$select=id,displayName,mail,userPrincipalName,assignedLicenses&$top=999",
            ctx.graph_base
        );
        let mut out = Vec::new();
        loop {
            let page: Collection<DirectoryUserJson> =
                self.json(self.request(ctx, Method::GET, &url)?).await?;
            out.extend(page.value.into_iter().filter_map(|d| {
                let u = d.user;
                let address = u.mail.or(u.user_principal_name)?;
                Some(DirectoryUser {
                    display_name: u.display_name.unwrap_or_else(|| address.clone()),
                    id: u.id,
                    licensed: !d.assigned_licenses.is_empty(),
                    address,
                })
            }));
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
    }

    async fn folder(&self, ctx: GraphCtx<'_>, user_id: &str, folder: &str) -> Result<GraphFolder> {
        let url = format!(
            "{}/mailFolders/{}",
            Self::user_url(ctx, user_id),
            seg(folder)
        );
        let f: FolderJson = self.json(self.request(ctx, Method::GET, &url)?).await?;
        Ok(f.into())
    }

    async fn child_folders(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Vec<GraphFolder>> {
        let mut url = format!(
            "{}/mailFolders/{}/childFolders?$top=100",
            Self::user_url(ctx, user_id),
            seg(folder_id)
        );
        let mut out = Vec::new();
        loop {
            let page: Collection<FolderJson> =
                self.json(self.request(ctx, Method::GET, &url)?).await?;
            out.extend(page.value.into_iter().map(GraphFolder::from));
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
    }

    async fn create_subscription(
        &self,
        ctx: GraphCtx<'_>,
        req: &NewSubscription,
    ) -> Result<SubscriptionAnswer> {
        let body = json!({
            "changeType": "created",
            "notificationUrl": req.notification_url,
            "lifecycleNotificationUrl": req.lifecycle_notification_url,
            "resource": req.resource,
            "expirationDateTime": time(req.expiration),
            "clientState": req.client_state.expose(),
            "latestSupportedTlsVersion": "v1_2",
        });
        let url = format!("{}/v1.0/subscriptions", ctx.graph_base);
        let request = self
            .request(ctx, Method::POST, &url)?
            .header("Prefer", IMMUTABLE_IDS)
            .json(&body);
        let s: SubscriptionJson = match self.answer(request).await? {
            Ok(resp) => parse(resp).await?,
            Err(failure) => {
                return match failure.subscription_refusal() {
                    Some(refused) => Ok(refused),
                    None => Err(failure.decision()),
                }
            }
        };
        Ok(SubscriptionAnswer::Created(CreatedSubscription {
            id: s.id,
            expires_at: s.expiration_date_time,
        }))
    }

    async fn renew_subscription(
        &self,
        ctx: GraphCtx<'_>,
        id: &str,
        expiration: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let url = format!("{}/v1.0/subscriptions/{}", ctx.graph_base, seg(id));
        let s: SubscriptionJson = self
            .json(
                self.request(ctx, Method::PATCH, &url)?
                    .json(&json!({"expirationDateTime": time(expiration)})),
            )
            .await?;
        Ok(s.expiration_date_time)
    }

    async fn delete_subscription(&self, ctx: GraphCtx<'_>, id: &str) -> Result<()> {
        let url = format!("{}/v1.0/subscriptions/{}", ctx.graph_base, seg(id));
        match self.send(self.request(ctx, Method::DELETE, &url)?).await {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delta(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        folder_id: &str,
        link: Option<&str>,
    ) -> Result<DeltaPage> {
        let url = match link {
            Some(l) => l.to_string(),
            None => format!(
                "{}/mailFolders/{}/messages/delta?$select=receivedDateTime,internetMessageId",
                Self::user_url(ctx, user_id),
                seg(folder_id)
            ),
        };
        let req = self.request(ctx, Method::GET, &url)?.header(
            "Prefer",
            format!("odata.maxpagesize={DELTA_PAGE}, {IMMUTABLE_IDS}"),
        );
        let page: Value = self.json(req).await?;
        let items = page
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Permanent("a delta page without value".into()))?
            .iter()
            .filter_map(|v| {
                let id = v.get("id")?.as_str()?.to_string();
                Some(if v.get("@removed").is_some() {
                    DeltaItem::Removed { id }
                } else {
                    let received_at = v
                        .get("receivedDateTime")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok());
                    DeltaItem::Message { id, received_at }
                })
            })
            .collect();
        let link = |k: &str| page.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(DeltaPage {
            items,
            next_link: link("@odata.nextLink"),
            delta_link: link("@odata.deltaLink"),
        })
    }

    async fn add_category(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
        category: &str,
    ) -> Result<()> {
        #[derive(Deserialize)]
        struct Categories {
            #[serde(default)]
            categories: Vec<String>,
        }
        let url = format!(
            "{}/messages/{}",
            Self::user_url(ctx, user_id),
            seg(message_id)
        );
        // PATCH replaces the list: read it first, so that people's own categories stay.
        let current: Categories = self
            .json(
                self.request(ctx, Method::GET, &format!("{url}?$select=categories"))?
                    .header("Prefer", IMMUTABLE_IDS),
            )
            .await?;
        if current
            .categories
            .iter()
            .any(|c| c.eq_ignore_ascii_case(category))
        {
            return Ok(());
        }
        let mut categories = current.categories;
        categories.push(category.to_string());
        self.send(
            self.request(ctx, Method::PATCH, &url)?
                .header("Prefer", IMMUTABLE_IDS)
                .json(&json!({ "categories": categories })),
        )
        .await?;
        Ok(())
    }

    async fn message_mime(
        &self,
        ctx: GraphCtx<'_>,
        user_id: &str,
        message_id: &str,
    ) -> Result<MimeDownload> {
        let url = format!(
            "{}/messages/{}/$value",
            Self::user_url(ctx, user_id),
            seg(message_id)
        );
        let resp = self
            .send(
                self.request(ctx, Method::GET, &url)?
                    .header("Prefer", IMMUTABLE_IDS),
            )
            .await?;
        Ok(MimeDownload {
            length: resp.content_length(),
            body: resp.body,
        })
    }
}

fn user_of(u: UserJson) -> GraphUser {
    let upn = u.user_principal_name.unwrap_or_default();
    GraphUser {
        display_name: u.display_name.unwrap_or_else(|| upn.clone()),
        id: u.id,
        mail: u.mail,
        user_principal_name: upn,
    }
}
