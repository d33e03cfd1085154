//! The console (`/console`): pages for the person who connects their mailbox and for the
//! administrators, server-rendered (askama, checked at compile time), in English and French,
//! served by the admin function and by the local runner. A person signs in with Microsoft
//! (`/console/login`, on the oauth function) and sees only their own mailboxes; administrators are
//! the user object ids the deployment lists, decided on every request. Every form carries the
//! session's token (CSRF); every page has a strict Content-Security-Policy, no framing, no referrer
//! and no caching.

pub mod session;
pub mod texts;

use crate::http::status_of;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use mailbridge_core::model::*;
use mailbridge_core::services::admin::{Admin, MailboxView};
use mailbridge_core::services::checks::RunProgress;
use mailbridge_core::services::query_value;
use mailbridge_core::{Error, Secret};
use mailbridge_core::{Lang, Say};
use serde::Deserialize;
use session::{Session, SessionKey};
use std::sync::Arc;
use texts::Texts;

/// The app role (its value in the app registration's manifest) that makes a person an
/// administrator of the console, besides the deployment's list.
pub const ADMIN_ROLE: &str = "Mailbridge.Admin";

/// What the console serves.
#[derive(Clone)]
pub struct Console {
    pub admin: Arc<Admin>,
    /// User object ids of the administrators.
    pub admins: Arc<Vec<String>>,
}

impl Console {
    fn secure(&self) -> bool {
        session::secure(&self.admin.settings)
    }
}

/// The console's routes.
pub fn console_router(console: Console) -> Router {
    Router::new()
        .route("/console", get(home))
        .route("/console/style.css", get(style))
        .route("/console/lang", get(switch_lang))
        .route("/console/logout", post(logout))
        .route("/console/mailboxes/{id}", get(mailbox_page))
        .route(
            "/console/mailboxes/{id}/folders",
            get(folders_page).post(save_folders),
        )
        .route("/console/mailboxes/{id}/{action}", post(mailbox_action))
        .route(
            "/console/profiles/{id}",
            get(profile_page).post(save_profile),
        )
        .route("/console/profiles/{id}/{action}", post(profile_action))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// A page of the sign-in and consent flows (the oauth function's): what happened, in the
/// visitor's language, and the way to the console.
#[derive(Template)]
#[template(path = "notice.html")]
struct Notice {
    t: &'static Texts,
    lang: &'static str,
    title: &'static str,
    message: String,
    ok: bool,
}

pub(crate) fn notice(
    lang: Lang,
    status: StatusCode,
    title: fn(&Texts) -> &'static str,
    message: &Say,
) -> Response {
    let t = texts::of(lang);
    render(
        status,
        Notice {
            t,
            lang: lang.code(),
            title: title(t),
            message: message.in_lang(lang),
            ok: status.is_success(),
        },
    )
}

/// The headers of every page (the console's and the oauth function's).
pub(crate) async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// What a form's sender must be allowed to act on.
enum Needs<'a> {
    Nothing,
    Mailbox(&'a str),
    Administrator,
}

/// Who is asking, in which language, from which page.
struct Visitor {
    lang: Lang,
    session: Option<Session>,
    admin: bool,
    path: String,
}

impl Visitor {
    async fn of(console: &Console, headers: &HeaderMap, path: &str) -> Visitor {
        let session = match SessionKey::of(&console.admin.tokens).await {
            Ok(key) => session::cookie(headers, session::COOKIE)
                .and_then(|v| key.verify(v, console.admin.clock.now())),
            Err(e) => {
                tracing::error!(error = %e, "the console's session key cannot be derived");
                None
            }
        };
        let admin = session.as_ref().is_some_and(|s| {
            console
                .admins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&s.oid))
                || s.roles.iter().any(|r| r == ADMIN_ROLE)
        });
        Visitor {
            lang: texts::lang_of(headers),
            session,
            admin,
            path: path.to_string(),
        }
    }

    fn page(&self) -> Page {
        Page {
            t: texts::of(self.lang),
            lang: self.lang.code(),
            other_lang: self.lang.other().code(),
            path: query_value(&self.path),
            who: self.session.as_ref().map(|s| s.name.clone()),
            admin: self.admin,
            csrf: self
                .session
                .as_ref()
                .map(|s| s.csrf.clone())
                .unwrap_or_default(),
        }
    }

    fn t(&self) -> &'static Texts {
        texts::of(self.lang)
    }

    /// The form's token matches the session's.
    fn form_ok(&self, form: &[(String, String)]) -> bool {
        let given = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
        match (&self.session, given) {
            (Some(s), Some(g)) => Secret::new(s.csrf.clone()).ct_eq(g),
            _ => false,
        }
    }
}

/// What every page's layout shows.
pub struct Page {
    t: &'static Texts,
    lang: &'static str,
    other_lang: &'static str,
    path: String,
    who: Option<String>,
    admin: bool,
    csrf: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    page: Page,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    message: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    page: Page,
    own: Vec<Row>,
    all: Vec<Row>,
    wall: Vec<AlertRow>,
    profiles: Vec<ProfileRow>,
    filter: String,
}

#[derive(Template)]
#[template(path = "mailbox.html")]
struct MailboxPage {
    page: Page,
    m: Row,
    alerts: Vec<AlertRow>,
    checks: Vec<CheckRow>,
    passed: bool,
    reconnect: Option<String>,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "folders.html")]
struct FoldersPage {
    page: Page,
    id: String,
    address: String,
    folders: Vec<FolderRow>,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    page: Page,
    p: ProfileForm,
    clouds: &'static [&'static str],
    error: Option<String>,
    run: Option<RunView>,
    /// The profile's mailboxes (for a stored profile).
    mailboxes: Vec<Row>,
}

/// How the test of every mailbox of a profile is going, as its page shows it.
struct RunView {
    summary: String,
    rows: Vec<RunRow>,
}

struct RunRow {
    address: String,
    result: &'static str,
    action: String,
    class: &'static str,
}

impl RunView {
    fn of(lang: Lang, p: &RunProgress) -> RunView {
        let t = texts::of(lang);
        let summary = lang.pick(
            format!(
                "{} of {} mailboxes tested: {} passed, {} failed.",
                p.done, p.total, p.passed, p.failed
            ),
            format!(
                "{} boîte(s) sur {} testée(s) : {} réussie(s), {} en échec.",
                p.done, p.total, p.passed, p.failed
            ),
        );
        let rows = p
            .results
            .iter()
            .map(|r| RunRow {
                address: r.address.clone(),
                result: if r.passed { t.passed } else { t.failed },
                action: r
                    .failed
                    .iter()
                    .map(|c| {
                        let what = c.action.as_ref().unwrap_or(&c.detail);
                        format!(
                            "{}{}{}",
                            texts::check_label(lang, c.check),
                            lang.pick(": ", " : "),
                            what.in_lang(lang)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" · "),
                class: if r.passed { "" } else { "failed" },
            })
            .collect();
        RunView { summary, rows }
    }
}

/// A profile as its form shows it.
#[derive(Default)]
struct ProfileForm {
    new: bool,
    id: String,
    name: String,
    cloud: String,
    auth: String,
    tenant: String,
    client_id: String,
    client_secret_ref: String,
    expires: String,
    backfill_days: String,
    category: String,
    is_default: bool,
    approval_required: bool,
    /// A certificate instead of a client secret: its PEM, where its key is, and the key's name.
    certificate_pem: String,
    key_in: String,
    key_ref: String,
}

/// The clouds a profile's form offers (a custom cloud is kept as it is, not edited here).
const CLOUDS: &[&str] = &["global", "us_gov", "us_gov_dod", "china"];

fn cloud_name(c: &Cloud) -> &'static str {
    match c {
        Cloud::Global => "global",
        Cloud::UsGov => "us_gov",
        Cloud::UsGovDod => "us_gov_dod",
        Cloud::China => "china",
        Cloud::Custom { .. } => "custom",
    }
}

impl ProfileForm {
    fn of(p: &ServerProfile) -> ProfileForm {
        ProfileForm {
            new: false,
            id: p.id.clone(),
            name: p.name.clone(),
            cloud: cloud_name(&p.cloud).into(),
            auth: match p.auth {
                AuthType::Delegated => "delegated".into(),
                AuthType::Application => "application".into(),
            },
            tenant: p.tenant.clone(),
            client_id: p.client_id.clone(),
            client_secret_ref: p.client_secret_ref.clone(),
            expires: p
                .client_secret_expires_at
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            backfill_days: p.backfill_days.to_string(),
            category: p.outlook_category.clone().unwrap_or_default(),
            is_default: p.is_default,
            approval_required: p.approval_required,
            certificate_pem: p
                .certificate
                .as_ref()
                .map(|c| c.certificate_pem.clone())
                .unwrap_or_default(),
            key_in: match p.certificate.as_ref().map(|c| &c.key) {
                Some(KeyRef::Kms { .. }) | None => "kms".into(),
                Some(KeyRef::SecretStore { .. }) => "secret_store".into(),
            },
            key_ref: match p.certificate.as_ref().map(|c| &c.key) {
                Some(KeyRef::Kms { key_id }) => key_id.clone(),
                Some(KeyRef::SecretStore { name }) => name.clone(),
                None => String::new(),
            },
        }
    }

    /// The form as sent to `/console/profiles/{path_id}` (`new`: the id is a field).
    fn sent(form: &[(String, String)], path_id: &str) -> ProfileForm {
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let new = path_id == "new";
        ProfileForm {
            new,
            id: if new { field("id") } else { path_id.into() },
            name: field("name"),
            cloud: field("cloud"),
            auth: field("auth"),
            tenant: field("tenant"),
            client_id: field("client_id"),
            client_secret_ref: field("client_secret_ref"),
            expires: field("client_secret_expires_at"),
            backfill_days: field("backfill_days"),
            category: field("outlook_category"),
            is_default: field("is_default") == "on",
            approval_required: field("approval_required") == "on",
            certificate_pem: field("certificate_pem"),
            key_in: field("key_in"),
            key_ref: field("key_ref"),
        }
    }

    /// The profile the form describes, over the stored one (`existing`), whose custom cloud the
    /// form keeps; or what is wrong with it.
    fn profile(&self, existing: Option<&ServerProfile>) -> Result<ServerProfile, Say> {
        if self.new && existing.is_some() {
            return Err(Say::ProfileExists {
                id: self.id.clone(),
            });
        }
        let cloud = match (self.cloud.as_str(), existing) {
            ("global", _) => Cloud::Global,
            ("us_gov", _) => Cloud::UsGov,
            ("us_gov_dod", _) => Cloud::UsGovDod,
            ("china", _) => Cloud::China,
            (_, Some(p)) if matches!(p.cloud, Cloud::Custom { .. }) => p.cloud.clone(),
            (other, _) => {
                return Err(Say::NotACloud {
                    value: other.into(),
                })
            }
        };
        let auth = match self.auth.as_str() {
            "application" => AuthType::Application,
            _ => AuthType::Delegated,
        };
        let expires = match self.expires.as_str() {
            "" => None,
            d => Some(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| Say::NotADate { value: d.into() })?
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc(),
            ),
        };
        let backfill = match self.backfill_days.as_str() {
            "" => 0,
            d => d
                .parse()
                .map_err(|_| Say::NotANumberOfDays { value: d.into() })?,
        };
        let certificate = match self.certificate_pem.trim() {
            "" => None,
            pem => Some(CertificateCredential {
                certificate_pem: pem.to_string(),
                key: match self.key_in.as_str() {
                    "kms" => KeyRef::Kms {
                        key_id: self.key_ref.trim().into(),
                    },
                    "secret_store" => KeyRef::SecretStore {
                        name: self.key_ref.trim().into(),
                    },
                    other => {
                        return Err(Say::NotAKeyPlace {
                            value: other.into(),
                        })
                    }
                },
            }),
        };
        Ok(ServerProfile {
            id: self.id.clone(),
            name: self.name.clone(),
            cloud,
            auth,
            tenant: self.tenant.clone(),
            client_id: self.client_id.clone(),
            client_secret_ref: self.client_secret_ref.clone(),
            client_secret_expires_at: expires,
            is_default: self.is_default,
            approval_required: self.approval_required,
            backfill_days: backfill,
            outlook_category: Some(self.category.clone()).filter(|c| !c.is_empty()),
            certificate,
        })
    }
}

/// A mailbox as a table row shows it.
struct Row {
    id: String,
    address: String,
    profile: String,
    state: &'static str,
    incoming: &'static str,
    last_sync: String,
    imported: u64,
    alerts: String,
    folders: String,
    approved: bool,
    enabled: bool,
    can_add_shared: bool,
}

struct AlertRow {
    label: &'static str,
    subject: String,
    message: String,
    action: Option<String>,
}

struct CheckRow {
    label: &'static str,
    result: &'static str,
    detail: String,
    action: String,
    class: &'static str,
}

struct ProfileRow {
    id: String,
    name: String,
    auth: &'static str,
    alerts: String,
}

struct FolderRow {
    id: String,
    path: String,
    depth: u32,
    chosen: bool,
}

fn render<T: Template>(status: StatusCode, page: T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page could not be rendered");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn error_page(v: &Visitor, status: StatusCode, message: impl Into<String>) -> Response {
    render(
        status,
        ErrorPage {
            page: v.page(),
            message: message.into(),
        },
    )
}

/// A core error as a page, in words for a person and without internal names: not found (or not
/// the visitor's) says only that; a mistake in what was sent says what it was; anything else says
/// what to do about it.
fn failure(v: &Visitor, e: &Error) -> Response {
    let status = status_of(e);
    match e {
        Error::NotFound(_) => error_page(v, StatusCode::NOT_FOUND, v.t().not_found),
        _ => error_page(v, status, e.advice().in_lang(v.lang)),
    }
}

fn row(lang: Lang, view: &MailboxView) -> Row {
    let m = &view.mailbox;
    let h = &view.health;
    Row {
        id: m.id.clone(),
        address: m.address.clone(),
        profile: m.profile_id.clone(),
        state: texts::state_label(lang, m),
        incoming: texts::incoming_label(lang, h.incoming),
        last_sync: h.last_sync.map_or(texts::of(lang).never.to_string(), |t| {
            t.format("%Y-%m-%d %H:%M UTC").to_string()
        }),
        imported: h.imported,
        alerts: h
            .alerts
            .iter()
            .map(|a| texts::alert_label(lang, a.kind))
            .collect::<Vec<_>>()
            .join(", "),
        folders: m
            .folders
            .iter()
            .map(|f| f.display_name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        approved: m.approved,
        enabled: m.enabled,
        can_add_shared: m.kind == MailboxKind::User,
    }
}

impl Console {
    /// A mailbox the visitor may see: an administrator any, a person their own and the shared
    /// mailboxes reached through it. Anything else is "not found".
    async fn visible(&self, v: &Visitor, id: &str) -> Result<MailboxView, Error> {
        let session = v
            .session
            .as_ref()
            .ok_or_else(|| Error::NotFound(id.into()))?;
        let view = self.admin.mailbox(id).await?;
        if v.admin || self.owns(&session.oid, &view.mailbox).await? {
            Ok(view)
        } else {
            Err(Error::NotFound(id.into()))
        }
    }

    async fn owns(&self, oid: &str, m: &Mailbox) -> Result<bool, Error> {
        if m.kind == MailboxKind::User && m.user_id.eq_ignore_ascii_case(oid) {
            return Ok(true);
        }
        match &m.via {
            Some(via) => Ok(self
                .admin
                .repos
                .mailboxes
                .get(via)
                .await?
                .is_some_and(|d| d.value.user_id.eq_ignore_ascii_case(oid))),
            None => Ok(false),
        }
    }

    /// The visitor who sent a form, if they may: a forged or expired form is a 403; a form for
    /// what they may not act on (another person's mailbox, an administrator's page) a 404, as if
    /// it were not there.
    async fn sender(
        &self,
        headers: &HeaderMap,
        path: &str,
        form: &[(String, String)],
        needs: Needs<'_>,
    ) -> Result<Visitor, Response> {
        let v = Visitor::of(self, headers, path).await;
        if !v.form_ok(form) {
            return Err(error_page(&v, StatusCode::FORBIDDEN, v.t().forbidden_form));
        }
        match needs {
            Needs::Nothing => {}
            Needs::Administrator if !v.admin => {
                return Err(error_page(&v, StatusCode::NOT_FOUND, v.t().not_found))
            }
            Needs::Administrator => {}
            Needs::Mailbox(id) => {
                if let Err(e) = self.visible(&v, id).await {
                    return Err(failure(&v, &e));
                }
            }
        }
        Ok(v)
    }

    fn alert_rows(&self, lang: Lang, view: &MailboxView) -> Vec<AlertRow> {
        view.health
            .alerts
            .iter()
            .map(|a| AlertRow {
                label: texts::alert_label(lang, a.kind),
                subject: view.mailbox.address.clone(),
                message: a.say.in_lang(lang),
                action: (a.kind == AlertKind::ReauthRequired).then(|| {
                    self.admin
                        .settings
                        .reconnect_url(&view.mailbox.profile_id, &view.mailbox.address)
                }),
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct HomeQuery {
    filter: Option<String>,
}

async fn home(
    State(c): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HomeQuery>,
) -> Response {
    let v = Visitor::of(&c, &headers, "/console").await;
    let Some(session) = v.session.clone() else {
        return render(StatusCode::OK, SignIn { page: v.page() });
    };
    let views = match c.admin.mailboxes().await {
        Ok(views) => views,
        Err(e) => return failure(&v, &e),
    };
    let mut own = Vec::new();
    for view in &views {
        match c.owns(&session.oid, &view.mailbox).await {
            Ok(true) => own.push(row(v.lang, view)),
            Ok(false) => {}
            Err(e) => return failure(&v, &e),
        }
    }
    let filter = q.filter.unwrap_or_else(|| "all".into());
    let (mut all, mut wall, mut profiles) = (Vec::new(), Vec::new(), Vec::new());
    if v.admin {
        for view in &views {
            let m = &view.mailbox;
            let keep = match filter.as_str() {
                "reauth" => matches!(m.connection, ConnectionState::ReauthRequired { .. }),
                "pending" => !m.approved,
                "failing" => {
                    view.health.incoming == IncomingStatus::Failure
                        || !view.health.alerts.is_empty()
                }
                _ => true,
            };
            if keep {
                all.push(row(v.lang, view));
            }
            wall.extend(c.alert_rows(v.lang, view));
        }
        match c.admin.profile_views().await {
            Ok(ps) => {
                for p in ps {
                    wall.extend(p.alerts.iter().map(|a| AlertRow {
                        label: texts::alert_label(v.lang, a.kind),
                        subject: p.profile.name.clone(),
                        message: a.say.in_lang(v.lang),
                        action: None,
                    }));
                    profiles.push(ProfileRow {
                        alerts: p
                            .alerts
                            .iter()
                            .map(|a| texts::alert_label(v.lang, a.kind))
                            .collect::<Vec<_>>()
                            .join(", "),
                        auth: match p.profile.auth {
                            AuthType::Delegated => v.t().auth_delegated,
                            AuthType::Application => v.t().auth_application,
                        },
                        id: p.profile.id,
                        name: p.profile.name,
                    });
                }
            }
            Err(e) => return failure(&v, &e),
        }
    }
    render(
        StatusCode::OK,
        Home {
            page: v.page(),
            own,
            all,
            wall,
            profiles,
            filter,
        },
    )
}

async fn mailbox_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = Visitor::of(&c, &headers, &format!("/console/mailboxes/{id}")).await;
    let view = match c.visible(&v, &id).await {
        Ok(view) => view,
        Err(e) => return failure(&v, &e),
    };
    let t = v.t();
    let (checks, passed) = match &view.health.last_test {
        Some(r) => (
            r.checks
                .iter()
                .map(|ch| CheckRow {
                    label: texts::check_label(v.lang, ch.check),
                    result: texts::result_label(t, ch.result),
                    detail: ch.detail.in_lang(v.lang),
                    action: ch
                        .action
                        .as_ref()
                        .map_or(String::new(), |a| a.in_lang(v.lang)),
                    class: if ch.result == CheckResult::Failed {
                        "failed"
                    } else {
                        ""
                    },
                })
                .collect(),
            r.passed,
        ),
        None => (Vec::new(), false),
    };
    let reconnect = (view.mailbox.kind == MailboxKind::User).then(|| {
        c.admin
            .settings
            .reconnect_url(&view.mailbox.profile_id, &view.mailbox.address)
    });
    render(
        StatusCode::OK,
        MailboxPage {
            page: v.page(),
            alerts: c.alert_rows(v.lang, &view),
            m: row(v.lang, &view),
            checks,
            passed,
            reconnect,
            note: None,
        },
    )
}

async fn folders_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = Visitor::of(&c, &headers, &format!("/console/mailboxes/{id}/folders")).await;
    let view = match c.visible(&v, &id).await {
        Ok(view) => view,
        Err(e) => return failure(&v, &e),
    };
    let tree = match c.admin.folders(&id).await {
        Ok(tree) => tree,
        Err(e) => return failure(&v, &e),
    };
    let folders = tree
        .into_iter()
        .map(|f| FolderRow {
            chosen: view.mailbox.folders.iter().any(|c| c.id == f.id),
            id: f.id,
            path: f.path,
            depth: f.depth.min(9),
        })
        .collect();
    render(
        StatusCode::OK,
        FoldersPage {
            page: v.page(),
            id,
            address: view.mailbox.address,
            folders,
        },
    )
}

async fn save_folders(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/console/mailboxes/{id}/folders");
    let v = match c.sender(&headers, &path, &form, Needs::Mailbox(&id)).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let chosen: Vec<String> = form
        .into_iter()
        .filter(|(k, _)| k == "folder")
        .map(|(_, f)| f)
        .collect();
    match c.admin.set_folders(&id, &chosen).await {
        Ok(_) => Redirect::to(&format!("/console/mailboxes/{id}")).into_response(),
        Err(e) => failure(&v, &e),
    }
}

/// The buttons of a mailbox: validate (test) and add a shared mailbox for its person; approve,
/// enable, disable, test and enable for administrators.
async fn mailbox_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/console/mailboxes/{id}");
    let v = match c.sender(&headers, &path, &form, Needs::Mailbox(&id)).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let done = match (action.as_str(), v.admin) {
        ("test", _) => c.admin.test(&id, false).await.map(drop),
        ("shared", _) => c.admin.add_shared(&id, field("address")).await.map(drop),
        ("approve", true) => c.admin.set_approved(&id, true).await.map(drop),
        ("enable", true) => c.admin.set_enabled(&id, true).await.map(drop),
        ("disable", true) => c.admin.set_enabled(&id, false).await.map(drop),
        ("test-and-enable", true) => c.admin.test(&id, true).await.map(drop),
        _ => Err(Error::NotFound(action.clone())),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/console/mailboxes/{id}")).into_response(),
        Err(e) => failure(&v, &e),
    }
}

/// A profile's form, for administrators (`new` for a new one).
async fn profile_page(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = Visitor::of(&c, &headers, &format!("/console/profiles/{id}")).await;
    if !v.admin {
        return error_page(&v, StatusCode::NOT_FOUND, v.t().not_found);
    }
    let (form, run, mailboxes) = if id == "new" {
        let form = ProfileForm {
            new: true,
            id,
            cloud: "global".into(),
            auth: "delegated".into(),
            backfill_days: "0".into(),
            ..ProfileForm::default()
        };
        (form, None, Vec::new())
    } else {
        let form = match c.admin.repos.profile(&id).await {
            Ok(p) => ProfileForm::of(&p),
            Err(e) => return failure(&v, &e),
        };
        let run = match c.admin.test_progress(&id).await {
            Ok(p) => Some(RunView::of(v.lang, &p)),
            Err(Error::NotFound(_)) => None,
            Err(e) => return failure(&v, &e),
        };
        let mailboxes = match c.admin.mailboxes().await {
            Ok(views) => views
                .iter()
                .filter(|view| view.mailbox.profile_id == id)
                .map(|view| row(v.lang, view))
                .collect(),
            Err(e) => return failure(&v, &e),
        };
        (form, run, mailboxes)
    };
    render(
        StatusCode::OK,
        ProfilePage {
            page: v.page(),
            p: form,
            clouds: CLOUDS,
            error: None,
            run,
            mailboxes,
        },
    )
}

/// The buttons of a profile's page, for administrators: test every mailbox (and enable those
/// that pass, if asked), whose progress shows on the page; for an organisation-wide profile, add
/// mailboxes by address (one per line, or separated by commas, semicolons or spaces) or every
/// licensed user of the tenant, each tried at once and shown on the page.
async fn profile_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/console/profiles/{id}");
    let v = match c.sender(&headers, &path, &form, Needs::Administrator).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let done = match action.as_str() {
        "test" => {
            let enable = form.iter().any(|(k, val)| k == "enable" && val == "on");
            c.admin.test_profile(&id, enable).await.map(|_| "run")
        }
        "mailboxes" => {
            let addresses: Vec<String> = form
                .iter()
                .filter(|(k, _)| k == "addresses")
                .flat_map(|(_, text)| {
                    text.split(|ch: char| ch == ',' || ch == ';' || ch.is_whitespace())
                })
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            c.admin
                .add_mailboxes(&id, &addresses)
                .await
                .map(|_| "organisation")
        }
        "discover" => c.admin.discover(&id).await.map(|_| "organisation"),
        _ => Err(Error::NotFound(action.clone())),
    };
    match done {
        Ok(section) => Redirect::to(&format!("{path}#{section}")).into_response(),
        Err(e) => failure(&v, &e),
    }
}

/// Stores a profile from its form, with the admin API's checks; a refusal shows the form again
/// with what is wrong, and nothing is stored.
async fn save_profile(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/console/profiles/{id}");
    let v = match c.sender(&headers, &path, &form, Needs::Administrator).await {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    let sent = ProfileForm::sent(&form, &id);
    let existing = match c.admin.repos.profiles.get(&sent.id).await {
        Ok(p) => p.map(|p| p.value),
        Err(e) => return failure(&v, &e),
    };
    let stored = match sent.profile(existing.as_ref()) {
        Ok(p) => c.admin.put_profile(p).await.map_err(|e| e.advice()),
        Err(m) => Err(m),
    };
    match stored {
        Ok(_) => Redirect::to("/console#profiles").into_response(),
        Err(error) => {
            // The form again, as sent (a new profile's id is typed again).
            let mut shown = sent;
            if shown.new {
                shown.id = "new".into();
            }
            shown.backfill_days = shown.backfill_days.parse::<u32>().unwrap_or(0).to_string();
            if shown.cloud.is_empty() {
                shown.cloud = "global".into();
            }
            render(
                StatusCode::BAD_REQUEST,
                ProfilePage {
                    page: v.page(),
                    p: shown,
                    clouds: CLOUDS,
                    error: Some(error.in_lang(v.lang)),
                    run: None,
                    mailboxes: Vec::new(),
                },
            )
        }
    }
}

async fn logout(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(refused) = c.sender(&headers, "/console", &form, Needs::Nothing).await {
        return refused;
    }
    (
        [(header::SET_COOKIE, session::set_cookie("", c.secure()))],
        Redirect::to("/console"),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LangQuery {
    to: Option<String>,
    back: Option<String>,
}

/// The language switch: a cookie, then back to the page (a console path only).
async fn switch_lang(State(c): State<Console>, Query(q): Query<LangQuery>) -> Response {
    let lang = q.to.as_deref().and_then(Lang::parse).unwrap_or_default();
    let back = q
        .back
        .filter(|b| b.starts_with("/console") && !b.contains("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/console".into());
    let cookie = format!(
        "mb_lang={}; Path=/; SameSite=Lax; Max-Age=31536000{}",
        lang.code(),
        if c.secure() { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/style.css"),
    )
        .into_response()
}
