//! Opening the store: the endpoint from the standard `AWS_*` variables,
//! then one listing that shows the bucket can be used.

use std::io;

use super::budget::Budget;
use super::client::{Endpoint, S3Client};
use super::usage::UsageCache;
use super::S3Store;
use crate::error::Error;

impl S3Store {
    /// The store `BUCKET[/PREFIX]`, reached as the standard variables say:
    /// `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    ///
    /// Fails when a variable is missing, or the bucket cannot be listed
    /// with these credentials.
    /// Uploads hold at most `memory` bytes of buffers together.
    pub(crate) fn from_env(bucket_and_prefix: &str, memory: u64) -> crate::error::Result<S3Store> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let need = |name: &str| {
            var(name).ok_or_else(|| {
                Error::Usage(format!(
                    "--root s3://... needs {name} in the environment (the object store is \
                     set by AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY)"
                ))
            })
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let url =
            var("AWS_ENDPOINT_URL").unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let (bucket, prefix) = match bucket_and_prefix.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (bucket_and_prefix, ""),
        };
        if bucket.is_empty() {
            return Err(Error::Usage(
                "--root s3://BUCKET[/PREFIX] needs a bucket".into(),
            ));
        }
        let endpoint = Endpoint {
            url,
            region,
            bucket: bucket.to_string(),
            key_id: need("AWS_ACCESS_KEY_ID")?,
            secret: need("AWS_SECRET_ACCESS_KEY")?,
        };
        S3Store::open(&endpoint, prefix, memory)
    }

    /// The store in `endpoint`'s bucket, below `prefix`, whose uploads
    /// hold at most `memory` bytes of buffers together.
    ///
    /// Fails when the bucket cannot be listed.
    pub(crate) fn open(
        endpoint: &Endpoint,
        prefix: &str,
        memory: u64,
    ) -> crate::error::Result<S3Store> {
        let client = S3Client::new(endpoint).map_err(|e| Error::io("the object store", e))?;
        client.check().map_err(|e| {
            let what = match e.kind() {
                io::ErrorKind::PermissionDenied => format!(
                    "the object store at {} refused access to bucket {} (check \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                    endpoint.url, endpoint.bucket
                ),
                io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::TimedOut
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable => format!(
                    "cannot reach the object store at {} (check AWS_ENDPOINT_URL)",
                    endpoint.url
                ),
                _ => format!("cannot use bucket {} at {}", endpoint.bucket, endpoint.url),
            };
            Error::io(what, e)
        })?;
        let prefix = match prefix.trim_matches('/') {
            "" => String::new(),
            p => format!("{p}/"),
        };
        Ok(S3Store {
            client,
            endpoint: endpoint.url.clone(),
            prefix,
            owner: hex::encode(rand::random::<[u8; 8]>()),
            memory: Budget::new(memory),
            usage: UsageCache::default(),
        })
    }
}
