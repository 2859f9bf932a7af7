//! Moving a known number of bytes from a reader to a sink in large chunks,
//! hashing them on the way: the one loop behind put and get on both sides.

use std::convert::Infallible;
use std::io::{self, Read, Write};

use crate::error::{Error, Result};
use crate::io::digest::Digester;

/// Chunk size for bulk transfers. Large chunks keep the number of system
/// calls low; `std::io::copy`'s 8 KiB is much slower from a socket.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Allocates a transfer buffer for `len` bytes: no bigger than needed, so a
/// connection that sends small files keeps little memory.
pub(crate) fn buffer_for(len: u64) -> Vec<u8> {
    vec![0u8; len.clamp(1, CHUNK as u64) as usize]
}

/// Why a pump stopped. `E` is the sink's own error, handed back as the
/// sink returned it: a store's refusal reaches its reply unchanged.
#[derive(Debug)]
pub(crate) enum PumpError<E = io::Error> {
    /// The source ended or failed before `len` bytes.
    Source(Error),
    /// The sink refused a chunk.
    Sink(E),
}

/// A pump whose sink cannot fail can only stop at its source.
impl From<PumpError<Infallible>> for Error {
    fn from(e: PumpError<Infallible>) -> Error {
        match e {
            PumpError::Source(e) => e,
            PumpError::Sink(never) => match never {},
        }
    }
}

/// Reads exactly `len` bytes from `source`, hands each chunk to `sink`, and
/// returns how many bytes moved (always `len` on success).
///
/// Fails with [`PumpError::Source`] when the source ends early or fails
/// (`moved` tells how far it got through `progress`), and with
/// [`PumpError::Sink`] when the sink returns an error.
pub(crate) fn pump<R: Read + ?Sized, E>(
    source: &mut R,
    len: u64,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, PumpError<E>> {
    let mut moved = 0u64;
    while moved < len {
        let want = (len - moved).min(buf.len() as u64) as usize;
        let n = match source.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(PumpError::Source(Error::Truncated {
                    what: "file data",
                    expected: len,
                    got: moved,
                }))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PumpError::Source(Error::io("reading file data", e))),
        };
        sink(&buf[..n]).map_err(PumpError::Sink)?;
        moved += n as u64;
    }
    Ok(moved)
}

/// Moves exactly `len` bytes from `from` to `to`, feeding them to `hasher`
/// when there is one and reporting each chunk's size to `moved`: the loop
/// behind sending a file and receiving a download.
///
/// Fails like [`pump`], with [`PumpError::Sink`] when `to` refuses a chunk.
pub(crate) fn relay<R: Read + ?Sized, W: Write + ?Sized>(
    from: &mut R,
    to: &mut W,
    len: u64,
    mut hasher: Option<&mut Digester>,
    mut moved: impl FnMut(u64),
) -> Result<u64, PumpError> {
    let mut buf = buffer_for(len);
    let mut from = Filling(from);
    pump(&mut from, len, &mut buf, |chunk| {
        if let Some(h) = hasher.as_mut() {
            h.update(chunk);
        }
        to.write_all(chunk)?;
        moved(chunk.len() as u64);
        Ok(())
    })
}

/// A reader that fills the whole buffer it is given unless the source
/// ends or fails: a TLS stream hands over one 16 KiB record per read, and
/// hashing and writing whole buffers instead costs a fraction of the
/// system calls. Only for sources whose bytes are on their way (a known
/// length), since it waits for more before handing any over.
struct Filling<'a, R: ?Sized>(&'a mut R);

impl<R: Read + ?Sized> Read for Filling<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // What arrived before the error goes first.
                Err(_) if filled > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

/// Hashes the first `len` bytes of `source` with BLAKE3: the part of a file
/// that an earlier, interrupted transfer already moved.
///
/// Fails when the source is shorter than `len` or cannot be read.
pub(crate) fn hash_prefix<R: Read>(
    source: &mut R,
    len: u64,
    hasher: &mut blake3::Hasher,
) -> Result<()> {
    let mut buf = buffer_for(len);
    pump(source, len, &mut buf, |chunk| {
        hasher.update(chunk);
        Ok::<_, Infallible>(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn moves_exactly_len_bytes() {
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut src = Cursor::new(data.clone());
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        let n = pump(&mut src, 600, &mut buf, |c| {
            out.extend_from_slice(c);
            Ok::<_, Infallible>(())
        })
        .unwrap();
        assert_eq!(n, 600);
        assert_eq!(out, &data[..600]);
        assert_eq!(src.position(), 600, "must not read past the body");
    }

    #[test]
    fn short_source_is_truncated() {
        let mut buf = [0u8; 8];
        match pump(&mut Cursor::new(vec![1u8; 5]), 10, &mut buf, |_| {
            Ok::<_, Infallible>(())
        }) {
            Err(PumpError::Source(e)) => assert!(e.is_disconnect(), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sink_error_stops_the_pump() {
        let mut buf = [0u8; 8];
        let mut chunks = 0;
        let r = pump(&mut Cursor::new(vec![1u8; 20]), 20, &mut buf, |_| {
            chunks += 1;
            Err("full")
        });
        assert!(
            matches!(r, Err(PumpError::Sink("full"))),
            "the sink's own error"
        );
        assert_eq!(chunks, 1);
    }

    #[test]
    fn relay_copies_hashes_and_counts() {
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let (mut out, mut counted) = (Vec::new(), 0);
        let mut h = Digester::new(blake3::Hasher::new(), 600_000);
        let n = relay(
            &mut Cursor::new(&data),
            &mut out,
            600_000,
            Some(&mut h),
            |k| counted += k,
        )
        .unwrap();
        assert_eq!((n, counted), (600_000, 600_000));
        assert_eq!(out, &data[..600_000]);
        assert_eq!(h.finalize(), blake3::hash(&data[..600_000]));
    }

    #[test]
    fn prefix_hash_equals_hash_of_prefix() {
        let data = vec![7u8; 300_000];
        let mut h = blake3::Hasher::new();
        hash_prefix(&mut Cursor::new(&data), 250_000, &mut h).unwrap();
        assert_eq!(h.finalize(), blake3::hash(&data[..250_000]));
        assert_eq!(buffer_for(0).len(), 1);
        assert_eq!(buffer_for(10).len(), 10);
        assert_eq!(buffer_for(1 << 40).len(), CHUNK);
    }
}
