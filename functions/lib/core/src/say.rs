//! What mailbridge tells people, in English and in French: every sentence the core writes for a
//! person (what to do about an error, an alert, a check's result, why a request was refused) is a
//! [`Say`], kept as data and put into words only where it is shown, in the reader's language.
//! Its `Display` is the English sentence, which the admin API, events and logs carry.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The languages mailbridge speaks (the seed guides' users are French-speaking firms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Fr,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            _ => None,
        }
    }

    /// The other language, for a page's switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Fr,
            Lang::Fr => Lang::En,
        }
    }

    /// One of two words, by language.
    pub fn pick<T>(self, en: T, fr: T) -> T {
        match self {
            Lang::En => en,
            Lang::Fr => fr,
        }
    }
}

/// Which credential of a profile a sentence is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    Secret,
    Certificate,
}

/// A sentence for a person. Details that come from elsewhere (Microsoft's own error text, a name
/// or an address) are carried as they are; the rest is said in the reader's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "say", rename_all = "snake_case")]
pub enum Say {
    /// Words not (yet) given a meaning: kept as they are, in every language.
    Text {
        text: String,
    },

    // What to do about an error.
    SignInAgain {
        code: String,
    },
    SecretExpired,
    SecretWrong,
    AppNotInTenant,
    CertificateRefused,
    ClockSkew,
    CertificateKeyUnusable {
        detail: String,
    },
    NoAppPermission,
    FixProfile {
        detail: String,
    },
    NoExchangeMailbox {
        address: Option<String>,
    },
    AccessDenied,
    NoSuchMailboxOrFolder {
        what: String,
    },
    ThrottledTestLater {
        seconds: u64,
    },
    NotActive,
    TryLater,

    // Alerts.
    ThrottledImportsResume {
        seconds: u64,
    },
    OutsideScope {
        address: String,
    },
    OfProfile {
        profile: String,
        then: Box<Say>,
    },
    CredentialExpires {
        credential: Credential,
        profile: String,
        on: NaiveDate,
        days: i64,
    },
    CredentialExpired {
        credential: Credential,
        profile: String,
        on: NaiveDate,
    },
    CategoryNotSet {
        category: String,
        detail: String,
    },
    MessageTooLarge {
        size: u64,
        limit: u64,
    },

    // The checks of a test.
    TokenObtained {
        profile: String,
    },
    Reachable {
        address: String,
    },
    NoToken,
    NotReached,
    Approved,
    AwaitingApproval,
    ApproveFirst,
    CheckedWhenEnabled,
    EarlierCheckFailed,
    SharedPolled,
    NoFolderChosen,
    ChooseAFolder,
    FolderGone {
        name: String,
    },
    FolderGoneChooseAgain {
        name: String,
    },
    FoldersReadable {
        names: Vec<String>,
    },
    SubscriptionRefused {
        folder: String,
        detail: String,
    },
    NotificationUrlUnreachable,
    SubscriptionsLive {
        count: usize,
        renew_before: Option<DateTime<Utc>>,
    },

    // A person's request refused.
    NoDefaultProfile,
    ProfileIsOrganisationWide {
        profile: String,
    },
    DefaultIsOrganisationWide,
    ProfileIsDelegated {
        profile: String,
    },
    SignInNoState,
    SignInUnknown,
    SignInExpired,
    SignInNoCode,
    ConsentNotByAdmin {
        code: String,
    },
    ConsentDeclined {
        error: String,
    },
    PermissionsDeclined {
        error: String,
    },
    ConsentFirst {
        error: String,
    },
    SignInRefused {
        error: String,
    },
    ConsentNotConfirmed,
    SignInNotCompleted {
        code: String,
    },
    SetUpIncomplete {
        code: String,
    },
    UnknownLink,
    NameTheProfile,
    ConsentGranted {
        tenant: String,
        profile: String,
    },
    MailboxConnected {
        address: String,
        approved: bool,
    },
    ConsentFromOtherTenant {
        tenant: String,
        profile: String,
        expected: String,
    },
    NotAnAddress {
        address: String,
    },
    SharedOnlyFromUser,
    TooManyFolders {
        count: usize,
        max: usize,
    },
    ProfileExists {
        id: String,
    },
    NotACloud {
        value: String,
    },
    NotADate {
        value: String,
    },
    NotANumberOfDays {
        value: String,
    },
    NotAKeyPlace {
        value: String,
    },

    // What is wrong with a server profile an administrator gives.
    BadProfileId {
        max: usize,
    },
    TextTooLong {
        field: String,
        max: usize,
    },
    NeedsClientAndTenant,
    NotATenant {
        tenant: String,
    },
    OrganisationWideNeedsTenant {
        tenant: String,
    },
    BackfillTooLong {
        days: u32,
        max: u32,
    },
    BadCategory {
        max: usize,
    },
    NotACertificate {
        why: CertificateFault,
    },
    NotAKmsAlias {
        prefix: String,
    },
    CustomCloudNeedsResource,
    CertificateExpiredOn {
        on: DateTime<Utc>,
    },
    NoKeyInStore {
        name: String,
    },
    SecretExpiredOn {
        on: DateTime<Utc>,
        name: String,
    },
    SecretEmpty {
        name: String,
    },
    NoSuchSecret {
        name: String,
    },
    SecretOutsidePrefix {
        prefix: String,
    },
    NoCustomClouds,
    CustomUrlNotHttps {
        field: String,
    },
    CustomUrlNotPlain {
        field: String,
    },
    CustomHostNotAllowed {
        field: String,
        host: String,
    },

    // Adding an organisation's mailboxes.
    AddressCount {
        count: usize,
        max: usize,
    },
    NeedsUserReadAll,
}

/// Why a certificate given as PEM could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateFault {
    NoBlock,
    NotBase64,
    NotX509,
}

impl From<String> for Say {
    fn from(text: String) -> Self {
        Say::Text { text }
    }
}

impl From<&str> for Say {
    fn from(text: &str) -> Self {
        Say::Text { text: text.into() }
    }
}

impl fmt::Display for Say {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.in_lang(Lang::En))
    }
}

impl Say {
    /// The sentence in `lang`.
    pub fn in_lang(&self, lang: Lang) -> String {
        let en = lang == Lang::En;
        let s = |e: &str, f: &str| if en { e.to_string() } else { f.to_string() };
        match self {
            Say::Text { text } => text.clone(),
            Say::SignInAgain { code } => if en {
                format!("Sign in again with this mailbox's account to reconnect it ({code}).")
            } else {
                format!("Reconnectez-vous avec le compte de cette boîte aux lettres pour la relier de nouveau ({code}).")
            },
            Say::SecretExpired => s(
                "The profile's client secret has expired: create a new one in the app registration, store it in the secret store and update the profile.",
                "Le secret client du profil a expiré : créez-en un nouveau dans l'inscription d'application, enregistrez-le dans le coffre de secrets et mettez le profil à jour.",
            ),
            Say::SecretWrong => s(
                "The profile's client secret is wrong: store the secret's value (not its id) in the secret store.",
                "Le secret client du profil est erroné : enregistrez dans le coffre la valeur du secret (et non son identifiant).",
            ),
            Say::AppNotInTenant => s(
                "The app registration is not known in this tenant, or its consent was withdrawn: check the profile's client id and tenant, and have an administrator grant consent again.",
                "L'inscription d'application est inconnue dans ce locataire, ou son consentement a été retiré : vérifiez l'ID client et le locataire du profil, et faites accorder de nouveau le consentement par un administrateur.",
            ),
            Say::CertificateRefused => s(
                "Entra ID refused the certificate: upload the profile's certificate to the app registration (Certificates & secrets), or give the profile the certificate registered there with its key; an expired certificate must be replaced.",
                "Entra ID a refusé le certificat : chargez le certificat du profil dans l'inscription d'application (Certificats et secrets), ou donnez au profil le certificat qui y est enregistré avec sa clé ; un certificat expiré doit être remplacé.",
            ),
            Say::ClockSkew => s(
                "Entra ID found the client assertion outside its time window: check this server's clock.",
                "Entra ID a reçu une assertion client hors de sa fenêtre de validité : vérifiez l'horloge de ce serveur.",
            ),
            Say::CertificateKeyUnusable { detail } => if en {
                format!("The certificate's private key cannot be used: {detail}")
            } else {
                format!("La clé privée du certificat est inutilisable : {detail}")
            },
            Say::NoAppPermission => s(
                "No application permission of the app registration is granted in this tenant: an administrator must grant consent (again) from mailbridge's admin-consent link.",
                "Aucune autorisation d'application de l'inscription n'est accordée dans ce locataire : un administrateur doit accorder (de nouveau) le consentement depuis le lien de consentement de mailbridge.",
            ),
            Say::FixProfile { detail } => if en {
                format!("Fix the server profile: {detail}")
            } else {
                format!("Corrigez le profil de serveur : {detail}")
            },
            Say::NoExchangeMailbox { address } => match (en, address) {
                (true, Some(a)) => format!("Microsoft Graph cannot reach {a}: give the user an Exchange Online licence (or move the mailbox to Exchange Online)."),
                (true, None) => "Microsoft Graph cannot reach this mailbox: give the user an Exchange Online licence (or move the mailbox to Exchange Online), then test again.".into(),
                (false, Some(a)) => format!("Microsoft Graph ne peut pas atteindre {a} : attribuez à l'utilisateur une licence Exchange Online (ou migrez la boîte vers Exchange Online)."),
                (false, None) => "Microsoft Graph ne peut pas atteindre cette boîte aux lettres : attribuez à l'utilisateur une licence Exchange Online (ou migrez la boîte vers Exchange Online), puis testez de nouveau.".into(),
            },
            Say::AccessDenied => s(
                "Microsoft Graph denied access to this mailbox: for a shared mailbox, give the signed-in user Full Access to it; for an organisation-wide profile, check the administrator's consent and the app's Exchange access policy or RBAC scope.",
                "Microsoft Graph a refusé l'accès à cette boîte aux lettres : pour une boîte partagée, donnez à l'utilisateur connecté l'accès total (Full Access) ; pour un profil à l'échelle de l'organisation, vérifiez le consentement de l'administrateur et la stratégie d'accès Exchange ou le périmètre RBAC de l'application.",
            ),
            Say::NoSuchMailboxOrFolder { what } => if en {
                format!("Microsoft Graph found no such mailbox or folder ({what}): check the address, or choose the folders again.")
            } else {
                format!("Microsoft Graph ne trouve pas cette boîte aux lettres ou ce dossier ({what}) : vérifiez l'adresse, ou choisissez de nouveau les dossiers.")
            },
            Say::ThrottledTestLater { seconds } => if en {
                format!("Microsoft Graph is throttling this mailbox: test again in {seconds} s.")
            } else {
                format!("Microsoft Graph limite les appels pour cette boîte aux lettres : testez de nouveau dans {seconds} s.")
            },
            Say::NotActive => s(
                "The mailbox is not active: it must be approved, enabled and connected before its mail is imported.",
                "La boîte aux lettres n'est pas active : elle doit être approuvée, activée et connectée pour que son courrier soit importé.",
            ),
            Say::TryLater => s(
                "A temporary failure: try again in a few minutes.",
                "Échec temporaire : réessayez dans quelques minutes.",
            ),
            Say::ThrottledImportsResume { seconds } => if en {
                format!("Microsoft Graph is throttling this mailbox; imports resume after {seconds} s.")
            } else {
                format!("Microsoft Graph limite les appels pour cette boîte aux lettres ; l'import reprend dans {seconds} s.")
            },
            Say::OutsideScope { address } => if en {
                format!("The app registration may not read {address}: Exchange's RBAC for Applications or an application access policy leaves this mailbox out of the app's scope. Add it to the scope (or the policy's group), or remove it from mailbridge.")
            } else {
                format!("L'inscription d'application n'a pas le droit de lire {address} : le RBAC pour les applications d'Exchange ou une stratégie d'accès aux applications laisse cette boîte hors du périmètre de l'application. Ajoutez-la au périmètre (ou au groupe de la stratégie), ou retirez-la de mailbridge.")
            },
            Say::OfProfile { profile, then } => if en {
                format!("Profile '{profile}': {}", then.in_lang(lang))
            } else {
                format!("Profil « {profile} » : {}", then.in_lang(lang))
            },
            Say::CredentialExpires { credential, profile, on, days } => {
                let day = on.format("%Y-%m-%d");
                if en {
                    format!(
                        "The {} of profile '{profile}' expires on {day} (in {days} day{}): {}.",
                        credential.name(lang),
                        if *days == 1 { "" } else { "s" },
                        credential.renew(lang)
                    )
                } else {
                    format!(
                        "Le {} du profil « {profile} » expire le {day} (dans {days} jour{}) : {}.",
                        credential.name(lang),
                        if *days == 1 { "" } else { "s" },
                        credential.renew(lang)
                    )
                }
            }
            Say::CredentialExpired { credential, profile, on } => {
                let day = on.format("%Y-%m-%d");
                if en {
                    format!(
                        "The {} of profile '{profile}' expired on {day}: no mailbox of this profile can connect until you {}.",
                        credential.name(lang),
                        credential.renew(lang)
                    )
                } else {
                    format!(
                        "Le {} du profil « {profile} » a expiré le {day} : aucune boîte de ce profil ne peut se connecter tant que vous n'aurez pas {}.",
                        credential.name(lang),
                        credential.renewed(lang)
                    )
                }
            }
            Say::CategoryNotSet { category, detail } => if en {
                format!("The Outlook category {category:?} could not be set ({detail}). If access was denied, reconnect the mailbox so that mailbridge gets Mail.ReadWrite.")
            } else {
                format!("La catégorie Outlook « {category} » n'a pas pu être posée ({detail}). Si l'accès a été refusé, reconnectez la boîte pour que mailbridge obtienne Mail.ReadWrite.")
            },
            Say::MessageTooLarge { size, limit } => if en {
                format!("message is {size} bytes, over the {limit} byte limit")
            } else {
                format!("le message fait {size} octets, au-delà de la limite de {limit} octets")
            },
            Say::TokenObtained { profile } => if en {
                format!("a token was obtained with profile '{profile}'")
            } else {
                format!("un jeton a été obtenu avec le profil « {profile} »")
            },
            Say::Reachable { address } => if en {
                format!("{address} is reachable")
            } else {
                format!("{address} est joignable")
            },
            Say::NoToken => s("no token", "pas de jeton"),
            Say::NotReached => s("the mailbox was not reached", "la boîte aux lettres n'a pas été atteinte"),
            Say::Approved => s("approved", "approuvée"),
            Say::AwaitingApproval => s("waiting for an administrator's approval", "en attente de l'approbation d'un administrateur"),
            Say::ApproveFirst => s(
                "An administrator must approve this mailbox before its mail is imported.",
                "Un administrateur doit approuver cette boîte aux lettres avant que son courrier soit importé.",
            ),
            Say::CheckedWhenEnabled => s("checked when the mailbox is enabled", "vérifié à l'activation de la boîte"),
            Say::EarlierCheckFailed => s("an earlier check failed", "une vérification précédente a échoué"),
            Say::SharedPolled => s(
                "polled every few minutes: Graph sends no notifications for a shared mailbox reached with delegated permissions",
                "relevée toutes les quelques minutes : Graph n'envoie pas de notifications pour une boîte partagée atteinte avec des autorisations déléguées",
            ),
            Say::NoFolderChosen => s("no folder is chosen", "aucun dossier n'est choisi"),
            Say::ChooseAFolder => s("Choose at least one folder to import.", "Choisissez au moins un dossier à importer."),
            Say::FolderGone { name } => if en {
                format!("the folder '{name}' no longer exists")
            } else {
                format!("le dossier « {name} » n'existe plus")
            },
            Say::FolderGoneChooseAgain { name } => if en {
                format!("The folder '{name}' was deleted or moved: choose the folders again.")
            } else {
                format!("Le dossier « {name} » a été supprimé ou déplacé : choisissez de nouveau les dossiers.")
            },
            Say::FoldersReadable { names } => if en {
                format!("{} readable: {}", names.len(), names.join(", "))
            } else {
                format!("{} lisible{} : {}", names.len(), if names.len() == 1 { "" } else { "s" }, names.join(", "))
            },
            Say::SubscriptionRefused { folder, detail } => if en {
                format!("Graph refused a subscription on '{folder}': {detail}")
            } else {
                format!("Graph a refusé un abonnement sur « {folder} » : {detail}")
            },
            Say::NotificationUrlUnreachable => s(
                "Graph could not reach mailbridge's notification URL: check that the public URL is reachable from the internet over https.",
                "Graph n'a pas pu joindre l'URL de notification de mailbridge : vérifiez que l'URL publique est accessible depuis Internet en https.",
            ),
            Say::SubscriptionsLive { count, renew_before } => {
                let plural = if *count == 1 { "" } else { "s" };
                let when = renew_before.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string());
                match (en, when) {
                    (true, w) => format!("{count} subscription{plural} live{}", w.map_or(String::new(), |w| format!(", renewed before {w}"))),
                    (false, w) => format!("{count} abonnement{plural} actif{plural}{}", w.map_or(String::new(), |w| format!(", renouvelé{plural} avant le {w}"))),
                }
            }
            Say::NoDefaultProfile => s(
                "No server profile is marked as the default: an administrator must name one.",
                "Aucun profil de serveur n'est marqué par défaut : un administrateur doit en désigner un.",
            ),
            Say::ProfileIsOrganisationWide { profile } => if en {
                format!("Profile {profile} uses application permissions: an administrator grants consent for the whole organisation instead of each person signing in.")
            } else {
                format!("Le profil {profile} utilise des autorisations d'application : un administrateur accorde le consentement pour toute l'organisation, sans connexion de chaque personne.")
            },
            Say::DefaultIsOrganisationWide => s(
                "The default profile is organisation-wide: an administrator must make a delegated profile the default for people to sign in.",
                "Le profil par défaut est à l'échelle de l'organisation : un administrateur doit désigner par défaut un profil délégué pour que chacun puisse se connecter.",
            ),
            Say::ProfileIsDelegated { profile } => if en {
                format!("Profile {profile} uses delegated permissions: each person signs in at /connect instead.")
            } else {
                format!("Le profil {profile} utilise des autorisations déléguées : chaque personne se connecte plutôt depuis /connect.")
            },
            Say::SignInNoState => s(
                "This page was not opened by a sign-in: start again from mailbridge.",
                "Cette page n'a pas été ouverte par une connexion : recommencez depuis mailbridge.",
            ),
            Say::SignInUnknown => s(
                "This sign-in link is unknown or was already used: start again.",
                "Ce lien de connexion est inconnu ou a déjà servi : recommencez.",
            ),
            Say::SignInExpired => s(
                "This sign-in took too long and expired: start again.",
                "Cette connexion a pris trop de temps et a expiré : recommencez.",
            ),
            Say::SignInNoCode => s(
                "Microsoft's answer carries no authorization code: start again.",
                "La réponse de Microsoft ne contient pas de code d'autorisation : recommencez.",
            ),
            Say::ConsentNotByAdmin { code } => if en {
                format!("Only an administrator of the profile's tenant can grant this consent: sign in as a Global Administrator (or Privileged Role Administrator) of that tenant and start again ({code}).")
            } else {
                format!("Seul un administrateur du locataire du profil peut accorder ce consentement : connectez-vous en tant qu'administrateur général (ou administrateur de rôle privilégié) de ce locataire et recommencez ({code}).")
            },
            Say::ConsentDeclined { error } => if en {
                format!("The administrator declined the consent: nothing was granted ({error}).")
            } else {
                format!("L'administrateur a refusé le consentement : rien n'a été accordé ({error}).")
            },
            Say::PermissionsDeclined { error } => if en {
                format!("The permissions were not granted (consent declined): sign in again and accept them ({error}).")
            } else {
                format!("Les autorisations n'ont pas été accordées (consentement refusé) : reconnectez-vous et acceptez-les ({error}).")
            },
            Say::ConsentFirst { error } => if en {
                format!("An administrator must grant consent first ({error}).")
            } else {
                format!("Un administrateur doit d'abord accorder son consentement ({error}).")
            },
            Say::SignInRefused { error } => if en {
                format!("Microsoft refused the sign-in ({error}): start again, or ask your administrator.")
            } else {
                format!("Microsoft a refusé la connexion ({error}) : recommencez, ou adressez-vous à votre administrateur.")
            },
            Say::SignInNotCompleted { code } => if en {
                format!("Microsoft did not complete this sign-in ({code}): start again.")
            } else {
                format!("Microsoft n'a pas terminé cette connexion ({code}) : recommencez.")
            },
            Say::SetUpIncomplete { code } => if en {
                format!("mailbridge's connection to Microsoft is not set up correctly ({code}): tell your administrator, who sees what to fix in mailbridge.")
            } else {
                format!("La connexion de mailbridge à Microsoft n'est pas correctement configurée ({code}) : prévenez votre administrateur, qui voit dans mailbridge ce qu'il faut corriger.")
            },
            Say::UnknownLink => s(
                "This link names a profile mailbridge does not know: check the link, or ask your administrator for the right one.",
                "Ce lien désigne un profil que mailbridge ne connaît pas : vérifiez le lien, ou demandez le bon à votre administrateur.",
            ),
            Say::NameTheProfile => s(
                "Name the organisation-wide profile: /admin-consent?profile=<id>.",
                "Précisez le profil à l'échelle de l'organisation : /admin-consent?profile=<id>.",
            ),
            Say::ConsentGranted { tenant, profile } => if en {
                format!("The administrator of tenant {tenant} granted profile '{profile}' its permissions. Microsoft may take up to two hours to apply them everywhere: mailboxes added meanwhile show \"permission propagating\" and are tried again on their own.")
            } else {
                format!("L'administrateur du locataire {tenant} a accordé ses autorisations au profil « {profile} ». Microsoft peut mettre jusqu'à deux heures pour les appliquer partout : les boîtes ajoutées entre-temps indiquent « autorisation en cours de propagation » et sont réessayées d'elles-mêmes.")
            },
            Say::MailboxConnected { address, approved } => match (en, approved) {
                (true, true) => format!("{address} is connected. Mail arriving in the chosen folders is imported from now on."),
                (true, false) => format!("{address} is connected. An administrator must approve it before mail is imported."),
                (false, true) => format!("{address} est connectée. Le courrier qui arrive dans les dossiers choisis est désormais importé."),
                (false, false) => format!("{address} est connectée. Un administrateur doit l'approuver avant que le courrier soit importé."),
            },
            Say::ConsentNotConfirmed => s(
                "Microsoft did not confirm the consent: start again.",
                "Microsoft n'a pas confirmé le consentement : recommencez.",
            ),
            Say::ConsentFromOtherTenant { tenant, profile, expected } => if en {
                format!("An administrator of another tenant ({tenant}) answered; profile '{profile}' is for tenant {expected}: sign in as an administrator of that tenant and start again.")
            } else {
                format!("Un administrateur d'un autre locataire ({tenant}) a répondu ; le profil « {profile} » est celui du locataire {expected} : connectez-vous en tant qu'administrateur de ce locataire et recommencez.")
            },
            Say::NotAnAddress { address } => if en {
                format!("{address:?} is not a mailbox address.")
            } else {
                format!("« {address} » n'est pas une adresse de boîte aux lettres.")
            },
            Say::SharedOnlyFromUser => s(
                "A shared mailbox is added from the mailbox of a person who has access to it, not from another shared mailbox.",
                "Une boîte partagée s'ajoute depuis la boîte aux lettres d'une personne qui y a accès, non depuis une autre boîte partagée.",
            ),
            Say::ProfileExists { id } => if en {
                format!("A profile named {id} exists already: choose another id.")
            } else {
                format!("Un profil nommé {id} existe déjà : choisissez un autre identifiant.")
            },
            Say::NotACloud { value } => if en {
                format!("{value:?} is not a cloud.")
            } else {
                format!("« {value} » n'est pas un cloud.")
            },
            Say::NotADate { value } => if en {
                format!("{value:?} is not a date (YYYY-MM-DD).")
            } else {
                format!("« {value} » n'est pas une date (AAAA-MM-JJ).")
            },
            Say::NotANumberOfDays { value } => if en {
                format!("{value:?} is not a number of days.")
            } else {
                format!("« {value} » n'est pas un nombre de jours.")
            },
            Say::NotAKeyPlace { value } => if en {
                format!("{value:?} is not a place for the certificate's key: choose AWS KMS or the secret store.")
            } else {
                format!("« {value} » n'est pas un emplacement de clé de certificat : choisissez AWS KMS ou le coffre de secrets.")
            },
            Say::TooManyFolders { count, max } => if en {
                format!("{count} folders chosen: choose at most {max}.")
            } else {
                format!("{count} dossiers choisis : choisissez-en au plus {max}.")
            },
            Say::BadProfileId { max } => if en {
                format!("a profile id is 1 to {max} letters, digits, '-' or '_'")
            } else {
                format!("l'identifiant d'un profil compte de 1 à {max} lettres, chiffres, « - » ou « _ »")
            },
            Say::TextTooLong { field, max } => if en {
                format!("{field} must be at most {max} characters, without control characters")
            } else {
                format!("{field} compte au plus {max} caractères, sans caractère de contrôle")
            },
            Say::NeedsClientAndTenant => s(
                "a profile needs a client_id and a tenant",
                "un profil a besoin d'un ID client (client_id) et d'un locataire (tenant)",
            ),
            Say::NotATenant { tenant } => if en {
                format!("tenant {tenant:?} must be common, organizations, consumers, a tenant id (a GUID, Entra ID's Directory (tenant) ID) or a domain such as contoso.onmicrosoft.com")
            } else {
                format!("le locataire « {tenant} » doit être common, organizations, consumers, un ID de locataire (un GUID, l'ID de l'annuaire (locataire) dans Entra ID) ou un domaine comme contoso.onmicrosoft.com")
            },
            Say::OrganisationWideNeedsTenant { tenant } => if en {
                format!("an organisation-wide (application) profile needs its tenant's id or domain, not {tenant:?}: Microsoft grants application permissions per tenant")
            } else {
                format!("un profil à l'échelle de l'organisation (application) a besoin de l'ID ou du domaine de son locataire, et non de « {tenant} » : Microsoft accorde les autorisations d'application locataire par locataire")
            },
            Say::BackfillTooLong { days, max } => if en {
                format!("backfill_days is {days}; it must be between 0 and {max}")
            } else {
                format!("la reprise de l'historique (backfill_days) vaut {days} jours ; elle doit être comprise entre 0 et {max}")
            },
            Say::BadCategory { max } => if en {
                format!("outlook_category must be 1 to {max} characters, without control characters")
            } else {
                format!("la catégorie Outlook compte de 1 à {max} caractères, sans caractère de contrôle")
            },
            Say::NotACertificate { why } => {
                let why = match why {
                    CertificateFault::NoBlock => lang.pick("no BEGIN/END CERTIFICATE block", "aucun bloc BEGIN/END CERTIFICATE"),
                    CertificateFault::NotBase64 => lang.pick("its body is not base64", "son contenu n'est pas en base64"),
                    CertificateFault::NotX509 => lang.pick("it is not an X.509 certificate", "ce n'est pas un certificat X.509"),
                };
                if en {
                    format!("the certificate is not a PEM certificate: {why}")
                } else {
                    format!("le certificat n'est pas un certificat PEM : {why}")
                }
            }
            Say::NotAKmsAlias { prefix } => if en {
                format!("certificate.key: a KMS key is named by an alias under {prefix} (letters, digits, '/', '_', '-'), the only keys mailbridge may use")
            } else {
                format!("clé du certificat : une clé KMS est désignée par un alias sous {prefix} (lettres, chiffres, « / », « _ », « - »), les seules clés que mailbridge peut utiliser")
            },
            Say::CustomCloudNeedsResource => s(
                "a custom cloud needs a resource identifier",
                "un cloud personnalisé a besoin d'un identifiant de ressource",
            ),
            Say::CertificateExpiredOn { on } => {
                let day = on.format("%Y-%m-%d");
                if en {
                    format!("the certificate expired on {day}: upload a new one to the app registration (Certificates & secrets) and give it here")
                } else {
                    format!("le certificat a expiré le {day} : chargez-en un nouveau dans l'inscription d'application (Certificats et secrets) et donnez-le ici")
                }
            }
            Say::NoKeyInStore { name } => if en {
                format!("certificate.key: there is no private key in the secret store under {name}; store the certificate's key (PEM) there first")
            } else {
                format!("clé du certificat : le coffre de secrets ne contient aucune clé privée sous {name} ; enregistrez-y d'abord la clé du certificat (PEM)")
            },
            Say::SecretExpiredOn { on, name } => {
                let day = on.format("%Y-%m-%d");
                if en {
                    format!("client_secret_expires_at ({day}) is past: that client secret has expired. Add a new one in Entra ID (Certificates & secrets), store its value under {name}, and give its expiry")
                } else {
                    format!("l'expiration du secret client ({day}) est passée : ce secret a expiré. Ajoutez-en un nouveau dans Entra ID (Certificats et secrets), enregistrez sa valeur sous {name} et indiquez son expiration")
                }
            }
            Say::SecretEmpty { name } => if en {
                format!("client_secret_ref: the secret {name} is empty; store the client secret's value in it")
            } else {
                format!("secret client : le secret {name} est vide ; enregistrez-y la valeur du secret client")
            },
            Say::NoSuchSecret { name } => if en {
                format!("client_secret_ref: there is no secret named {name} in the secret store; store the client secret's value there first")
            } else {
                format!("secret client : le coffre de secrets ne contient aucun secret nommé {name} ; enregistrez-y d'abord la valeur du secret client")
            },
            Say::SecretOutsidePrefix { prefix } => if en {
                format!("client_secret_ref must be the name of a secret under {prefix:?} (letters, digits and /_+=.@-), for example {prefix}<profile>/client-secret")
            } else {
                format!("le secret client doit être le nom d'un secret sous « {prefix} » (lettres, chiffres et /_+=.@-), par exemple {prefix}<profil>/client-secret")
            },
            Say::NoCustomClouds => s(
                "this deployment does not allow custom clouds; choose global, us_gov, us_gov_dod or china (an operator can allow hosts with CUSTOM_CLOUD_HOSTS)",
                "ce déploiement n'autorise pas les clouds personnalisés ; choisissez global, us_gov, us_gov_dod ou china (un opérateur peut autoriser des hôtes avec CUSTOM_CLOUD_HOSTS)",
            ),
            Say::CustomUrlNotHttps { field } => if en {
                format!("the custom cloud's {field} URL must be https")
            } else {
                format!("l'URL {field} du cloud personnalisé doit être en https")
            },
            Say::CustomUrlNotPlain { field } => if en {
                format!("the custom cloud's {field} URL is not a plain URL")
            } else {
                format!("l'URL {field} du cloud personnalisé n'est pas une URL simple")
            },
            Say::AddressCount { count, max } => if en {
                format!("give 1 to {max} addresses, not {count}")
            } else {
                format!("donnez de 1 à {max} adresses, et non {count}")
            },
            Say::NeedsUserReadAll => s(
                "listing the tenant's users needs the User.Read.All application permission, granted by an administrator; or add the mailboxes by address",
                "lister les utilisateurs du locataire demande l'autorisation d'application User.Read.All, accordée par un administrateur ; sinon, ajoutez les boîtes par adresse",
            ),
            Say::CustomHostNotAllowed { field, host } => if en {
                format!("the custom cloud's {field} host {host} is not one this deployment allows")
            } else {
                format!("l'hôte {field} du cloud personnalisé, {host}, n'est pas autorisé par ce déploiement")
            },
        }
    }
}

impl Credential {
    fn name(self, lang: Lang) -> &'static str {
        match self {
            Credential::Secret => lang.pick("client secret", "secret client"),
            Credential::Certificate => lang.pick("certificate", "certificat"),
        }
    }

    fn renew(self, lang: Lang) -> &'static str {
        match self {
            Credential::Secret => lang.pick(
                "create a new secret in the app registration, store it in the secret store and update the profile's expiry",
                "créez un nouveau secret dans l'inscription d'application, enregistrez-le dans le coffre de secrets et mettez à jour l'expiration du profil",
            ),
            Credential::Certificate => lang.pick(
                "upload a new certificate to the app registration and give it (with its key) in the profile",
                "chargez un nouveau certificat dans l'inscription d'application et donnez-le (avec sa clé) dans le profil",
            ),
        }
    }

    /// What `renew` asks, as done (French needs the past participle after « tant que »).
    fn renewed(self, lang: Lang) -> &'static str {
        match self {
            Credential::Secret => lang.pick(
                self.renew(lang),
                "créé un nouveau secret dans l'inscription d'application, enregistré dans le coffre de secrets et mis à jour l'expiration du profil",
            ),
            Credential::Certificate => lang.pick(
                self.renew(lang),
                "chargé un nouveau certificat dans l'inscription d'application et donné ce certificat (avec sa clé) dans le profil",
            ),
        }
    }
}

/// Reads a sentence kept either as a [`Say`] or, as records written before sentences were data,
/// as plain text.
pub fn say_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Say, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Kept {
        Say(Say),
        Text(String),
    }
    Ok(match Kept::deserialize(d)? {
        Kept::Say(s) => s,
        Kept::Text(text) => Say::Text { text },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sentence_is_said_in_both_languages_and_kept_as_data() {
        let all = [
            Say::SignInAgain {
                code: "AADSTS50173".into(),
            },
            Say::SecretExpired,
            Say::NoExchangeMailbox { address: None },
            Say::ThrottledImportsResume { seconds: 30 },
            Say::OfProfile {
                profile: "Démo".into(),
                then: Box::new(Say::SecretWrong),
            },
            Say::CredentialExpired {
                credential: Credential::Secret,
                profile: "Démo".into(),
                on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            },
            Say::SubscriptionsLive {
                count: 2,
                renew_before: None,
            },
            Say::TooManyFolders {
                count: 300,
                max: 200,
            },
            Say::NotACertificate {
                why: CertificateFault::NotX509,
            },
            Say::SecretExpiredOn {
                on: DateTime::UNIX_EPOCH,
                name: "mailbridge/profiles/demo".into(),
            },
            Say::NoCustomClouds,
        ];
        for s in all {
            let (en, fr) = (s.in_lang(Lang::En), s.in_lang(Lang::Fr));
            assert_ne!(en, fr, "{s:?} is said the same in both languages");
            assert_eq!(s.to_string(), en);
            let kept = serde_json::to_string(&s).unwrap();
            let back: Say = serde_json::from_str(&kept).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(
            Say::OfProfile {
                profile: "Démo".into(),
                then: Box::new(Say::SecretWrong)
            }
            .in_lang(Lang::Fr),
            "Profil « Démo » : Le secret client du profil est erroné : enregistrez dans le coffre la valeur du secret (et non son identifiant)."
        );
    }

    #[test]
    fn text_kept_before_sentences_were_data_is_read() {
        #[derive(Deserialize)]
        struct Old {
            #[serde(deserialize_with = "say_or_text")]
            message: Say,
        }
        let old: Old = serde_json::from_str(r#"{"message": "Sign in again."}"#).unwrap();
        assert_eq!(old.message, Say::from("Sign in again."));
        let new: Old =
            serde_json::from_str(r#"{"message": {"say": "sign_in_again", "code": "X"}}"#).unwrap();
        assert_eq!(new.message, Say::SignInAgain { code: "X".into() });
    }
}
