//! Metadata parsed from a message's raw MIME, so that one Graph call per message is enough.

use crate::crypto::hex;
use mail_parser::{Address, MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// Parses the headers and the attachment list of a raw MIME message held in memory.
pub fn parse_metadata(raw: &[u8]) -> MessageMetadata {
    let mut scanner = MimeScanner::default();
    scanner.feed(raw);
    scanner.finish()
}

/// The top-level header block kept for parsing; what goes beyond is ignored.
const HEAD_MAX: usize = 1 << 20;
/// A part's header block kept for parsing.
const PART_HEAD_MAX: usize = 64 << 10;
/// Body lines longer than this are counted in pieces: no boundary line is that long.
const LINE_MAX: usize = 8 << 10;
/// Nested multiparts followed; deeper ones are counted as their parent's content.
const DEPTH_MAX: usize = 32;

#[derive(Clone, Copy)]
enum Encoding {
    Base64,
    QuotedPrintable,
    Other,
}

/// A leaf part being read: its decoded size so far, and the line end that belongs to it only if
/// another body line follows (the one before a boundary belongs to the boundary).
struct Leaf {
    attachment: Option<(Option<String>, String)>,
    encoding: Encoding,
    size: u64,
    pending_eol: u64,
}

enum Phase {
    Headers {
        block: Vec<u8>,
        top: bool,
    },
    /// A multipart's preamble or epilogue: ignored.
    Between,
    Leaf(Leaf),
}

/// Reads a message's raw MIME piece by piece, as it streams to storage: it hashes and counts every
/// byte and keeps only header blocks, so a 100 MB message costs no more memory than a small one.
/// Headers are decoded by `mail-parser` (RFC 2047 words, RFC 2231 file names); the part structure
/// (boundaries, decoded attachment sizes) is followed line by line. A message that cannot be
/// parsed still gets its size and hash, with every other field empty: the `.eml` is kept as it is.
pub struct MimeScanner {
    hasher: Sha256,
    size: u64,
    line: Vec<u8>,
    /// The current line's start was already handled as body content (an over-long line).
    continued: bool,
    boundaries: Vec<Vec<u8>>,
    phase: Phase,
    top: Option<Vec<u8>>,
    attachments: Vec<AttachmentInfo>,
}

impl Default for MimeScanner {
    fn default() -> Self {
        Self {
            hasher: Sha256::new(),
            size: 0,
            line: Vec::new(),
            continued: false,
            boundaries: Vec::new(),
            phase: Phase::Headers {
                block: Vec::new(),
                top: true,
            },
            top: None,
            attachments: Vec::new(),
        }
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn split_eol(line: &[u8]) -> (&[u8], u64) {
    match line {
        [rest @ .., b'\r', b'\n'] => (rest, 2),
        [rest @ .., b'\n'] => (rest, 1),
        _ => (line, 0),
    }
}

impl MimeScanner {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            let (line, rest) = chunk.split_at(end + 1);
            if self.line.is_empty() {
                self.line_done(line);
            } else {
                let mut whole = std::mem::take(&mut self.line);
                whole.extend_from_slice(line);
                self.line_done(&whole);
                whole.clear();
                self.line = whole;
            }
            chunk = rest;
        }
        self.line.extend_from_slice(chunk);
        if self.line.len() > LINE_MAX {
            let piece = std::mem::take(&mut self.line);
            self.piece(&piece, false);
            self.continued = true;
        }
    }

    pub fn finish(mut self) -> MessageMetadata {
        if !self.line.is_empty() {
            let last = std::mem::take(&mut self.line);
            self.line_done(&last);
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Between);
        match phase {
            Phase::Leaf(leaf) => self.close_leaf(leaf),
            Phase::Headers { block, top: true } => self.top = Some(block),
            _ => {}
        }
        let size = self.size;
        let sha256 = hex(&self.hasher.finalize());
        let head = self.top.unwrap_or_default();
        let parsed = MessageParser::default().parse_headers(&head);
        let msg = parsed.as_ref();
        MessageMetadata {
            subject: msg.and_then(|m| m.subject()).map(str::to_string),
            from: parties(msg.and_then(|m| m.from())),
            to: parties(msg.and_then(|m| m.to())),
            cc: parties(msg.and_then(|m| m.cc())),
            date: msg.and_then(|m| m.date()).map(|d| d.to_rfc3339()),
            internet_message_id: msg.and_then(|m| m.message_id()).map(str::to_string),
            size,
            sha256,
            attachments: self.attachments,
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        self.piece(line, true);
        self.continued = false;
    }

    /// One line, or a piece of an over-long one (`complete` false).
    fn piece(&mut self, line: &[u8], complete: bool) {
        if !self.continued && self.boundary(line) {
            return;
        }
        match &mut self.phase {
            Phase::Headers { block, top } => {
                if !self.continued && complete && matches!(line, b"\r\n" | b"\n") {
                    let (block, top) = (std::mem::take(block), *top);
                    self.open_part(block, top);
                } else {
                    let cap = if *top { HEAD_MAX } else { PART_HEAD_MAX };
                    let room = cap.saturating_sub(block.len()).min(line.len());
                    block.extend_from_slice(&line[..room]);
                }
            }
            Phase::Between => {}
            Phase::Leaf(leaf) => {
                let (content, eol) = if complete { split_eol(line) } else { (line, 0) };
                match leaf.encoding {
                    Encoding::Base64 => {
                        leaf.size += content.iter().filter(|&&b| is_base64(b)).count() as u64;
                    }
                    Encoding::QuotedPrintable => {
                        let content = content.trim_ascii_end();
                        let soft = content.last() == Some(&b'=');
                        // `=XX` decodes to one byte, a soft break `=` at the end to none.
                        let escapes =
                            content.iter().filter(|&&b| b == b'=').count() - soft as usize;
                        let decoded = content.len().saturating_sub(2 * escapes + soft as usize);
                        leaf.size += leaf.pending_eol + decoded as u64;
                        leaf.pending_eol = if soft { 0 } else { eol };
                    }
                    Encoding::Other => {
                        leaf.size += leaf.pending_eol + content.len() as u64;
                        leaf.pending_eol = eol;
                    }
                }
            }
        }
    }

    /// Whether the line is a boundary of an open multipart; if so, moves to the next part.
    fn boundary(&mut self, line: &[u8]) -> bool {
        if self.boundaries.is_empty() || !line.starts_with(b"--") {
            return false;
        }
        let line = line.trim_ascii_end();
        let Some((depth, close)) = self.boundaries.iter().enumerate().rev().find_map(|(i, b)| {
            let rest = line.strip_prefix(b.as_slice())?;
            match rest {
                b"" => Some((i, false)),
                b"--" => Some((i, true)),
                _ => None,
            }
        }) else {
            return false;
        };
        if let Phase::Leaf(leaf) = std::mem::replace(&mut self.phase, Phase::Between) {
            self.close_leaf(leaf);
        }
        if close {
            self.boundaries.truncate(depth);
        } else {
            self.boundaries.truncate(depth + 1);
            self.phase = Phase::Headers {
                block: Vec::new(),
                top: false,
            };
        }
        true
    }

    fn open_part(&mut self, mut block: Vec<u8>, top: bool) {
        block.extend_from_slice(b"\r\n");
        let parsed = MessageParser::default().parse_headers(&block);
        let ctype = parsed.as_ref().and_then(|m| m.content_type());
        let (main, sub) = ctype
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().map(str::to_ascii_lowercase),
                )
            })
            .unwrap_or_else(|| ("text".into(), Some("plain".into())));
        let multipart_boundary = ctype
            .filter(|_| main == "multipart")
            .and_then(|c| c.attribute("boundary"));
        self.phase = match multipart_boundary {
            Some(b) if self.boundaries.len() < DEPTH_MAX => {
                self.boundaries.push([b"--", b.as_bytes()].concat());
                Phase::Between
            }
            _ => {
                let m = parsed.as_ref();
                let disposition_attachment = m
                    .and_then(|m| m.content_disposition())
                    .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
                let name = m.and_then(|m| m.attachment_name()).map(str::to_string);
                let attachment =
                    (disposition_attachment || name.is_some() || main != "text").then(|| {
                        let content_type = match &sub {
                            Some(s) => format!("{main}/{s}"),
                            None => main.clone(),
                        };
                        (name, content_type)
                    });
                let encoding = match m
                    .and_then(|m| m.content_transfer_encoding())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("base64") => Encoding::Base64,
                    Some("quoted-printable") => Encoding::QuotedPrintable,
                    _ => Encoding::Other,
                };
                Phase::Leaf(Leaf {
                    attachment,
                    encoding,
                    size: 0,
                    pending_eol: 0,
                })
            }
        };
        if top {
            block.truncate(block.len() - 2);
            self.top = Some(block);
        }
    }

    fn close_leaf(&mut self, leaf: Leaf) {
        if let Some((name, content_type)) = leaf.attachment {
            let size = match leaf.encoding {
                Encoding::Base64 => leaf.size * 3 / 4,
                _ => leaf.size,
            };
            self.attachments.push(AttachmentInfo {
                name,
                content_type,
                size,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sha256_hex;

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

    /// Fed a byte at a time or whole, the scanner sees the same message.
    #[test]
    fn streaming_in_pieces_gives_the_same_metadata() {
        let whole = parse_metadata(WITH_ATTACHMENT.as_bytes());
        for size in [1, 2, 7, 64] {
            let mut s = MimeScanner::default();
            for piece in WITH_ATTACHMENT.as_bytes().chunks(size) {
                s.feed(piece);
            }
            assert_eq!(s.finish(), whole, "pieces of {size}");
        }
    }

    #[test]
    fn nested_parts_quoted_printable_and_long_lines() {
        let long = "x".repeat(3 * LINE_MAX + 5);
        let raw = format!(
            "Subject: nested\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n\
preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain\r\n\r\nhello\r\n--inner\r\n\
Content-Type: text/html\r\n\r\n<p>hello</p>\r\n--inner--\r\n\
--outer\r\nContent-Type: text/csv; name=\"a.csv\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
a=3Db,c=\r\n d\r\nend\r\n--outer\r\n\
Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''%C3%A9t%C3%A9.bin\r\n\r\n\
{long}\r\n--outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--outer--\r\nepilogue\r\n"
        );
        let m = parse_metadata(raw.as_bytes());
        assert_eq!(m.subject.as_deref(), Some("nested"));
        let got: Vec<_> = m
            .attachments
            .iter()
            .map(|a| (a.name.as_deref(), a.content_type.as_str(), a.size))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("a.csv"), "text/csv", "a=b,c d\r\nend".len() as u64),
                (
                    Some("été.bin"),
                    "application/octet-stream",
                    long.len() as u64
                ),
                (
                    None,
                    "message/rfc822",
                    "Subject: inner\r\n\r\nbody".len() as u64
                ),
            ]
        );
        let mut s = MimeScanner::default();
        for piece in raw.as_bytes().chunks(1000) {
            s.feed(piece);
        }
        assert_eq!(s.finish(), m);
    }

    #[test]
    fn a_single_part_message_has_headers_and_no_attachment() {
        let m = parse_metadata(b"Subject: hi\nFrom: a@b.example\n\nbody\n");
        assert_eq!(m.subject.as_deref(), Some("hi"));
        assert_eq!(m.from[0].address.as_deref(), Some("a@b.example"));
        assert!(m.attachments.is_empty());
        let headers_only = parse_metadata(b"Subject: only headers\r\n");
        assert_eq!(headers_only.subject.as_deref(), Some("only headers"));
    }

    #[test]
    fn garbage_keeps_size_and_hash() {
        let m = parse_metadata(b"");
        assert_eq!(m.size, 0);
        assert!(m.subject.is_none());
        assert_eq!(m.sha256.len(), 64);
    }
}
