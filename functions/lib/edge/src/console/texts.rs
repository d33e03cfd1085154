//! Every word of the console, in English and in French (the seed guides' users are French-speaking
//! firms). The language comes from the `mb_lang` cookie (the switch on each page), else from
//! `Accept-Language`.

use axum::http::HeaderMap;
use mailbridge_core::model::{
    AlertKind, CheckKind, CheckResult, ConnectionState, IncomingStatus, Mailbox,
};
use mailbridge_core::Lang;

/// The visitor's language: the cookie's choice, else the first of `Accept-Language` mailbridge
/// speaks, else English.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    if let Some(l) = super::session::cookie(headers, "mb_lang").and_then(Lang::parse) {
        return l;
    }
    let accept = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut ranked: Vec<(f32, &str)> = accept
        .split(',')
        .filter_map(|part| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse().ok())
                .unwrap_or(1.0);
            Some((q, tag))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    ranked
        .iter()
        .find_map(|(_, tag)| Lang::parse(&tag.get(..2)?.to_ascii_lowercase()))
        .unwrap_or(Lang::En)
}

/// The words of the console in `lang`.
pub fn of(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
    }
}

/// The words of the console's pages.
pub struct Texts {
    pub title: &'static str,
    pub switch_to: &'static str,
    pub sign_in: &'static str,
    pub sign_in_intro: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub administrator: &'static str,
    pub your_mailboxes: &'static str,
    pub no_mailbox: &'static str,
    pub connect: &'static str,
    pub reconnect: &'static str,
    pub all_mailboxes: &'static str,
    pub filter_all: &'static str,
    pub filter_reauth: &'static str,
    pub filter_pending: &'static str,
    pub filter_failing: &'static str,
    pub address: &'static str,
    pub state: &'static str,
    pub incoming: &'static str,
    pub last_sync: &'static str,
    pub never: &'static str,
    pub imported: &'static str,
    pub alerts: &'static str,
    pub no_alerts: &'static str,
    pub alerts_wall: &'static str,
    pub profiles: &'static str,
    pub profile: &'static str,
    pub auth: &'static str,
    pub open: &'static str,
    pub validate: &'static str,
    pub test_and_enable: &'static str,
    pub approve: &'static str,
    pub enable: &'static str,
    pub disable: &'static str,
    pub folders: &'static str,
    pub choose_folders: &'static str,
    pub save: &'static str,
    pub add_shared: &'static str,
    pub shared_address: &'static str,
    pub add: &'static str,
    pub back: &'static str,
    pub check: &'static str,
    pub result: &'static str,
    pub what_to_do: &'static str,
    pub passed: &'static str,
    pub failed: &'static str,
    pub skipped: &'static str,
    pub test_passed: &'static str,
    pub test_failed: &'static str,
    pub error_title: &'static str,
    pub not_found: &'static str,
    pub forbidden_form: &'static str,
    pub saved: &'static str,
    pub new_profile: &'static str,
    pub edit: &'static str,
    pub profile_id: &'static str,
    pub profile_name: &'static str,
    pub cloud: &'static str,
    pub auth_delegated: &'static str,
    pub auth_application: &'static str,
    pub tenant: &'static str,
    pub client_id: &'static str,
    pub secret_ref: &'static str,
    pub secret_expires: &'static str,
    pub backfill_days: &'static str,
    pub category: &'static str,
    pub is_default: &'static str,
    pub approval_required: &'static str,
    pub sign_in_not_started: &'static str,
    pub consent_not_started: &'static str,
    pub consent_granted: &'static str,
    pub mailbox_connected: &'static str,
    pub not_connected: &'static str,
    pub to_console: &'static str,
    pub actions: &'static str,
    pub test_profile: &'static str,
    pub enable_passing: &'static str,
    pub run_all: &'static str,
    pub organisation: &'static str,
    pub organisation_help: &'static str,
    pub grant_consent: &'static str,
    pub addresses: &'static str,
    pub add_mailboxes: &'static str,
    pub add_every_user: &'static str,
    pub profile_mailboxes: &'static str,
    pub no_mailbox_yet: &'static str,
    pub certificate_pem: &'static str,
    pub key_in: &'static str,
    pub key_in_kms: &'static str,
    pub key_in_store: &'static str,
    pub key_ref: &'static str,
}

pub const EN: Texts = Texts {
    title: "mailbridge",
    switch_to: "Français",
    sign_in: "Sign in with Microsoft",
    sign_in_intro: "Sign in to connect your mailbox, choose what is imported and see how it goes.",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    administrator: "administrator",
    your_mailboxes: "Your mailboxes",
    no_mailbox: "No mailbox is connected yet.",
    connect: "Connect my mailbox",
    reconnect: "Sign in again (reconnect)",
    all_mailboxes: "All mailboxes",
    filter_all: "All",
    filter_reauth: "Needs sign-in",
    filter_pending: "Pending approval",
    filter_failing: "Failing",
    address: "Mailbox",
    state: "State",
    incoming: "Incoming",
    last_sync: "Last import",
    never: "never",
    imported: "Imported",
    alerts: "Alerts",
    no_alerts: "No alert.",
    alerts_wall: "Alerts",
    profiles: "Server profiles",
    profile: "Profile",
    auth: "Connection",
    open: "Open",
    validate: "Validate connection",
    test_and_enable: "Test and enable",
    approve: "Approve",
    enable: "Enable",
    disable: "Disable",
    folders: "Folders",
    choose_folders: "Choose the folders to import",
    save: "Save",
    add_shared: "Add a shared mailbox",
    shared_address: "Shared mailbox address",
    add: "Add",
    back: "Back",
    check: "Check",
    result: "Result",
    what_to_do: "What to do",
    passed: "passed",
    failed: "failed",
    skipped: "skipped",
    test_passed: "Every check passed.",
    test_failed: "A check failed: see what to do.",
    error_title: "Something went wrong",
    not_found: "There is no such page, or it is not yours to see.",
    forbidden_form: "This form has expired: go back, reload the page and send it again.",
    saved: "Saved.",
    new_profile: "New profile",
    edit: "Edit",
    profile_id: "Profile id",
    profile_name: "Name",
    cloud: "Cloud",
    auth_delegated: "Each person signs in (delegated)",
    auth_application: "Organisation-wide (application)",
    tenant: "Tenant (id or domain)",
    client_id: "Application (client) ID",
    secret_ref: "Client secret (name in the secret store)",
    secret_expires: "Secret expires on",
    backfill_days: "Import mail received in the last (days)",
    category: "Outlook category to mark imported mail",
    is_default: "Default profile for new mailboxes",
    approval_required: "An administrator approves each mailbox",
    sign_in_not_started: "Cannot start the sign-in",
    consent_not_started: "Cannot start the consent",
    consent_granted: "Consent granted",
    mailbox_connected: "Mailbox connected",
    not_connected: "The mailbox could not be connected",
    to_console: "Go to mailbridge",
    actions: "Actions",
    test_profile: "Test every mailbox of this profile",
    enable_passing: "Enable the mailboxes that pass",
    run_all: "Test all",
    organisation: "The organisation's mailboxes",
    organisation_help: "This profile reads mailboxes with application permissions: an administrator of the tenant grants consent once, then you add mailboxes by address or every licensed user of the tenant. Nobody needs to sign in.",
    grant_consent: "Grant consent for the organisation",
    addresses: "Mailbox addresses (one per line)",
    add_mailboxes: "Add these mailboxes",
    add_every_user: "Add every licensed user of the tenant",
    profile_mailboxes: "Mailboxes of this profile",
    no_mailbox_yet: "No mailbox uses this profile yet.",
    certificate_pem: "Certificate (PEM), instead of a client secret",
    key_in: "Where its private key is",
    key_in_kms: "AWS KMS (an alias under alias/mailbridge/)",
    key_in_store: "The secret store (a name under the profile prefix)",
    key_ref: "The key's alias or name",
};

pub const FR: Texts = Texts {
    title: "mailbridge",
    switch_to: "English",
    sign_in: "Se connecter avec Microsoft",
    sign_in_intro: "Connectez-vous pour relier votre boîte aux lettres, choisir ce qui est importé et suivre l'import.",
    sign_out: "Se déconnecter",
    signed_in_as: "Connecté en tant que",
    administrator: "administrateur",
    your_mailboxes: "Vos boîtes aux lettres",
    no_mailbox: "Aucune boîte aux lettres n'est encore connectée.",
    connect: "Connecter ma boîte aux lettres",
    reconnect: "Se réauthentifier",
    all_mailboxes: "Toutes les boîtes aux lettres",
    filter_all: "Toutes",
    filter_reauth: "Réauthentification requise",
    filter_pending: "En attente d'approbation",
    filter_failing: "En échec",
    address: "Boîte aux lettres",
    state: "État",
    incoming: "Courrier entrant",
    last_sync: "Dernier import",
    never: "jamais",
    imported: "Importés",
    alerts: "Alertes",
    no_alerts: "Aucune alerte.",
    alerts_wall: "Alertes",
    profiles: "Profils de serveur",
    profile: "Profil",
    auth: "Connexion",
    open: "Ouvrir",
    validate: "Valider la connexion",
    test_and_enable: "Tester et activer",
    approve: "Approuver",
    enable: "Activer",
    disable: "Désactiver",
    folders: "Dossiers",
    choose_folders: "Choisir les dossiers à importer",
    save: "Enregistrer",
    add_shared: "Ajouter une boîte partagée",
    shared_address: "Adresse de la boîte partagée",
    add: "Ajouter",
    back: "Retour",
    check: "Vérification",
    result: "Résultat",
    what_to_do: "Que faire",
    passed: "réussie",
    failed: "échouée",
    skipped: "non effectuée",
    test_passed: "Toutes les vérifications ont réussi.",
    test_failed: "Une vérification a échoué : voyez que faire.",
    error_title: "Une erreur est survenue",
    not_found: "Cette page n'existe pas, ou elle ne vous concerne pas.",
    forbidden_form: "Ce formulaire a expiré : revenez en arrière, rechargez la page et renvoyez-le.",
    saved: "Enregistré.",
    new_profile: "Nouveau profil",
    edit: "Modifier",
    profile_id: "Identifiant du profil",
    profile_name: "Nom",
    cloud: "Cloud",
    auth_delegated: "Chaque personne se connecte (délégué)",
    auth_application: "Toute l'organisation (application)",
    tenant: "Locataire (identifiant ou domaine)",
    client_id: "ID d'application (client)",
    secret_ref: "Secret client (nom dans le coffre)",
    secret_expires: "Le secret expire le",
    backfill_days: "Importer le courrier reçu depuis (jours)",
    category: "Catégorie Outlook des messages importés",
    is_default: "Profil par défaut des nouvelles boîtes",
    approval_required: "Un administrateur approuve chaque boîte",
    sign_in_not_started: "Impossible de démarrer la connexion",
    consent_not_started: "Impossible de démarrer le consentement",
    consent_granted: "Consentement accordé",
    mailbox_connected: "Boîte aux lettres connectée",
    not_connected: "La boîte aux lettres n'a pas pu être connectée",
    to_console: "Aller à mailbridge",
    actions: "Actions",
    test_profile: "Tester toutes les boîtes de ce profil",
    enable_passing: "Activer les boîtes qui réussissent",
    run_all: "Tout tester",
    organisation: "Les boîtes aux lettres de l'organisation",
    organisation_help: "Ce profil lit les boîtes aux lettres avec des autorisations d'application : un administrateur du locataire accorde son consentement une fois, puis vous ajoutez les boîtes par adresse, ou tous les utilisateurs du locataire qui ont une licence. Personne n'a besoin de se connecter.",
    grant_consent: "Accorder le consentement pour l'organisation",
    addresses: "Adresses des boîtes aux lettres (une par ligne)",
    add_mailboxes: "Ajouter ces boîtes",
    add_every_user: "Ajouter tous les utilisateurs du locataire qui ont une licence",
    profile_mailboxes: "Boîtes aux lettres de ce profil",
    no_mailbox_yet: "Aucune boîte aux lettres n'utilise encore ce profil.",
    certificate_pem: "Certificat (PEM), à la place d'un secret client",
    key_in: "Où se trouve sa clé privée",
    key_in_kms: "AWS KMS (un alias sous alias/mailbridge/)",
    key_in_store: "Le coffre de secrets (un nom sous le préfixe du profil)",
    key_ref: "Alias ou nom de la clé",
};

/// What an alert kind is called.
pub fn alert_label(lang: Lang, kind: AlertKind) -> &'static str {
    let (en, fr) = match kind {
        AlertKind::ReauthRequired => ("Sign in again", "Réauthentification requise"),
        AlertKind::LicenceMissing => ("Licence missing", "Licence manquante"),
        AlertKind::ConsentRevoked => ("Consent withdrawn", "Consentement retiré"),
        AlertKind::SecretExpiring => ("Secret expiring", "Secret bientôt expiré"),
        AlertKind::SecretExpired => ("Secret expired", "Secret expiré"),
        AlertKind::Throttled => ("Throttled by Microsoft", "Limité par Microsoft"),
        AlertKind::MessageTooLarge => ("Message too large", "Message trop volumineux"),
        AlertKind::ImportFailing => ("Import failing", "Import en échec"),
        AlertKind::CategoryNotSet => ("Category not set", "Catégorie non posée"),
        AlertKind::OutsideScope => (
            "Outside the app's scope",
            "Hors du périmètre de l'application",
        ),
        AlertKind::CredentialRefused => ("Credential refused", "Identifiants refusés"),
    };
    lang.pick(en, fr)
}

/// What a mailbox's state is called: approval, enablement, then the connection.
pub fn state_label(lang: Lang, m: &Mailbox) -> &'static str {
    let (en, fr) = if !m.approved {
        ("pending approval", "en attente d'approbation")
    } else if !m.enabled {
        ("disabled", "désactivée")
    } else {
        match m.connection {
            ConnectionState::Connected => ("connected", "connectée"),
            ConnectionState::ReauthRequired { .. } => {
                ("sign in again", "réauthentification requise")
            }
            ConnectionState::NotReachable { .. } => ("not reachable", "injoignable"),
            ConnectionState::PermissionPropagating { .. } => (
                "permission propagating",
                "autorisation en cours de propagation",
            ),
        }
    };
    lang.pick(en, fr)
}

pub fn incoming_label(lang: Lang, s: IncomingStatus) -> &'static str {
    let (en, fr) = match s {
        IncomingStatus::NotRun => ("not run", "pas encore exécuté"),
        IncomingStatus::Success => ("success", "réussi"),
        IncomingStatus::Failure => ("failure", "échec"),
    };
    lang.pick(en, fr)
}

pub fn check_label(lang: Lang, c: CheckKind) -> &'static str {
    let (en, fr) = match c {
        CheckKind::Token => ("Token obtained", "Jeton obtenu"),
        CheckKind::Mailbox => ("Mailbox reachable", "Boîte aux lettres joignable"),
        CheckKind::Folders => ("Folders readable", "Dossiers lisibles"),
        CheckKind::Approval => ("Approval", "Approbation"),
        CheckKind::Notifications => ("Notifications", "Notifications"),
    };
    lang.pick(en, fr)
}

pub fn result_label(t: &Texts, r: CheckResult) -> &'static str {
    match r {
        CheckResult::Passed => t.passed,
        CheckResult::Failed => t.failed,
        CheckResult::Skipped => t.skipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_comes_from_the_cookie_then_accept_language() {
        let mut h = HeaderMap::new();
        assert_eq!(lang_of(&h), Lang::En);
        h.insert(
            "accept-language",
            "de-DE,fr-FR;q=0.8,en;q=0.5".parse().unwrap(),
        );
        assert_eq!(lang_of(&h), Lang::Fr);
        h.insert("accept-language", "en-GB,fr;q=0.9".parse().unwrap());
        assert_eq!(lang_of(&h), Lang::En);
        h.insert("cookie", "mb_lang=fr".parse().unwrap());
        assert_eq!(lang_of(&h), Lang::Fr);
    }
}
