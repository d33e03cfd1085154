//! What every Graph request passes before its handler: the bearer token (an RS256 JWT this
//! simulator signed, for this cloud's Graph), the mailbox the path names and the caller's right to
//! it, Graph's per app and mailbox limits (429 with `Retry-After`), and injected faults.

use crate::entra::AccessClaims;
use crate::graph::{graph_error, not_found};
use crate::world::*;
use crate::Shared;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{Duration, Utc};

/// The authenticated caller of a Graph request, and the mailbox user its path names.
#[derive(Clone)]
pub struct Ctx {
    pub claims: AccessClaims,
    pub user: Option<User>,
    /// `Prefer: IdType="ImmutableId"` was sent.
    pub immutable: bool,
    /// `Prefer: odata.maxpagesize=N`.
    pub page_size: Option<usize>,
}

fn prefer(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
}

pub fn wants_immutable(headers: &HeaderMap) -> bool {
    prefer(headers).any(|p| p.eq_ignore_ascii_case("IdType=\"ImmutableId\""))
}

fn unauthorized(message: &str) -> Response {
    let mut r = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"\", error=\"invalid_token\""),
    );
    r
}

/// Checks a bearer token: signature, audience (this cloud's Graph), lifetime.
pub fn authenticate(sim: &Shared, headers: &HeaderMap) -> Result<AccessClaims, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("Access token is empty."))?;
    if token.split('.').count() != 3 {
        return Err(unauthorized(
            "IDX14100: JWT is not well formed, there are no dots (.).",
        ));
    }
    let claims: AccessClaims = sim
        .key
        .verify(token)
        .ok_or_else(|| unauthorized("Access token validation failure. Invalid signature."))?;
    if claims.aud != sim.resource {
        return Err(unauthorized(
            "Access token validation failure. Invalid audience.",
        ));
    }
    let now = Utc::now().timestamp();
    if claims.exp <= now {
        return Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    if claims.nbf > now + 300 {
        return Err(unauthorized(
            "Lifetime validation failed, the token is not yet valid.",
        ));
    }
    Ok(claims)
}

fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

/// Whether the caller may read (or, with `write`, change) this user's mailbox.
pub fn mailbox_access(
    w: &World,
    c: &AccessClaims,
    user: &User,
    write: bool,
) -> Result<(), Response> {
    let needed: &[&str] = if write {
        &["Mail.ReadWrite"]
    } else {
        &["Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"]
    };
    if c.is_app() {
        let consent = w
            .tenants
            .get(&user.tenant_id)
            .and_then(|t| t.admin_consents.get(&c.appid));
        let effective = consent.is_some_and(|at| {
            *at + Duration::seconds(i64::from(w.limits.propagation_seconds)) <= Utc::now()
        });
        let has_role = c.roles.iter().any(|r| needed.contains(&r.as_str()));
        let in_scope = w
            .apps
            .get(&c.appid)
            .and_then(|a| a.mailbox_scope.as_ref())
            .is_none_or(|scope| scope.contains(&user.id));
        if user.tenant_id != c.tid || !has_role || !effective || !in_scope {
            return Err(denied());
        }
    } else if user.id == c.oid {
        let ok = c
            .scopes()
            .any(|s| needed.contains(&s) || needed.contains(&s.trim_end_matches(".Shared")));
        if !ok {
            return Err(denied());
        }
    } else {
        let shared = c
            .scopes()
            .filter_map(|s| s.strip_suffix(".Shared"))
            .any(|s| needed.contains(&s));
        if !shared || !user.delegates.contains(&c.oid) {
            return Err(denied());
        }
    }
    if user.kind == MailboxKind::Unlicensed {
        return Err(graph_error(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    Ok(())
}

/// The user segment of a Graph path: `/me/...` or `/users/{id | upn}/...`, and whether the path
/// goes on into the mailbox.
fn path_user(path: &str) -> Option<(String, bool)> {
    let path = path.trim_start_matches("/v1.0");
    let mut segs = path.trim_start_matches('/').split('/');
    match segs.next()? {
        "me" => Some(("me".into(), segs.next().is_some())),
        s if s.eq_ignore_ascii_case("users") => {
            let u = segs.next()?;
            let u = percent_encoding::percent_decode_str(u).decode_utf8_lossy();
            Some((u.into_owned(), segs.next().is_some()))
        }
        _ => None,
    }
}

/// Releases an in-flight slot when the request ends, however it ends.
struct Slot {
    sim: Shared,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(u) = self.sim.world.lock().unwrap().usage.get_mut(&self.key) {
            u.in_flight = u.in_flight.saturating_sub(1);
        }
    }
}

fn throttled(retry_after: i64, message: &str) -> Response {
    let mut r = graph_error(
        StatusCode::TOO_MANY_REQUESTS,
        "ApplicationThrottled",
        message,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    r
}

/// Takes a request slot for this app on this mailbox, or answers 429 as Outlook does.
fn take_slot(sim: &Shared, w: &mut World, app: &str, user: &str) -> Result<Slot, Response> {
    let limits = w.limits.clone();
    let now = Utc::now();
    let key = (app.to_string(), user.to_string());
    let u = w.usage.entry(key.clone()).or_default();
    let window = Duration::seconds(i64::from(limits.window_seconds));
    if u.window_start.is_none_or(|s| s + window <= now) {
        u.window_start = Some(now);
        u.in_window = 0;
    }
    if u.in_flight >= limits.concurrent {
        w.count("throttled", Some(user));
        return Err(throttled(
            1,
            "Application is over its MailboxConcurrency limit.",
        ));
    }
    if u.in_window >= limits.per_window {
        let wait = u
            .window_start
            .map_or(1, |s| (s + window - now).num_seconds() + 1);
        w.count("throttled", Some(user));
        return Err(throttled(
            wait,
            "Application is over its MailboxRequests limit.",
        ));
    }
    u.in_flight += 1;
    u.in_window += 1;
    Ok(Slot {
        sim: sim.clone(),
        key,
    })
}

pub async fn gate(State(sim): State<Shared>, mut req: Request, next: Next) -> Response {
    let claims = match authenticate(&sim, req.headers()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let write = req.method() != Method::GET;
    let mut slot = None;
    let user = match path_user(req.uri().path()) {
        None => None,
        Some((who, mailbox)) => {
            let mut w = sim.world.lock().unwrap();
            let user = if who == "me" {
                if claims.is_app() {
                    return graph_error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "/me request is only valid with delegated authentication flow.",
                    );
                }
                w.users.get(&claims.oid).cloned()
            } else {
                w.user_by(&who).cloned()
            };
            let Some(user) = user else {
                return graph_error(
                    StatusCode::NOT_FOUND,
                    "ErrorInvalidUser",
                    &format!("The requested user '{who}' is invalid."),
                );
            };
            if mailbox {
                if let Err(r) = mailbox_access(&w, &claims, &user, write) {
                    return r;
                }
                match take_slot(&sim, &mut w, &claims.appid, &user.id) {
                    Ok(s) => slot = Some(s),
                    Err(r) => return r,
                }
            } else if claims.is_app() && user.tenant_id != claims.tid {
                return not_found("Resource '' does not exist or one of its queried reference-property objects are not present.");
            }
            w.count("graph", Some(&user.id));
            Some(user)
        }
    };
    if let Some(r) = inject_faults(&sim).await {
        return r;
    }
    let ctx = Ctx {
        immutable: wants_immutable(req.headers()),
        page_size: prefer(req.headers())
            .find_map(|p| p.strip_prefix("odata.maxpagesize=")?.parse::<usize>().ok()),
        claims,
        user,
    };
    req.extensions_mut().insert(ctx);
    let resp = next.run(req).await;
    drop(slot);
    resp
}

/// What a request gets instead of its answer.
enum Fault {
    Hang(u64),
    Fail(u16, Option<i64>),
    Throttle(i64),
}

/// Latency, throttling, server errors and hangs, as configured in the faults: counted ones
/// first, then drawn at their rates.
async fn inject_faults(sim: &Shared) -> Option<Response> {
    let (latency, fault) = {
        let mut f = sim.faults.lock().unwrap();
        let fault = if f.graph_hangs > 0 {
            f.graph_hangs -= 1;
            Some(Fault::Hang(f.hang_seconds))
        } else if f.graph_errors > 0 {
            f.graph_errors -= 1;
            Some(Fault::Fail(f.graph_error_status, Some(1)))
        } else {
            let r: f64 = rand::random();
            let (t, u, h) = (
                f.graph_throttle_rate,
                f.graph_unavailable_rate,
                f.graph_hang_rate,
            );
            if r < t {
                Some(Fault::Throttle(rand::random::<i64>().rem_euclid(3) + 1))
            } else if r < t + u {
                Some(Fault::Fail(503, rand::random::<bool>().then_some(1)))
            } else if r < t + u + h {
                Some(Fault::Hang(f.hang_seconds))
            } else {
                None
            }
        };
        (f.graph_latency_ms, fault)
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    match fault? {
        Fault::Hang(secs) => {
            sim.world.lock().unwrap().count("hangs", None);
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            Some(graph_error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The server did not answer in time.",
            ))
        }
        Fault::Fail(status, retry_after) => {
            sim.world.lock().unwrap().count("errors", None);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut r = graph_error(
                status,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Try again later.",
            );
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            Some(r)
        }
        Fault::Throttle(secs) => {
            sim.world.lock().unwrap().count("throttled_injected", None);
            Some(throttled(
                secs,
                "Application is over its MailboxConcurrency limit.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::path_user;

    #[test]
    fn users_in_paths() {
        assert_eq!(path_user("/me"), Some(("me".into(), false)));
        assert_eq!(
            path_user("/v1.0/users/adele%40contoso.example/messages/x"),
            Some(("adele@contoso.example".into(), true))
        );
        assert_eq!(path_user("/subscriptions/1"), None);
    }
}
