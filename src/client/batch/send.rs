//! Sending a batch's steps: each request, with a small file's bytes and
//! digest in the same write; a large file after its `ready`.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};

use crate::client::connect::read_reply;
use crate::client::delta::DELTA_FROM;
use crate::client::files::{paced, unix_mtime};
use crate::client::partial::{partial_download_path, planted_link};
use crate::client::pipeline::Pipe;
use crate::client::SMALL_FILE;
use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::pump::{hash_prefix, relay};
use crate::wire::frame::{self};
use crate::wire::message::{Digest, DigestAlgorithm, GetRequest, PutReady, PutRequest, Request};

use super::delta::send_delta_put;
use super::sending::{body_sent, local, lost, request_out, Sending};
use super::{BatchOptions, BatchProgress, Download, Sent, Step, Upload};

pub(super) fn send(
    pipe: &mut Pipe,
    step: &Step,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let header = match step {
        Step::MakeFolder(path) => Request::Mkdir {
            path: path.clone(),
            parents: true,
        },
        Step::Remove { path, recursive } => Request::Rm {
            filename: path.clone(),
            recursive: *recursive,
        },
        Step::Download(d) => return send_get(pipe, d),
        Step::Upload(u) => return send_put(pipe, u, options, client, progress),
    };
    request_out(pipe, &header)?;
    Ok(Sent::Plain)
}

fn send_get(pipe: &mut Pipe, d: &Download) -> Result<Sent, Sending> {
    let partial = partial_download_path(&d.local).map_err(local)?;
    let found = fs::symlink_metadata(&partial).ok();
    if found.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
        return Err(Sending::Local(planted_link(&partial)));
    }
    let offset = found.filter(|m| m.is_file()).map_or(0, |m| m.len());
    let request = Request::Get(GetRequest {
        filename: d.remote.clone(),
        offset,
        length: None,
    });
    request_out(pipe, &request)?;
    Ok(Sent::Get { offset, partial })
}

fn send_put(
    pipe: &mut Pipe,
    u: &Upload,
    options: BatchOptions,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let cannot_read = |e: std::io::Error| Sending::Local(Error::cannot_read(u.local.display(), e));
    let mut file = File::open(&u.local).map_err(cannot_read)?;
    let meta = file.metadata().map_err(cannot_read)?;
    if !meta.is_file() {
        let what = format!("{} is not a regular file", u.local.display());
        return Err(Sending::Local(Error::Usage(what)));
    }
    let size = meta.len();
    let header = PutRequest {
        digest: Some(DigestAlgorithm::Blake3),
        mtime: unix_mtime(&meta),
        mode: options
            .preserve_mode
            .then(|| std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777),
        ..PutRequest::plain(&u.remote, size)
    };
    if size >= DELTA_FROM && !client.whole_file {
        let delta = send_delta_put(pipe, u, &header, &mut file, client, progress)?;
        if let Some(sent) = delta {
            return Ok(sent);
        }
    }
    if size > SMALL_FILE {
        return send_large_put(pipe, u, header, &mut file, client, progress);
    }
    let mut body = Vec::with_capacity(size as usize);
    (&mut file)
        .take(SMALL_FILE + 1)
        .read_to_end(&mut body)
        .map_err(cannot_read)?;
    if body.len() as u64 != size {
        let what = format!("{} changed while it was read; try again", u.local.display());
        return Err(Sending::Local(Error::Usage(what)));
    }
    let digest = blake3::hash(&body);
    let mut message = frame::encode_json(&Request::Put(header)).map_err(local)?;
    message.extend_from_slice(&body);
    message.extend(
        frame::encode_json(&Digest {
            blake3: digest.to_hex().to_string(),
        })
        .map_err(local)?,
    );
    pipe.send_request(&message)
        .map_err(|e| lost(Error::io("sending files", e)))?;
    progress.advance(size);
    Ok(Sent::Put {
        size,
        digest,
        resumed_from: 0,
    })
}

/// A large file: the server says where to resume before the body goes, so
/// this waits for one reply (every earlier one has been read by then).
fn send_large_put(
    pipe: &mut Pipe,
    u: &Upload,
    header: PutRequest,
    file: &mut File,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<Sent, Sending> {
    let size = header.filesize;
    let request = Request::Put(PutRequest {
        ack: true,
        resume: true,
        ..header
    });
    request_out(pipe, &request)?;
    let offset = ready_offset(pipe, size)?;
    let mut hasher = blake3::Hasher::new();
    let broke_off = |cause| Sending::LostWith {
        file: u.local.clone(),
        cause,
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| broke_off(Error::cannot_read(u.local.display(), e)))?;
    hash_prefix(file, offset, &mut hasher).map_err(broke_off)?;
    progress.advance(offset);
    let mut hasher = Digester::new(hasher, size - offset);
    send_body(pipe, u, file, size - offset, &mut hasher, client, progress)?;
    let digest = hasher.finalize();
    let frame = frame::encode_json(&Digest {
        blake3: digest.to_hex().to_string(),
    })
    .map_err(local)?;
    pipe.send_request(&frame)
        .map_err(|e| lost(Error::io("sending files", e)))?;
    Ok(Sent::Put {
        size,
        digest,
        resumed_from: offset,
    })
}

/// The offset the server's `ready` names: where the body starts.
pub(super) fn ready_offset(pipe: &mut Pipe, size: u64) -> Result<u64, Sending> {
    let ready: PutReady = match read_reply(pipe) {
        Ok(ready) => ready,
        Err(e @ Error::Remote { .. }) => return Err(Sending::Local(e)),
        Err(e) => return Err(lost(e)),
    };
    if ready.offset > size {
        let what = format!(
            "server asked to resume at {}, beyond the file's {size} bytes",
            ready.offset
        );
        return Err(lost(Error::Malformed(what)));
    }
    Ok(ready.offset)
}

/// `len` bytes of `file` from where it stands, straight to the socket
/// (everything queued before goes first), hashed on the way.
fn send_body(
    pipe: &mut Pipe,
    u: &Upload,
    file: &mut File,
    len: u64,
    hasher: &mut Digester,
    client: &crate::client::ClientOptions,
    progress: &mut dyn BatchProgress,
) -> Result<(), Sending> {
    let stream = pipe
        .direct()
        .map_err(|e| lost(Error::io("sending files", e)))?;
    let mut sink = paced(stream, client);
    let sent = relay(file, &mut sink, len, Some(hasher), |n| progress.advance(n));
    drop(sink);
    body_sent(u, sent)
}
