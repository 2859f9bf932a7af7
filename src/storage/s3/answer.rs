//! What the store answered: the response when it is a 2xx, else an
//! `io::Error` that says what S3 said (its error document's code and
//! message), with a missing object or upload as `NotFound`.

use std::io;

use ureq::http::{self, Response};
use ureq::Body;

/// The response if it is a 2xx, else an error with what the store said.
pub(super) fn checked(mut response: Response<Body>) -> io::Result<Response<Body>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Err(refusal(status, &text))
}

/// Whether a request failed because its connection was dead: the store
/// closed a kept connection just as the request went out on it.
pub(super) fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A 2xx answer's body, as text of at most 64 MiB.
pub(super) fn read_text(response: &mut Response<Body>) -> io::Result<String> {
    response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(from_ureq)
}

/// An answer that is not what S3 sends.
pub(super) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A request that got no answer: the I/O error itself where there is one.
pub(super) fn from_ureq(e: ureq::Error) -> io::Error {
    match e {
        ureq::Error::Io(e) => e,
        other => io::Error::other(format!("the object store cannot be reached: {other}")),
    }
}

/// What an S3 error body says: `<Error><Code>…</Code><Message>…</Message>
/// …</Error>`; the other fields (resource, request id, region) are left.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

/// An error for a non-2xx answer, with S3's `<Code>` and `<Message>` when
/// the body is an S3 error (a proxy's page, say, is not).
pub(super) fn refusal(status: http::StatusCode, body: &str) -> io::Error {
    let said: ErrorBody = quick_xml::de::from_str(body).unwrap_or_default();
    let kind = match status.as_u16() {
        404 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        // "Slow down" or "try again": an idempotent request may go again.
        500 | 503 => io::ErrorKind::ResourceBusy,
        _ => io::ErrorKind::Other,
    };
    let said = match (said.code.filter(|c| !c.is_empty()), said.message) {
        (None, _) => String::new(),
        (Some(code), Some(m)) => format!(": {code}: {m}"),
        (Some(code), None) => format!(": {code}"),
    };
    io::Error::new(kind, format!("the object store answered {status}{said}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies as Garage 2.5 sent them (an unsigned request, and a GET of
    /// a missing key).
    const GARAGE_DENIED: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
        <Code>AccessDenied</Code><Message>Forbidden: Garage does not support anonymous \
        access yet</Message><Resource>/ftp/some/key</Resource><Region>garage</Region></Error>";
    const GARAGE_NO_KEY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>\
        <Code>NoSuchKey</Code><Message>Key not found</Message>\
        <Resource>/ftp/docs/a%20%26%20b.txt</Resource><Region>garage</Region></Error>";

    fn said(status: http::StatusCode, body: &str) -> (io::ErrorKind, String) {
        let e = refusal(status, body);
        (e.kind(), e.to_string())
    }

    #[test]
    fn refusals_carry_what_s3_said() {
        assert_eq!(
            said(http::StatusCode::FORBIDDEN, GARAGE_DENIED),
            (
                io::ErrorKind::PermissionDenied,
                "the object store answered 403 Forbidden: AccessDenied: Forbidden: \
                 Garage does not support anonymous access yet"
                    .into()
            )
        );
        assert_eq!(
            said(http::StatusCode::NOT_FOUND, GARAGE_NO_KEY),
            (
                io::ErrorKind::NotFound,
                "the object store answered 404 Not Found: NoSuchKey: Key not found".into()
            )
        );
        let e = refusal(http::StatusCode::NOT_FOUND, "");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_refusal_body_is_parsed_as_xml_not_scraped() {
        // AWS's layout: indented, with a request id; escaped text comes
        // out as the store meant it.
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  \
            <Code>SlowDown</Code>\n  <Message>Reduce your request rate &amp; retry</Message>\n  \
            <RequestId>4442587FB7D0A2F9</RequestId>\n</Error>";
        assert_eq!(
            said(http::StatusCode::SERVICE_UNAVAILABLE, body).1,
            "the object store answered 503 Service Unavailable: SlowDown: \
             Reduce your request rate & retry"
        );
        let code_only = "<Error><Code>InternalError</Code></Error>";
        assert_eq!(
            said(http::StatusCode::INTERNAL_SERVER_ERROR, code_only).1,
            "the object store answered 500 Internal Server Error: InternalError"
        );
        // A proxy's page in front of the store says nothing S3 would.
        let page = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        assert_eq!(
            said(http::StatusCode::BAD_GATEWAY, page),
            (
                io::ErrorKind::Other,
                "the object store answered 502 Bad Gateway".into()
            )
        );
    }
}
