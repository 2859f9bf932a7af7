//! Copies made on the store's side: a whole object (`CopyObject`, for a
//! move) and a byte range of one into a part of a multipart upload
//! (`UploadPartCopy`, for a delta upload's unchanged data). Neither moves
//! the bytes through this server.

use std::io;

use rusty_s3::actions::{PutObject, S3Action, UploadPart};
use ureq::http;

use super::{S3Client, SIGNED_FOR};
use crate::storage::s3::answer::{from_ureq, invalid, read_text, refusal};

/// What `UploadPartCopy` answers: `<CopyPartResult><ETag>…</ETag>…`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CopyPartResult {
    #[serde(rename = "ETag")]
    etag: String,
}

impl S3Client {
    /// Copies the object `from` to `to` inside the bucket, on the store's
    /// side (`PutObject` with `x-amz-copy-source`; up to 5 GiB, S3's limit
    /// for one copy).
    pub(crate) fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        let mut action = PutObject::new(&self.bucket, self.creds(), to);
        let headers = [("x-amz-copy-source", self.copy_source(from))];
        for (name, value) in &headers {
            action.headers_mut().insert(*name, value.clone());
        }
        self.send_copy(action.sign(SIGNED_FOR), &headers).map(drop)
    }

    /// Makes part `number` of the upload `upload_id` of `key` from the
    /// bytes `range` (`start..end`, not empty) of the object `source`, on
    /// the store's side, provided `source` is still the object tagged
    /// `etag` (a replaced one is refused, never copied). Returns the
    /// part's entity tag.
    ///
    /// Fails with what the store said; a store without ranged part copies
    /// says so here.
    pub fn upload_part_copy(
        &self,
        (key, upload_id, number): (&str, &str, u16),
        source: &str,
        range: std::ops::Range<u64>,
        etag: &str,
    ) -> io::Result<String> {
        if range.is_empty() {
            return Err(invalid(format!("UploadPartCopy: empty range {range:?}")));
        }
        let mut action = UploadPart::new(&self.bucket, self.creds(), key, number, upload_id);
        let headers = [
            ("x-amz-copy-source", self.copy_source(source)),
            (
                "x-amz-copy-source-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            ),
            ("x-amz-copy-source-if-match", etag.to_string()),
        ];
        for (name, value) in &headers {
            action.headers_mut().insert(*name, value.clone());
        }
        let text = self.send_copy(action.sign(SIGNED_FOR), &headers)?;
        let done: CopyPartResult = quick_xml::de::from_str(&text)
            .map_err(|e| invalid(format!("UploadPartCopy: {e}: {text}")))?;
        Ok(done.etag)
    }

    /// `/BUCKET/KEY`, as a copy source names an object.
    fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket.name(), encode_key(key))
    }

    /// Sends a copy signed as `url` with the `headers` it was signed
    /// with; returns the answer's body. S3 may answer 200 and put the
    /// failure in the body.
    fn send_copy(&self, url: url::Url, headers: &[(&str, String)]) -> io::Result<String> {
        let mut request = http::Request::builder()
            .method(http::Method::PUT)
            .uri(url.as_str());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(()).map_err(io::Error::other)?;
        let mut response = self.agent.run(request).map_err(from_ureq)?;
        let text = read_text(&mut response)?;
        match response.status().is_success() && !text.contains("<Error>") {
            true => Ok(text),
            false => Err(refusal(response.status(), &text)),
        }
    }
}

/// A key as a copy source names it: each byte but the unreserved ones
/// and `/` percent-encoded.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
