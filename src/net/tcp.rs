//! The server's view of a TCP connection: reads bounded by the idle
//! timeout and by per-message deadlines, and idle connections that give
//! their stack memory back.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::net::Transport;

/// How long one blocking read waits before the transport checks its
/// limits and, on an idle connection, releases stack memory. Also the
/// most by which a deadline can be overrun.
const PROBE: Duration = Duration::from_secs(1);

/// A TCP stream whose reads fail after the idle timeout, or at a deadline
/// however the bytes trickle in, so a slowloris peer is dropped too.
///
/// The socket's own timeout is set once, to [`PROBE`]; longer waits are
/// made of several probes. So the hot path costs no extra system calls, and
/// a connection that has been silent for a probe releases the unused part
/// of its thread's stack: 10,000 idle connections then cost a few KiB each.
pub struct TcpTransport {
    stream: TcpStream,
    idle: Duration,
    deadline: Option<Instant>,
    stack_released: bool,
}

impl TcpTransport {
    /// Wraps an accepted stream.
    ///
    /// Fails when the socket's timeout cannot be set.
    pub fn new(stream: TcpStream, idle: Duration) -> io::Result<TcpTransport> {
        stream.set_read_timeout(Some(PROBE.min(idle).max(Duration::from_millis(1))))?;
        Ok(TcpTransport {
            stream,
            idle,
            deadline: None,
            stack_released: false,
        })
    }

    /// The stream, for closing it gracefully.
    pub fn into_inner(self) -> TcpStream {
        self.stream
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for TcpTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.deadline.unwrap_or_else(|| Instant::now() + self.idle);
        loop {
            if Instant::now() >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer was silent for too long",
                ));
            }
            match self.stream.read(buf) {
                Err(e) if is_timeout(&e) => {
                    if !self.stack_released {
                        release_unused_stack();
                        self.stack_released = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) => {
                    if n > 0 {
                        self.stack_released = false;
                    }
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TcpTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Transport for TcpTransport {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }
}

/// Gives the pages of this thread's stack below the current frame back to
/// the kernel. Everything below the stack pointer is dead, so the pages
/// simply come back zeroed if the thread goes deep again. A connection
/// that went deep once (login, a listing) would otherwise keep those pages
/// resident for as long as it idles.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_unused_stack() {
    const PAGE: usize = 4096;
    // The address of a local stands in for the stack pointer.
    let marker = 0u8;
    let sp = std::hint::black_box(&marker) as *const u8 as usize;
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which
    // is destroyed after use; madvise(MADV_DONTNEED) is applied only to
    // whole pages of this thread's own stack mapping that lie at least one
    // page below the current stack pointer, where no live data can be.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut base: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(&attr, &mut base, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if got != 0 {
            return;
        }
        let low = (base as usize).next_multiple_of(PAGE);
        let high = sp & !(PAGE - 1);
        if high > low && sp < base as usize + size {
            libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_unused_stack() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn deep(n: u32) -> u64 {
        let buf = std::hint::black_box([n as u8; 1024]);
        if n == 0 {
            buf.iter().map(|&b| b as u64).sum()
        } else {
            deep(n - 1) + buf[0] as u64
        }
    }

    #[test]
    fn releasing_the_stack_keeps_the_thread_working() {
        let t = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let before = deep(100);
                release_unused_stack();
                assert_eq!(deep(100), before);
                release_unused_stack();
                deep(50)
            })
            .unwrap();
        assert!(t.join().unwrap() > 0);
    }

    #[test]
    fn reads_stop_at_the_deadline_even_when_bytes_trickle() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let mut t = TcpTransport::new(stream, Duration::from_secs(30)).unwrap();
        t.set_deadline(Some(Instant::now() + Duration::from_millis(500)));
        let started = Instant::now();
        let mut buf = [0u8; 1];
        let mut got = 0;
        let err = loop {
            match t.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert!(got >= 1, "the trickled bytes were read until the deadline");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(t);
        writer.join().unwrap();
    }
}
