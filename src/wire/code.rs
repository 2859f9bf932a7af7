//! The stable codes of error replies: what a script matches on, and what
//! a failure of the wire carries from the server. Both replies and errors
//! use them, so they stand on their own.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Machine-readable error codes, stable across versions. Clients show the
/// message; scripts match on the code.
///
/// On the wire a code is a snake_case string; one this version does not
/// know is kept as [`ErrorCode::Unknown`], so that a newer server's code
/// still reaches the user and a script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The header is not a valid request; the server closes the connection.
    BadRequest,
    /// The `cmd` is not known.
    UnknownCommand,
    /// The file name breaks the naming rules.
    BadName,
    /// No such file or folder.
    NotFound,
    /// The name exists and the server refuses to overwrite it.
    Exists,
    /// The file is larger than the server's limit.
    TooLarge,
    /// Not enough free disk space.
    NoSpace,
    /// The upload would exceed the user's quota.
    QuotaExceeded,
    /// The digest after the body does not match the data.
    DigestMismatch,
    /// Another connection is uploading the same name right now.
    Busy,
    /// A `get` offset beyond the end of the file.
    InvalidOffset,
    /// `rm` of a folder that is not empty.
    NotEmpty,
    /// The server is at its connection limit.
    TooManyConnections,
    /// This client may not run the command (an anonymous one, say).
    Forbidden,
    /// The client failed authentication.
    AuthFailed,
    /// The server failed to do something it should have been able to do.
    Internal,
    /// A delta upload's old file is no longer the one its signature
    /// described (or has none to copy from): send the whole file.
    BaseChanged,
    /// A code this version does not know yet, as the server wrote it.
    #[strum(disabled)]
    Unknown(String),
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unknown(code) => code,
            known => known.into(),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ErrorCode, D::Error> {
        let code = Cow::<str>::deserialize(d)?;
        Ok(code
            .parse()
            .unwrap_or_else(|_| ErrorCode::Unknown(code.into_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_read_as_serde_writes_them() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::TooManyConnections,
            ErrorCode::Unknown("brand_new".into()),
        ] {
            let json = serde_json::to_value(&code).unwrap();
            assert_eq!(json, code.as_str());
            let back: ErrorCode = serde_json::from_value(json).unwrap();
            assert_eq!(back, code, "a code, known or not, reads back as itself");
        }
    }
}
