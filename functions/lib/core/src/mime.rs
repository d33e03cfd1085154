//! Metadata parsed from a message's raw MIME, so that one Graph call per message is enough.

use crate::crypto::sha256_hex;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    pub name: Option<String>,
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

/// What the consuming application reads beside the `.eml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMetadata {
    pub subject: Option<String>,
    pub from: Vec<Party>,
    pub to: Vec<Party>,
    pub cc: Vec<Party>,
    /// The `Date:` header, RFC 3339.
    pub date: Option<String>,
    /// The `Message-ID:` header, without angle brackets.
    pub internet_message_id: Option<String>,
    /// Size of the raw MIME in bytes.
    pub size: u64,
    /// SHA-256 (hex) of the raw MIME as stored.
    pub sha256: String,
    pub attachments: Vec<AttachmentInfo>,
}

fn parties(a: Option<&Address<'_>>) -> Vec<Party> {
    a.map(|a| {
        a.iter()
            .map(|p| Party {
                name: p.name().map(str::to_string),
                address: p.address().map(str::to_string),
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Parses the headers and the attachment list of a raw MIME message. Headers in RFC 2047 encoded
/// words (non-ASCII subjects and names) come back decoded. A message that cannot be parsed at all
/// still gets its size and hash, with every other field empty: the `.eml` is kept as it is.
pub fn parse_metadata(raw: &[u8]) -> MessageMetadata {
    let size = raw.len() as u64;
    let sha256 = sha256_hex(raw);
    let Some(msg) = MessageParser::default().parse(raw) else {
        return MessageMetadata {
            subject: None,
            from: vec![],
            to: vec![],
            cc: vec![],
            date: None,
            internet_message_id: None,
            size,
            sha256,
            attachments: vec![],
        };
    };
    let attachments = msg
        .attachments()
        .map(|p| AttachmentInfo {
            name: p.attachment_name().map(str::to_string),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: p.len() as u64,
        })
        .collect();
    MessageMetadata {
        subject: msg.subject().map(str::to_string),
        from: parties(msg.from()),
        to: parties(msg.to()),
        cc: parties(msg.cc()),
        date: msg.date().map(|d| d.to_rfc3339()),
        internet_message_id: msg.message_id().map(str::to_string),
        size,
        sha256,
        attachments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_ATTACHMENT: &str = "From: =?UTF-8?Q?Ren=C3=A9e_Dupr=C3=A9?= <renee@example.com>\r\n\
To: Anna <anna@contoso.example>, bob@contoso.example\r\n\
Cc: carol@contoso.example\r\n\
Subject: =?UTF-8?B?RmFjdHVyZSDDqXTDqSDigqwgMjAyNg==?=\r\n\
Date: Tue, 03 Nov 2026 10:00:00 +0100\r\n\
Message-ID: <abc.123@example.com>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Bonjour\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"facture.pdf\"\r\n\
Content-Disposition: attachment; filename=\"facture.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

    #[test]
    fn parses_headers_and_attachments() {
        let m = parse_metadata(WITH_ATTACHMENT.as_bytes());
        assert_eq!(m.subject.as_deref(), Some("Facture été € 2026"));
        assert_eq!(m.from[0].name.as_deref(), Some("Renée Dupré"));
        assert_eq!(m.from[0].address.as_deref(), Some("renee@example.com"));
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.to[1].address.as_deref(), Some("bob@contoso.example"));
        assert_eq!(m.cc[0].address.as_deref(), Some("carol@contoso.example"));
        assert_eq!(
            m.internet_message_id.as_deref(),
            Some("abc.123@example.com")
        );
        assert_eq!(m.date.as_deref(), Some("2026-11-03T10:00:00+01:00"));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].name.as_deref(), Some("facture.pdf"));
        assert_eq!(m.attachments[0].content_type, "application/pdf");
        assert_eq!(m.attachments[0].size, 9);
        assert_eq!(m.size, WITH_ATTACHMENT.len() as u64);
        assert_eq!(m.sha256, sha256_hex(WITH_ATTACHMENT.as_bytes()));
    }

    #[test]
    fn garbage_keeps_size_and_hash() {
        let m = parse_metadata(b"");
        assert_eq!(m.size, 0);
        assert!(m.subject.is_none());
        assert_eq!(m.sha256.len(), 64);
    }
}
