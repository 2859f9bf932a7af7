//! Moving files: put (in one round trip when small, resumable when not,
//! or the seed's way), and get with resume, both checked by digest.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::client::checks::{check_local_folder, check_offset, check_room, check_stored};
use crate::client::connect::{read_reply, Dialect};
use crate::client::delta::{cut_while, keep_for_put, DELTA_FROM};
use crate::client::files::{file_mtime, keep_times, paced};
use crate::client::overwrite::{confirm_early, land_download};
use crate::client::partial::{
    check_download, local_upload_name, open_partial_download, partial_download_path, planted_link,
};
use crate::client::{Client, GetReport, Progress, PutReport};
use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::interrupt::is_interruption;
use crate::io::pump::{hash_prefix, relay, PumpError};
use crate::wire::frame::{self, MAX_HEADER_LEN};
use crate::wire::message::{
    Digest, DigestAlgorithm, GetReady, GetRequest, PutDone, PutReady, PutRequest, Request,
};
use crate::wire::names::{escape, validate_name};
use crate::wire::reply::ErrorCode;

/// How many times a put refused `busy` is tried, and the pause between.
const BUSY_TRIES: u32 = 3;
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Files up to this size are sent in one round trip, without asking the
/// server for a resume offset first.
pub(crate) const SMALL_FILE: u64 = 64 * 1024;

impl Client {
    /// Uploads the local file at `path` under its base name, resuming
    /// partial data the server kept from an earlier attempt, and checking
    /// the whole file's digest before the server commits it.
    ///
    /// Fails with [`Error::LocalFile`] when the local file cannot be read,
    /// with [`Error::Usage`] when it has no usable name, with [`Error::Remote`] when the server refuses, and
    /// with an I/O error when the connection breaks (run it again to
    /// resume).
    pub fn put(&mut self, path: &Path, progress: &mut dyn Progress) -> Result<PutReport> {
        let mut tries = 1;
        loop {
            match self.put_attempt(path, progress) {
                // Another connection still holds the name (the server waits
                // a while for it first): try again a few times.
                Err(Error::Remote {
                    code: ErrorCode::Busy,
                    ..
                }) if tries < BUSY_TRIES => {
                    std::thread::sleep(BUSY_PAUSE);
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn put_attempt(&mut self, path: &Path, progress: &mut dyn Progress) -> Result<PutReport> {
        self.require_folder()?;
        let name = local_upload_name(path)?;
        let mut file = File::open(path).map_err(|e| Error::cannot_read(path.display(), e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::cannot_read(path.display(), e))?;
        if !meta.is_file() {
            return Err(Error::Usage(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let started = Instant::now();
        if self.dialect == Dialect::Original {
            return self.put_original(&name, &mut file, meta.len(), progress);
        }
        if meta.len() <= SMALL_FILE {
            return self.put_small(&name, &mut file, progress);
        }
        if meta.len() >= DELTA_FROM && !self.options.whole_file {
            let keep = keep_for_put(meta.len());
            let (cut, base) = cut_while(&file, || self.remote_signature(&name, keep));
            if let Some(base) = base? {
                let cut = cut.map_err(|e| Error::cannot_read(path.display(), e))?;
                let delta = self.put_delta(&name, (&mut file, meta.len()), (&cut, &base), progress);
                match delta {
                    Ok(Some(report)) => return Ok(report),
                    // The built file did not match: it was discarded, and
                    // the whole file goes below.
                    Ok(None)
                    | Err(Error::Remote {
                        code: ErrorCode::DigestMismatch,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match self.put_once(&name, &mut file, meta.len(), true, progress) {
            Err(Error::Remote {
                code: ErrorCode::DigestMismatch,
                ..
            }) => {
                // The server's partial data did not belong to this file; it
                // has discarded it. Send everything once more.
                let mut report = self.put_once(&name, &mut file, meta.len(), false, progress)?;
                report.restarted = true;
                report.elapsed = started.elapsed();
                Ok(report)
            }
            other => other,
        }
    }

    /// A small file in one round trip: header, bytes and digest in a single
    /// write, then the reply. Nothing to resume at this size, so no `ready`
    /// is waited for; a refused upload's few bytes are drained by the server.
    fn put_small(
        &mut self,
        name: &str,
        file: &mut File,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        let mut body = Vec::new();
        file.take(SMALL_FILE + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::cannot_read(name, e))?;
        if body.len() as u64 > SMALL_FILE {
            return Err(Error::Usage(format!(
                "{name} grew while it was being read; try again"
            )));
        }
        let size = body.len() as u64;
        let mut message = frame::encode_json(&Request::Put(PutRequest {
            digest: Some(DigestAlgorithm::Blake3),
            mtime: file_mtime(file),
            ..PutRequest::plain(name, size)
        }))?;
        message.extend_from_slice(&body);
        let digest = blake3::hash(&body);
        message.extend(frame::encode_json(&Digest {
            blake3: digest.to_hex().to_string(),
        })?);
        progress.start(name, size, 0);
        self.guard(|c| {
            c.stream
                .write_all(&message)
                .map_err(|e| Error::io("sending the file", e))?;
            progress.advance(size);
            progress.finish();
            let done: PutDone = read_reply(&mut c.stream)?;
            Ok(PutReport {
                done: check_stored(&done, name, size, &digest)?,
                resumed_from: 0,
                restarted: false,
                confirmed: true,
                elapsed: started.elapsed(),
                matched: 0,
            })
        })
    }

    /// A put the way the original client made it: header and bytes, no
    /// reply. The server cannot confirm it.
    fn put_original(
        &mut self,
        name: &str,
        file: &mut File,
        size: u64,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        self.guard(|c| {
            let request = Request::Put(PutRequest::plain(name, size));
            frame::write_json(&mut c.stream, &request)?;
            progress.start(name, size, 0);
            c.send_body(name, file, size, None, progress)?;
            Ok(PutReport {
                done: PutDone {
                    filename: name.to_string(),
                    size,
                    received: size,
                    replaced: false,
                    blake3: None,
                },
                resumed_from: 0,
                restarted: false,
                confirmed: false,
                elapsed: started.elapsed(),
                matched: 0,
            })
        })
    }

    /// Streams `len` bytes of `file` from where it stands, hashing them
    /// into `hasher` when there is one.
    fn send_body(
        &mut self,
        name: &str,
        file: &mut File,
        len: u64,
        hasher: Option<&mut Digester>,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        let options = self.options.clone();
        let mut sink = paced(&mut self.stream, &options);
        let sent = relay(file, &mut sink, len, hasher, |n| progress.advance(n));
        drop(sink);
        progress.finish();
        match sent {
            Ok(_) => Ok(()),
            Err(PumpError::Source(e)) => {
                // The header promised bytes that will not come: out of step.
                self.broken = true;
                Err(Error::NotStored {
                    file: PathBuf::from(name),
                    cause: Some(Box::new(e)),
                })
            }
            Err(PumpError::Sink(e)) if is_interruption(&e) => {
                // Closing now lets the server keep the partial and free the
                // name at once, for the resume that is likely to follow.
                self.stream.shutdown();
                Err(Error::Interrupted { what: "upload" })
            }
            Err(PumpError::Sink(e)) => {
                // The server may have stopped the upload mid-body (a full
                // disk) and closed; its reply, already here, says why.
                let said = self.stream.salvage();
                match read_reply::<_, PutDone>(&mut said.as_slice()) {
                    Err(refused @ Error::Remote { .. }) => Err(refused),
                    _ => Err(Error::io("sending file data", e)),
                }
            }
        }
    }

    fn put_once(
        &mut self,
        name: &str,
        file: &mut File,
        size: u64,
        resume: bool,
        progress: &mut dyn Progress,
    ) -> Result<PutReport> {
        let started = Instant::now();
        self.guard(|c| {
            let request = Request::Put(PutRequest {
                ack: true,
                resume,
                digest: Some(DigestAlgorithm::Blake3),
                mtime: file_mtime(file),
                ..PutRequest::plain(name, size)
            });
            frame::write_json(&mut c.stream, &request)?;
            let ready: PutReady = read_reply(&mut c.stream)?;
            let offset = ready.offset;
            check_offset(offset, size)?;
            let mut hasher = blake3::Hasher::new();
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("reading the local file", e))?;
            hash_prefix(file, offset, &mut hasher)?;
            let mut hasher = Digester::new(hasher, size - offset);
            progress.start(name, size, offset);
            c.send_body(name, file, size - offset, Some(&mut hasher), progress)?;
            let digest = hasher.finalize();
            frame::write_json(
                &mut c.stream,
                &Digest {
                    blake3: digest.to_hex().to_string(),
                },
            )?;
            let done: PutDone = read_reply(&mut c.stream)?;
            Ok(PutReport {
                done: check_stored(&done, name, size, &digest)?,
                resumed_from: offset,
                restarted: false,
                confirmed: true,
                elapsed: started.elapsed(),
                matched: 0,
            })
        })
    }

    /// Downloads `name` from the current folder to `local` (default: the
    /// same name in the working folder). Data goes to a hidden partial file
    /// next to it, which a later get resumes; the file appears under its
    /// name only once its digest matched.
    ///
    /// Fails with [`Error::Remote`] when the server refuses (no local file
    /// is created), [`Error::DigestMismatch`] when the data is corrupt, and
    /// an I/O error when the connection breaks (run it again to resume).
    pub fn get(
        &mut self,
        name: &str,
        local: Option<&Path>,
        progress: &mut dyn Progress,
    ) -> Result<GetReport> {
        self.require_replies()?;
        // The server resolves a path; the local file is named after its
        // last part, which must be a name the rules allow.
        let base = name.rsplit('/').next().unwrap_or(name);
        let base = validate_name(base)
            .map_err(|e| Error::Usage(format!("invalid remote name {:?}: {e}", escape(name))))?;
        let target = match local {
            Some(p) if p.is_dir() => p.join(base),
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(base),
        };
        check_local_folder(&target)?;
        let partial = partial_download_path(&target)?;
        let started = Instant::now();
        let resuming = fs::symlink_metadata(&partial).is_ok();
        if !resuming && !self.options.whole_file {
            let policy = self.options.overwrite.clone();
            match self.get_delta(name, (&target, &partial), &policy, progress) {
                Ok(Some(report)) => return Ok(report),
                Ok(None) => {}
                // A built file that is not the server's was thrown away:
                // the whole file comes below, on a connection in step.
                Err(Error::DigestMismatch { .. }) => {
                    let _ = fs::remove_file(&partial);
                    self.ensure_connected()?;
                }
                Err(e) => return Err(e),
            }
        }
        let first = self.get_once(name, &target, &partial, progress);
        let stale_partial = match &first {
            Err(Error::DigestMismatch { .. }) => true,
            Err(Error::Remote { code, .. }) => *code == ErrorCode::InvalidOffset,
            _ => false,
        };
        if !(resuming && stale_partial) {
            return first;
        }
        // The local partial data did not belong to this file: start over once.
        let _ = fs::remove_file(&partial);
        let mut report = self.get_once(name, &target, &partial, progress)?;
        report.restarted = true;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn get_once(
        &mut self,
        name: &str,
        target: &Path,
        partial: &Path,
        progress: &mut dyn Progress,
    ) -> Result<GetReport> {
        let started = Instant::now();
        let found = fs::symlink_metadata(partial).ok();
        if found.as_ref().is_some_and(|m| m.file_type().is_symlink()) {
            return Err(planted_link(partial));
        }
        let offset = found.filter(|m| m.is_file()).map(|m| m.len()).unwrap_or(0);
        self.guard(|c| {
            let length = None;
            let request = Request::Get(GetRequest::ranged(name, offset, length));
            frame::write_json(&mut c.stream, &request)?;
            let ready: GetReady = read_reply(&mut c.stream)?;
            if ready.offset != offset || ready.filesize < offset {
                return Err(Error::Malformed("server sent a different offset".into()));
            }
            // A no, or no room, leaves the file unread on the wire: out of step.
            check_room(partial, ready.filesize - offset).inspect_err(|_| c.broken = true)?;
            let agreed = confirm_early(&c.options.overwrite, target, ready.filesize)
                .inspect_err(|_| c.broken = true)?;
            let (mut file, hasher) = open_partial_download(partial, offset)?;
            progress.start(name, ready.filesize, offset);
            let body = ready.filesize - offset;
            let mut sink = paced(&mut file, &c.options);
            let mut hasher = Digester::new(hasher, body);
            let got = relay(&mut c.stream, &mut sink, body, Some(&mut hasher), |n| {
                progress.advance(n)
            });
            drop(sink);
            progress.finish();
            body_taken(got, &file, partial)?;
            let digest: Digest = frame::read_json(&mut c.stream, MAX_HEADER_LEN)?;
            let ours = check_download(name, file, hasher, &digest, partial, true)?;
            land_download(
                &c.options.overwrite,
                partial,
                target,
                ready.filesize,
                &ours,
                agreed,
            )?;
            keep_times(target, ready.mtime, None);
            Ok(GetReport {
                path: target.to_path_buf(),
                size: ready.filesize,
                received: body,
                resumed_from: offset,
                restarted: false,
                elapsed: started.elapsed(),
                matched: 0,
            })
        })
    }
}

/// What a download's body coming in ended with: all of it, a Ctrl-C (the
/// partial is flushed for a resume), or a failure to write it here (the
/// partial goes).
fn body_taken(got: std::result::Result<u64, PumpError>, file: &File, partial: &Path) -> Result<()> {
    match got {
        Ok(_) => Ok(()),
        Err(PumpError::Source(e)) if !e.is_interruption() => Err(e),
        // Ctrl-C, seen by the file's writer or while the read waited.
        Err(PumpError::Source(_)) => {
            let _ = file.sync_all();
            Err(Error::Interrupted { what: "download" })
        }
        Err(PumpError::Sink(e)) if is_interruption(&e) => {
            let _ = file.sync_all();
            Err(Error::Interrupted { what: "download" })
        }
        Err(PumpError::Sink(e)) => {
            let _ = fs::remove_file(partial);
            Err(Error::io(format!("writing {}", partial.display()), e))
        }
    }
}
