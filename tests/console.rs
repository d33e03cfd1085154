//! The console (issue 13) through HTTP as a browser uses it: sign-in with Microsoft (the
//! simulator), the session cookie, a person's own mailboxes only, the folder tree, validate
//! connection, a shared mailbox, the administrator's pages, CSRF, security headers, English and
//! French.

use mailbridge_local::Runner;
use mailbridge_tests::runner;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A browser: follows redirects itself, keeps cookies, speaks a language.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
    accept_language: &'static str,
    /// Every `Set-Cookie` seen, as sent.
    set_cookies: Mutex<Vec<String>>,
}

/// An answer: status, headers, body.
struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Browser {
    fn new(r: &Runner, accept_language: &'static str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: r.base_url.clone(),
            cookies: Mutex::new(BTreeMap::new()),
            accept_language,
            set_cookies: Mutex::new(Vec::new()),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        // Cookies belong to mailbridge's origin, not the simulator's.
        if !url.starts_with(&self.base) {
            return None;
        }
        let c = self.cookies.lock().unwrap();
        (!c.is_empty()).then(|| {
            c.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep(&self, url: &str, resp: &reqwest::Response) {
        if !url.starts_with(&self.base) {
            return;
        }
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_string();
            let (pair, _) = v.split_once(';').unwrap_or((&v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            let mut c = self.cookies.lock().unwrap();
            if val.is_empty() {
                c.remove(k);
            } else {
                c.insert(k.to_string(), val.to_string());
            }
            self.set_cookies.lock().unwrap().push(v);
        }
    }

    async fn send(&self, mut url: String, form: Option<Vec<(String, String)>>) -> Page {
        let mut form = form;
        for _ in 0..8 {
            let mut req = match form.take() {
                Some(f) => self.http.post(&url).form(&f),
                None => self.http.get(&url),
            };
            req = req.header("accept-language", self.accept_language);
            if let Some(c) = self.cookie_header(&url) {
                req = req.header("cookie", c);
            }
            let resp = req.send().await.unwrap();
            self.keep(&url, &resp);
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap().to_string();
                url = if loc.starts_with('/') {
                    self.url(&loc)
                } else {
                    loc
                };
                continue;
            }
            let headers = resp.headers().clone();
            return Page {
                status,
                headers,
                body: resp.text().await.unwrap(),
            };
        }
        panic!("too many redirects");
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.url(path), None).await
    }

    /// Submits a form of the last page's session: its CSRF token added.
    async fn post(&self, path: &str, csrf: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf.into())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.send(self.url(path), Some(form)).await
    }
}

/// The CSRF token a page's forms carry.
fn csrf(page: &Page) -> String {
    let at = page.body.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page.body[at..].split('"').next().unwrap().to_string()
}

/// Signs `upn` in through the console's sign-in with Microsoft.
async fn sign_in(r: &Runner, b: &Browser, upn: &str) -> Page {
    r.sim.sign_in_as(Some(upn));
    b.get("/console/login").await
}

/// Connects `upn`'s mailbox through `/connect`, as the console's button does.
async fn connect(r: &Runner, b: &Browser, upn: &str) -> Page {
    r.sim.sign_in_as(Some(upn));
    b.get("/connect").await
}

fn headers_are_strict(p: &Page) {
    let h = &p.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_connects_chooses_folders_validates_and_adds_a_shared_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let b = Browser::new(&r, "en-GB,en;q=0.9");
    let upn = person(&r, "chloe");

    let landing = b.get("/console").await;
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("Sign in with Microsoft"));
    assert!(landing.body.contains("<html lang=\"en\">"));
    headers_are_strict(&landing);

    // Signed in: a session cookie, HttpOnly, SameSite=Lax (not Secure: loopback over http).
    let home = sign_in(&r, &b, &upn).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("No mailbox is connected yet."),
        "{}",
        home.body
    );
    let set = b.set_cookies.lock().unwrap().join("\n");
    assert!(
        set.contains("mb_session=") && set.contains("HttpOnly; SameSite=Lax; Max-Age=28800"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");

    // Connect the mailbox, then it is on the page.
    assert_eq!(connect(&r, &b, &upn).await.status, 200);
    let home = b.get("/console").await;
    assert!(home.body.contains(&upn.to_lowercase()), "{}", home.body);
    let mailbox = only_mailbox(&r).await;
    let page = format!("/console/mailboxes/{}", mailbox.id);

    // The folder tree to any depth: a sub-folder three levels under the Inbox, and Sent Items.
    let a = r.sim.add_folder(&upn, "inbox", "Clients").unwrap();
    let b2 = r.sim.add_folder(&upn, &a, "Dupont").unwrap();
    let c = r.sim.add_folder(&upn, &b2, "2026").unwrap();
    let tree = b.get(&format!("{page}/folders")).await;
    assert_eq!(tree.status, 200);
    assert!(
        tree.body.contains("Inbox/Clients/Dupont/2026"),
        "{}",
        tree.body
    );
    let sent = {
        let w = r.sim.world();
        let user = w.user_by(&upn).unwrap().id.clone();
        w.folder_of(&user, "sentitems").unwrap().id.clone()
    };
    let token = csrf(&tree);
    let saved = b
        .post(
            &format!("{page}/folders"),
            &token,
            &[("folder", &c), ("folder", &sent)],
        )
        .await;
    assert_eq!(saved.status, 200);
    let chosen: Vec<String> = r
        .services
        .admin
        .mailbox(&mailbox.id)
        .await
        .unwrap()
        .mailbox
        .folders
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(chosen, [c.clone(), sent.clone()]);

    // Validate connection: every check passed, shown on the mailbox's page.
    let validated = b.post(&format!("{page}/test"), &token, &[]).await;
    assert_eq!(validated.status, 200);
    assert!(
        validated.body.contains("Every check passed."),
        "{}",
        validated.body
    );

    // A shared mailbox the person has no access to: what to do, in words, no internal names.
    let closed = format!("direction@{}", r.demo.tenant_domain);
    r.sim.add_mailbox(
        &r.demo.tenant_id,
        &closed,
        "Direction",
        m365_sim::world::MailboxKind::Shared,
    );
    let refused = b
        .post(&format!("{page}/shared"), &token, &[("address", &closed)])
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body.contains("give the signed-in user Full Access"),
        "{}",
        refused.body
    );
    assert!(
        !refused.body.contains("http://") && !refused.body.contains("ErrorAccessDenied"),
        "{}",
        refused.body
    );

    // A shared mailbox the person is a delegate of.
    let shared = format!("support@{}", r.demo.tenant_domain);
    r.sim.add_mailbox(
        &r.demo.tenant_id,
        &shared,
        "Support",
        m365_sim::world::MailboxKind::Shared,
    );
    r.sim.add_delegate(&shared, &upn);
    let added = b
        .post(&format!("{page}/shared"), &token, &[("address", &shared)])
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let home = b.get("/console").await;
    assert!(
        home.body.contains(&shared),
        "the shared mailbox is the person's too"
    );

    // A form without the session's token is refused, and changes nothing.
    let forged = b.post(&format!("{page}/test"), "not-the-token", &[]).await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("This form has expired"));
    headers_are_strict(&forged);

    // Signing out ends the session.
    let out = b.post("/console/logout", &token, &[]).await;
    assert!(out.body.contains("Sign in with Microsoft"));
    assert_eq!(b.get(&page).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_never_sees_nor_changes_another_persons_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let other = person(&r, "bob");
    let mine = person(&r, "alice");
    let (adele, bob) = (Browser::new(&r, "en"), Browser::new(&r, "en"));
    sign_in(&r, &adele, &mine).await;
    connect(&r, &adele, &mine).await;
    sign_in(&r, &bob, &other).await;
    connect(&r, &bob, &other).await;
    let views = r.services.admin.mailboxes().await.unwrap();
    let bobs = views
        .iter()
        .find(|v| v.mailbox.address == other.to_lowercase())
        .unwrap()
        .mailbox
        .id
        .clone();

    let home = adele.get("/console").await;
    assert!(!home.body.contains(&other.to_lowercase()), "{}", home.body);
    assert!(!home.body.contains("All mailboxes"), "not an administrator");
    for path in [
        format!("/console/mailboxes/{bobs}"),
        format!("/console/mailboxes/{bobs}/folders"),
    ] {
        let p = adele.get(&path).await;
        assert_eq!(p.status, 404, "{path}");
        assert!(p.body.contains("not yours to see"));
    }
    let token = csrf(&home);
    for action in ["test", "approve", "disable", "folders"] {
        let p = adele
            .post(&format!("/console/mailboxes/{bobs}/{action}"), &token, &[])
            .await;
        assert_eq!(p.status, 404, "{action}");
    }
    // An administrator's action on one's own mailbox is refused to a person, too.
    let own = views
        .iter()
        .find(|v| v.mailbox.address != other.to_lowercase())
        .unwrap()
        .mailbox
        .id
        .clone();
    let p = adele
        .post(&format!("/console/mailboxes/{own}/disable"), &token, &[])
        .await;
    assert_eq!(p.status, 404);
    assert!(
        r.services
            .admin
            .mailbox(&own)
            .await
            .unwrap()
            .mailbox
            .enabled
    );
    assert!(
        r.services
            .admin
            .mailbox(&bobs)
            .await
            .unwrap()
            .mailbox
            .enabled
    );
}

/// The one mailbox connected so far.
async fn only_mailbox(r: &Runner) -> mailbridge_core::model::Mailbox {
    let mut all = r.services.admin.mailboxes().await.unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0).mailbox
}

/// A person of the demo tenant, not an administrator.
fn person(r: &Runner, name: &str) -> String {
    let upn = format!("{name}@{}", r.demo.tenant_domain);
    r.sim.add_mailbox(
        &r.demo.tenant_id,
        &upn,
        name,
        m365_sim::world::MailboxKind::User,
    );
    upn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_approves_and_tests_in_french_and_switches_to_english() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    // Approval required for new mailboxes; a person connects one.
    let mut demo = r.services.admin.profiles().await.unwrap().remove(0);
    demo.approval_required = true;
    r.services.admin.put_profile(demo).await.unwrap();
    let chloe = person(&r, "chloe");
    let hers = Browser::new(&r, "fr");
    sign_in(&r, &hers, &chloe).await;
    connect(&r, &hers, &chloe).await;
    let pending = only_mailbox(&r).await;
    assert!(!pending.approved);

    // The administrator (the demo tenant's Adele), in French.
    let admin = Browser::new(&r, "fr-FR,fr;q=0.9,en;q=0.5");
    let landing = admin.get("/console").await;
    assert!(
        landing.body.contains("Se connecter avec Microsoft"),
        "{}",
        landing.body
    );
    assert!(landing.body.contains("<html lang=\"fr\">"));
    let home = sign_in(&r, &admin, &r.demo.user_upn).await;
    assert!(
        home.body.contains("Toutes les boîtes aux lettres"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("en attente d&#39;approbation")
            || home.body.contains("en attente d'approbation"),
        "{}",
        home.body
    );
    let pending_only = admin.get("/console?filter=pending").await;
    assert!(pending_only.body.contains(&chloe.to_lowercase()));
    let token = csrf(&home);
    let approved = admin
        .post(
            &format!("/console/mailboxes/{}/approve", pending.id),
            &token,
            &[],
        )
        .await;
    assert_eq!(approved.status, 200);
    assert!(
        r.services
            .admin
            .mailbox(&pending.id)
            .await
            .unwrap()
            .mailbox
            .approved
    );
    let tested = admin
        .post(
            &format!("/console/mailboxes/{}/test-and-enable", pending.id),
            &token,
            &[],
        )
        .await;
    assert!(
        tested.body.contains("Toutes les vérifications ont réussi."),
        "{}",
        tested.body
    );
    // The checks' findings are in French too.
    assert!(
        tested.body.contains("un jeton a été obtenu avec le profil"),
        "{}",
        tested.body
    );

    // Every mailbox of the profile, tested (and enabled) in the background; the profile's page
    // shows how it went.
    let started = admin
        .post("/console/profiles/demo/test", &token, &[("enable", "on")])
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert!(started.body.contains("Tout tester"), "{}", started.body);
    mailbridge_tests::settle(&r).await;
    let run = admin.get("/console/profiles/demo").await;
    assert!(
        run.body
            .contains("1 boîte(s) sur 1 testée(s) : 1 réussie(s), 0 en échec."),
        "{}",
        run.body
    );
    assert!(run.body.contains(&chloe.to_lowercase()));
    // A person cannot start one.
    let hers_home = hers.get("/console").await;
    let refused = hers
        .post("/console/profiles/demo/test", &csrf(&hers_home), &[])
        .await;
    assert_eq!(refused.status, 404);

    // The switch: English from now on, on the same page.
    let english = admin
        .get(&format!(
            "/console/lang?to=en&back=/console/mailboxes/{}",
            pending.id
        ))
        .await;
    assert!(
        english.body.contains("Every check passed."),
        "{}",
        english.body
    );
    assert!(english.body.contains("<html lang=\"en\">"));
    // The switch goes back only to a console page.
    let away = admin
        .get("/console/lang?to=fr&back=https://evil.example/")
        .await;
    assert!(away.body.contains("Toutes les boîtes aux lettres"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_grant_shows_on_the_page_with_the_link_that_reconnects_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(mailbridge_core::fakes::ShiftedClock::default());
    let r = runner(dir.path(), |o| o.clock = clock.clone()).await;
    let upn = person(&r, "david");
    let b = Browser::new(&r, "fr");
    sign_in(&r, &b, &upn).await;
    connect(&r, &b, &upn).await;
    let id = only_mailbox(&r).await.id;
    // An hour on, the grant revoked: the schedule finds it.
    clock.advance(chrono::Duration::minutes(61));
    r.sim.revoke(&upn);
    r.services.maintenance.run().await.unwrap();
    mailbridge_tests::settle(&r).await;
    let page = b.get(&format!("/console/mailboxes/{id}")).await;
    assert!(
        page.body.contains("Réauthentification requise"),
        "{}",
        page.body
    );
    // The alert's sentence is in the person's language.
    assert!(
        page.body
            .contains("Reconnectez-vous avec le compte de cette boîte aux lettres"),
        "{}",
        page.body
    );
    // The alert's own button signs the person in again, with their address as the hint.
    let at = page
        .body
        .find("/connect?profile=demo&#38;login_hint=")
        .unwrap_or_else(|| panic!("the reconnect link: {}", page.body));
    let start = page.body[..at].rfind("href=\"").unwrap() + 6;
    let link = page.body[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    let back = b.get(&link).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let page = b.get(&format!("/console/mailboxes/{id}")).await;
    assert!(
        !page.body.contains("Réauthentification requise"),
        "{}",
        page.body
    );
    assert!(page.body.contains("connectée"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_role_in_the_token_makes_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let (emma, felix) = (person(&r, "emma"), person(&r, "felix"));
    assert!(r.sim.assign_app_role(
        &r.demo.client_id,
        &emma,
        mailbridge_edge::console::ADMIN_ROLE
    ));
    assert!(r.sim.assign_app_role(&r.demo.client_id, &felix, "Reader"));
    let (e, f) = (Browser::new(&r, "en"), Browser::new(&r, "en"));
    let home = sign_in(&r, &e, &emma).await;
    assert!(home.body.contains("All mailboxes"), "{}", home.body);
    assert!(home.body.contains("(administrator)"));
    let home = sign_in(&r, &f, &felix).await;
    assert!(
        !home.body.contains("All mailboxes"),
        "another role is not enough"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_creates_and_edits_profiles_with_the_api_checks() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let admin = Browser::new(&r, "en");
    let home = sign_in(&r, &admin, &r.demo.user_upn).await;
    let token = csrf(&home);
    let form = admin.get("/console/profiles/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<label for=\"tenant\">"));
    // The same secret as the demo profile, for a second, organisation-wide profile.
    let fields = |tenant: &'static str| {
        vec![
            ("id", "fabrikam"),
            ("name", "Fabrikam"),
            ("cloud", "global"),
            ("auth", "application"),
            ("tenant", tenant),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret_ref", mailbridge_local::DEMO_SECRET),
            ("client_secret_expires_at", "2030-01-31"),
            ("backfill_days", "7"),
        ]
    };
    // An organisation-wide profile cannot use 'organizations': the API's sentence, nothing stored.
    let refused = admin
        .post("/console/profiles/new", &token, &fields("organizations"))
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
    assert!(
        refused.body.contains("needs its tenant"),
        "{}",
        refused.body
    );
    assert!(r
        .services
        .repos
        .profiles
        .get("fabrikam")
        .await
        .unwrap()
        .is_none());
    let made = admin
        .post("/console/profiles/new", &token, &fields("fabrikam.example"))
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let p = r.services.repos.profile("fabrikam").await.unwrap();
    assert_eq!(
        (p.auth, p.backfill_days, p.tenant.as_str()),
        (
            mailbridge_core::model::AuthType::Application,
            7,
            "fabrikam.example"
        )
    );
    assert_eq!(
        p.client_secret_expires_at.unwrap().to_rfc3339(),
        "2030-01-31T00:00:00+00:00"
    );
    assert!(made.body.contains("Fabrikam (fabrikam)"));
    // Edited: approval required from now on; the form shows what is stored.
    let mut edit = fields("fabrikam.example");
    edit.retain(|(k, _)| *k != "id");
    edit.push(("approval_required", "on"));
    admin
        .post("/console/profiles/fabrikam", &token, &edit)
        .await;
    assert!(
        r.services
            .repos
            .profile("fabrikam")
            .await
            .unwrap()
            .approval_required
    );
    assert!(admin.get("/console/profiles/fabrikam").await.body.contains(
        "id=\"approval\" name=\"approval_required\" type=\"checkbox\" value=\"on\" checked"
    ));

    // A certificate instead of a secret, its key in the secret store: stored, and shown again.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mailbridge".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .pem();
    let key_name = "mailbridge/profiles/fabrikam/certificate-key";
    mailbridge_embedded::FileSecrets::open(r.data_dir().join("secrets"))
        .unwrap()
        .set(key_name, &mailbridge_core::Secret::new(key.serialize_pem()))
        .unwrap();
    let mut with_cert = fields("fabrikam.example");
    with_cert.retain(|(k, _)| !["id", "client_secret_ref"].contains(k));
    with_cert.extend([
        ("certificate_pem", cert.as_str()),
        ("key_in", "secret_store"),
        ("key_ref", key_name),
    ]);
    let saved = admin
        .post("/console/profiles/fabrikam", &token, &with_cert)
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let stored = r.services.repos.profile("fabrikam").await.unwrap();
    let c = stored.certificate.expect("the certificate is stored");
    assert_eq!(c.certificate_pem.trim(), cert.trim());
    assert_eq!(
        c.key,
        mailbridge_core::model::KeyRef::SecretStore {
            name: key_name.into()
        }
    );
    let shown = admin.get("/console/profiles/fabrikam").await;
    assert!(shown.body.contains(key_name), "{}", shown.body);
    assert!(shown.body.contains("BEGIN CERTIFICATE"));
    // Not a certificate: the API's sentence, the stored one kept.
    let mut broken = with_cert.clone();
    broken.retain(|(k, _)| *k != "certificate_pem");
    broken.push(("certificate_pem", "not a certificate"));
    let refused = admin
        .post("/console/profiles/fabrikam", &token, &broken)
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("is not a PEM certificate"));
    assert!(r
        .services
        .repos
        .profile("fabrikam")
        .await
        .unwrap()
        .certificate
        .is_some_and(|c| c.certificate_pem.trim() == cert.trim()));

    // The same refusals, to an administrator reading French, are in French.
    let french = Browser::new(&r, "fr-FR,fr;q=0.9");
    let accueil = sign_in(&r, &french, &r.demo.user_upn).await;
    let jeton = csrf(&accueil);
    for (form, sentence) in [
        (fields("organizations"), "du domaine de son locataire"),
        (broken.clone(), "n&#39;est pas un certificat PEM"),
        (
            fields("pas un locataire"),
            "doit être common, organizations",
        ),
    ] {
        let refus = french
            .post("/console/profiles/fabrikam", &jeton, &form)
            .await;
        assert_eq!(refus.status, 400, "{}", refus.body);
        assert!(refus.body.contains(sentence), "{sentence}: {}", refus.body);
    }

    // A custom cloud (the simulator's) is offered as it is, selected: saving the form keeps it.
    let demo = admin.get("/console/profiles/demo").await;
    assert!(
        demo.body.contains("<option value=\"custom\" selected>"),
        "{}",
        demo.body
    );
    assert!(!demo.body.contains("<option value=\"global\" selected>"));

    // A person has no profile pages.
    let someone = person(&r, "gina");
    let b = Browser::new(&r, "en");
    let home = sign_in(&r, &b, &someone).await;
    assert_eq!(b.get("/console/profiles/demo").await.status, 404);
    let p = b
        .post("/console/profiles/demo", &csrf(&home), &[("name", "x")])
        .await;
    assert_eq!(p.status, 404);
    assert_ne!(r.services.repos.profile("demo").await.unwrap().name, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_connects_the_organisations_mailboxes_from_the_profile_page_in_french() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let shared = format!("support@{}", r.demo.tenant_domain);
    r.sim.add_mailbox(
        &r.demo.tenant_id,
        &shared,
        "Support",
        m365_sim::world::MailboxKind::Shared,
    );
    let admin = Browser::new(&r, "fr-FR,fr;q=0.9");
    let home = sign_in(&r, &admin, &r.demo.user_upn).await;
    let token = csrf(&home);
    let made = admin
        .post(
            "/console/profiles/new",
            &token,
            &[
                ("id", "org"),
                ("name", "Contoso (organisation)"),
                ("cloud", "global"),
                ("auth", "application"),
                ("tenant", &r.demo.tenant_id),
                ("client_id", &r.demo.client_id),
                ("client_secret_ref", mailbridge_local::DEMO_SECRET),
                ("backfill_days", "0"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    // The simulator's cloud is the demo profile's: the new profile takes it.
    let mut org = r.services.repos.profile("org").await.unwrap();
    org.cloud = r.services.repos.profile("demo").await.unwrap().cloud;
    r.services.admin.put_profile(org).await.unwrap();

    // The page of an organisation-wide profile: the consent link, the forms to add mailboxes.
    let page = admin.get("/console/profiles/org").await;
    assert!(
        page.body.contains("href=\"/admin-consent?profile=org\""),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("Accorder le consentement pour l&#39;organisation"));
    assert!(page
        .body
        .contains("Aucune boîte aux lettres n&#39;utilise encore ce profil."));
    // A delegated profile's page has neither.
    assert!(!admin
        .get("/console/profiles/demo")
        .await
        .body
        .contains("/admin-consent"));

    // The tenant's administrator consents from the link; then two mailboxes by address.
    let granted = admin.get("/admin-consent?profile=org").await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    let added = admin
        .post(
            "/console/profiles/org/mailboxes",
            &token,
            &[("addresses", &format!("{}\r\n{shared}, ", r.demo.user_upn))],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    for address in [r.demo.user_upn.to_lowercase(), shared.clone()] {
        assert!(added.body.contains(&address), "{address}: {}", added.body);
    }
    let org_mailboxes: Vec<_> = r
        .services
        .admin
        .mailboxes()
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.mailbox.profile_id == "org")
        .collect();
    assert_eq!(org_mailboxes.len(), 2);
    assert!(added.body.contains("connectée"), "{}", added.body);

    // Bad input: what is wrong, in French, and nothing added.
    for (path, fields, sentence) in [
        (
            "/console/profiles/org/mailboxes",
            vec![("addresses", "pas-une-adresse")],
            "« pas-une-adresse » n&#39;est pas une adresse",
        ),
        (
            "/console/profiles/org/mailboxes",
            vec![("addresses", " ")],
            "donnez de 1 à",
        ),
        (
            "/console/profiles/demo/mailboxes",
            vec![("addresses", "x@contoso.example")],
            "utilise des autorisations déléguées",
        ),
        ("/console/profiles/org/discover", vec![], "User.Read.All"),
    ] {
        let refused = admin.post(path, &token, &fields).await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert!(
            refused.body.contains(sentence),
            "{sentence}: {}",
            refused.body
        );
    }
    assert_eq!(r.services.admin.mailboxes().await.unwrap().len(), 2);

    // A person may not add mailboxes to a profile; a forged form neither.
    let someone = person(&r, "gina");
    let b = Browser::new(&r, "en");
    let theirs = sign_in(&r, &b, &someone).await;
    let refused = b
        .post(
            "/console/profiles/org/mailboxes",
            &csrf(&theirs),
            &[("addresses", &someone)],
        )
        .await;
    assert_eq!(refused.status, 404);
    let forged = admin
        .post("/console/profiles/org/discover", "forged", &[])
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(r.services.admin.mailboxes().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_pages_speak_the_persons_language_and_name_no_internals() {
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let upn = person(&r, "gaelle");
    let b = Browser::new(&r, "fr-FR,fr;q=0.9");
    r.sim.sign_in_as(Some(&upn));
    // Connecting ends on the console; the callback's own page is seen when the console is not
    // where it goes (an unknown profile, a replayed or forged answer).
    let unknown = b.get("/connect?profile=inconnu").await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown
            .body
            .contains("Ce lien désigne un profil que mailbridge ne connaît pas"),
        "{}",
        unknown.body
    );
    assert!(unknown.body.contains("<html lang=\"fr\">"));
    headers_are_strict(&unknown);
    let forged = b.get("/oauth/callback?state=forged&code=x").await;
    assert_eq!(forged.status, 400);
    assert!(
        forged
            .body
            .contains("Ce lien de connexion est inconnu ou a déjà servi"),
        "{}",
        forged.body
    );
    headers_are_strict(&forged);
    let bare = b.get("/oauth/callback").await;
    assert!(
        bare.body
            .contains("Cette page n&#39;a pas été ouverte par une connexion"),
        "{}",
        bare.body
    );
    // The same pages in English for an English browser.
    let en = Browser::new(&r, "en-GB");
    let unknown = en.get("/connect?profile=inconnu").await;
    assert!(
        unknown
            .body
            .contains("This link names a profile mailbridge does not know"),
        "{}",
        unknown.body
    );
}

/// `docs/openapi.yaml` names every route of the admin API and every method of each: schemathesis
/// (tests/web/api.py) checks what is documented, this checks that nothing is left out. The routes
/// are read from `admin_router`'s source, then each documented path is asked every method: a
/// documented one is routed, any other is a 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_names_every_admin_route_and_method() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("docs/openapi.yaml")).unwrap())
            .unwrap();
    const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];
    let documented: BTreeMap<String, Vec<String>> = doc["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_string())
                .collect();
            (path.as_str().unwrap().to_string(), methods)
        })
        .collect();

    // The router as written: `.route("PATH", get(..).put(..))`.
    let source = std::fs::read_to_string(root.join("functions/lib/edge/src/admin.rs")).unwrap();
    let body = source
        .split("pub fn admin_router")
        .nth(1)
        .unwrap()
        .split(".fallback(")
        .next()
        .unwrap();
    let mut routed = BTreeMap::new();
    for call in body.split(".route(").skip(1) {
        let path = call.split('"').nth(1).unwrap().to_string();
        let handlers = call.split_once(',').unwrap().1;
        let methods: Vec<String> = METHODS
            .iter()
            .filter(|m| handlers.contains(&format!("{m}(")))
            .map(|m| m.to_string())
            .collect();
        routed.insert(path, methods);
    }
    assert!(routed.len() >= 14, "{routed:?}");
    assert_eq!(
        routed, documented,
        "admin_router and docs/openapi.yaml differ"
    );

    // The running router agrees, method by method.
    let dir = tempfile::tempdir().unwrap();
    let r = runner(dir.path(), |_| {}).await;
    let http = reqwest::Client::new();
    for (path, methods) in &documented {
        let url = format!("{}{}", r.base_url, path.replace("{id}", "nothing-here"));
        for m in METHODS {
            let status = http
                .request(m.to_uppercase().parse().unwrap(), &url)
                .bearer_auth(r.admin_token.expose())
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            let routed = methods.iter().any(|d| d == m);
            assert_eq!(status == 405, !routed, "{m} {path}: {status}");
        }
    }
}
