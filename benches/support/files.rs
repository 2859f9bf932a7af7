//! The scratch folder and the bytes the bench moves.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ftp::wire::frame;

use crate::shared::Pattern;

/// The size of every read and write of the bench's own copies.
const CHUNK: usize = 256 * 1024;

/// Copies until the end of `from`, 256 KiB at a time: the baseline loop.
pub fn copy_chunks(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).unwrap();
    }
}

/// Like [`copy_chunks`], but each write waits for a whole chunk (or the
/// end): what ftp-server does with a body, so that the raw baseline does
/// not pay for a page-cache write per partial socket read.
pub fn copy_full_chunks(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match frame::read_full(from, &mut buf).unwrap() {
            0 => break,
            filled => to.write_all(&buf[..filled]).unwrap(),
        }
    }
}

pub fn write_pattern(path: &Path, size: u64) {
    let mut f = File::create(path).unwrap();
    let mut pattern = Pattern::new(0);
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        pattern.fill(&mut buf);
        let n = left.min(CHUNK as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
}

/// Where bulk data lives: a tmpfs, so the disk does not limit the network
/// comparison.
pub struct Scratch {
    pub dir: PathBuf,
    pub kind: &'static str,
}

impl Scratch {
    pub fn new() -> Scratch {
        let shm = Path::new("/dev/shm");
        let (base, kind) = if shm.is_dir() {
            (shm.to_path_buf(), "tmpfs (/dev/shm)")
        } else {
            (std::env::temp_dir(), "the temp dir (no /dev/shm)")
        };
        let dir = base.join(format!("ftp-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        Scratch { dir, kind }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
