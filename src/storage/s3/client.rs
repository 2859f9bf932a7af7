//! The S3 requests the store makes, over blocking HTTP.
//!
//! rusty-s3 signs each request (as a pre-signed URL) and parses the XML
//! replies; ureq sends it. Neither needs an async runtime, which a
//! blocking server would only have to drive from its own threads.
//! Every failure becomes an `io::Error` whose message says what S3 said;
//! a missing object or upload is `NotFound` (see `answer.rs`).

use std::io::{self, Read};
use std::time::Duration;

use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CompleteMultipartUploadResponse,
    CreateMultipartUpload, DeleteObject, GetObject, HeadObject, ListObjectsV2,
    ListObjectsV2Response, ListParts, PutObject, S3Action, UploadPart,
};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use ureq::http::{self, Response};
use ureq::Body;

use super::answer::{checked, from_ureq, invalid, is_stale, read_text, refusal};

mod copies;
use crate::logging::detail;

/// How long a signed request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(600);
/// A busy store is asked again after 50, 200 and 800 ms, then given up on.
const BUSY_PAUSE_LIMIT: Duration = Duration::from_millis(3200);

/// How long a connection to the store may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the store may take to start answering a request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Most parts one `ListParts` reply carries.
const PARTS_PER_PAGE: u16 = 1000;

/// Where the store is and who we are to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://HOST:PORT` or `https://...`.
    pub url: String,
    /// The region to sign for.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The access key's id.
    pub key_id: String,
    /// The access key's secret.
    pub secret: String,
}

/// One bucket, and an HTTP agent that keeps connections to it open.
///
/// A kept connection may have been closed by the store just as a request
/// goes out on it (its keep-alive ran out), which surfaced as `Peer
/// disconnected`. So an idempotent request that fails that way is sent
/// once more on a fresh connection, and the two requests that are not
/// idempotent (creating and completing a multipart upload) always go on
/// a fresh one.
#[derive(Debug, Clone)]
pub struct S3Client {
    agent: ureq::Agent,
    /// An agent that keeps no connection: every request opens its own.
    fresh: ureq::Agent,
    bucket: Bucket,
    credentials: Credentials,
}

/// A part the store holds for a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// Its number, from 1.
    pub(crate) number: u16,
    /// Its entity tag, as `CompleteMultipartUpload` wants it.
    pub(crate) etag: String,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// An object's size, age and entity tag, from `HEAD`.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    /// Bytes.
    pub size: u64,
    /// Last modified, seconds since the epoch (0 if the store did not say).
    pub(crate) mtime: u64,
    /// Its entity tag, which changes whenever the object is written.
    pub(crate) etag: String,
}

impl S3Client {
    /// A client for `endpoint`, with path-style addressing (what custom
    /// endpoints such as Garage and MinIO expect).
    ///
    /// Fails when the URL is not one.
    pub fn new(endpoint: &Endpoint) -> io::Result<S3Client> {
        let url = endpoint
            .url
            .parse()
            .map_err(|e| invalid(format!("AWS_ENDPOINT_URL {}: {e}", endpoint.url)))?;
        let bucket = Bucket::new(
            url,
            UrlStyle::Path,
            endpoint.bucket.clone(),
            endpoint.region.clone(),
        )
        .map_err(|e| invalid(format!("bucket {}: {e}", endpoint.bucket)))?;
        let config = |kept: usize| {
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_recv_response(Some(ANSWER_TIMEOUT))
                .max_idle_connections(kept)
                .max_idle_connections_per_host(kept)
                .build()
        };
        Ok(S3Client {
            agent: config(64).into(),
            fresh: config(0).into(),
            bucket,
            credentials: Credentials::new(endpoint.key_id.clone(), endpoint.secret.clone()),
        })
    }

    /// The bucket's name.
    pub(crate) fn bucket(&self) -> &str {
        self.bucket.name()
    }

    fn creds(&self) -> Option<&Credentials> {
        Some(&self.credentials)
    }

    /// Sends one idempotent request and fails unless the store answers
    /// 2xx; on a kept connection that turns out dead, once more on a fresh
    /// one; on a 500 or 503 (a store under load says "try again", as
    /// Garage's SQLite "database is locked"), again after a pause, a few times.
    fn send<B: ureq::AsSendBody + Copy>(
        &self,
        method: http::Method,
        url: url::Url,
        range: Option<Bytes>,
        body: B,
    ) -> io::Result<Response<Body>> {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.send_kept(method.clone(), &url, range, body) {
                Err(e) if e.kind() == io::ErrorKind::ResourceBusy && pause < BUSY_PAUSE_LIMIT => {
                    detail(format_args!("the object store is busy ({e}); trying again"));
                    std::thread::sleep(pause);
                    pause *= 4;
                }
                answered => return answered,
            }
        }
    }

    fn send_kept<B: ureq::AsSendBody + Copy>(
        &self,
        method: http::Method,
        url: &url::Url,
        range: Option<Bytes>,
        body: B,
    ) -> io::Result<Response<Body>> {
        let request = || build(method.clone(), url, range, body);
        match self.agent.run(request()?).map_err(from_ureq) {
            Err(e) if is_stale(&e) => {
                detail(format_args!("kept connection closed ({e}); sending again"));
                checked(self.fresh.run(request()?).map_err(from_ureq)?)
            }
            answered => checked(answered?),
        }
    }

    /// Sends one request that must not be repeated, on a fresh connection
    /// (a kept one may be dead, and it could not be sent again).
    fn send_once(
        &self,
        method: http::Method,
        url: url::Url,
        body: impl ureq::AsSendBody,
    ) -> io::Result<Response<Body>> {
        let request = build(method, &url, None, body)?;
        checked(self.fresh.run(request).map_err(from_ureq)?)
    }

    /// Checks that the bucket can be listed with these credentials.
    ///
    /// Fails with the store's own reason.
    pub fn check(&self) -> io::Result<()> {
        let mut list = ListObjectsV2::new(&self.bucket, self.creds());
        list.with_max_keys(1);
        self.send(http::Method::GET, list.sign(SIGNED_FOR), None, ())
            .map(drop)
    }

    /// An object's size and modification time; `NotFound` when missing.
    pub fn head(&self, key: &str) -> io::Result<ObjectInfo> {
        let action = HeadObject::new(&self.bucket, self.creds(), key);
        let response = self.send(http::Method::HEAD, action.sign(SIGNED_FOR), None, ())?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let size = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| invalid(format!("HEAD {key}: no Content-Length")))?;
        let mtime = header("last-modified")
            .and_then(|v| jiff::fmt::rfc2822::parse(&v).ok())
            .map(|t| t.timestamp().as_second().max(0) as u64)
            .unwrap_or(0);
        let etag = header("etag").unwrap_or_default();
        Ok(ObjectInfo { size, mtime, etag })
    }

    /// The bytes of `key` from `offset` to the end.
    pub fn get_from(&self, key: &str, offset: u64) -> io::Result<impl Read + Send + 'static> {
        let action = GetObject::new(&self.bucket, self.creds(), key);
        let range = (offset > 0).then_some((offset, None));
        let response = self.send(http::Method::GET, action.sign(SIGNED_FOR), range, ())?;
        Ok(response.into_body().into_reader())
    }

    /// The bytes `range` of `key` (not empty): a request that ends where
    /// the reader needs, so that its connection is kept for the next.
    pub(crate) fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> io::Result<impl Read + Send + 'static> {
        let action = GetObject::new(&self.bucket, self.creds(), key);
        let bytes = Some((range.start, Some(range.end)));
        let response = self.send(http::Method::GET, action.sign(SIGNED_FOR), bytes, ())?;
        let len = range.end.saturating_sub(range.start);
        Ok(response.into_body().into_reader().take(len))
    }

    /// A small object, whole (state records).
    pub fn get_small(&self, key: &str) -> io::Result<Vec<u8>> {
        let action = GetObject::new(&self.bucket, self.creds(), key);
        let mut response = self.send(http::Method::GET, action.sign(SIGNED_FOR), None, ())?;
        response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(from_ureq)
    }

    /// Stores `bytes` as `key`, replacing what was there; returns the
    /// object's entity tag (empty if the store sent none).
    pub fn put(&self, key: &str, bytes: &[u8]) -> io::Result<String> {
        let action = PutObject::new(&self.bucket, self.creds(), key);
        let response = self.send(http::Method::PUT, action.sign(SIGNED_FOR), None, bytes)?;
        Ok(response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string())
    }

    /// Deletes `key`; deleting what is not there succeeds.
    pub fn delete(&self, key: &str) -> io::Result<()> {
        let action = DeleteObject::new(&self.bucket, self.creds(), key);
        self.send(http::Method::DELETE, action.sign(SIGNED_FOR), None, ())
            .map(drop)
    }

    /// One page of the objects below `prefix`; with a `delimiter`, the
    /// deeper ones are rolled into common prefixes.
    pub fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        max_keys: usize,
    ) -> io::Result<ListObjectsV2Response> {
        let mut list = ListObjectsV2::new(&self.bucket, self.creds());
        list.with_prefix(prefix.to_string());
        if let Some(d) = delimiter {
            list.with_delimiter(d.to_string());
        }
        if let Some(t) = token {
            list.with_continuation_token(t.to_string());
        }
        list.with_max_keys(max_keys);
        let mut response = self.send(http::Method::GET, list.sign(SIGNED_FOR), None, ())?;
        let text = read_text(&mut response)?;
        ListObjectsV2::parse_response(&text).map_err(|e| invalid(format!("ListObjectsV2: {e}")))
    }

    /// Starts a multipart upload of `key`; returns its id.
    pub fn create_multipart(&self, key: &str) -> io::Result<String> {
        let action = CreateMultipartUpload::new(&self.bucket, self.creds(), key);
        let mut response = self.send_once(http::Method::POST, action.sign(SIGNED_FOR), ())?;
        let text = read_text(&mut response)?;
        let created = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| invalid(format!("CreateMultipartUpload: {e}")))?;
        Ok(created.upload_id().to_string())
    }

    /// Uploads part `number` of an upload; returns its entity tag.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        bytes: &[u8],
    ) -> io::Result<String> {
        let action = UploadPart::new(&self.bucket, self.creds(), key, number, upload_id);
        let response = self.send(http::Method::PUT, action.sign(SIGNED_FOR), None, bytes)?;
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| invalid("UploadPart: the store sent no ETag".into()))
    }

    /// The parts the store holds for an upload; `NotFound` when the upload
    /// is gone (completed or aborted).
    pub fn list_parts(&self, key: &str, upload_id: &str) -> io::Result<Vec<StoredPart>> {
        let mut parts = Vec::new();
        let mut marker = None;
        loop {
            let mut action = ListParts::new(&self.bucket, self.creds(), key, upload_id);
            action.set_max_parts(PARTS_PER_PAGE);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let mut response = self.send(http::Method::GET, action.sign(SIGNED_FOR), None, ())?;
            let text = read_text(&mut response)?;
            let page =
                ListParts::parse_response(&text).map_err(|e| invalid(format!("ListParts: {e}")))?;
            parts.extend(page.parts.iter().map(|p| StoredPart {
                number: p.number,
                etag: p.etag.clone(),
                size: p.size,
            }));
            match page.next_part_number_marker {
                Some(m) if page.parts.len() == usize::from(PARTS_PER_PAGE) => marker = Some(m),
                _ => return Ok(parts),
            }
        }
    }

    /// Makes the upload's object from its parts, whole, at once; returns
    /// the object's entity tag.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> io::Result<String> {
        let action = CompleteMultipartUpload::new(
            &self.bucket,
            self.creds(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNED_FOR);
        let mut response = self.send_once(http::Method::POST, url, action.body())?;
        // S3 may answer 200 and put the failure in the body.
        let text = read_text(&mut response)?;
        match CompleteMultipartUploadResponse::parse(&text) {
            Ok(done) => Ok(done.etag().to_string()),
            Err(_) => Err(refusal(http::StatusCode::INTERNAL_SERVER_ERROR, &text)),
        }
    }

    /// Throws an upload's parts away.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> io::Result<()> {
        let action = AbortMultipartUpload::new(&self.bucket, self.creds(), key, upload_id);
        self.send(http::Method::DELETE, action.sign(SIGNED_FOR), None, ())
            .map(drop)
    }
}

/// The bytes a ranged GET asks for: from `.0` to the end, or to `.1`
/// (excluded).
type Bytes = (u64, Option<u64>);

/// A request to `url`, for the bytes `range` if given.
fn build<B>(
    method: http::Method,
    url: &url::Url,
    range: Option<Bytes>,
    body: B,
) -> io::Result<http::Request<B>> {
    let mut request = http::Request::builder().method(method).uri(url.as_str());
    if let Some((from, end)) = range {
        let last = end.map(|end| (end - 1).to_string()).unwrap_or_default();
        request = request.header("range", format!("bytes={from}-{last}"));
    }
    request.body(body).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one request's head (these requests have no body).
    fn read_head(stream: &mut std::net::TcpStream) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "the request ended early"
            );
            head.push(byte[0]);
        }
    }

    /// A client of the fake store at `url`.
    fn fake_store_client(url: String) -> S3Client {
        S3Client::new(&Endpoint {
            url,
            region: "r".into(),
            bucket: "bucket".into(),
            key_id: "k".into(),
            secret: "s".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_store_that_says_try_again_is_asked_again() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let busy =
            "<Error><Code>ServiceUnavailable</Code><Message>database is locked</Message></Error>";
        let store = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            for _ in 0..2 {
                read_head(&mut conn);
                let head = format!(
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n",
                    busy.len()
                );
                conn.write_all(head.as_bytes()).unwrap();
                conn.write_all(busy.as_bytes()).unwrap();
            }
            read_head(&mut conn);
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
        });
        let client = fake_store_client(url);
        assert_eq!(client.get_small("x").unwrap(), b"ok");
        store.join().unwrap();
    }

    #[test]
    fn a_request_on_a_connection_the_store_dropped_goes_again_on_a_fresh_one() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let store = std::thread::spawn(move || {
            // Keeps the first connection after one answer, then takes the
            // next request on it and closes it unanswered: a keep-alive
            // that ran out just as the request went out.
            let (mut kept, _) = listener.accept().unwrap();
            read_head(&mut kept);
            kept.write_all(answer).unwrap();
            read_head(&mut kept);
            drop(kept);
            let (mut fresh, _) = listener.accept().unwrap();
            read_head(&mut fresh);
            fresh.write_all(answer).unwrap();
        });
        let client = fake_store_client(url);
        assert_eq!(client.get_small("x").unwrap(), b"ok");
        assert_eq!(client.get_small("x").unwrap(), b"ok");
        store.join().unwrap();
    }
}
