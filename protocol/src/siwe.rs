//! Sign-In with Ethereum ([EIP-4361]) messages: the text a wallet shows and signs with
//! `personal_sign` to open a session with the coordinator. [`SiweMessage::to_message`] writes the
//! same text viem's `createSiweMessage` does; [`SiweMessage::parse`] reads it back and says which line
//! or field is wrong.
//!
//! [EIP-4361]: https://eips.ethereum.org/EIPS/eip-4361

use alloy_primitives::{Address, Signature, eip191_hash_message};
use chrono::{DateTime, FixedOffset};

const HEADER_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// Why a message is not a valid EIP-4361 message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SiweError {
    /// The message ended before a required line.
    #[error("the message ends before its `{0}` line")]
    Missing(&'static str),
    /// A line is not what EIP-4361 puts there.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field (or line) that is wrong.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl SiweError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid { field, reason: reason.into() }
    }

    /// The field the error is about.
    pub const fn field(&self) -> &'static str {
        match self {
            Self::Missing(f) | Self::Invalid { field: f, .. } => f,
        }
    }
}

/// An EIP-4361 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// The site asking (`host[:port]`), which the server checks is itself.
    pub domain: String,
    /// The signing account (EIP-55 checksummed in the text).
    pub address: Address,
    /// What the user agrees to, shown by the wallet.
    pub statement: Option<String>,
    /// The resource the session is for.
    pub uri: String,
    /// Always `1`.
    pub version: String,
    /// The chain the session is bound to.
    pub chain_id: u64,
    /// A server-issued nonce (at least 8 alphanumeric characters), used once.
    pub nonce: String,
    /// When the message was made.
    pub issued_at: DateTime<FixedOffset>,
    /// When the session must end.
    pub expiration_time: Option<DateTime<FixedOffset>>,
    /// When the session may start.
    pub not_before: Option<DateTime<FixedOffset>>,
    /// An id the server may use to refer to the request.
    pub request_id: Option<String>,
    /// URIs the user also authorizes.
    pub resources: Vec<String>,
}

fn time(field: &'static str, value: &str) -> Result<DateTime<FixedOffset>, SiweError> {
    DateTime::parse_from_rfc3339(value).map_err(|e| SiweError::invalid(field, format!("not an RFC 3339 time ({e})")))
}

fn fmt_time(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl SiweMessage {
    /// Parses the text a wallet signed.
    pub fn parse(text: &str) -> Result<Self, SiweError> {
        let mut lines = text.split('\n').peekable();
        let header = lines.next().ok_or(SiweError::Missing("domain"))?;
        let domain = header
            .strip_suffix(HEADER_SUFFIX)
            .ok_or_else(|| SiweError::invalid("domain", format!("the first line must end with `{HEADER_SUFFIX}`")))?;
        let domain = domain.split_once("://").map_or(domain, |(_, rest)| rest);
        if domain.is_empty() || domain.contains(char::is_whitespace) {
            return Err(SiweError::invalid("domain", "an authority (`host[:port]`) without spaces"));
        }
        let address_line = lines.next().ok_or(SiweError::Missing("address"))?;
        let address =
            Address::parse_checksummed(address_line, None).map_err(|_| SiweError::invalid("address", "an EIP-55 checksummed address"))?;
        if lines.next() != Some("") {
            return Err(SiweError::invalid("address", "a blank line must follow the address"));
        }
        // `[ statement LF ] LF`: a statement line and a blank, or just the blank; viem writes no blank
        // at all when there is no statement, so `URI:` right here is read the same way.
        let statement = match *lines.peek().ok_or(SiweError::Missing("URI"))? {
            line if line.starts_with("URI: ") => None,
            "" => {
                lines.next();
                None
            }
            line => {
                lines.next();
                if lines.next() != Some("") {
                    return Err(SiweError::invalid("statement", "one line, followed by a blank line"));
                }
                Some(line.to_string())
            }
        };
        let mut field = |name: &'static str| -> Result<String, SiweError> {
            let line = lines.next().ok_or(SiweError::Missing(name))?;
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_string)
                .ok_or_else(|| SiweError::invalid(name, format!("expected a `{name}: ` line here, found `{line}`")))
        };
        let uri = field("URI")?;
        if !uri.contains(':') {
            return Err(SiweError::invalid("URI", "an RFC 3986 URI with a scheme"));
        }
        let version = field("Version")?;
        if version != "1" {
            return Err(SiweError::invalid("Version", "must be 1"));
        }
        let chain_id = field("Chain ID")?.parse().map_err(|_| SiweError::invalid("Chain ID", "a decimal chain id"))?;
        let nonce = field("Nonce")?;
        if nonce.len() < 8 || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SiweError::invalid("Nonce", "at least 8 alphanumeric characters"));
        }
        let issued_at = time("Issued At", &field("Issued At")?)?;
        let mut message = Self {
            domain: domain.to_string(),
            address,
            statement,
            uri,
            version,
            chain_id,
            nonce,
            issued_at,
            expiration_time: None,
            not_before: None,
            request_id: None,
            resources: Vec::new(),
        };
        let mut in_resources = false;
        for line in lines {
            if in_resources {
                let resource = line.strip_prefix("- ").ok_or_else(|| SiweError::invalid("Resources", "each resource is a `- ` line"))?;
                message.resources.push(resource.to_string());
            } else if let Some(v) = line.strip_prefix("Expiration Time: ") {
                message.expiration_time = Some(time("Expiration Time", v)?);
            } else if let Some(v) = line.strip_prefix("Not Before: ") {
                message.not_before = Some(time("Not Before", v)?);
            } else if let Some(v) = line.strip_prefix("Request ID: ") {
                message.request_id = Some(v.to_string());
            } else if line == "Resources:" {
                in_resources = true;
            } else {
                return Err(SiweError::invalid("message", format!("unexpected line `{line}`")));
            }
        }
        Ok(message)
    }

    /// The text to sign.
    pub fn to_message(&self) -> String {
        let mut out = format!("{}{HEADER_SUFFIX}\n{}\n\n", self.domain, self.address.to_checksum(None));
        if let Some(statement) = &self.statement {
            out.push_str(statement);
            out.push('\n');
        }
        out.push_str(&format!(
            "\nURI: {}\nVersion: {}\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri,
            self.version,
            self.chain_id,
            self.nonce,
            fmt_time(&self.issued_at)
        ));
        if let Some(t) = &self.expiration_time {
            out.push_str(&format!("\nExpiration Time: {}", fmt_time(t)));
        }
        if let Some(t) = &self.not_before {
            out.push_str(&format!("\nNot Before: {}", fmt_time(t)));
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!("\nRequest ID: {id}"));
        }
        if !self.resources.is_empty() {
            out.push_str("\nResources:");
            for r in &self.resources {
                out.push_str(&format!("\n- {r}"));
            }
        }
        out
    }
}

/// The address that signed `text` with `personal_sign` (EIP-191).
pub fn recover_signer(text: &str, signature: &Signature) -> Result<Address, crate::eip712::SignatureError> {
    crate::eip712::recover(&eip191_hash_message(text.as_bytes()), signature)
}
